"""Where model versions live in MLflow, and how one is found and loaded.

Embedded by default: ``sqlite:///models/mlflow.db`` with artifacts in
``models/artifacts``, both relative to the current directory (the project root when
run from there). ``MLFLOW_TRACKING_URI`` or an explicit ``tracking_uri`` overrides
it. Nothing is configured at import; every function resolves the URI when called.

Versions are registered under their task's name (``lead_qualification``...); the
aliases ``champion`` and ``challenger`` mark which one serves (registry aliases, not the
deprecated stages). Serving reads the registry through this module; logging, the
promotion gate and moving aliases are training's (``training.registry``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse
from urllib.request import url2pathname

from modeling.artifact import ScoringModel
from modeling.profile import ReferenceProfile, load_profile
from modeling.time_to_close import TimeToCloseModel

T = TypeVar("T")

DEFAULT_TRACKING_URI = "sqlite:///models/mlflow.db"
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
SCORING_MODEL_KEY = "scoring_model"
TIME_TO_CLOSE = "time_to_close"
"""Artifact folder of a ``deal_close`` run's time-to-close model (``TaskSpec.companions``)."""
WITHHELD_TAG = "withheld"
"""Tag of a registered model that has no champion because no version passed the gate:
its value says why (serving's ``/readyz`` and ``/v1/models`` repeat it)."""

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


@dataclass(frozen=True)
class ModelInfo:
    """What serving needs to know about the version it loaded."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    profile: ReferenceProfile | None = None
    """The reference distributions saved with the version (None: saved before profiles)."""


NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
"""MLflow's error codes for a registered model or alias that does not exist (an answer);
any other failure means the registry could not be asked (:class:`RegistryError`)."""

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the user and password of every URI in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


class RegistryError(RuntimeError):
    """The registry could not be asked: unreachable, timed out, or a broken store. Its
    message is redacted (no credentials); the cause is chained."""


def _asked(call: Callable[[], T]) -> T | None:
    """``call``'s answer; None when what it asks for does not exist; RegistryError when
    the registry could not answer."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if getattr(exc, "error_code", None) in NOT_FOUND_CODES:
            return None
        raise RegistryError(redact(f"{type(exc).__name__}: {exc}")) from exc
    except Exception as exc:  # SQL, network and file errors below MLflow
        raise RegistryError(redact(f"{type(exc).__name__}: {exc}")) from exc


def resolve_alias(task: str, alias: str = CHAMPION, tracking_uri: str | None = None) -> str | None:
    """The version an alias points at, or None when the task or the alias does not exist
    (cheap: one registry query). Raises :class:`RegistryError` when the registry could not
    be asked: an outage is not "no model"."""
    mv = _asked(lambda: _client(tracking_uri).get_model_version_by_alias(task, alias))
    return None if mv is None else str(mv.version)


def withheld_reason(task: str, tracking_uri: str | None = None) -> str | None:
    """Why no version of the task serves, when the promotion gate withheld it; else None.
    Raises :class:`RegistryError` when the registry could not be asked."""
    model = _asked(lambda: _client(tracking_uri).get_registered_model(task))
    if model is None:
        return None
    reason = (model.tags or {}).get(WITHHELD_TAG)
    return None if reason is None else str(reason)


def registered_versions(task: str, tracking_uri: str | None = None) -> list[str]:
    """Every registered version of the task, the newest first (none: an empty list)."""
    found = _asked(lambda: _client(tracking_uri).search_model_versions(f"name='{task}'"))
    return [str(v) for v in sorted((int(mv.version) for mv in found or ()), reverse=True)]


def require_store(tracking_uri: str | None = None) -> str:
    """The resolved URI, refusing a SQLite store whose file does not exist: serving would
    otherwise create an empty store at a mistyped path and report "no model registered"."""
    uri = resolve_tracking_uri(tracking_uri)
    path = _sqlite_path(uri)
    if path is not None and not path.is_file():
        raise FileNotFoundError(
            f"no MLflow store at {path}: train a model first (leadscore train) or point "
            "LEADSCORE_TRACKING_URI / MLFLOW_TRACKING_URI at the store to serve from")
    return uri


def load_model_version(
    task: str,
    alias: str | None = CHAMPION,
    tracking_uri: str | None = None,
    version: str | None = None,
) -> tuple[ScoringModel, ModelInfo]:
    """Download a registered version (by alias, or an explicit version) and load it.

    Raises ``LookupError`` when the alias or version does not exist.
    """
    uri = resolve_tracking_uri(tracking_uri)
    found = _sqlite_version(uri, task, alias, version)
    if found is not None:
        number, run_id, folder = found
        folder = folder / "artifacts" / SCORING_MODEL_KEY
        model = ScoringModel.load(folder)
        return model, ModelInfo(name=task, version=number,
                                alias=alias if version is None else None, run_id=run_id,
                                metadata=model.metadata, profile=load_profile(folder))
    import mlflow
    from mlflow.exceptions import MlflowException

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
        folder = Path(url2pathname(parsed.path)) / "artifacts" / SCORING_MODEL_KEY
        model, profile = ScoringModel.load(folder), load_profile(folder)
    else:
        # A tracking server's artifacts: only the scoring model's folder, not the logged
        # model's code copy and environment files (61 files, 0.9 s over HTTP against 0.16 s
        # on one machine; a replica swaps a new champion in that much sooner).
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source.rstrip('/')}/artifacts/{SCORING_MODEL_KEY}",
                dst_path=tmp, tracking_uri=uri,
            )
            folder = Path(local)
            model, profile = ScoringModel.load(folder), load_profile(folder)
    info = ModelInfo(
        name=task,
        version=str(mv.version),
        alias=alias if version is None else None,
        run_id=mv.run_id,
        metadata=model.metadata,
        profile=profile,
    )
    return model, info


