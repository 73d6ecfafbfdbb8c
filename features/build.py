"""Feature computation for any number of snapshots: one code path for training and serving.

``build_features(tables, snapshots, feature_set)`` computes the declared features of each
(entity, as_of) snapshot from rows dated strictly before ``as_of``. Training calls it with
every snapshot of the history; serving calls it with one request's own rows and
``as_of = now``. Nothing here reads files or mutates its inputs.

Why vectorised pandas/numpy rather than DuckDB: every feature is either a static attribute
of the entity, its latest state before t, or a count of its events before t (minus the
count before t - w for a window). With events sorted once by (entity, time), each of those
is one ``np.searchsorted`` over all snapshots at once (see ``features._pit``), which is
O((events + snapshots) log events) with no join fan-out. DuckDB would express the windows
as ASOF or range joins per activity type and window (36 of them), materialising the
joined rows, and it would add a dependency and an Arrow round trip per call, which costs
more than the whole computation for a single serving request. The benchmark
(``benchmarks/features.py``) shows 1M leads build well inside the 5-minute budget.

Outcome columns (the leads' qualified_at, disqualified_at and opportunity_id; the deals'
closed_at and is_won) never feed an entity's own features. Other deals' outcomes feed the
owner's win rate and the account's history only when they closed before t. Deal fields that
change over time (stage, amount, close_date) come from opportunity_history as of t, never
from the opportunities row, which holds the latest values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import _pit
from features.declarations import FeatureSet, FeatureSpec
from features.schema import ACTIVITY_TYPES, OPEN_STAGES, CRMTables
from features.sets import CATEGORY_LEVELS, ENGAGEMENT_WINDOWS, feature_set_for_task
from features.snapshots import deal_snapshots, lead_snapshots

Columns = dict[str, np.ndarray]
Step = Callable[[str], None]

_DAY = _pit.NS_PER_DAY
_ACTIVITY_TYPES = ACTIVITY_TYPES


def _noop(_: str) -> None:
    return None


def category_dtype(name: str) -> pd.CategoricalDtype:
    """The fixed categorical dtype of a category feature, whatever the data holds."""
    return pd.CategoricalDtype(categories=pd.Index(CATEGORY_LEVELS[name], dtype=object))


def _cast(values: np.ndarray, spec: FeatureSpec) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """Give a computed column the pandas dtype its spec declares."""
    if spec.dtype == "category":
        return pd.Categorical(values, dtype=category_dtype(spec.name))
    if spec.dtype == "int":
        return np.asarray(values, dtype=np.int64)
    if spec.dtype == "bool":
        return pd.array(np.asarray(values, dtype=np.float64), dtype="boolean")
    return np.asarray(values, dtype=np.float64)


def _static(frame: pd.DataFrame, column: str, rows: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Column values at row positions (-1: missing), blanked where the row is not yet known."""
    s = frame[column]
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
        out = vals[np.where(rows >= 0, rows, 0)] if len(vals) else np.full(len(rows), np.nan)
        return np.where((rows >= 0) & visible, out, np.nan)
    obj = s.astype(object).where(s.notna(), None).to_numpy(dtype=object)
    if len(obj) == 0:
        return np.full(len(rows), None, dtype=object)
    return _objects(obj[np.where(rows >= 0, rows, 0)], (rows >= 0) & visible)


