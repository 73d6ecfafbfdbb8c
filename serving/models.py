"""The loaded models, where they come from, and how a new champion replaces the old one.

A route takes one reference to a :class:`LoadedModel` at its start and uses only that, so
a swap (one dictionary assignment under a lock) never changes a model under a request in
flight. A new version is loaded and checked off the event loop before it is swapped in;
when loading or checking fails the old model keeps serving and the failure is recorded
for ``/readyz`` and the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.declarations import FeatureSet
from modeling.artifact import ScoringModel, lightgbm
from modeling.grading import Grading
from modeling.profile import ReferenceProfile, load_profile
from serving.settings import ScoringSettings

log = logging.getLogger("leadscore.serving.models")

GRADING_MISSING = (
    "the model was saved without learned grade cut-offs: it is graded with the fixed "
    "cut-offs of LEADSCORE_GRADE_CUTOFFS (75/50/25 by default) and gives no percentile; "
    "retrain it to learn them"
)


class Scorer(Protocol):
    """What serving needs from a trained model (modeling.artifact's ScoringModel)."""

    task: str
    feature_set: FeatureSet
    metadata: dict[str, Any]
    grading: Grading | None
    """Learned grade cut-offs and percentile reference; None: saved before they were."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame: ...

    def score(
        self, X: pd.DataFrame, contributions: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and, if asked, contributions (features + bias) in one pass."""
        ...

    def column_matrix(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """``feature_columns``' arrays as the model's float matrix."""
        ...

    def score_matrix(
        self, matrix: np.ndarray, contributions: bool = False, *, explain_rows: int | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``score`` of a matrix from ``column_matrix``; contributions of the first
        ``explain_rows`` rows only, when given."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve, with where it came from."""

    task: str
    model: Scorer
    name: str
    version: str
    alias: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    profile: ReferenceProfile | None = field(default=None, repr=False, compare=False)
    """The features' and score's reference distributions saved with the model
    (``modeling.profile``); None for a model saved before them: not monitored."""


class ModelSource(Protocol):
    """Where models come from: the MLflow registry, or fixed saved-model paths."""

    def current_version(self, task: str) -> str | None:
        """The version the source would serve now (None: nothing to serve)."""
        ...

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        """Load ``version`` of the task's model (None: whatever the source serves now)."""
        ...


def withheld_by(source: ModelSource, task: str) -> str | None:
    """Why the source serves nothing for ``task`` on purpose (the gate withheld it), if it
    can say; sources without a registry cannot."""
    ask = getattr(source, "withheld", None)
    return None if ask is None else ask(task)


class RegistrySource:
    """The registry's alias (``champion`` by default) for each task, or a pinned version."""

    def __init__(
        self, alias: str = "champion", tracking_uri: str | None = None, pinned: str | None = None
    ) -> None:
        self.alias = alias
        self.tracking_uri = tracking_uri
        self.pinned = pinned

    def current_version(self, task: str) -> str | None:
        from modeling.registry import resolve_alias

        if self.pinned is not None:
            return self.pinned
        version = resolve_alias(task, self.alias, self.tracking_uri)
        return None if version is None else str(version)

    def withheld(self, task: str) -> str | None:
        """The gate's reason when no version of the task is champion (see
        ``modeling.registry.WITHHELD_TAG``)."""
        from modeling.registry import CHAMPION, withheld_reason

        if self.pinned is not None or self.alias != CHAMPION:
            return None
        return withheld_reason(task, self.tracking_uri)

    def fallback_versions(self, task: str) -> list[str]:
        """Versions to serve when the current one fails to load, the newest first (none for
        a pinned version: it was asked for by number)."""
        from modeling.registry import registered_versions

        return [] if self.pinned is not None else registered_versions(task, self.tracking_uri)

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        from modeling.registry import load_model_version

        lightgbm(without_sklearn=True)
        version = version or self.pinned
        model, info = load_model_version(
            task, alias=self.alias, tracking_uri=self.tracking_uri, version=version
        )
        return LoadedModel(
            task=task,
            model=model,
            name=str(info.name),
            version=str(info.version),
            alias=info.alias or (None if self.pinned else self.alias),
            run_id=info.run_id,
            metadata=dict(info.metadata or {}),
            profile=info.profile,
        )


class PathSource:
    """Saved models at fixed paths (``ScoringModel.save``); they never change version."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    def current_version(self, task: str) -> str | None:
        return "file" if task in self.paths else None

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        lightgbm(without_sklearn=True)
        model = ScoringModel.load(Path(self.paths[task]))
        return LoadedModel(
            task=task,
            model=model,
            name=task,
            version="file",
            metadata=dict(getattr(model, "metadata", {}) or {}),
            profile=load_profile(Path(self.paths[task])),
        )


class CombinedSource:
    """Per task, the first source that serves it (paths given in settings win)."""

    def __init__(self, by_task: dict[str, ModelSource]) -> None:
        self.by_task = by_task

    def current_version(self, task: str) -> str | None:
        source = self.by_task.get(task)
        return None if source is None else source.current_version(task)

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        return self.by_task[task].load(task, version)

    def withheld(self, task: str) -> str | None:
        source = self.by_task.get(task)
        return None if source is None else withheld_by(source, task)

    def fallback_versions(self, task: str) -> list[str]:
        source = self.by_task.get(task)
        return [] if source is None else fallback_versions(source, task)


def fallback_versions(source: ModelSource, task: str) -> list[str]:
    """The source's versions to fall back on, the newest first (none if it has none)."""
    ask = getattr(source, "fallback_versions", None)
    return [] if ask is None else list(ask(task))


REGISTRY_UNREACHABLE = "the model registry could not be reached"
LOAD_FAILED = "the model failed to load or to score its probe"


@dataclass
class LoadFailure:
    version: str | None
    error: str
    """What ``/readyz`` says: a short reason, never an exception's text (the log has it)."""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Fallback:
    """A task served by an older version because its current one failed to load."""

    failed_version: str
    version: str


Checker = Callable[[LoadedModel], None]
"""Raises when a freshly loaded model cannot score (wrong task, missing feature...)."""


class ModelStore:
    """The models being served, one per task, swapped atomically."""

    def __init__(self, tasks: tuple[str, ...]) -> None:
        self.tasks = tasks
        self._models: dict[str, LoadedModel] = {}
        self._failures: dict[str, LoadFailure] = {}
        self._withheld: dict[str, str] = {}
        self._fallbacks: dict[str, Fallback] = {}
        self._lock = threading.Lock()
        self.registry_failed_polls = 0
        """Registry polls in a row that could not reach it (0: the last one did)."""
        self.registry_down_since: datetime | None = None
        self.loading = False
        """The first load of the models is still running (startup did not wait for it)."""
        self.on_failure: Callable[[str], None] | None = None
        """Called with the task after each failed load (the app counts them)."""

    def get(self, task: str) -> LoadedModel | None:
        return self._models.get(task)

    def loaded(self) -> list[LoadedModel]:
        return [m for t in self.tasks if (m := self._models.get(t)) is not None]

    def swap(self, loaded: LoadedModel) -> LoadedModel | None:
        """Serve ``loaded`` from now on; return the model it replaced."""
        with self._lock:
            old = self._models.get(loaded.task)
            self._models = {**self._models, loaded.task: loaded}
            self._failures.pop(loaded.task, None)
            self._withheld.pop(loaded.task, None)
            self._fallbacks.pop(loaded.task, None)
        return old

    def fall_back(self, fallback: Fallback, task: str) -> None:
        with self._lock:
            self._fallbacks[task] = fallback

    def fallback(self, task: str) -> Fallback | None:
        return self._fallbacks.get(task)

    def registry_answered(self, reachable: bool) -> None:
        """Count a poll that reached the registry or not."""
        with self._lock:
            if reachable:
                self.registry_failed_polls, self.registry_down_since = 0, None
            else:
                self.registry_failed_polls += 1
                if self.registry_down_since is None:
                    self.registry_down_since = datetime.now(UTC)

    def withhold(self, task: str, reason: str | None) -> None:
        """Record that no model serves ``task`` on purpose, and why (None: it no longer is)."""
        with self._lock:
            if reason is None:
                self._withheld.pop(task, None)
            else:
                self._withheld[task] = reason

    def withheld(self, task: str) -> str | None:
        """Why ``task`` has no model, when the promotion gate withheld every version."""
        return None if task in self._models else self._withheld.get(task)

    def record_failure(self, task: str, version: str | None, error: str,
                       count: bool = True) -> None:
        """Record why ``task``'s version failed; ``count`` it for the metrics (not when a
        failure already counted is recorded again, as beside a fallback)."""
        with self._lock:
            self._failures[task] = LoadFailure(version=version, error=error)
        if count and self.on_failure is not None:
            self.on_failure(task)

    def failure(self, task: str) -> LoadFailure | None:
        return self._failures.get(task)

    def ready(self) -> bool:
        """Every task serves a model or is withheld by the gate with its reason: a task no
        version passed the gate for answers 503 saying why, and does not keep the other
        tasks out of a load balancer."""
        return all(t in self._models or t in self._withheld for t in self.tasks)


def freeze_heap() -> None:
    """Move what is alive now (the model) out of the collector's sight.

    A full collection over a few hundred thousand long-lived objects pauses a server for
    ~100 ms; frozen objects are not scanned again, which keeps p99 latency flat.
    """
    gc.collect()
    gc.freeze()


def _load_checked(source: ModelSource, task: str, version: str, check: Checker) -> LoadedModel:
    loaded = source.load(task, version)
    if loaded.task != task:
        raise ValueError(f"model is for task {loaded.task!r}, expected {task!r}")
    check(loaded)
    return loaded


def load_into(store: ModelStore, source: ModelSource, task: str, check: Checker,
              fallback: bool = False) -> bool:
    """Load the source's current model for ``task``, check it, and swap it in.

    Returns True on a swap. Any failure is logged (redacted) and recorded; the old model
    stays. With ``fallback`` (startup, when nothing serves the task yet) a current version
    that fails to load gives way to the newest older one that loads and scores its probe,
    and ``/readyz`` and the log say so.
    """
    from modeling.registry import RegistryError, redact

    version: str | None = None
    try:
        version = source.current_version(task)
        if version is None:
            reason = withheld_by(source, task)
            store.withhold(task, reason)
            if reason is not None:
                log.warning("task withheld by the promotion gate",
                            extra={"task": task, "reason": reason})
                return False
            store.record_failure(task, None, "no model registered under the alias")
            log.warning("no model to load", extra={"task": task})
            return False
        loaded = _load_checked(source, task, version, check)
    except RegistryError as exc:
        store.record_failure(task, version, REGISTRY_UNREACHABLE)
        log.error("model registry unreachable; keeping the current model",
                  extra={"task": task, "version": version, "error": str(exc)})
        return False
    except Exception as exc:  # any failure must leave the old model serving
        store.record_failure(task, version, LOAD_FAILED)
        log.error(
            "model load failed; keeping the current model",
            extra={"task": task, "version": version,
                   "error": redact(f"{type(exc).__name__}: {exc}")},
        )
        if not (fallback and version is not None and store.get(task) is None):
            return False
        found = _fall_back(store, source, task, version, check)
        if found is None:
            return False
        loaded = found
    old = store.swap(loaded)
    if loaded.version != version and version is not None:
        store.fall_back(Fallback(failed_version=version, version=loaded.version), task)
        store.record_failure(task, version, LOAD_FAILED, count=False)  # counted above
    freeze_heap()
    log.info(
        "model loaded",
        extra={
            "task": task,
            "version": loaded.version,
            "previous_version": None if old is None else old.version,
        },
    )
    if getattr(loaded.model, "grading", None) is None:
        log.warning(GRADING_MISSING, extra={"task": task, "version": loaded.version})
    return True


def _fall_back(store: ModelStore, source: ModelSource, task: str, failed: str,
               check: Checker) -> LoadedModel | None:
    """The newest version older than ``failed`` that loads and scores its probe."""
    from modeling.registry import redact

    try:
        candidates = [v for v in fallback_versions(source, task)
                      if v != failed and (not v.isdigit() or not failed.isdigit()
                                          or int(v) < int(failed))]
    except Exception as exc:
        log.error("no fallback: the versions could not be listed",
                  extra={"task": task, "error": redact(f"{type(exc).__name__}: {exc}")})
        return None
    for version in candidates:
        try:
            loaded = _load_checked(source, task, version, check)
        except Exception as exc:
            log.error("fallback version failed too",
                      extra={"task": task, "version": version,
                             "error": redact(f"{type(exc).__name__}: {exc}")})
            continue
        log.warning("serving an older version: the current one failed to load",
                    extra={"task": task, "version": version, "failed_version": failed})
        return loaded
    return None


class Reloader:
    """Polls the source every ``interval_s`` and swaps in new versions in the background."""

    def __init__(
        self, store: ModelStore, source: ModelSource, check: Checker, interval_s: float
    ) -> None:
        self.store = store
        self.source = source
        self.check = check
        self.interval_s = interval_s
        self._failed: dict[str, str] = {}
        self.on_registry_failure: Callable[[str], None] | None = None
        """Called with the task after each poll that could not reach the registry."""

    def poll_once(self) -> list[str]:
        """One check of every task (blocking); returns the tasks whose model changed."""
        from modeling.registry import redact

        changed = []
        reached = True
        for task in self.store.tasks:
            try:
                version = self.source.current_version(task)
            except Exception as exc:
                reached = False
                if self.on_registry_failure is not None:
                    self.on_registry_failure(task)
                log.error("registry poll failed; serving the current models",
                          extra={"task": task, "error": redact(f"{type(exc).__name__}: {exc}"),
                                 "failed_polls": self.store.registry_failed_polls + 1})
                continue
            current = self.store.get(task)
            if version is None and current is None:
                try:
                    self.store.withhold(task, withheld_by(self.source, task))
                except Exception as exc:
                    log.error("withheld lookup failed",
                              extra={"task": task,
                                     "error": redact(f"{type(exc).__name__}: {exc}")})
                continue
            if version is None or (current is not None and current.version == version):
                continue
            if self._failed.get(task) == version:
                continue  # already failed to load this version; wait for the alias to move
            if load_into(self.store, self.source, task, self.check, fallback=current is None):
                changed.append(task)
                self._failed.pop(task, None)
            else:
                failure = self.store.failure(task)
                if failure is not None and failure.error == REGISTRY_UNREACHABLE:
                    reached = False  # try the version again next poll
                else:
                    self._failed[task] = version
        self.store.registry_answered(reached)
        return changed

    async def run(self, after: asyncio.Future[None] | None = None) -> None:
        """Poll forever (until cancelled), loading off the event loop; the first poll waits
        for ``after`` (the first load) so the two never load the same task at once."""
        if after is not None:
            with contextlib.suppress(Exception):
                await after
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.poll_once)
            except Exception as exc:  # the poller must never die
                log.error("reload poll failed", extra={"error": repr(exc)})


def source_for_uri(task: str, uri: str, tracking_uri: str | None) -> ModelSource:
    """``models:/<task>@<alias>`` (followed), ``models:/<task>/<version>`` (pinned), or
    the folder of a saved ``ScoringModel``."""
    if not uri.startswith("models:/"):
        return PathSource({task: uri})
    ref = uri[len("models:/"):]
    name, at, alias = ref.partition("@")
    if not at:
        name, _, version = ref.partition("/")
        if not version:
            raise ValueError(f"{uri}: expected models:/{task}@<alias> or models:/{task}/<n>")
    if name != task:
        raise ValueError(f"{uri}: models are registered under their task name, {task!r}")
    if at:
        return RegistrySource(alias=alias, tracking_uri=tracking_uri)
    return RegistrySource(tracking_uri=tracking_uri, pinned=version)


def source_from_settings(settings: ScoringSettings) -> ModelSource:
    """Per task: the model URI settings give, else the registry alias (``champion``)."""
    registry = RegistrySource(alias=settings.model_alias, tracking_uri=settings.tracking_uri)
    by_task: dict[str, ModelSource] = {
        task: source_for_uri(task, uri, settings.tracking_uri) if (uri := settings.model_uri(task))
        else registry
        for task in settings.tasks
    }
    return CombinedSource(by_task)