DELETED_STAGE = "Deleted_Internal"
"""How MLflow's SQL store marks a deleted model version (``STAGE_DELETED_INTERNAL``)."""
DEFAULT_WORKSPACE = "default"
"""The one workspace of a single-tenant MLflow store (``DEFAULT_WORKSPACE_NAME``)."""


def _sqlite_version(
    uri: str, task: str, alias: str | None, version: str | None
) -> tuple[str, str | None, Path] | None:
    """A registered version of an embedded SQLite store read straight from its tables:
    its number, run and local artifact folder, as MLflow's SQL store answers
    ``get_model_version_by_alias`` / ``get_model_version`` and
    ``get_model_version_download_uri`` (the storage location, else the source).

    Importing MLflow's store costs seconds, most of a batch run's model load. None, and
    the caller asks MLflow, whenever the answer is not plain: not a SQLite file, a
    missing version or alias (MLflow words the error), the ``latest`` pseudo-alias, a
    store with more than one workspace, artifacts not on the local disk, or tables that
    do not read as expected.
    """
    import sqlite3

    path = _sqlite_path(uri)
    if path is None or not path.is_file() or (version is None and (
            alias is None or alias.lower() == "latest")):
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                                uri=True)) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(model_versions)")}
            if "workspace" in columns:
                others = db.execute("SELECT 1 FROM registered_models WHERE workspace != ? "
                                    "LIMIT 1", (DEFAULT_WORKSPACE,)).fetchone()
                if others is not None:
                    return None
            number = str(version) if version is not None else None
            if number is None:
                row = db.execute("SELECT version FROM registered_model_aliases "
                                 "WHERE name = ? AND alias = ?", (task, alias)).fetchone()
                if row is None:
                    return None
                number = str(row[0])
            if not number.isdigit():
                return None
            found = db.execute(
                "SELECT version, run_id, storage_location, source FROM model_versions "
                "WHERE name = ? AND version = ? AND (current_stage IS NULL OR "
                "current_stage != ?)", (task, int(number), DELETED_STAGE)).fetchone()
    except sqlite3.Error:
        return None
    if found is None:
        return None
    parsed = urlparse(found[2] or found[3] or "")
    if parsed.scheme != "file":
        return None
    local = Path(url2pathname(parsed.path))
    return (str(found[0]), found[1], local) if local.is_dir() else None


def load_time_to_close(
    task: str = "deal_close",
    alias: str | None = CHAMPION,
    tracking_uri: str | None = None,
    version: str | None = None,
) -> TimeToCloseModel | None:
    """The time-to-close model logged in the run of a registered version (by alias or
    version) of ``task``; None when that run has none.

    Raises ``LookupError`` when the alias or version does not exist.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    try:
        mv = (client.get_model_version(task, str(version)) if version is not None
              else client.get_model_version_by_alias(task, alias))
    except MlflowException as exc:
        what = f"version {version}" if version is not None else f"alias {alias!r}"
        raise LookupError(f"no registered model {task!r} with {what}") from exc
    if mv.run_id is None:
        return None
    names = {Path(a.path).name for a in client.list_artifacts(mv.run_id)}
    if TIME_TO_CLOSE not in names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=TIME_TO_CLOSE, dst_path=tmp, tracking_uri=uri
        )
        return TimeToCloseModel.load(Path(local))


BACKTEST_EXPERIMENT = "pipeline_backtest"
BACKTEST_ARTIFACT = "backtest.json"


def last_backtest(tracking_uri: str | None = None,
                  experiment: str = BACKTEST_EXPERIMENT) -> dict[str, Any] | None:
    """The ``backtest.json`` of the latest `leadscore pipeline backtest` run (what the
    review page shows), or None when there is none.

    A SQLite store that does not exist yet holds no backtest: it is not created by asking.
    ``run_started_ms`` is the run's start, for a ``backtest.json`` without ``ran_at``.
    """
    import json

    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    path = _sqlite_path(uri)
    if path is not None and not path.exists():
        return None
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=runs[0].info.run_id, artifact_path=BACKTEST_ARTIFACT, dst_path=tmp,
                tracking_uri=uri,
            )
        except OSError:
            return None
        data: dict[str, Any] = json.loads(Path(local).read_text())
    data["run_id"] = runs[0].info.run_id
    data["run_started_ms"] = runs[0].info.start_time
    return data