def _engagement(
    tables: CRMTables,
    entity_column: str,
    q_entity: np.ndarray,
    q_account: np.ndarray,
    entity_vocab: pd.Index,
    account_vocab: pd.Index,
    t: np.ndarray,
    step: Step,
) -> Columns:
    """Activity counts by type and window, recency, trend, inbound share, contacts.

    ``q_entity`` and ``q_account`` are each snapshot's codes in the two vocabularies.
    """
    acts = tables.activities
    a_time = _pit.ns(acts["occurred_at"])
    a_ent = _pit.codes(acts[entity_column], entity_vocab)
    a_acc = _pit.codes(acts["account_id"], account_vocab)
    type_code = _pit.codes(acts["type"], pd.Index(_ACTIVITY_TYPES))
    inbound = acts["direction"].eq("inbound").fillna(False).to_numpy(dtype=bool)
    out: Columns = {}

    # Counts by type: one index per type, sharing one ranking of the activity times.
    ranked = _pit.rank_times(a_time)
    distinct = ranked[0]
    cuts = {d: _pit.search(distinct, t - d * _DAY) for d in (0, *ENGAGEMENT_WINDOWS)}
    totals = {w: np.zeros(len(t), dtype=np.int64) for w in ENGAGEMENT_WINDOWS}
    for j, kind in enumerate(_ACTIVITY_TYPES):
        of_type = _pit.index_events(np.where(type_code == j, a_ent, -1), a_time, ranked)
        now = _pit.position_at(of_type, q_entity, cuts[0])
        for w in ENGAGEMENT_WINDOWS:
            count = now - _pit.position_at(of_type, q_entity, cuts[w])
            out[f"{kind}_{w}d"] = count
            totals[w] += count
    out["activities_30d"] = totals[30]
    step("engagement by type")

    # All activities of the entity: recency and trend.
    every = _pit.index_events(a_ent, a_time, ranked)
    start = _pit.block_start(every, q_entity)
    now = _pit.count_before(every, q_entity, t, start)
    week = _pit.count_before(every, q_entity, t - 7 * _DAY, start)
    fortnight = _pit.count_before(every, q_entity, t - 14 * _DAY, start)
    last = _pit.last_before(every, q_entity, t, start)
    out["days_since_last_activity"] = _pit.days_between(t, _take_time(every.times, last))
    out["activity_trend_7d"] = (now - week) - (week - fortnight)

    inbound_idx = _pit.index_events(np.where(inbound, a_ent, -1), a_time, ranked)
    i_start = _pit.block_start(inbound_idx, q_entity)
    i_last = _pit.last_before(inbound_idx, q_entity, t, i_start)
    out["days_since_last_inbound"] = _pit.days_between(t, _take_time(inbound_idx.times, i_last))
    inbound_90 = _pit.count_before(inbound_idx, q_entity, t, i_start) - _pit.count_before(
        inbound_idx, q_entity, t - 90 * _DAY, i_start
    )
    total_90 = totals[90]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["inbound_share_90d"] = np.where(total_90 > 0, inbound_90 / total_90, np.nan)

    out["contacts_engaged"] = _distinct_before(a_ent, acts["contact_id"], a_time, q_entity, t)
    step("recency and contacts")

    # The whole account.
    acc_idx = _pit.index_events(a_acc, a_time, ranked)
    out["account_activities_30d"] = _pit.count_before(acc_idx, q_account, t) - _pit.count_before(
        acc_idx, q_account, t - 30 * _DAY
    )
    out["account_contacts_engaged"] = _distinct_before(
        a_acc, acts["contact_id"], a_time, q_account, t
    )
    step("account engagement")
    return out


