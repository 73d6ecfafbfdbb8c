"""MLflow tracking and model registry: where runs and model versions live.

Embedded by default: ``sqlite:///models/mlflow.db`` with artifacts in
``models/artifacts``, both relative to the current directory (the project root when
run from there). ``MLFLOW_TRACKING_URI`` or an explicit ``tracking_uri`` overrides
it. Nothing is configured at import; every function resolves the URI when called.

Versions are registered as ``lead_qualification`` / ``deal_close``; the aliases
``champion`` and ``challenger`` mark which one serves (registry aliases, not the
deprecated stages).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from training.model import ScoringModel

DEFAULT_TRACKING_URI = "sqlite:///models/mlflow.db"
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
SCORING_MODEL_KEY = "scoring_model"
AUC_TOLERANCE = 0.002


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The explicit URI, else ``MLFLOW_TRACKING_URI``, else the embedded SQLite store.

    A relative SQLite path is made absolute against the current directory, so a run
    and a later load agree on the file whatever MLflow does with the cwd.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    path = _sqlite_path(uri)
    if path is not None and not path.is_absolute():
        uri = f"sqlite:///{(Path.cwd() / path).resolve()}"
    return uri


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def artifact_root(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite store (``<db folder>/artifacts``); the server decides otherwise."""
    path = _sqlite_path(tracking_uri)
    if path is None:
        return None
    return (path.parent / "artifacts").resolve().as_uri()


