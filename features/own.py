"""An export's own columns as features: declared in a mapping's ``features:`` section,
written beside the contract tables by ``leadscore import``, read as of t by training and
serving.

The contract's tables hold what every CRM has. A CRM also holds what only it has (X
Education's lead origin, a Salesforce custom field): ``leadscore import`` writes each such
column, keyed by its record's contract id, under ``own_features/`` in the data folder, with
``own_features/features.json`` saying per column its table, its kind (a number, a category,
a yes/no answer) and when it is known:

- ``creation``: fixed when the record is created (a lead's origin): read for every snapshot
  after the record exists.
- ``history``: its past values come from the record's field history (Salesforce
  LeadHistory, HubSpot property history): read as of each snapshot, as the contract's own
  changeable attributes are (``features.field_history``).
- ``export``: only the value on the day of the export exists (a running total, a field the
  sales team fills in after contact). It may tell the outcome, so it is left out of
  features unless the mapping lists it in ``allow_current_values``; a model trained with
  one names it on its card as a leak risk.

Training derives the feature set (``lead_v1+own``: the declared features and these),
learning each category's levels from the training data; the model stores the set with
the levels, so serving encodes a request's values exactly as training did, and reads a
level it never saw as unknown, with a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features import field_history as fh
from features import point_in_time as pit
from features.columns import Frame, keys, times
from features.declarations import Entity, FeatureDtype, FeatureSet, FeatureSpec

OWN_DIR = "own_features"
MANIFEST = "features.json"
HISTORY_SUFFIX = "_history"
"""``<table>_history.parquet``: the changes of a table's ``history`` features."""
MAX_MISSING = 0.99
"""An own feature missing in more than this share of training rows is dropped (reported)."""

KnownAt = Literal["creation", "history", "export"]
OwnKind = Literal["number", "category", "yes_no"]

TABLE_KEYS: dict[str, str] = {
    "leads": "lead_id", "opportunities": "opportunity_id", "accounts": "account_id",
}
"""The contract tables own columns may belong to, with their key."""
KEY_TABLES: dict[str, str] = {v: k for k, v in TABLE_KEYS.items()}
_ENTITIES: dict[str, Entity] = {"leads": "lead", "opportunities": "deal", "accounts": "account"}
_DTYPES: dict[str, FeatureDtype] = {"number": "float", "category": "category", "yes_no": "bool"}


@dataclass(frozen=True)
class OwnFeature:
    """One export column passed through as a feature."""

    name: str
    table: str
    kind: OwnKind
    known_at: KnownAt
    column: str
    """The export's column it came from (what the rep's reason names)."""
    allowed: bool = False
    """An ``export``-only value opted in with ``allow_current_values``."""

    @property
    def usable(self) -> bool:
        return self.known_at != "export" or self.allowed

    @property
    def leak_risk(self) -> bool:
        """A value only the export knows, used anyway: the card names it."""
        return self.known_at == "export" and self.allowed

    def spec(self, levels: tuple[str, ...] = ()) -> FeatureSpec:
        text = {"number": "{value:,.4g}", "category": "{value}", "yes_no": "{value}"}[self.kind]
        return FeatureSpec(self.name, _ENTITIES[self.table], _DTYPES[self.kind],
                           f"{self.column}: {text}", levels=levels)


@dataclass(frozen=True)
class OwnFeatures:
    """The own features of a data folder: declarations, and per table their values (the
    table's key, then one column per feature: float for numbers and yes/no answers, text
    for categories)."""

    features: tuple[OwnFeature, ...] = ()
    values: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    history: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    """Per table, the changes of its ``history`` features, one row per change: the key,
    ``changed_at`` (UTC), ``field`` (the feature's name), ``old_value`` and ``new_value``
    as text (numbers and yes/no answers as numbers: ``1.0`` is yes)."""

    def of_key(self, key: str) -> tuple[OwnFeature, ...]:
        table = KEY_TABLES.get(key)
        return tuple(f for f in self.features if f.table == table)

    def __bool__(self) -> bool:
        return bool(self.features)


NONE = OwnFeatures()


def write_own(folder: Path, own: OwnFeatures) -> list[Path]:
    """Write ``own`` under ``folder/own_features`` (nothing, and any old copy removed, when
    there are none)."""
    out = Path(folder) / OWN_DIR
    if out.exists():
        for old in out.iterdir():
            old.unlink()
    if not own:
        if out.exists():
            out.rmdir()
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table, frame in own.values.items():
        path = out / f"{table}.parquet"
        frame.to_parquet(path, index=False)
        written.append(path)
    for table, frame in own.history.items():
        path = out / f"{table}{HISTORY_SUFFIX}.parquet"
        frame.to_parquet(path, index=False)
        written.append(path)
    manifest = out / MANIFEST
    manifest.write_text(json.dumps({"features": [asdict(f) for f in own.features]},
                                   indent=2) + "\n")
    return [manifest, *written]


def read_own(folder: Path) -> OwnFeatures:
    """The own features written by ``leadscore import`` in ``folder`` (none if absent)."""
    manifest = Path(folder) / OWN_DIR / MANIFEST
    if not manifest.is_file():
        return NONE
    data = json.loads(manifest.read_text())
    features = tuple(OwnFeature(**f) for f in data.get("features", []))
    values, history = {}, {}
    for table in sorted({f.table for f in features}):
        frame = pd.read_parquet(manifest.parent / f"{table}.parquet")
        values[table] = _typed(frame, TABLE_KEYS[table],
                               [f for f in features if f.table == table])
        changes = manifest.parent / f"{table}{HISTORY_SUFFIX}.parquet"
        if changes.is_file():
            history[table] = pd.read_parquet(changes)
    return OwnFeatures(features, values, history)


