"""The leakage audit: columns that know the outcome before the model is asked to predict it.

A column leaks when it is filled in, edited or measured after the label's event (a call
outcome typed in after contact, a deal's value booked at close, a "days to close"
count). Such a column makes a model look excellent on history and useless on open
leads and deals, where that information does not exist yet. Each rule below is a pure
function of the training period's labelled rows (and, where the contract has them, the
entity's outcome times and field history) and returns :class:`Finding` records: the
column, the rule, the evidence in numbers and a reason in plain words.

``leadscore train`` runs the audit on its training period before fitting and leaves the
flagged feature columns out of the model (``--allow-column NAME`` keeps one);
``leadscore audit`` prints the same findings without training. Thresholds live in one
settings object, :class:`AuditSettings` (``LEADSCORE_AUDIT_*`` variables).

The rules:

- ``probe``: a single-feature AUC per column, out of fold (entities grouped into folds,
  each value's rate learned on the other folds), so a column's strength on its own is
  measured on rows its rates were not learned from. Implausibly strong (above
  ``probe_auc``) or far above every other column (``probe_margin`` above the next best).
- ``one_outcome``: the column is present for almost every row of one class and almost no
  row of the other (filled in only once the outcome is known).
- ``uneven_fill``: a column read with only its value on the export's day (an export's own
  column opted in by ``allow_current_values``) that is filled in for one outcome much more
  often than for the other. A form answer or a running total is there whatever happened
  next; a field the team fills in while working a lead (a rating, a call outcome, a
  profile) is there more often for the leads that went far, so its presence on the
  export's day records the outcome.
- ``changed_after_outcome``: field history shows the field's value changing after the
  entity's outcome for a share of entities (the table's current value is not what was
  known before the outcome).
- ``after_outcome_time``: a timestamp of the entity at or after its outcome for most
  labelled rows whose outcome time is known.
- ``close_time``: a numeric column whose rank correlation with the entity's cycle (its
  outcome time minus its first snapshot) is strong on the first snapshot, when nothing
  about the cycle's length can honestly be known.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.declarations import FeatureSet
from features.schema import FIELD_HISTORIES, TABLES, CRMTables
from features.tasks import TaskSpec, task_spec
from training.evaluate import EvaluationConfig, split_periods

PROBE = "probe"
ONE_OUTCOME = "one_outcome"
CHANGED_AFTER_OUTCOME = "changed_after_outcome"
AFTER_OUTCOME_TIME = "after_outcome_time"
CLOSE_TIME = "close_time"
UNEVEN_FILL = "uneven_fill"
RULES = (PROBE, ONE_OUTCOME, UNEVEN_FILL, CHANGED_AFTER_OUTCOME, AFTER_OUTCOME_TIME, CLOSE_TIME)


class AuditSettings(BaseSettings):
    """Thresholds of the leakage audit (``LEADSCORE_AUDIT_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_AUDIT_", extra="forbid")

    probe_auc: float = Field(0.9, gt=0.5, le=1.0)
    """A column whose out-of-fold AUC on its own (or 1 - AUC) exceeds this is flagged."""
    probe_margin: float = Field(0.15, gt=0.0, lt=0.5)
    """The strongest column is flagged when its AUC exceeds the next best's by more..."""
    probe_margin_floor: float = Field(0.8, ge=0.5, le=1.0)
    """... and is above this: one honest field of 0.72 beside weak ones is no sign of a
    leak (a data set with one real predictor has just that)."""
    probe_folds: int = Field(5, ge=2)
    probe_bins: int = Field(20, ge=2)
    """Numeric columns are cut at this many quantiles (missing is a bin of its own)."""
    probe_smoothing: float = Field(10.0, ge=0.0)
    """Rows of prior weight when a bin's rate is learned from the other folds."""
    present_share: float = Field(0.95, gt=0.5, le=1.0)
    """``one_outcome``: present for more than this share of one class..."""
    absent_share: float = Field(0.05, ge=0.0, lt=0.5)
    """... and for less than this share of the other."""
    current_fill_ratio: float = Field(1.5, gt=1.0)
    """``uneven_fill``: a current-value column filled in for one outcome at least this
    many times as often as for the other..."""
    current_fill_gap: float = Field(0.15, gt=0.0, lt=1.0)
    """... and by at least this many points of share (so that 2 % against 1 % is not a
    sign of anything)."""
    changed_share: float = Field(0.05, gt=0.0, le=1.0)
    """``changed_after_outcome``: flagged when more than this share of the entities whose
    outcome is known have the field changed after it."""
    after_share: float = Field(0.5, gt=0.0, le=1.0)
    """``after_outcome_time``: flagged when more than this share of labelled rows with a
    known outcome time have the timestamp at or after it."""
    cycle_spearman: float = Field(0.6, gt=0.0, le=1.0)
    """``close_time``: flagged when |Spearman| with the cycle's length exceeds this."""
    min_rows: int = Field(30, ge=2)
    """Fewest rows (of each class, for the probe) a rule needs to say anything."""


def audit_settings(**values: Any) -> AuditSettings:
    """The audit's settings (values given here win over the environment)."""
    return AuditSettings(**{k: v for k, v in values.items() if v is not None})


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one column."""

    column: str
    rule: str
    evidence: dict[str, float]
    reason: str


@dataclass(frozen=True)
class AuditData:
    """What the audit reads: the labelled rows of the training period and, where the data
    says so, when each row's outcome happened and how the entity's fields changed."""

    train: pd.DataFrame
    """Labelled rows of the training period: the entity key, ``as_of``, ``label`` and the
    columns to audit."""
    entity_key: str
    features: tuple[str, ...]
    """The columns a model would read (probe, one_outcome and close_time look at these)."""
    event_at: pd.Series | None = None
    """Per row of ``train`` (same index): when the entity's outcome happened (NaT: not
    yet, or not recorded). None: the data has no outcome times."""
    timestamps: pd.DataFrame | None = None
    """Per row of ``train`` (same index): the entity's timestamp columns to check against
    its outcome time."""
    changes: pd.DataFrame | None = None
    """Field history, one row per change: the entity key, ``changed_at`` and ``field``."""
    current: tuple[str, ...] = ()
    """The columns whose only value is the one on the export's day (read by
    ``allow_current_values``): ``uneven_fill`` looks at these."""
    read_as_of: bool = False
    """The entity has a long field history (``lead_field_history``) that the features read
    as of each snapshot, which is why ``changes`` leaves it out."""


@dataclass
class AuditReport:
    """The findings of one audit, and which columns a model leaves out because of them."""

    task: str
    findings: list[Finding]
    probe: dict[str, float]
    """Each feature column's out-of-fold single-feature AUC (max of AUC and 1 - AUC)."""
    rows: int
    entities: int
    features: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    """Flagged columns kept on purpose (``--allow-column``)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Rules that could not run on this data, with why."""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[str]:
        """Every column some rule flagged, strongest probe first."""
        cols = {f.column for f in self.findings}
        return sorted(cols, key=lambda c: (-self.probe.get(c, 0.0), c))

    def reasons(self, column: str) -> str:
        return "; ".join(f.reason for f in self.findings if f.column == column)

    @property
    def excluded(self) -> dict[str, str]:
        """Flagged feature columns the model leaves out, each with its reason."""
        return {c: self.reasons(c) for c in self.flagged
                if c in self.features and c not in self.allowed}

    @property
    def kept(self) -> dict[str, str]:
        """Flagged feature columns kept by ``--allow-column``, with the reason they were
        flagged."""
        return {c: self.reasons(c) for c in self.flagged if c in self.allowed}

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "rows": self.rows,
            "entities": self.entities,
            "settings": self.settings,
            "findings": [asdict(f) for f in self.findings],
            "flagged": self.flagged,
            "excluded": self.excluded,
            "allowed": self.kept,
            "allowed_not_flagged": [c for c in self.allowed if c not in self.flagged],
            "skipped": self.skipped,
            "probe": dict(sorted(self.probe.items(), key=lambda kv: -kv[1])),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# -- the rules ---------------------------------------------------------------------


