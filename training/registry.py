"""Logging runs and models to MLflow, the promotion gate, and moving aliases.

Where the store is and how a version is found and loaded is ``modeling.registry``'s,
shared with serving; this module adds what only training does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

import modeling
from modeling.artifact import ScoringModel
from modeling.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_ARTIFACT,
    SCORING_MODEL_KEY,
    _client,
    _sqlite_path,
    artifact_root,
    resolve_alias,
    resolve_tracking_uri,
)

AUC_TOLERANCE = 0.002


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

    entry = Path(modeling.__file__).with_name("pyfunc_entry.py")
    root = Path(modeling.__file__).resolve().parent.parent
    sample = _signature_frame(example[model.feature_set.names].head(5))
    signature = model_signature(model)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / SCORING_MODEL_KEY
        model.save(model_dir)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(entry),
            artifacts={SCORING_MODEL_KEY: str(model_dir)},
            code_paths=[str(root / "modeling"), str(root / "features")],
            signature=signature,
            input_example=sample,
            pip_requirements=pip_requirements(),
            registered_model_name=registered_name,
        )
    if registered_name is None:
        return None
    return str(info.registered_model_version)


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