def _typed(frame: pd.DataFrame, key: str, features: Sequence[OwnFeature]) -> pd.DataFrame:
    out: dict[str, Any] = {key: frame[key].astype(object)}
    for f in features:
        s = frame[f.name]
        if f.kind == "category":
            out[f.name] = s.astype(object).where(s.notna(), None)
        else:
            out[f.name] = pd.to_numeric(s, errors="coerce").astype("float64")
    return pd.DataFrame(out)


def own_columns(
    own: OwnFeatures, key: str, snapshots: Frame, exists: np.ndarray
) -> dict[str, np.ndarray]:
    """Per snapshot, the value of each usable own feature of the entity ``key``: float
    (NaN: not known) or text (None), where the entity existed before the snapshot's time.

    ``creation`` values and opted-in ``export`` values are the record's one value, so they
    need no time of their own; a ``history`` value is the record's unless its field
    history says otherwise as of the snapshot's time (``features.field_history``).
    """
    table = KEY_TABLES.get(key)
    frame = own.values.get(table) if table else None
    if frame is None or table is None:
        return {}
    vocabulary = frame[key].to_numpy(dtype=object)
    row = pit.codes(keys(snapshots, key), vocabulary)
    ok = (row >= 0) & np.asarray(exists, dtype=bool)
    at = np.where(ok, row, 0)
    usable = [f for f in own.of_key(key) if f.usable]
    changed = tuple(f.name for f in usable if f.known_at == "history")
    history = own.history.get(table)
    changes = (fh.Changes.of(history, key, vocabulary, changed)
               if changed and history is not None else None)
    queries = pit.Queries(row, times(snapshots, "as_of")) if changes is not None else None
    out: dict[str, np.ndarray] = {}
    for f in usable:
        values = frame[f.name].to_numpy()
        found = (changes.lookup(queries, f.name)
                 if changes is not None and queries is not None and f.name in changed
                 else None)
        if f.kind == "category":
            current = np.full(len(row), None, dtype=object)
            if len(values):
                current = np.asarray(values, dtype=object)[at]
            picked = current if changes is None else changes.texts(found, current)
            text = np.full(len(row), None, dtype=object)
            text[ok] = np.asarray(picked, dtype=object)[ok]
            out[f.name] = text
        else:
            vals = np.asarray(values, dtype=np.float64)
            current = vals[at] if len(vals) else np.full(len(row), np.nan)
            picked = current if changes is None else changes.numbers(found, current, "float")
            out[f.name] = np.where(ok, picked, np.nan)
    return out


@dataclass(frozen=True)
class Derived:
    """A feature set with an export's own columns, and what was left out and why."""

    feature_set: FeatureSet
    left_out: dict[str, str]
    """Own feature -> why it is not in the set."""
    leak_risks: tuple[str, ...]
    """Own features whose values only the export knows, used by opt-in."""


def derive_feature_set(
    base: FeatureSet, own: OwnFeatures, values: Mapping[str, np.ndarray]
) -> Derived:
    """``base`` plus the usable own features of its entity, from their values over the
    training rows (``values``, from :func:`own_columns`): a category's levels are the
    values seen there (most frequent first), and a feature missing in more than
    :data:`MAX_MISSING` of the rows is left out."""
    left_out: dict[str, str] = {}
    specs: list[FeatureSpec] = []
    risks: list[str] = []
    clash = set(base.names)
    for f in own.of_key(base.entity_key):
        if not f.usable:
            left_out[f.name] = (f"known only at export ({f.column}): list it under its "
                                "table's allow_current_values to use it")
            continue
        if f.name in clash:
            left_out[f.name] = f"{base.name} already has a feature named {f.name}"
            continue
        v = values.get(f.name)
        n = 0 if v is None else len(v)
        missing = np.ones(n, dtype=bool) if v is None else (
            pd.isna(pd.Series(v, dtype=object)).to_numpy() if f.kind == "category"
            else np.isnan(np.asarray(v, dtype=float)))
        share = float(missing.mean()) if n else 1.0
        if share > MAX_MISSING:
            left_out[f.name] = f"missing in {share:.1%} of the training rows"
            continue
        levels: tuple[str, ...] = ()
        if f.kind == "category":
            seen = pd.Series(np.asarray(v, dtype=object)[~missing])
            levels = tuple(str(x) for x in seen.value_counts(sort=True).index)
            if not levels:
                left_out[f.name] = "no value in the training rows"
                continue
        specs.append(f.spec(levels))
        if f.leak_risk:
            risks.append(f.name)
    if not specs:
        return Derived(base, left_out, ())
    fs = replace(base, name=f"{base.name}+own", features=(*base.features, *specs))
    return Derived(fs, left_out, tuple(risks))


def category_codes(values: np.ndarray, levels: tuple[str, ...]) -> np.ndarray:
    """Text values as codes into learned ``levels`` (-1: missing or never seen)."""
    return pit.codes(np.asarray(values, dtype=object), np.asarray(levels, dtype=object))


__all__ = ["HISTORY_SUFFIX", "KEY_TABLES", "MANIFEST", "MAX_MISSING", "NONE", "OWN_DIR",
           "TABLE_KEYS", "Derived", "KnownAt", "OwnFeature", "OwnFeatures", "OwnKind",
           "category_codes", "derive_feature_set", "own_columns", "read_own", "write_own"]