def _bin_codes(values: pd.Series, bins: int) -> np.ndarray:
    """A column as small integer codes: its levels, or quantile bins of a number; missing
    is the code 0 (so that a value's absence is a level of its own)."""
    if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or (
        values.dtype == bool or str(values.dtype) == "boolean"
    ):
        codes, _ = pd.factorize(values.astype("object"), use_na_sentinel=True)
        return np.asarray(codes, dtype=np.int64) + 1
    x = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    present = ~np.isnan(x)
    out = np.zeros(len(x), dtype=np.int64)
    if not present.any():
        return out
    edges = np.unique(np.quantile(x[present], np.linspace(0, 1, bins + 1)[1:-1]))
    out[present] = np.searchsorted(edges, x[present], side="right") + 1
    return out


def _folds(keys: pd.Series, k: int) -> np.ndarray:
    """Each row's fold, the same for every row of one entity (and for any row order)."""
    hashed = pd.util.hash_array(keys.astype(str).to_numpy())
    return np.asarray(hashed % np.uint64(k), dtype=np.int64)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks, ties counted half."""
    ranks = pd.Series(score).rank(method="average").to_numpy()
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def probe_auc(
    values: pd.Series, y: np.ndarray, folds: np.ndarray, settings: AuditSettings
) -> float:
    """One column's out-of-fold AUC on its own: each bin's label rate learned on the other
    folds (shrunk to their mean), scored on its own fold. Max of AUC and 1 - AUC."""
    codes = _bin_codes(values, settings.probe_bins)
    size = int(codes.max()) + 1
    score = np.empty(len(y), dtype=float)
    total_pos = np.bincount(codes, weights=y, minlength=size)
    total_n = np.bincount(codes, minlength=size).astype(float)
    m = settings.probe_smoothing
    for fold in np.unique(folds):
        inside = folds == fold
        pos = total_pos - np.bincount(codes[inside], weights=y[inside], minlength=size)
        n = total_n - np.bincount(codes[inside], minlength=size)
        prior = pos.sum() / max(n.sum(), 1.0)
        rate = (pos + m * prior) / (n + m) if m > 0 else np.where(n > 0, pos / np.maximum(n, 1),
                                                                  prior)
        score[inside] = rate[codes[inside]]
    auc = _auc(y, score)
    return max(auc, 1.0 - auc)


def probe_findings(
    train: pd.DataFrame, columns: tuple[str, ...], entity_key: str, settings: AuditSettings
) -> tuple[list[Finding], dict[str, float]]:
    """``probe``: every column's single-feature AUC; flag the implausibly strong ones and
    a strongest one far above the next best."""
    y = train["label"].to_numpy(dtype=float)
    if min(y.sum(), len(y) - y.sum()) < settings.min_rows:
        return [], {}
    folds = _folds(train[entity_key], settings.probe_folds)
    aucs = {c: probe_auc(train[c], y, folds, settings) for c in columns}
    findings = []
    for column, auc in aucs.items():
        if auc > settings.probe_auc:
            findings.append(Finding(
                column, PROBE, {"auc": round(auc, 4), "threshold": settings.probe_auc},
                f"on its own it ranks the outcome with AUC {auc:.3f} (above "
                f"{settings.probe_auc}): stronger than a field known beforehand plausibly is",
            ))
    ranked = sorted(aucs.items(), key=lambda kv: -kv[1])
    if len(ranked) >= 2:
        (best, best_auc), (second, second_auc) = ranked[0], ranked[1]
        if best_auc - second_auc > settings.probe_margin and best_auc > settings.probe_margin_floor:
            findings.append(Finding(
                best, PROBE,
                {"auc": round(best_auc, 4), "next_best_auc": round(second_auc, 4),
                 "margin": settings.probe_margin},
                f"on its own it ranks the outcome with AUC {best_auc:.3f}, "
                f"{best_auc - second_auc:.3f} above the next best column ({second}, "
                f"{second_auc:.3f}): one field far above every other usually records the "
                "outcome itself",
            ))
    return findings, aucs


def _present_shares(
    train: pd.DataFrame, columns: tuple[str, ...], settings: AuditSettings
) -> list[tuple[str, dict[str, float]]]:
    """Per column, the share of positive and of negative rows that have it filled in;
    none when a class has fewer than ``min_rows`` rows."""
    y = train["label"].to_numpy(dtype=int)
    pos, neg = y == 1, y == 0
    if min(pos.sum(), neg.sum()) < settings.min_rows:
        return []
    out = []
    for column in columns:
        present = train[column].notna().to_numpy()
        out.append((column, {"positive": float(present[pos].mean()),
                             "negative": float(present[neg].mean())}))
    return out


def one_outcome_findings(
    train: pd.DataFrame, columns: tuple[str, ...], settings: AuditSettings
) -> list[Finding]:
    """``one_outcome``: present for almost every row of one class, almost no row of the other."""
    findings = []
    for column, shares in _present_shares(train, columns, settings):
        for filled, empty in (("positive", "negative"), ("negative", "positive")):
            if shares[filled] > settings.present_share and shares[empty] < settings.absent_share:
                findings.append(Finding(
                    column, ONE_OUTCOME,
                    {"present_positive": round(shares["positive"], 4),
                     "present_negative": round(shares["negative"], 4)},
                    f"filled in for {shares[filled]:.0%} of {filled} and {shares[empty]:.0%} "
                    f"of {empty} outcomes: it is entered once the outcome is known",
                ))
    return findings


def uneven_fill_findings(
    train: pd.DataFrame, columns: tuple[str, ...], settings: AuditSettings
) -> list[Finding]:
    """``uneven_fill``: a current-value column filled in for one outcome far more often
    than for the other."""
    findings = []
    for column, shares in _present_shares(train, columns, settings):
        more, less = sorted(shares, key=lambda k: -shares[k])
        high, low = shares[more], shares[less]
        if high - low >= settings.current_fill_gap and high >= settings.current_fill_ratio * low:
            ratio = "every" if low == 0 else f"{high / low:.1f} times as"
            findings.append(Finding(
                column, UNEVEN_FILL,
                {"present_positive": round(shares["positive"], 4),
                 "present_negative": round(shares["negative"], 4),
                 "ratio": settings.current_fill_ratio, "gap": settings.current_fill_gap},
                f"only its value on the export's day exists, and it is filled in for "
                f"{high:.0%} of {more} and {low:.0%} of {less} outcomes ({ratio} often): "
                "filled in while the lead or deal was worked, so its presence records how "
                "far it went",
            ))
    return findings


def changed_after_outcome_findings(
    changes: pd.DataFrame, event_by_entity: pd.Series, entity_key: str, settings: AuditSettings
) -> list[Finding]:
    """``changed_after_outcome``: fields whose history shows changes after the outcome.

    ``changes`` holds one row per change (entity key, ``changed_at``, ``field``);
    ``event_by_entity`` the outcome time per entity key (NaT: none yet). A field edited
    after the outcome for a share of entities means its current value is not what was
    known before it, and so neither is any column copied from the current record.
    """
    known = event_by_entity.dropna()
    if len(known) < settings.min_rows or changes.empty:
        return []
    at = changes[entity_key].astype(str).map(known)
    late = changes.loc[at.notna() & (changes["changed_at"] > at)]
    findings = []
    for name, rows in late.groupby("field", sort=True):
        entities = rows[entity_key].astype(str).nunique()
        share = entities / len(known)
        if share > settings.changed_share:
            findings.append(Finding(
                str(name), CHANGED_AFTER_OUTCOME,
                {"entities_changed_after": float(entities), "entities_with_outcome":
                 float(len(known)), "share": round(share, 4)},
                f"its value changed after the outcome for {entities:,} of {len(known):,} "
                f"entities ({share:.0%}): today's value is not what was known before it",
            ))
    return findings


def after_outcome_time_findings(
    timestamps: pd.DataFrame, event_at: pd.Series, settings: AuditSettings
) -> list[Finding]:
    """``after_outcome_time``: timestamps at or after the outcome for most labelled rows."""
    findings = []
    for column in timestamps.columns:
        when = timestamps[column]
        both = when.notna() & event_at.notna()
        n = int(both.sum())
        if n < settings.min_rows:
            continue
        share = float((when[both] >= event_at[both]).mean())
        if share > settings.after_share:
            findings.append(Finding(
                str(column), AFTER_OUTCOME_TIME,
                {"share_at_or_after": round(share, 4), "rows": float(n)},
                f"at or after the outcome for {share:.0%} of {n:,} labelled rows: it is "
                "written when the outcome happens or later",
            ))
    return findings


def close_time_findings(
    first: pd.DataFrame, columns: tuple[str, ...], cycle_days: pd.Series,
    settings: AuditSettings,
) -> list[Finding]:
    """``close_time``: numeric columns that track the cycle's length.

    ``first`` holds each entity's first snapshot and ``cycle_days`` (same index) the days
    from it to the outcome. At the first snapshot no honest feature knows how long the
    cycle will run, so a strong rank correlation with it is a measure taken at close.
    """
    known = cycle_days.notna()
    if known.sum() < settings.min_rows or cycle_days[known].nunique() < 2:
        return []
    cycle = cycle_days[known].rank()
    findings = []
    for column in columns:
        s = first.loc[known, column]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
            continue
        x = pd.to_numeric(s, errors="coerce").astype("float64")
        both = x.notna()
        if (both.sum() < settings.min_rows or x[both].nunique() < 2
                or cycle[both].nunique() < 2):
            continue
        rho = float(np.corrcoef(x[both].rank(), cycle[both].rank())[0, 1])
        if abs(rho) > settings.cycle_spearman:
            findings.append(Finding(
                column, CLOSE_TIME,
                {"spearman": round(rho, 4), "rows": float(both.sum())},
                f"it tracks the cycle's length (Spearman {rho:+.2f} with the days from the "
                f"first snapshot to the outcome, over {int(both.sum()):,} entities): it is "
                "measured at close",
            ))
    return findings


# -- the whole audit ---------------------------------------------------------------


def run_audit(
    data: AuditData, task: str, settings: AuditSettings | None = None,
    allowed: tuple[str, ...] = (),
) -> AuditReport:
    """Every rule on one task's training period."""
    settings = settings or audit_settings()
    train = data.train
    key = data.entity_key
    findings, probe = probe_findings(train, data.features, key, settings)
    skipped: dict[str, str] = {}
    if not probe:
        skipped[PROBE] = f"fewer than {settings.min_rows} rows of a class"
    findings += one_outcome_findings(train, data.features, settings)
    findings += uneven_fill_findings(
        train, tuple(c for c in data.current if c in data.features), settings)
    if data.event_at is None:
        for rule in (CHANGED_AFTER_OUTCOME, AFTER_OUTCOME_TIME, CLOSE_TIME):
            skipped[rule] = "no outcome time per entity (the data or the task records none)"
    else:
        event_at = data.event_at.reindex(train.index)
        if data.changes is None:
            skipped[CHANGED_AFTER_OUTCOME] = (
                "no field history of a column copied from the current record (the field "
                "history there is read as of each snapshot: an edit after the outcome "
                "reaches no feature)" if data.read_as_of else "no field history")
        else:
            by_entity = event_at.groupby(train[key].astype(str)).first()
            findings += changed_after_outcome_findings(data.changes, by_entity, key, settings)
        if data.timestamps is None or not len(data.timestamps.columns):
            skipped[AFTER_OUTCOME_TIME] = "no timestamp column besides the outcome's own"
        else:
            findings += after_outcome_time_findings(
                data.timestamps.reindex(train.index), event_at, settings)
        order = train.sort_values("as_of", kind="mergesort")
        first = order.drop_duplicates(key, keep="first")
        cycle = (event_at.reindex(first.index) - first["as_of"]).dt.total_seconds() / 86400
        findings += close_time_findings(first, data.features, cycle, settings)
    return AuditReport(
        task=task,
        findings=findings,
        probe=probe,
        rows=len(train),
        entities=int(train[key].nunique()),
        features=data.features,
        allowed=tuple(allowed),
        skipped=skipped,
        settings=settings.model_dump(),
    )