def _take_time(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Event times at index positions, NaT (int64 min) where the position is -1."""
    if len(times) == 0:
        return np.full(len(positions), _pit.NAT, dtype=np.int64)
    return np.where(positions >= 0, times[np.where(positions >= 0, positions, 0)], _pit.NAT)


def _distinct_before(
    keys: np.ndarray, contacts: pd.Series, times: np.ndarray, q_keys: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Distinct contacts of each entity seen strictly before t (first sighting as the event)."""
    contact_code = _pit.factorize(contacts)
    ok = (keys >= 0) & (contact_code >= 0) & (times != _pit.NAT)
    pairs = pd.DataFrame({"k": keys[ok], "c": contact_code[ok], "t": times[ok]})
    first = pairs.groupby(["k", "c"], sort=False)["t"].min()
    k = first.index.get_level_values("k").to_numpy(dtype=np.int64)
    index = _pit.index_events(k, first.to_numpy(dtype=np.int64))
    return _pit.count_before(index, q_keys, t)


def _deal_outcomes(
    tables: CRMTables, group_column: str, vocab: pd.Index, q_group: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per owner or account: deals won, lost, created and closed before t."""
    opps = tables.opportunities
    g = _pit.codes(opps[group_column], vocab)
    closed = _pit.ns(opps["closed_at"])
    created = _pit.ns(opps["created_at"])
    won = opps["is_won"].to_numpy(dtype="float64", na_value=np.nan)
    won_idx = _pit.index_events(np.where(won == 1.0, g, -1), closed)
    lost_idx = _pit.index_events(np.where(won == 0.0, g, -1), closed)
    closed_idx = _pit.index_events(g, closed)
    created_idx = _pit.index_events(g, created)
    return (
        _pit.count_before(won_idx, q_group, t),
        _pit.count_before(lost_idx, q_group, t),
        _pit.count_before(created_idx, q_group, t),
        _pit.count_before(closed_idx, q_group, t),
    )


def _lead_columns(tables: CRMTables, snapshots: pd.DataFrame, step: Step) -> Columns:
    leads = tables.leads
    t = _pit.ns(snapshots["as_of"])
    lead_vocab = pd.Index(leads["lead_id"].astype(object))
    row = _pit.codes(snapshots["lead_id"], lead_vocab)
    created = _take_time(_pit.ns(leads["created_at"]), row)
    visible = (row >= 0) & (created != _pit.NAT) & (created < t)
    out: Columns = {}
    for col in ("source", "industry", "country", "seniority", "job_function"):
        out[col] = _static(leads, col, row, visible)
    for col in (
        "employees",
        "budget_confirmed",
        "is_decision_maker",
        "need_stated",
        "timeline_days",
    ):
        out[col] = _static(leads, col, row, visible)
    out["lead_age_days"] = np.where(visible, _pit.days_between(t, created), np.nan)

    account_vocab = pd.Index(tables.accounts["account_id"].astype(object))
    lead_account = _static(leads, "account_id", row, visible)
    q_account = _pit.codes(pd.Series(lead_account, dtype=object), account_vocab)
    step("lead attributes")

    out.update(_engagement(tables, "lead_id", row, q_account, lead_vocab, account_vocab, t, step))
    won, lost, created_n, closed_n = _deal_outcomes(
        tables, "account_id", account_vocab, q_account, t
    )
    out["account_won_deals"] = won
    out["account_lost_deals"] = lost
    out["account_open_deals"] = created_n - closed_n
    step("account history")
    return out


def _ffill_in_group(
    values: np.ndarray, valid: np.ndarray, group_start: np.ndarray, fill: float | int
) -> np.ndarray:
    """Carry the last valid value forward within each group of a sorted array."""
    n = len(values)
    last = np.maximum.accumulate(np.where(valid, np.arange(n), -1)) if n else valid
    ok = last >= group_start
    return np.where(ok, values[np.where(ok, last, 0)], fill) if n else values


def _objects(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """An object array of ``values`` with None where ``keep`` is false."""
    out = np.asarray(values, dtype=object).copy()
    out[~keep] = None
    return out


def _deal_history(tables: CRMTables, row: np.ndarray, vocab: pd.Index, t: np.ndarray) -> Columns:
    """Stage, amount and close date as of t, with the moves that led there."""
    hist = tables.opportunity_history
    h_key = _pit.codes(hist["opportunity_id"], vocab)
    idx = _pit.index_events(h_key, _pit.ns(hist["changed_at"]))
    n = len(idx)
    opp = idx.composite // idx.width if n else np.empty(0, dtype=np.int64)
    first = _pit.changes(opp)
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else first

    stage = hist["stage"].astype(object).to_numpy(dtype=object)[idx.rows]
    raw_amount = hist["amount"].to_numpy(dtype="float64", na_value=np.nan)[idx.rows]
    amount = _ffill_in_group(raw_amount, ~np.isnan(raw_amount), group_start, np.nan)
    raw_close = _pit.ns(hist["close_date"])[idx.rows]
    close_i = _ffill_in_group(raw_close, raw_close != _pit.NAT, group_start, _pit.NAT)

    entered = first | _pit.changes(stage)
    entered_at = (
        idx.times[np.maximum.accumulate(np.where(entered, np.arange(n), 0))] if n else idx.times
    )

    rank = pd.Categorical(stage, categories=list(OPEN_STAGES)).codes.astype(np.int64)
    rank[rank < 0] = len(OPEN_STAGES)
    back = ~first & (_pit.previous(rank, 0) > rank)
    prev_close = _pit.previous(close_i, _pit.NAT)
    pushed = ~first & (prev_close != _pit.NAT) & (close_i > prev_close)
    push_days = np.where(pushed, (close_i - prev_close) / _DAY, 0.0)

    def running(x: np.ndarray) -> np.ndarray:
        c = np.cumsum(x)
        return c - (c[group_start] - x[group_start]) if n else c

    moves_back = running(back.astype(np.int64))
    pushes = running(pushed.astype(np.int64))
    push_total = running(push_days)
    first_amount = pd.Series(amount).groupby(opp).transform("first").to_numpy()

    last = _pit.last_before(idx, row, t)
    have = last >= 0
    at = np.where(have, last, 0)
    out: Columns = {}
    if n == 0:
        nan = np.full(len(t), np.nan)
        zero = np.zeros(len(t), dtype=np.int64)
        out.update(
            stage=np.full(len(t), None, dtype=object),
            days_in_stage=nan,
            stage_moves_back=zero,
            close_date_pushes=zero,
            close_date_push_days=nan,
            amount=nan,
            amount_change_pct=nan,
            days_to_close=nan,
        )
        return out
    out["stage"] = _objects(stage[at], have)
    out["days_in_stage"] = np.where(have, _pit.days_between(t, entered_at[at]), np.nan)
    out["stage_moves_back"] = np.where(have, moves_back[at], 0)
    out["close_date_pushes"] = np.where(have, pushes[at], 0)
    out["close_date_push_days"] = np.where(have, push_total[at], np.nan)
    out["amount"] = np.where(have, amount[at], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = amount[at] / first_amount[at] - 1.0
    out["amount_change_pct"] = np.where(have & np.isfinite(change), change, np.nan)
    out["days_to_close"] = np.where(have, _pit.days_between(close_i[at], t), np.nan)
    return out


def _deal_columns(tables: CRMTables, snapshots: pd.DataFrame, step: Step) -> Columns:
    opps = tables.opportunities
    t = _pit.ns(snapshots["as_of"])
    vocab = pd.Index(opps["opportunity_id"].astype(object))
    row = _pit.codes(snapshots["opportunity_id"], vocab)
    created = _take_time(_pit.ns(opps["created_at"]), row)
    visible = (row >= 0) & (created != _pit.NAT) & (created < t)
    out: Columns = _deal_history(tables, row, vocab, t)
    out["days_since_created"] = np.where(visible, _pit.days_between(t, created), np.nan)
    out["product"] = _static(opps, "product", row, visible)
    step("deal state as of t")

    owner_vocab = pd.Index(pd.unique(opps["owner_id"].astype(object).dropna()))
    q_owner = _pit.codes(
        pd.Series(_static(opps, "owner_id", row, visible), dtype=object), owner_vocab
    )
    won, lost, _, _ = _deal_outcomes(tables, "owner_id", owner_vocab, q_owner, t)
    closed = won + lost
    with np.errstate(divide="ignore", invalid="ignore"):
        out["owner_win_rate"] = np.where(closed > 0, won / closed, np.nan)
    out["owner_closed_deals"] = closed

    accounts = tables.accounts
    account_vocab = pd.Index(accounts["account_id"].astype(object))
    q_account = _pit.codes(
        pd.Series(_static(opps, "account_id", row, visible), dtype=object), account_vocab
    )
    a_created = _take_time(_pit.ns(accounts["created_at"]), q_account)
    a_visible = (q_account >= 0) & (a_created != _pit.NAT) & (a_created < t)
    for col in ("industry", "country", "employees"):
        out[col] = _static(accounts, col, q_account, a_visible)

    leads = tables.leads
    lead_vocab = pd.Index(leads["lead_id"].astype(object))
    q_lead = _pit.codes(pd.Series(_static(opps, "lead_id", row, visible), dtype=object), lead_vocab)
    l_created = _take_time(_pit.ns(leads["created_at"]), q_lead)
    out["source"] = _static(leads, "source", q_lead, (q_lead >= 0) & (l_created < t))
    step("owner and account")

    out.update(_engagement(tables, "opportunity_id", row, q_account, vocab, account_vocab, t, step))
    won, lost, created_n, closed_n = _deal_outcomes(
        tables, "account_id", account_vocab, q_account, t
    )
    out["account_won_deals"] = won
    out["account_lost_deals"] = lost
    # Other deals of the account open at t: this one is open at t and created before it.
    out["account_open_deals"] = np.maximum(created_n - closed_n - visible.astype(np.int64), 0)
    step("account history")
    return out


def build_features(
    tables: CRMTables,
    snapshots: pd.DataFrame,
    feature_set: FeatureSet,
    *,
    on_step: Step | None = None,
) -> pd.DataFrame:
    """Features of each snapshot, from rows dated strictly before its ``as_of``.

    Returns one row per snapshot, with the same order and index: the entity key, ``as_of``,
    then ``feature_set.names`` in order, typed per the spec (categories with fixed levels).
    """
    step = on_step or _noop
    key = feature_set.entity_key
    missing = {key, "as_of"} - set(snapshots.columns)
    if missing:
        raise ValueError(f"snapshots lack columns {sorted(missing)}")
    if key == "lead_id":
        columns = _lead_columns(tables, snapshots, step)
    elif key == "opportunity_id":
        columns = _deal_columns(tables, snapshots, step)
    else:
        raise ValueError(f"no features for entity key {key!r}")
    unknown = [name for name in feature_set.names if name not in columns]
    if unknown:
        raise KeyError(f"feature set {feature_set.name} declares uncomputed features {unknown}")
    as_of = pd.DatetimeIndex(snapshots["as_of"])
    as_of = as_of.tz_localize("UTC") if as_of.tz is None else as_of.tz_convert("UTC")
    data: dict[str, object] = {
        key: snapshots[key].astype("string").array,
        "as_of": as_of.astype("datetime64[ns, UTC]").array,
    }
    for spec in feature_set.features:
        data[spec.name] = _cast(columns.pop(spec.name), spec)
    return pd.DataFrame(data, index=snapshots.index, copy=False)


def snapshots_for_task(
    tables: CRMTables,
    task: str,
    *,
    horizon_days: int = 30,
    every_days: int = 7,
    max_per_entity: int | None = None,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The snapshots of a task, with its default cap per entity."""
    if task == "lead_qualification":
        return lead_snapshots(
            tables,
            horizon_days=horizon_days,
            every_days=every_days,
            max_per_lead=max_per_entity or 12,
            data_end=data_end,
        )
    if task == "deal_close":
        return deal_snapshots(
            tables, every_days=every_days, max_per_deal=max_per_entity or 40, data_end=data_end
        )
    raise ValueError(f"unknown task {task!r}")


def build_training_set(
    tables: CRMTables,
    task: str,
    *,
    horizon_days: int = 30,
    every_days: int = 7,
    max_per_entity: int | None = None,
    data_end: pd.Timestamp | None = None,
    feature_set: FeatureSet | None = None,
    on_step: Step | None = None,
) -> pd.DataFrame:
    """Snapshots of a task with their labels and features: entity key, as_of, label, features."""
    fs = feature_set or feature_set_for_task(task)
    if fs.task != task:
        raise ValueError(f"feature set {fs.name} is for {fs.task}, not {task}")
    step = on_step or _noop
    snaps = snapshots_for_task(
        tables,
        task,
        horizon_days=horizon_days,
        every_days=every_days,
        max_per_entity=max_per_entity,
        data_end=data_end,
    )
    step("snapshots")
    out = build_features(tables, snaps, fs, on_step=step)
    out.insert(2, "label", snaps["label"])
    return out


BUILD_STEPS = {"lead_qualification": 6, "deal_close": 7}
"""How many times ``build_training_set`` calls ``on_step`` per task (for progress bars)."""


@dataclass(frozen=True)
class TrainingSetSummary:
    """Rows, labels and missing values of a training set, for a report."""

    rows: int
    entities: int
    labelled: int
    unlabelled: int
    label_rate: float
    missing: dict[str, int]


def summarize(training_set: pd.DataFrame, feature_set: FeatureSet) -> TrainingSetSummary:
    """Rows, labelled rows, label rate and missing values per feature, for a report."""
    label = training_set["label"]
    labelled = int(label.notna().sum())
    rate = float(label.dropna().astype(bool).mean()) if labelled else float("nan")
    return TrainingSetSummary(
        rows=len(training_set),
        entities=int(training_set[feature_set.entity_key].nunique()),
        labelled=labelled,
        unlabelled=len(training_set) - labelled,
        label_rate=rate,
        missing={name: int(training_set[name].isna().sum()) for name in feature_set.names},
    )


def _isin(frame: pd.DataFrame, column: str, values: pd.Series | list[str]) -> pd.Series:
    wanted = set(pd.Series(values, dtype=object).dropna())
    return frame[column].isin(wanted) & frame[column].notna()


def entity_tables(tables: CRMTables, feature_set: FeatureSet, entity_id: str) -> CRMTables:
    """Only the rows one entity's features read: what a serving request has to supply.

    For a lead: its row, its account, the activities of the lead or its account, and the
    account's deals. For a deal: its row and history, its account and lead, the activities
    of the deal or its account, and the deals of its owner and of its account.
    """
    key = feature_set.entity_key
    if key == "lead_id":
        lead = tables.leads.loc[tables.leads["lead_id"] == entity_id]
        account_ids = lead["account_id"]
        opps = tables.opportunities.loc[_isin(tables.opportunities, "account_id", account_ids)]
        acts = tables.activities
        own = (acts["lead_id"] == entity_id).fillna(False)
        acts = acts.loc[own | _isin(acts, "account_id", account_ids)]
        return CRMTables(
            accounts=tables.accounts.loc[_isin(tables.accounts, "account_id", account_ids)],
            leads=lead,
            opportunities=opps,
            opportunity_history=tables.opportunity_history.iloc[0:0],
            activities=acts,
        )
    if key == "opportunity_id":
        opps = tables.opportunities
        deal = opps.loc[opps["opportunity_id"] == entity_id]
        account_ids, owner_ids = deal["account_id"], deal["owner_id"]
        related = opps.loc[
            _isin(opps, "account_id", account_ids) | _isin(opps, "owner_id", owner_ids)
        ]
        hist = tables.opportunity_history
        acts = tables.activities
        own = (acts["opportunity_id"] == entity_id).fillna(False)
        acts = acts.loc[own | _isin(acts, "account_id", account_ids)]
        return CRMTables(
            accounts=tables.accounts.loc[_isin(tables.accounts, "account_id", account_ids)],
            leads=tables.leads.loc[_isin(tables.leads, "lead_id", deal["lead_id"])],
            opportunities=related,
            opportunity_history=hist.loc[hist["opportunity_id"] == entity_id],
            activities=acts,
        )
    raise ValueError(f"no features for entity key {key!r}")


def features_at(
    tables: CRMTables, feature_set: FeatureSet, entity_id: str, as_of: pd.Timestamp
) -> pd.DataFrame:
    """One entity's features at one time (serving: ``as_of`` = now), through ``build_features``.

    ``tables`` may hold the whole CRM or only the entity's own rows (see ``entity_tables``);
    the result is the same.
    """
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    snapshot = pd.DataFrame(
        {
            feature_set.entity_key: pd.array([entity_id], dtype="string"),
            "as_of": pd.DatetimeIndex([stamp]).astype("datetime64[ns, UTC]"),
        }
    )
    return build_features(tables, snapshot, feature_set)


@dataclass(frozen=True)
class BuildReport:
    """What ``build_training_file`` wrote, for the command line's summary."""

    out: Path
    summary: TrainingSetSummary
    rejected_rows: int


def build_training_file(
    data_dir: Path,
    task: str,
    out: Path,
    *,
    horizon_days: int = 30,
    every_days: int = 7,
    max_per_entity: int | None = None,
    on_step: Step | None = None,
) -> BuildReport:
    """Load and validate a CRM folder, build a task's training set and write it as Parquet.

    Rows the loader rejects are left out (and counted); run ``leadscore validate`` for the
    row-by-row report.
    """
    from features.loader import load_crm

    step = on_step or _noop
    loaded = load_crm(Path(data_dir))
    step("loaded")
    fs = feature_set_for_task(task)
    frame = build_training_set(
        loaded.tables,
        task,
        horizon_days=horizon_days,
        every_days=every_days,
        max_per_entity=max_per_entity,
        feature_set=fs,
        on_step=step,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return BuildReport(
        out=out,
        summary=summarize(frame, fs),
        rejected_rows=int(loaded.rejections[["table", "row"]].drop_duplicates().shape[0]),
    )