def _client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    path = _sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    """The experiment's id, creating it (with artifacts beside the store) if needed."""
    client = _client(tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    root = artifact_root(resolve_tracking_uri(tracking_uri))
    return str(client.create_experiment(name, artifact_location=root))


@contextmanager
def tracking(tracking_uri: str | None = None) -> Iterator[str]:
    """Point MLflow's fluent API at the store for the duration of a block, then put back
    exactly what was there: MLflow's setters also write ``MLFLOW_TRACKING_URI`` /
    ``MLFLOW_REGISTRY_URI`` into the environment, which would otherwise outlive the block.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri = resolve_tracking_uri(tracking_uri)
    path = _sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env_before = {k: os.environ.get(k) for k in env_keys}
    tracking_before = tracking_utils._tracking_uri
    registry_before = registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(tracking_before)  # type: ignore[arg-type]  # None unsets it
        registry_utils._registry_uri = registry_before
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pip_requirements() -> list[str]:
    """Explicit requirements for the logged model (inferring them costs ~2 s)."""
    out = []
    for pkg in ("mlflow", "lightgbm", "pandas", "numpy", "scikit-learn"):
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            out.append(pkg)
    return out


def _signature_frame(X: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as strings and nullable columns as floats, as a JSON client sends them."""
    out = {}
    for c in X.columns:
        s = X[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[c] = s.astype("object").where(s.notna(), None)
        elif pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype):
            out[c] = s.astype("float64")
        else:
            out[c] = s
    return pd.DataFrame(out, index=X.index)


def model_signature(model: ScoringModel) -> Any:
    """Every feature is optional (LightGBM scores missing values); categories are strings."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    cats = set(model.feature_set.categorical)
    inputs = Schema(
        [ColSpec("string" if n in cats else "double", n, required=False)
         for n in model.feature_set.names]
    )
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1,))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_scoring_model(
    model: ScoringModel,
    example: pd.DataFrame,
    registered_name: str | None,
) -> str | None:
    """Log ``model`` as a pyfunc (models from code) in the active run; register it.

    Returns the registered version, or None when ``registered_name`` is None.
    """
    import mlflow

    entry = Path(__file__).with_name("pyfunc_entry.py")
    root = Path(__file__).resolve().parent.parent
    sample = _signature_frame(example[model.feature_set.names].head(5))
    signature = model_signature(model)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / SCORING_MODEL_KEY
        model.save(model_dir)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(entry),
            artifacts={SCORING_MODEL_KEY: str(model_dir)},
            code_paths=[str(root / "training"), str(root / "features")],
            signature=signature,
            input_example=sample,
            pip_requirements=pip_requirements(),
            registered_model_name=registered_name,
        )
    if registered_name is None:
        return None
    return str(info.registered_model_version)


@dataclass(frozen=True)
class ModelInfo:
    """What serving needs to know about the version it loaded."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def resolve_alias(task: str, alias: str = CHAMPION, tracking_uri: str | None = None) -> str | None:
    """The version an alias points at, or None (cheap: one registry query)."""
    from mlflow.exceptions import MlflowException

    try:
        mv = _client(tracking_uri).get_model_version_by_alias(task, alias)
    except MlflowException:
        return None
    return str(mv.version)


def load_model_version(
    task: str,
    alias: str | None = CHAMPION,
    tracking_uri: str | None = None,
    version: str | None = None,
) -> tuple[ScoringModel, ModelInfo]:
    """Download a registered version (by alias, or an explicit version) and load it.

    Raises ``LookupError`` when the alias or version does not exist.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    try:
        if version is not None:
            mv = client.get_model_version(task, str(version))
        elif alias is not None:
            mv = client.get_model_version_by_alias(task, alias)
        else:
            raise LookupError("give an alias or a version")
    except MlflowException as exc:
        what = f"version {version}" if version is not None else f"alias {alias!r}"
        raise LookupError(f"no registered model {task!r} with {what}") from exc
    source = client.get_model_version_download_uri(task, str(mv.version))
    parsed = urlparse(source)
    if parsed.scheme == "file":
        # Local artifacts (the embedded default): read in place, no copy.
        model = ScoringModel.load(Path(url2pathname(parsed.path)) / "artifacts" / SCORING_MODEL_KEY)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=uri
            )
            model = ScoringModel.load(Path(local) / "artifacts" / SCORING_MODEL_KEY)
    info = ModelInfo(
        name=task,
        version=str(mv.version),
        alias=alias if version is None else None,
        run_id=mv.run_id,
        metadata=model.metadata,
    )
    return model, info


def set_alias(task: str, version: str, alias: str, tracking_uri: str | None = None) -> None:
    _client(tracking_uri).set_registered_model_alias(task, alias, str(version))


def promote(task: str, version: str, tracking_uri: str | None = None) -> str | None:
    """Make ``version`` the champion by hand; return the version it replaced (if any).

    The previous champion becomes the challenger, so a rollback is one command.
    """
    client = _client(tracking_uri)
    client.get_model_version(task, str(version))  # raises if it does not exist
    previous = resolve_alias(task, CHAMPION, tracking_uri)
    client.set_registered_model_alias(task, CHAMPION, str(version))
    if previous is not None and previous != str(version):
        client.set_registered_model_alias(task, CHALLENGER, previous)
    elif resolve_alias(task, CHALLENGER, tracking_uri) == str(version):
        client.delete_registered_model_alias(task, CHALLENGER)
    return previous


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def promotion_gate(
    new: dict[str, float],
    champion: dict[str, float] | None,
    auc_tolerance: float = AUC_TOLERANCE,
) -> GateDecision:
    """Champion only if ROC AUC is not worse by more than ``auc_tolerance`` and log loss is lower.

    Both metric dicts must come from the same test rows (the new run's test period).
    """
    if champion is None:
        return GateDecision(True, "no current champion")
    auc_new, auc_old = new["roc_auc"], champion["roc_auc"]
    ll_new, ll_old = new["log_loss"], champion["log_loss"]
    auc_ok = auc_new >= auc_old - auc_tolerance
    ll_ok = ll_new < ll_old
    detail = (
        f"ROC AUC {auc_new:.4f} vs champion {auc_old:.4f}, "
        f"log loss {ll_new:.4f} vs {ll_old:.4f} on the same test rows"
    )
    if auc_ok and ll_ok:
        return GateDecision(True, f"beats the champion: {detail}")
    why = []
    if not auc_ok:
        why.append(f"ROC AUC worse by more than {auc_tolerance}")
    if not ll_ok:
        why.append("log loss not better")
    return GateDecision(False, f"{' and '.join(why)}: {detail}")