def history_changes(tables: CRMTables, table: str) -> pd.DataFrame | None:
    """The contract's field history of ``table``'s entities, one row per change of a field
    (entity key, ``changed_at``, ``field``); None when the contract keeps none for it.

    A history table is one without a key of its own whose rows point at the entity, with a
    row per change that records every tracked field (``opportunity_history``): a field
    changes where its value differs from the entity's previous row. The long field-history
    tables (``lead_field_history``) are left out: the features read each of their fields
    as of the snapshot, so no feature copies a value edited after the outcome. Fields are
    named as the entity's current record holds them (``opportunities.amount``):
    the features read the history as of each snapshot, so a change after the outcome
    reaches only a column copied from the current record, and that is what a finding names.
    """
    entity = TABLES[table]
    parts = []
    for name, hist in TABLES.items():
        fks = [fk for fk in hist.foreign_keys if fk.table == table and fk.ref_column == entity.key]
        if hist.key is not None or not fks:
            continue
        frame = tables.get(name)
        col = fks[0].column
        if name in FIELD_HISTORIES:
            # Every field these hold is read as of each snapshot (features.field_history):
            # an edit after the outcome reaches no feature, so it is no finding.
            continue
        frame = frame.sort_values([col, hist.time_column], kind="mergesort")
        first = ~frame[col].duplicated()
        for c in hist.column_names:
            if c in (col, hist.time_column):
                continue
            values = frame[c].astype("object")
            previous = values.groupby(frame[col], sort=False).shift(1)
            differs = ~((values == previous) | (values.isna() & previous.isna()))
            changed = differs.to_numpy() & ~first.to_numpy()
            parts.append(pd.DataFrame({
                entity.key: frame.loc[changed, col].astype(str).to_numpy(),
                "changed_at": frame.loc[changed, hist.time_column].to_numpy(),
                "field": f"{table}.{c}",
            }))
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True)


