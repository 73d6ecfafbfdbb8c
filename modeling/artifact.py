"""The trained scoring model: LightGBM booster(s) plus a calibrator, saved without pickle.

This is the object serving loads. It is deliberately small: it knows its task, the
feature set it was trained on, how to turn a feature frame into calibrated
probabilities and per-feature contributions, and how to save itself as plain files
(LightGBM model text + JSON).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.declarations import FeatureSet, FeatureSpec
from modeling.calibrator import Calibrator
from modeling.grading import Grading

if TYPE_CHECKING:
    import lightgbm as lgb

    from modeling.treeshap import TreeExplainer

log = logging.getLogger(__name__)

ALL = "__all__"
"""Route key of the single model (used when the model is not split by stage)."""
SMALL_BATCH = 256
"""Below this many rows, predict on one thread: thread start-up costs more than it saves."""
FORMAT_VERSION = 1
GRADING_FILE = "grading.json"


def _feature_set_to_json(fs: FeatureSet) -> dict[str, Any]:
    return {
        "name": fs.name,
        "version": fs.version,
        "task": fs.task,
        "entity_key": fs.entity_key,
        "features": [asdict(f) for f in fs.features],
    }


def _feature_set_from_json(data: dict[str, Any]) -> FeatureSet:
    """The registered set of that name and version if the code has it, else the stored one."""
    stored = FeatureSet(
        name=data["name"],
        version=int(data["version"]),
        task=data["task"],
        entity_key=data["entity_key"],
        features=tuple(FeatureSpec(**{**f, "levels": tuple(f.get("levels") or ())})
                       for f in data["features"]),
    )
    try:
        from features.sets import FEATURE_SETS
    except ImportError:  # pragma: no cover - feature sets module absent
        return stored
    known = FEATURE_SETS.get(stored.name)
    if known is not None and known.version == stored.version and known.names == stored.names:
        return known
    return stored


@dataclass(frozen=True)
class Offset:
    """A fixed log-odds start per value of one column (the deal's stage), learned from the
    training period's rates; the booster(s) learn corrections on top of it.

    With few deals, trees fitted from a flat start can miss even the stage's strong
    effect and lose to the CRM's stage rate; starting from that rate, early stopping
    keeps only the trees that improve on it.
    """

    column: str
    logits: dict[str, float]
    default: float

    def apply(self, X: pd.DataFrame) -> np.ndarray:
        s = X[self.column]
        if isinstance(s.dtype, pd.CategoricalDtype):
            return self.apply_codes(s.cat.codes.to_numpy(), list(s.cat.categories))
        keys = s.astype("object")
        return keys.map(self.logits).astype("float64").fillna(self.default).to_numpy()

    def apply_codes(self, codes: np.ndarray, levels: list[Any]) -> np.ndarray:
        """The offset of category codes into ``levels`` (-1 or NaN: missing).

        A look-up by code: ~20 µs for one row, against ~0.7 ms for a map of the values.
        """
        table = np.array([self.logits.get(str(c), self.default) for c in levels]
                         + [self.default])
        out: np.ndarray = table[_slots(codes, len(levels))]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "logits": self.logits, "default": self.default}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Offset:
        return cls(
            column=str(data["column"]),
            logits={str(k): float(v) for k, v in data["logits"].items()},
            default=float(data["default"]),
        )


def _category_levels(
    feature_set: FeatureSet, boosters: dict[str, lgb.Booster]
) -> dict[str, list[Any]]:
    """Category levels per categorical feature, as LightGBM stored them at training."""
    cats = feature_set.categorical
    if not cats or not boosters:
        return {}
    booster = boosters.get(ALL) or next(iter(boosters.values()))
    stored = getattr(booster, "pandas_categorical", None) or []
    if len(stored) != len(cats):
        return {}
    return {c: list(levels) for c, levels in zip(cats, stored, strict=True)}


def _slots(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """Category codes (float with NaN, or int with -1, for missing) as indexes into a
    table of ``n_levels`` entries plus a last one for missing."""
    codes = np.asarray(codes)
    missing = np.isnan(codes) if codes.dtype.kind == "f" else codes < 0
    return np.where(missing, n_levels, codes).astype(np.intp)


def _recode_tables(
    feature_set: FeatureSet, levels: dict[str, list[Any]]
) -> dict[str, np.ndarray]:
    """Per category feature: booster code (as float, NaN: missing) of each code of the
    feature's fixed levels, with a last slot for code -1. Identity unless the booster was
    trained with other levels; what ``set_categories`` does in ``_matrix``."""
    from features.build import spec_dtype
    from features.sets import CATEGORY_LEVELS

    out = {}
    for name in feature_set.categorical:
        spec = feature_set.spec(name)
        if not spec.levels and name not in CATEGORY_LEVELS:
            raise ValueError(
                f"category feature {name!r} has no fixed levels in features.sets: "
                "features.build.feature_columns does not compute it; score a DataFrame"
            )
        fixed = list(spec_dtype(spec).categories)
        booster = levels.get(name, fixed)
        position = {level: float(i) for i, level in enumerate(booster)}
        out[name] = np.array([position.get(level, np.nan) for level in fixed] + [np.nan])
    return out


class ScoringModel:
    """Calibrated P(label=1) for one task, from one booster or one per stage.

    ``boosters`` and ``calibrators`` share their keys: either the single key
    :data:`ALL`, or one key per value of ``route_by`` (the deal's stage). Rows whose
    route has no model of its own fall back to :data:`ALL` when it exists.

    A *rate model* has no booster: its log-odds are the ``offset`` alone (the CRM's rate of
    the offset column's value, learned in training), calibrated by construction, with the
    single calibrator ``none`` keyed :data:`ALL`. It is what a task with too few outcomes
    for LightGBM registers (``training.cold_start``); ``levels`` then gives the category
    levels the boosters would otherwise carry.

    ``grading`` (grade cut-offs and the reference distribution of percentiles) is learned
    at training; None for a model saved before it was (serving grades those with fixed
    cut-offs).
    """

    def __init__(
        self,
        task: str,
        feature_set: FeatureSet,
        boosters: dict[str, lgb.Booster],
        calibrators: dict[str, Calibrator],
        metadata: dict[str, Any] | None = None,
        route_by: str | None = None,
        offset: Offset | None = None,
        grading: Grading | None = None,
        levels: Mapping[str, list[Any]] | None = None,
    ) -> None:
        rate_model = not boosters
        if rate_model:
            if offset is None or route_by is not None or set(calibrators) != {ALL}:
                raise ValueError("a model without boosters is a rate model: an offset, no "
                                 f"routing and one calibrator keyed {ALL!r}")
        elif set(boosters) != set(calibrators):
            raise ValueError("boosters and calibrators must have the same keys")
        if route_by is None and not rate_model and set(boosters) != {ALL}:
            raise ValueError(f"a model without routing has exactly one booster keyed {ALL!r}")
        self.task = task
        self.feature_set = feature_set
        self.boosters = boosters
        self.calibrators = calibrators
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.route_by = route_by
        self.offset = offset
        self.grading = grading
        self._levels = (_category_levels(feature_set, boosters) if boosters
                        else {c: list(v) for c, v in (levels or {}).items()})
        self._position = {name: i for i, name in enumerate(feature_set.names)}
        self._recode: dict[str, np.ndarray] | None = None
        """Built on first use by ``column_matrix``: only serving's feature sets have the
        fixed category levels it needs."""
        self._explainers: dict[str, TreeExplainer | None] | None = None
        self._explainers_lock = threading.Lock()

    @property
    def is_rate_model(self) -> bool:
        """No booster: the offset's rates are the model (cold start)."""
        return not self.boosters

    # -- scoring -------------------------------------------------------------------

    def _check(self, X: pd.DataFrame) -> pd.DataFrame:
        names = self.feature_set.names
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise ValueError(f"missing feature columns: {missing}")
        # Extra columns (the entity key and as_of of build_features' output) are left in
        # place: _matrix reads the features by name, and selecting 58 of 60 columns costs
        # a copy of every block (~0.35 ms for one row).
        loose = [c for c in self._levels if not isinstance(X[c].dtype, pd.CategoricalDtype)]
        if loose:
            # Rows from JSON or an MLflow signature arrive as strings: give them the
            # categories the booster was trained with (unknown values become missing).
            X = X.assign(
                **{c: pd.Categorical(X[c].astype("object"), categories=self._levels[c])
                   for c in loose}
            )
        return X

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """X as the float matrix LightGBM builds from a DataFrame (category -> code, NA -> NaN).

        Exactly what ``Booster.predict`` does to a DataFrame itself, without its per-call
        pandas overhead: ~3.7 ms for one row, against ~0.2 ms for the matrix. Columns are
        read one by one in the feature set's order; columns it does not name are skipped.
        """
        position = {c: i for i, c in enumerate(self.feature_set.names)}
        out = np.empty((len(X), len(position)), dtype=np.float64)
        for c, s in X.items():
            i = position.get(str(c))
            if i is None:
                continue
            # Through the arrays, not Series methods: ~3 µs a column instead of ~20.
            if c in self._levels:
                cat = s.array
                if list(cat.categories) != self._levels[str(c)]:
                    cat = cat.set_categories(self._levels[str(c)])
                codes = cat.codes
                out[:, i] = np.where(codes < 0, np.nan, codes)
            else:
                arr = s.array
                out[:, i] = (
                    arr.to_numpy(dtype=np.float64)
                    if isinstance(arr, pd.arrays.NumpyExtensionArray) and arr.dtype.kind in "fiub"
                    else arr.to_numpy(dtype=np.float64, na_value=np.nan)
                )
        return out

    def column_matrix(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """``features.build.feature_columns``' arrays as the float matrix that ``_matrix``
        makes of ``build_features``' frame: no DataFrame is built or read (serving)."""
        if self._recode is None:
            self._recode = _recode_tables(self.feature_set, self._levels)
        names = self.feature_set.names
        out = np.empty((len(columns[names[0]]) if names else 0, len(names)), dtype=np.float64)
        for i, name in enumerate(names):
            recode = self._recode.get(name)
            out[:, i] = columns[name] if recode is None else recode[columns[name]]
        return out

    def _category_position(self, column: str) -> int | None:
        """Where a categorical feature sits in the matrix (None: not one of them)."""
        return self._position.get(column) if column in self._levels else None

    def _route_keys(self, matrix: np.ndarray, frame: pd.DataFrame | None) -> np.ndarray:
        """Each row's value of ``route_by``: from the matrix when it is a categorical
        feature (category names, None where missing), else from the scored frame."""
        column = str(self.route_by)
        i = self._category_position(column)
        if i is not None:
            levels = np.empty(len(self._levels[column]) + 1, dtype=object)
            levels[:] = [*self._levels[column], None]
            out: np.ndarray = levels[_slots(matrix[:, i], len(levels) - 1)]
            return out
        if frame is None:
            raise ValueError(f"{column!r} is not a categorical feature of this model: "
                             "score a DataFrame that holds it")
        return frame[column].astype("object").to_numpy()

    def _routes(self, matrix: np.ndarray, frame: pd.DataFrame | None) -> dict[str, np.ndarray]:
        """Row positions per booster key."""
        n = len(matrix)
        if self.route_by is None:
            return {ALL: np.arange(n)}
        keys = self._route_keys(matrix, frame)
        out: dict[str, np.ndarray] = {}
        unrouted = np.ones(n, dtype=bool)
        for key in self.boosters:
            if key == ALL:
                continue
            idx = np.flatnonzero(keys == key)
            if idx.size:
                out[key] = idx
                unrouted[idx] = False
        if unrouted.any():
            if ALL not in self.boosters:
                bad = sorted({str(k) for k in keys[unrouted]})
                raise ValueError(f"no model for {self.route_by} value(s) {bad}")
            out[ALL] = np.flatnonzero(unrouted)
        return out

    @staticmethod
    def _threads(n: int) -> int:
        return 1 if n <= SMALL_BATCH else 0

    def _offset(self, matrix: np.ndarray, frame: pd.DataFrame | None) -> np.ndarray:
        """The offset per row, read like ``_route_keys`` reads its column."""
        if self.offset is None:
            return np.zeros(len(matrix))
        column = self.offset.column
        i = self._category_position(column)
        if i is not None:
            return self.offset.apply_codes(matrix[:, i], self._levels[column])
        if frame is None:
            raise ValueError(f"{column!r} is not a categorical feature of this model: "
                             "score a DataFrame that holds it")
        return self.offset.apply(frame)

    def _parts(
        self, matrix: np.ndarray, frame: pd.DataFrame | None
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(booster key, row positions, float matrix of those rows)."""
        return [
            (key, idx, matrix if idx.size == len(matrix) else matrix[idx])
            for key, idx in self._routes(matrix, frame).items()
        ]

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds: the booster(s) plus the offset, if any."""
        X = self._check(X)
        matrix = self._matrix(X)
        raw = self._offset(matrix, X)
        for key, idx, m in self._parts(matrix, X):
            booster = self.boosters.get(key)
            if booster is not None:
                raw[idx] += booster.predict(m, raw_score=True,
                                            num_threads=self._threads(len(idx)))
        return raw

    def score(
        self, X: pd.DataFrame, contributions: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated P(label=1) per row and, if asked, ``pred_contrib`` (features + bias).

        One float matrix serves both, so a request that wants reasons pays for reading
        its features once. The contributions are as :meth:`contributions` returns them.
        """
        X = self._check(X)
        return self.score_matrix(self._matrix(X), contributions, frame=X)

    def score_matrix(
        self, matrix: np.ndarray, contributions: bool = False, frame: pd.DataFrame | None = None,
        *, explain_rows: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`score` of a float matrix from ``_matrix`` or :meth:`column_matrix`.

        ``frame`` (the scored DataFrame) is needed only when the routing or offset column
        is not a categorical feature of the model. ``explain_rows``: contributions of the
        first rows only (the rest are scored, not explained); default all.
        """
        n = len(matrix)
        k = n if explain_rows is None else min(explain_rows, n)
        proba = np.empty(n, dtype=float)
        contrib = (
            np.empty((k, len(self.feature_set.names) + 1), dtype=float) if contributions else None
        )
        offset = self._offset(matrix, frame)
        for key, idx, m in self._parts(matrix, frame):
            booster, threads = self.boosters.get(key), self._threads(len(idx))
            if booster is None:  # a rate model: the offset is the whole score
                proba[idx] = self.calibrators[key].apply(offset[idx])
                if contrib is not None:
                    contrib[idx[idx < k]] = 0.0
                continue
            raw = np.asarray(booster.predict(m, raw_score=True, num_threads=threads))
            proba[idx] = self.calibrators[key].apply(raw + offset[idx])
            if contrib is not None:
                explained = idx < k
                if explained.any():
                    contrib[idx[explained]] = self._contributions(
                        key, m if explained.all() else m[explained], threads)
        if contrib is not None:
            self._add_offset(contrib, offset[:k])
        return proba, contrib

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated P(label=1) per row of X."""
        return self.score(X)[0]

    def contributions(self, X: pd.DataFrame, lightgbm: bool = False) -> pd.DataFrame:
        """LightGBM ``pred_contrib`` per feature (log-odds, before calibration) plus "bias".

        The offset, if any, is part of "bias", so each row still sums to its raw score.
        ``lightgbm``: computed by LightGBM itself rather than the precomputed explainer
        (the same values): a caller that explains a few thousand rows once, as training's
        plots do, then does not load or compile the explainer's kernels.
        """
        X = self._check(X)
        matrix = self._matrix(X)
        names = self.feature_set.names
        out = np.empty((len(X), len(names) + 1), dtype=float)
        out[:] = 0.0
        for key, idx, m in self._parts(matrix, X):
            booster = self.boosters.get(key)
            if booster is not None:
                threads = self._threads(len(idx))
                out[idx] = (np.asarray(booster.predict(m, pred_contrib=True, num_threads=threads))
                            if lightgbm else self._contributions(key, m, threads))
        self._add_offset(out, self._offset(matrix, X))
        return pd.DataFrame(out, columns=[*names, "bias"], index=X.index)

    def explainers(self) -> dict[str, TreeExplainer | None]:
        """Per booster key, its exact TreeSHAP from precomputed tables
        (``modeling.treeshap``), or None where the booster needs LightGBM's own
        ``pred_contrib`` (logged once, with the reason).

        Built for every booster at the first explanation (a server's load check explains
        a probe, so no request pays for it), with the compiled kernels loaded.
        """
        if self._explainers is None:
            with self._explainers_lock:
                if self._explainers is None:
                    from modeling import treeshap

                    treeshap.warm_up_once()
                    self._explainers = {
                        key: treeshap.explainer_or_none(booster, f"{self.task} {key}")
                        for key, booster in self.boosters.items()
                    }
        return self._explainers

    def _contributions(self, key: str, matrix: np.ndarray, threads: int) -> np.ndarray:
        """``pred_contrib`` of booster ``key`` (features + bias), from its explainer when
        it has one."""
        explainer = self.explainers().get(key)
        if explainer is not None:
            return explainer.contributions(matrix, num_threads=threads)
        return np.asarray(
            self.boosters[key].predict(matrix, pred_contrib=True, num_threads=threads))

    def _add_offset(self, contrib: np.ndarray, offset: np.ndarray) -> None:
        """The offset into a contribution matrix (features + bias): in the bias beside a
        booster's trees; for a rate model, its rate column holds how far its value's rate
        is from the overall one, so the rate is the reason, and the bias the overall rate."""
        assert self.offset is not None or not offset.any()
        position = (self._position.get(self.offset.column)
                    if self.offset is not None and self.is_rate_model else None)
        if position is None:
            contrib[:, -1] += offset
            return
        assert self.offset is not None
        contrib[:, position] += offset - self.offset.default
        contrib[:, -1] += self.offset.default

    # -- persistence ---------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the model as a folder: one LightGBM text file per booster and JSON.

        The boosters and the grading are checked against their SHA-256 on load.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        digests: dict[str, str] = {}
        for i, (key, booster) in enumerate(sorted(self.boosters.items())):
            fname = f"booster_{i}.txt"
            booster.save_model(str(path / fname))
            files[key] = fname
            digests[fname] = hashlib.sha256((path / fname).read_bytes()).hexdigest()
        if self.grading is not None:
            text = json.dumps(self.grading.to_json(), indent=2, sort_keys=True)
            (path / GRADING_FILE).write_bytes(text.encode("utf-8"))
            digests[GRADING_FILE] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        spec = {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "route_by": self.route_by,
            "boosters": files,
            "sha256": digests,
            "calibrators": {k: c.to_json() for k, c in sorted(self.calibrators.items())},
            "feature_set": _feature_set_to_json(self.feature_set),
            "offset": self.offset.to_json() if self.offset is not None else None,
            "grading": GRADING_FILE if self.grading is not None else None,
            **({"levels": self._levels} if self.is_rate_model else {}),
        }
        (path / "model.json").write_text(json.dumps(spec, indent=2, sort_keys=True))
        (path / "metadata.json").write_text(
            json.dumps(self.metadata, indent=2, sort_keys=True, default=str)
        )

    @classmethod
    def load(cls, path: Path) -> ScoringModel:
        """Read a folder written by :meth:`save`."""
        path = Path(path)
        spec = json.loads((path / "model.json").read_text())
        if spec.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format {spec.get('format_version')!r}")
        boosters = {
            key: lightgbm().Booster(model_str=_verified_text(path / fname, spec.get("sha256", {})))
            for key, fname in spec["boosters"].items()
        }
        calibrators = {k: Calibrator.from_json(c) for k, c in spec["calibrators"].items()}
        metadata_file = path / "metadata.json"
        metadata = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
        grading_file = spec.get("grading")
        grading = (
            Grading.from_json(json.loads(_verified_text(path / grading_file, spec["sha256"])))
            if grading_file else None
        )
        return cls(
            task=spec["task"],
            feature_set=_feature_set_from_json(spec["feature_set"]),
            boosters=boosters,
            calibrators=calibrators,
            metadata=metadata,
            route_by=spec["route_by"],
            offset=Offset.from_json(spec["offset"]) if spec.get("offset") else None,
            grading=grading,
            levels=spec.get("levels"),
        )


def lightgbm(*, without_sklearn: bool = False) -> ModuleType:
    """The LightGBM module; ``without_sklearn`` keeps scikit-learn out of a scoring process.

    LightGBM imports scikit-learn for its sklearn-style estimators whenever it is
    installed: 63 MB of memory and ~1-2 s of start-up (measured) in a server that only
    calls ``Booster.predict``. Serving asks for it without, before its first model loads;
    a process where either module is already imported (training, the tests) is left as
    it is, so LightGBM's estimators work wherever something imported them first.
    """
    loaded = sys.modules.get("lightgbm")
    if loaded is not None:
        return loaded
    if not without_sklearn or "sklearn" in sys.modules:
        import lightgbm as lgb

        return lgb
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` fail
    try:
        import lightgbm as lgb
    finally:
        del sys.modules["sklearn"]
    return lgb


def _verified_text(file: Path, digests: dict[str, str]) -> str:
    """A booster's (or the grading's) text, refused unless it is byte for byte what
    ``save`` wrote.

    LightGBM aborts the whole process on a truncated or garbled model file instead of
    raising, so a damaged artifact must be caught before it reaches the parser: a server
    reloading a corrupt new version has to keep serving the old one.
    """
    data = file.read_bytes()
    expected = digests.get(file.name)
    if expected is None:
        raise ValueError(f"{file.name}: no checksum recorded in model.json; re-save the model")
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"{file.name}: checksum mismatch, the file is damaged or was changed")
    return data.decode("utf-8")
