"""Logging runs and models to MLflow, the promotion gate, and moving aliases.

Where the store is and how a version is found and loaded is ``modeling.registry``'s,
shared with serving; this module adds what only training does.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

import modeling
from modeling.artifact import ScoringModel
from modeling.profile import ReferenceProfile
from modeling.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_ARTIFACT,
    SCORING_MODEL_KEY,
    WITHHELD_TAG,
    _client,
    _sqlite_path,
    artifact_root,
    resolve_alias,
    resolve_tracking_uri,
    withheld_reason,
)

AUC_TOLERANCE = 0.002
FINGERPRINT_TAG = "fingerprint"
"""Tag of a run and its model version: the digest of the training data, settings and code."""
FORCED_TAG = "promotion_forced"


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
    profile: ReferenceProfile | None = None,
) -> str | None:
    """Log ``model`` as a pyfunc (models from code) in the active run; register it.

    ``profile`` (its features' and score's reference distribution) is saved in the model's
    folder, so every load of the version has it (``modeling.registry``).
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
        if profile is not None:
            profile.save(model_dir)
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


def tag_version(task: str, version: str, key: str, value: str,
                tracking_uri: str | None = None) -> None:
    _client(tracking_uri).set_model_version_tag(task, str(version), key, value)


def withhold(task: str, reason: str, tracking_uri: str | None = None) -> None:
    """Record on the registered model why no version serves (read by ``/readyz``)."""
    _client(tracking_uri).set_registered_model_tag(task, WITHHELD_TAG, reason[:5000])


def clear_withheld(task: str, tracking_uri: str | None = None) -> None:
    """A champion serves: the task is no longer withheld."""
    if withheld_reason(task, tracking_uri) is not None:
        _client(tracking_uri).delete_registered_model_tag(task, WITHHELD_TAG)


def version_with_fingerprint(task: str, fingerprint: str,
                             tracking_uri: str | None = None) -> str | None:
    """The registered version trained on exactly these inputs, if there is one."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        found = client.search_model_versions(
            f"name = '{task}' and tags.{FINGERPRINT_TAG} = '{fingerprint}'"
        )
    except MlflowException:
        return None
    versions = sorted((int(v.version) for v in found), reverse=True)
    return str(versions[0]) if versions else None


def version_report(task: str, version: str,
                   tracking_uri: str | None = None) -> tuple[str | None, str | None]:
    """The run that trained a registered version, and its report in that run's artifacts
    (None, None when the registry does not say)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        run_id = client.get_model_version(task, str(version)).run_id
        if not run_id:
            return None, None
        return run_id, f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/report"
    except MlflowException:
        return None, None


def promote(task: str, version: str, tracking_uri: str | None = None) -> str | None:
    """Make ``version`` the champion by hand; return the version it replaced (if any).

    The previous champion becomes the challenger, so a rollback is one command.
    """
    client = _client(tracking_uri)
    client.get_model_version(task, str(version))  # raises if it does not exist
    previous = resolve_alias(task, CHAMPION, tracking_uri)
    client.set_registered_model_alias(task, CHAMPION, str(version))
    clear_withheld(task, tracking_uri)
    if previous is not None and previous != str(version):
        client.set_registered_model_alias(task, CHALLENGER, previous)
    elif resolve_alias(task, CHALLENGER, tracking_uri) == str(version):
        client.delete_registered_model_alias(task, CHALLENGER)
    return previous


@dataclass(frozen=True)
class Comparison:
    """The candidate against one other scorer on the same test rows."""

    against: str
    """Who, in words: "the champion (version 3)", "the stage win rate", "logistic regression"."""
    roc_auc: float
    log_loss: float
    candidate_roc_auc: float
    candidate_log_loss: float
    auc_tolerance: float = AUC_TOLERANCE

    @property
    def auc_ok(self) -> bool:
        return self.candidate_roc_auc >= self.roc_auc - self.auc_tolerance

    @property
    def log_loss_ok(self) -> bool:
        return self.candidate_log_loss < self.log_loss

    @property
    def passed(self) -> bool:
        return self.auc_ok and self.log_loss_ok

    def describe(self) -> str:
        """The figures, and on a loss what was not good enough."""
        figures = (
            f"log loss {self.candidate_log_loss:.4f} vs {self.log_loss:.4f}, "
            f"ROC AUC {self.candidate_roc_auc:.4f} vs {self.roc_auc:.4f}"
        )
        if self.passed:
            return f"{self.against} ({figures})"
        why = []
        if not self.log_loss_ok:
            why.append("log loss not better")
        if not self.auc_ok:
            why.append(f"ROC AUC worse by more than {self.auc_tolerance}")
        return f"{self.against}: {' and '.join(why)} ({figures})"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    comparisons: tuple[Comparison, ...] = ()
    forced: bool = False
    """Promoted by ``--force`` although a comparison was lost."""

    @property
    def lost(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.passed)


def promotion_gate(
    new: dict[str, float],
    champion: dict[str, float] | None,
    auc_tolerance: float = AUC_TOLERANCE,
    baselines: dict[str, dict[str, float]] | None = None,
    champion_name: str = "the champion",
) -> GateDecision:
    """Champion only if, against the current champion and every baseline, log loss is lower
    and ROC AUC not worse by more than ``auc_tolerance``.

    ``baselines`` maps a name in words ("the stage win rate", "logistic regression") to its
    metrics. Every metric dict must come from the same test rows (the new run's test
    period). A baseline without finite figures is left out.
    """
    others: list[tuple[str, dict[str, float]]] = []
    if champion is not None:
        others.append((champion_name, champion))
    others += [
        (name, m) for name, m in (baselines or {}).items()
        if all(math.isfinite(m.get(k, math.nan)) for k in ("roc_auc", "log_loss"))
    ]
    comparisons = tuple(
        Comparison(
            against=name,
            roc_auc=float(m["roc_auc"]),
            log_loss=float(m["log_loss"]),
            candidate_roc_auc=float(new["roc_auc"]),
            candidate_log_loss=float(new["log_loss"]),
            auc_tolerance=auc_tolerance,
        )
        for name, m in others
    )
    first = "" if champion is not None else "no current champion; "
    if not comparisons:
        return GateDecision(True, "no current champion", comparisons)
    lost = [c for c in comparisons if not c.passed]
    if not lost:
        beaten = "; ".join(c.describe() for c in comparisons)
        return GateDecision(True, f"{first}beats {beaten} on the same test rows", comparisons)
    return GateDecision(
        False,
        f"{first}lost to " + "; ".join(c.describe() for c in lost) + " on the same test rows",
        comparisons,
    )


def forced(decision: GateDecision) -> GateDecision:
    """The decision overridden by ``--force``: promoted, saying what it would have lost."""
    if decision.promote:
        return decision
    lost = "; ".join(c.describe() for c in decision.lost)
    reason = (f"promoted by --force although it lost to {lost}" if lost
              else f"promoted by --force: {decision.reason}")
    return replace(decision, promote=True, forced=True, reason=reason)