def contract_audit_data(
    train: pd.DataFrame, spec: TaskSpec, tables: CRMTables, features: tuple[str, ...],
    current: tuple[str, ...] = (),
) -> AuditData:
    """The audit's inputs for a task on the contract's tables: each row's outcome time (the
    earliest of the task's ``closed_by`` columns), the entity's other timestamp columns,
    and its field history. Tasks whose entity has no outcome column get the probe and
    ``one_outcome`` rules only."""
    key = spec.entity_key
    if not spec.closed_by:
        return AuditData(train, key, features, current=current)
    entity = tables.get(spec.table).drop_duplicates(key).set_index(key)
    entity.index = entity.index.astype(str)
    outcome = entity[list(spec.closed_by)].min(axis=1)
    ids = train[key].astype(str)
    event_at = ids.map(outcome)
    declared = TABLES[spec.table]
    stamps = [c for c in entity.columns
              if pd.api.types.is_datetime64_any_dtype(entity[c])
              and c not in (declared.time_column, *spec.closed_by)]
    extra = [c for c in train.columns if c != "as_of"
             and pd.api.types.is_datetime64_any_dtype(train[c])]
    timestamps = pd.DataFrame({f"{spec.table}.{c}": ids.map(entity[c]) for c in stamps},
                              index=train.index)
    for c in extra:
        timestamps[c] = train[c]
    read_as_of = any(entity.name == spec.table and len(tables.get(name)) > 0
                     for name, entity in FIELD_HISTORIES.items())
    return AuditData(train, key, features, event_at=event_at, timestamps=timestamps,
                     changes=history_changes(tables, spec.table), current=current,
                     read_as_of=read_as_of)


def audit_task(
    frame: pd.DataFrame,
    task: str,
    feature_set: FeatureSet,
    config: EvaluationConfig | None = None,
    tables: CRMTables | None = None,
    settings: AuditSettings | None = None,
    allowed: tuple[str, ...] = (),
    event_at: pd.Series | None = None,
    current: tuple[str, ...] = (),
) -> AuditReport:
    """The audit of a task's labelled snapshots on the training period a run would fit on
    (``config``'s split). With the contract's ``tables`` the outcome times, timestamps and
    field history come from them. Without (a training-set file), the outcome times are
    ``event_at`` (same index as ``frame``) or else the frame's own columns named as the
    task's outcome columns (``closed_at``), and its other timestamp columns are checked
    against them; with neither, only the probe and ``one_outcome`` run. ``current``: the
    feature columns read with only their value on the export's day (``uneven_fill``)."""
    split = split_periods(frame, task, config or EvaluationConfig())
    train = split.train
    features = tuple(feature_set.names)
    spec = task_spec(task)
    if tables is not None:
        return run_audit(contract_audit_data(train, spec, tables, features, current), task,
                         settings, allowed)
    stamps = [c for c in train.columns
              if c != "as_of" and pd.api.types.is_datetime64_any_dtype(train[c])]
    outcome = [c for c in spec.closed_by if c in stamps]
    if event_at is None and outcome:
        event_at = train[outcome].min(axis=1)
    stamps = [c for c in stamps if c not in outcome]
    data = AuditData(
        train, feature_set.entity_key, features,
        event_at=None if event_at is None else event_at.reindex(train.index),
        timestamps=train[stamps] if stamps else None,
        current=current,
    )
    return run_audit(data, task, settings, allowed)
