"""Feature computation for any number of snapshots: one code path for training and serving.

``build_features(tables, snapshots, feature_set)`` computes the declared features of each
(entity, as_of) snapshot from rows dated strictly before ``as_of``. Training calls it with
every snapshot of the history; serving calls its computation, ``feature_columns``, with
one request's own rows and ``as_of = now``, as numpy column tables (``features.columns``)
rather than DataFrames, which for a handful of rows cost more than the features. Nothing
here reads files or mutates its inputs.

Why vectorised pandas/numpy rather than DuckDB: every feature is either a static attribute
of the entity, its latest state before t, or a count of its events before t (minus the
count before t - w for a window). With events sorted once by (entity, time), each of those
is one search of the snapshot points in a sorted array, for all snapshots at once (see
``features.point_in_time``), with no join fan-out. DuckDB would express the windows as ASOF or
range joins per activity type and window (36 of them), materialising the joined rows, and
it would add a dependency and a hand-over of the rows into its tables on every call, where
the whole computation for one serving request takes about 0.35 ms here. DuckDB is not
installed, so it was not measured. ``benchmarks/features.py`` builds both training sets of 1M leads
(26M activities) in about 58 s on the 2-core machine.

Outcome columns (the leads' qualified_at, disqualified_at and opportunity_id; the deals'
closed_at and is_won) never feed an entity's own features. Other deals' outcomes feed the
owner's win rate and the account's history only when they closed before t. Deal fields that
change over time (stage, amount, close_date) come from opportunity_history as of t, never
from the opportunities row, which holds the latest values; so do the lead attributes and
the deal's product that a CRM lets users edit, from the field-history tables
(``features.field_history``): the record's value is read only where the field never
changed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import contracts
from features import field_history as fh
from features import point_in_time as pit
from features.columns import AnyTables, ColumnTable, Frame, equals, floats, keys, times
from features.declarations import FeatureSet, FeatureSpec
from features.own import NONE as NO_OWN
from features.own import OwnFeatures, category_codes, own_columns
from features.schema import (
    ACTIVITY_TYPES,
    LEAD_CHANGEABLE,
    LEADS,
    OPEN_STAGES,
    OPPORTUNITY_CHANGEABLE,
    STAGES,
)
from features.sets import CATEGORY_LEVELS, ENGAGEMENT_WINDOWS, FEATURE_SETS, SEGMENT_EMPLOYEES

Columns = dict[str, np.ndarray]

EXISTS = "entity_exists"
"""A column of every entity's computation (not a feature): whether the snapshot's entity
was created before its time. Scoring an entity as of an earlier time (its trend) reads it."""
Step = Callable[[str], None]

_DAY = pit.NS_PER_DAY
_ACTIVITY_TYPES = ACTIVITY_TYPES
_ACTIVITY_INDEX = pd.Index(ACTIVITY_TYPES)
_STAGE_INDEX = pd.Index(STAGES)


def _noop(_: str) -> None:
    return None


@functools.cache
def category_dtype(name: str, levels: tuple[str, ...] = ()) -> pd.CategoricalDtype:
    """The fixed categorical dtype of a category feature, whatever the data holds: the
    ``levels`` a feature learned from its training data (``FeatureSpec.levels``), else the
    declared ones of ``features.sets.CATEGORY_LEVELS``.

    Built once per name (the levels are constants): a serving request would otherwise
    pay for a new dtype per category column, a noticeable share of a one-row build.
    """
    return pd.CategoricalDtype(
        categories=pd.Index(levels or CATEGORY_LEVELS[name], dtype=object))


def spec_dtype(spec: FeatureSpec) -> pd.CategoricalDtype:
    """:func:`category_dtype` of a declared category feature."""
    return category_dtype(spec.name, spec.levels)


def _code_dtype(name: str, levels: tuple[str, ...] = ()) -> type[np.signedinteger]:
    """The smallest signed integer type holding a category feature's codes (and -1).

    A training set holds every category column through the engagement counts, the
    build's peak: as int64 codes, five columns of 6.6M rows cost 0.26 GB more than as
    the int8 codes of a typed Categorical.
    """
    n = len(levels or CATEGORY_LEVELS[name])
    return np.int8 if n < 2**7 else np.int16 if n < 2**15 else np.int32


def _plain(values: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """A computed column in its plain form (see ``feature_columns``)."""
    if spec.dtype == "category":
        if values.dtype == object:  # an export's own column, as text (features.own)
            values = category_codes(values, spec.levels)
        elif values.dtype.kind == "f":  # ... of which nothing was sent as text: not known
            values = np.where(np.isnan(values), -1, values)
        return np.asarray(values, dtype=_code_dtype(spec.name, spec.levels))
    if spec.dtype == "int":
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=np.float64)


def _cast(values: np.ndarray, spec: FeatureSpec) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """Give a plain column the pandas dtype its spec declares."""
    if spec.dtype == "category":
        return pd.Categorical.from_codes(values, dtype=spec_dtype(spec))
    if spec.dtype == "bool":
        return pd.array(values, dtype="boolean")
    return values


def _numeric(frame: Frame, column: str, rows: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """A numeric or boolean column at row positions (-1: none) as float, NaN where not known."""
    vals = floats(frame, column)
    if len(vals) == 0:
        return np.full(len(rows), np.nan)
    out = vals[np.where(rows >= 0, rows, 0)]
    return np.where((rows >= 0) & visible, out, np.nan)


def _category(
    frame: Frame, column: str, rows: np.ndarray, visible: np.ndarray, name: str
) -> np.ndarray:
    """A string column at row positions as codes of the feature's fixed categories
    (-1: unseen, missing or not yet known)."""
    levels = pit.codes(keys(frame, column), category_dtype(name).categories)
    return _pick(levels, rows, visible).astype(_code_dtype(name))


def _category_as_of(
    frame: Frame, changes: fh.Changes | None, column: str, queries: pit.Queries,
    visible: np.ndarray, name: str,
) -> np.ndarray:
    """A changeable text attribute as of each query's t (see ``features.field_history``),
    as codes of the feature's fixed categories; the record's value where it never changed.

    ``queries`` hold each snapshot's row in ``frame`` (its record code in ``changes``)."""
    current = _category(frame, column, queries.keys, visible, name)
    if changes is None:
        return current
    found = changes.lookup(queries, column)
    levels = category_dtype(name).categories
    return np.where(visible, changes.codes(found, current, levels), -1).astype(current.dtype)


def _numeric_as_of(
    frame: Frame, changes: fh.Changes | None, column: str, queries: pit.Queries,
    visible: np.ndarray, kind: str,
) -> np.ndarray:
    """A changeable number or yes/no attribute as of each query's t, NaN where not known."""
    current = _numeric(frame, column, queries.keys, visible)
    if changes is None:
        return current
    found = changes.lookup(queries, column)
    return np.where(visible, changes.numbers(found, current, kind), np.nan)


def _lead_changes(tables: AnyTables) -> fh.Changes | None:
    return fh.Changes.of(tables.lead_field_history, "lead_id", keys(tables.leads, "lead_id"),
                         LEAD_CHANGEABLE)


def _deal_changes(tables: AnyTables) -> fh.Changes | None:
    return fh.Changes.of(tables.opportunity_field_history, "opportunity_id",
                         keys(tables.opportunities, "opportunity_id"), OPPORTUNITY_CHANGEABLE)


def _pick(codes: np.ndarray, rows: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Per-row codes at row positions, -1 where the row is missing or not yet known."""
    if len(codes) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    return np.where((rows >= 0) & visible, codes[np.where(rows >= 0, rows, 0)], -1)


def _relevant(codes: np.ndarray, wanted: np.ndarray, size: int) -> np.ndarray:
    """``codes`` with -1 wherever the code is not among ``wanted`` (the snapshots' keys)."""
    keep = np.zeros(size + 1, dtype=bool)
    keep[wanted[wanted >= 0]] = True
    return np.where((codes >= 0) & keep[np.where(codes >= 0, codes, size)], codes, -1)


def _engagement(
    tables: AnyTables,
    entity_column: str,
    entity_vocab: pd.Series | np.ndarray,
    account_vocab: pd.Series | np.ndarray,
    ent: pit.Queries,
    acc: pit.Queries,
    step: Step,
) -> Columns:
    """Activity counts by type and window, recency, trend, inbound share, contacts.

    ``ent`` and ``acc`` are the snapshots as (entity code, t) and (account code, t).
    Activities of entities and accounts no snapshot asks about are dropped first.
    """
    acts = tables.activities
    a_ent = _relevant(
        pit.codes(keys(acts, entity_column), entity_vocab), ent.keys, len(entity_vocab)
    )
    a_acc = _relevant(
        pit.codes(keys(acts, "account_id"), account_vocab), acc.keys, len(account_vocab)
    )
    a_time = times(acts, "occurred_at")
    keep = np.flatnonzero(((a_ent >= 0) | (a_acc >= 0)) & (a_time != pit.NAT))
    a_ent, a_acc, a_time = a_ent[keep], a_acc[keep], a_time[keep]
    type_code = pit.codes(keys(acts, "type"), _ACTIVITY_INDEX)[keep]
    inbound = equals(acts, "direction", "inbound")[keep]
    contact = pit.id_codes(keys(acts, "contact_id"))[keep]
    out: Columns = {}
    t = ent.times

    # Every activity of the entity sorted once by (entity, time), with one ranking of the
    # activity times shared by all indexes, so the window thresholds are computed once.
    # Each cut is one search in that index; the count of a type (or of inbound activities)
    # before a cut is a gather of the type's running count at the cut's position.
    ranked = pit.rank_times(a_time)
    cut = {d: ent.thresholds(ranked[0], d * _DAY) for d in (0, 7, 14, 30, 60, 90)}
    every = pit.index_events(a_ent, a_time, ranked)
    at = {d: ent.positions(every, c) for d, c in cut.items()}
    start = ent.starts(every)
    every_type = type_code[every.rows]
    if len(every) <= pit.SMALL:
        totals = _counts_by_type_small(every_type, at, out)
    else:
        totals = {w: np.zeros(len(t), dtype=np.int64) for w in ENGAGEMENT_WINDOWS}
        for j, kind in enumerate(_ACTIVITY_TYPES):
            seen = pit.running_count(every_type == j)
            now = seen[at[0]]
            for w in ENGAGEMENT_WINDOWS:
                count = now - seen[at[w]]
                out[f"{kind}_{w}d"] = count
                totals[w] += count
    out["activities_30d"] = totals[30]
    out["activities_90d"] = at[0] - at[90]
    out["activity_trend_30d"] = (at[0] - at[30]) - (at[30] - at[60])
    step("engagement by type")

    # Recency and trend over all activities of the entity.
    now, week, fortnight = at[0], at[7], at[14]
    last = np.where(now > start, now - 1, -1)
    out["days_since_last_activity"] = pit.days_between(t, _take_time(every.times, last))
    out["activity_trend_7d"] = (now - week) - (week - fortnight)

    is_inbound = inbound[every.rows]
    inbound_seen = pit.running_count(is_inbound)
    i_now = inbound_seen[now]
    i_last = np.where(i_now > inbound_seen[start], i_now - 1, -1)
    inbound_times = every.times[is_inbound]
    out["days_since_last_inbound"] = pit.days_between(t, _take_time(inbound_times, i_last))
    inbound_90 = i_now - inbound_seen[at[90]]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["inbound_share_90d"] = np.where(totals[90] > 0, inbound_90 / totals[90], np.nan)
    firsts = pit.running_count(_first_sightings(every, contact))
    out["contacts_engaged"] = firsts[now] - firsts[start]
    step("recency and contacts")
    if acc is ent:  # the entity is the account: nothing more to count
        return out

    # The whole account.
    acc_idx = pit.index_events(a_acc, a_time, ranked)
    acc_now = acc.positions(acc_idx, cut[0])
    out["account_activities_30d"] = acc_now - acc.positions(acc_idx, cut[30])
    firsts = pit.running_count(_first_sightings(acc_idx, contact))
    out["account_contacts_engaged"] = firsts[acc_now] - firsts[acc.starts(acc_idx)]
    step("account engagement")
    return out


def _counts_by_type_small(
    every_type: np.ndarray, at: dict[int, np.ndarray], out: Columns
) -> dict[int, np.ndarray]:
    """The per-type window counts for a few events, into ``out``; the totals per window.

    One matrix of running counts (event x type) instead of one running count per type:
    a dozen numpy calls instead of ~200 for a serving request. Too large for millions of
    events, where ``_engagement``'s loop runs instead.
    """
    n_types = len(_ACTIVITY_TYPES)
    seen = np.zeros((len(every_type) + 1, n_types), dtype=np.int64)
    np.cumsum(every_type[:, None] == np.arange(n_types), axis=0, out=seen[1:])
    now = seen[at[0]]
    totals = {}
    for w in ENGAGEMENT_WINDOWS:
        counts = now - seen[at[w]]
        for j, kind in enumerate(_ACTIVITY_TYPES):
            out[f"{kind}_{w}d"] = counts[:, j]
        totals[w] = counts.sum(axis=1)
    return totals


def _take_time(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Event times at index positions, NaT (int64 min) where the position is -1."""
    if len(times) == 0:
        return np.full(len(positions), pit.NAT, dtype=np.int64)
    return np.where(positions >= 0, times[np.where(positions >= 0, positions, 0)], pit.NAT)


def _first_sightings(index: pit.EventIndex, contact: np.ndarray) -> np.ndarray:
    """Where (in index order) each pair (entity, contact) appears for the first time.

    ``index`` holds the entity's activities sorted by (entity, time) and ``contact`` the
    contact code of each activity; the distinct contacts of an entity before t are the
    first sightings among its events before t.
    """
    c = contact[index.rows]
    ok = np.flatnonzero(c >= 0)
    first = np.zeros(len(index), dtype=bool)
    if len(ok) == 0:
        return first
    span = int(c[ok].max()) + 1
    pair = (index.composite[ok] // index.width) * span + c[ok]
    if len(pair) <= pit.SMALL:
        # np.unique's index is each value's first position; a sort beats hashing here.
        first[ok[np.unique(pair, return_index=True)[1]]] = True
    else:
        first[ok[~pd.Series(pair).duplicated().to_numpy()]] = True
    return first


def _deal_outcomes(
    tables: AnyTables, group_codes: np.ndarray, queries: pit.Queries
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per owner or account (``group_codes`` per deal row): won, lost, created, closed before t."""
    opps = tables.opportunities
    if len(opps) == 0:  # a lead request without context: nothing to count
        won, lost, created, closed = (np.zeros(len(queries), dtype=np.int64) for _ in range(4))
        return won, lost, created, closed
    return _outcomes(times(opps, "closed_at"), times(opps, "created_at"),
                     floats(opps, "is_won"), group_codes, queries)


def _outcomes(
    closed: np.ndarray, created: np.ndarray, won: np.ndarray, g: np.ndarray,
    queries: pit.Queries,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_deal_outcomes` from the deals' columns."""
    return (
        queries.count(pit.index_events(np.where(won == 1.0, g, -1), closed)),
        queries.count(pit.index_events(np.where(won == 0.0, g, -1), closed)),
        queries.count(pit.index_events(g, created)),
        queries.count(pit.index_events(g, closed)),
    )


@dataclass(frozen=True)
class DealOwners:
    """Every deal owner's deals, and the activities on them: what the owner features read.

    A rep owns deals in many accounts, so the owner's record is the one thing a snapshot
    reads beyond its own account. A build over all tables reads it from them
    (:func:`deal_owners`); a build by partitions of accounts (``features.partitions``)
    gathers it from every partition first and hands each the whole.
    """

    ids: np.ndarray
    """The owners (object array of ids, sorted): the code space of ``owner``."""
    owner: np.ndarray
    """Per deal: its owner's code (-1: none)."""
    created: np.ndarray
    closed: np.ndarray
    won: np.ndarray
    """Per deal: 1.0 won, 0.0 lost, NaN open."""
    renewal: np.ndarray
    """Per deal: whether it is a renewal deal."""
    activity_owner: np.ndarray | None = None
    """Per activity on a deal: the deal's owner's code (None: not gathered)."""
    activity_time: np.ndarray | None = None

    def codes(self, owner_ids: pd.Series | np.ndarray) -> np.ndarray:
        """Owner ids (one per deal row of a table) as codes into ``ids`` (-1: none)."""
        return pit.codes(owner_ids, self.ids)


def deal_owners(tables: AnyTables, with_activities: bool = False) -> DealOwners:
    """The owners' record from ``tables`` themselves (every deal they hold); with the
    activities on the deals when ``with_activities``."""
    opps = tables.opportunities
    ids = np.asarray(sorted(_vocab(keys(opps, "owner_id"))), dtype=object)
    owner = pit.codes(keys(opps, "owner_id"), ids)
    book = DealOwners(ids=ids, owner=owner, created=times(opps, "created_at"),
                      closed=times(opps, "closed_at"), won=floats(opps, "is_won"),
                      renewal=equals(opps, "product", contracts.RENEWAL_PRODUCT))
    if not with_activities:
        return book
    acts = tables.activities
    deal = pit.codes(keys(acts, "opportunity_id"), keys(opps, "opportunity_id"))
    activity_owner = _pick(owner, deal, np.ones(len(acts), dtype=bool))
    on_deal = activity_owner >= 0
    return dataclasses.replace(book, activity_owner=activity_owner[on_deal],
                               activity_time=times(acts, "occurred_at")[on_deal])


def _win_rate(won: np.ndarray, lost: np.ndarray) -> np.ndarray:
    closed = won + lost
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(closed > 0, won / np.maximum(closed, 1), np.nan)


def _owner_record(book: DealOwners, owners: pit.Queries) -> Columns:
    """The owner's (``owners``: one owner code per query) deals won and closed before t."""
    if len(book.owner) == 0:  # a request without deals: nothing to count
        zero = np.zeros(len(owners), dtype=np.int64)
        return {"owner_win_rate": _win_rate(zero, zero), "owner_closed_deals": zero}
    won, lost, _, _ = _outcomes(book.closed, book.created, book.won, book.owner, owners)
    return {"owner_win_rate": _win_rate(won, lost), "owner_closed_deals": won + lost}


def _owner_activity_rate(book: DealOwners, owners: pit.Queries) -> np.ndarray:
    """Activities a day on the owner's deals while open, before t: better reps run busier
    deals, measured over every deal they have had rather than the few an account sees."""
    assert book.activity_owner is not None and book.activity_time is not None
    t = owners.times
    # Open days before t: (t - created) over deals created before t, less (t - closed) over
    # those closed before t, as counts and sums of times.
    opened = pit.index_events(book.owner, book.created)
    shut = pit.index_events(book.owner, book.closed)
    days = np.zeros(len(t))
    for idx, sign in ((opened, 1.0), (shut, -1.0)):
        start = owners.starts(idx)
        end = owners.positions(idx, owners.thresholds(idx.distinct_times))
        total = np.zeros(len(idx) + 1)
        if len(idx):
            np.cumsum(idx.times / _DAY, out=total[1:])
        days += sign * ((end - start) * (t / _DAY) - (total[end] - total[start]))
    busy = owners.count(pit.index_events(book.activity_owner, book.activity_time))
    with np.errstate(divide="ignore", invalid="ignore"):
        # No activity at all on their deals: not sent (a request without them), not idle.
        return np.where((owners.keys >= 0) & (days >= 1.0) & (busy > 0), busy / days, np.nan)


def _vocab(values: pd.Series | np.ndarray) -> pd.Index | np.ndarray:
    """Distinct non-null ids, in first-seen order: the code space of an entity."""
    if isinstance(values, np.ndarray):
        return np.asarray(list(dict.fromkeys(v for v in values if v is not None)), dtype=object)
    return pd.Index(pd.unique(values.dropna().astype(object)))


def _rows_at(
    table: Frame, key: str, snapshots: Frame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per snapshot: its time, its entity's row in ``table`` (-1: none), that row's
    creation time, and whether the entity existed before the snapshot's time."""
    t = times(snapshots, "as_of")
    row = pit.codes(keys(snapshots, key), keys(table, key))
    created = _take_time(times(table, "created_at"), row)
    return t, row, created, (row >= 0) & (created != pit.NAT) & (created < t)


def _lead_columns(tables: AnyTables, snapshots: Frame, step: Step,
                  owners: DealOwners | None = None) -> Columns:
    leads = tables.leads
    t, row, created, visible = _rows_at(leads, "lead_id", snapshots)
    ent = pit.Queries(row, t)
    changes = _lead_changes(tables)
    out: Columns = {}
    # Every attribute a CRM lets users edit, as of t: BANT answers filled in during
    # qualification and firmographics enriched later are not seen before they were.
    for col in ("source", "industry", "country", "seniority", "job_function"):
        out[col] = _category_as_of(leads, changes, col, ent, visible, col)
    for col in ("employees", "budget_confirmed", "is_decision_maker", "need_stated",
                "timeline_days"):
        kind = LEADS.column(col).kind
        out[col] = _numeric_as_of(leads, changes, col, ent, visible, kind)
    out["lead_age_days"] = np.where(visible, pit.days_between(t, created), np.nan)
    out[EXISTS] = visible

    accounts = keys(tables.accounts, "account_id")
    lead_account = pit.codes(keys(leads, "account_id"), accounts)
    acc = pit.Queries(_pick(lead_account, row, visible), t)
    step("lead attributes")

    out.update(_engagement(tables, "lead_id", keys(leads, "lead_id"), accounts, ent, acc, step))
    opp_account = pit.codes(keys(tables.opportunities, "account_id"), accounts)
    won, lost, created_n, closed_n = _deal_outcomes(tables, opp_account, acc)
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


def _deal_history(
    tables: AnyTables, vocab: pd.Series | np.ndarray, ent: pit.Queries
) -> Columns:
    """Stage, amount and close date as of t, with the moves that led there."""
    hist = tables.opportunity_history
    t = ent.times
    h_key = _relevant(pit.codes(keys(hist, "opportunity_id"), vocab), ent.keys, len(vocab))
    idx = pit.index_events(h_key, times(hist, "changed_at"))
    n = len(idx)
    opp = idx.composite // idx.width if n else np.empty(0, dtype=np.int64)
    first = pit.changes(opp)
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else first

    # Stage codes follow STAGES, whose first entries are the open stages in order.
    stage = pit.codes(keys(hist, "stage"), _STAGE_INDEX)[idx.rows]
    raw_amount = floats(hist, "amount")[idx.rows]
    amount = _ffill_in_group(raw_amount, ~np.isnan(raw_amount), group_start, np.nan)
    raw_close = times(hist, "close_date")[idx.rows]
    close_i = _ffill_in_group(raw_close, raw_close != pit.NAT, group_start, pit.NAT)

    entered = first | pit.changes(stage)
    entered_at = (
        idx.times[np.maximum.accumulate(np.where(entered, np.arange(n), 0))] if n else idx.times
    )
    n_open = len(OPEN_STAGES)
    rank = np.where((stage >= 0) & (stage < n_open), stage, n_open)
    back = ~first & (pit.previous(rank, 0) > rank)
    prev_close = pit.previous(close_i, pit.NAT)
    pushed = ~first & (prev_close != pit.NAT) & (close_i > prev_close)
    push_days = np.where(pushed, (close_i - prev_close) / _DAY, 0.0)

    def running(x: np.ndarray) -> np.ndarray:
        c = np.cumsum(x)
        return c - (c[group_start] - x[group_start]) if n else c

    moves_back = running(back.astype(np.int64))
    pushes = running(pushed.astype(np.int64))
    push_total = running(push_days)
    first_amount = amount[group_start] if n else amount

    last = ent.last(idx)
    have = last >= 0
    out: Columns = {}
    if n == 0:
        nan = np.full(len(t), np.nan)
        zero = np.zeros(len(t), dtype=np.int64)
        out.update(
            stage=np.full(len(t), -1, dtype=np.int64),
            days_in_stage=nan,
            stage_moves_back=zero,
            close_date_pushes=zero,
            close_date_push_days=nan,
            amount=nan,
            amount_change_pct=nan,
            days_to_close=nan,
        )
        return out
    at = np.where(have, last, 0)
    now_stage = np.where(have & (rank[at] < n_open), rank[at], -1)
    out["stage"] = now_stage
    out["days_in_stage"] = np.where(have, pit.days_between(t, entered_at[at]), np.nan)
    out["stage_moves_back"] = np.where(have, moves_back[at], 0)
    out["close_date_pushes"] = np.where(have, pushes[at], 0)
    out["close_date_push_days"] = np.where(have, push_total[at], np.nan)
    out["amount"] = np.where(have, amount[at], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = amount[at] / first_amount[at] - 1.0
    out["amount_change_pct"] = np.where(have & np.isfinite(change), change, np.nan)
    out["days_to_close"] = np.where(have, pit.days_between(close_i[at], t), np.nan)
    return out


def _deal_columns(tables: AnyTables, snapshots: Frame, step: Step,
                  owners: DealOwners | None = None) -> Columns:
    opps = tables.opportunities
    vocab = keys(opps, "opportunity_id")
    t, row, created, visible = _rows_at(opps, "opportunity_id", snapshots)
    ent = pit.Queries(row, t)
    out: Columns = _deal_history(tables, vocab, ent)
    out["days_since_created"] = np.where(visible, pit.days_between(t, created), np.nan)
    out[EXISTS] = visible
    out["product"] = _category_as_of(opps, _deal_changes(tables), "product", ent, visible,
                                     "product")
    step("deal state as of t")

    book = owners or deal_owners(tables)
    owner_code = book.codes(keys(opps, "owner_id"))
    out.update(_owner_record(book, pit.Queries(_pick(owner_code, row, visible), t)))

    accounts = tables.accounts
    account_vocab = keys(accounts, "account_id")
    opp_account = pit.codes(keys(opps, "account_id"), account_vocab)
    a_row = _pick(opp_account, row, visible)
    a_created = _take_time(times(accounts, "created_at"), a_row)
    a_visible = (a_row >= 0) & (a_created != pit.NAT) & (a_created < t)
    out["industry"] = _category(accounts, "industry", a_row, a_visible, "industry")
    out["country"] = _category(accounts, "country", a_row, a_visible, "country")
    out["employees"] = _numeric(accounts, "employees", a_row, a_visible)

    leads = tables.leads
    lead_row_of_opp = pit.codes(keys(opps, "lead_id"), keys(leads, "lead_id"))
    q_lead = _pick(lead_row_of_opp, row, visible)
    l_created = _take_time(times(leads, "created_at"), q_lead)
    l_visible = (q_lead >= 0) & (l_created != pit.NAT) & (l_created < t)
    out["source"] = _category_as_of(leads, _lead_changes(tables), "source",
                                    pit.Queries(q_lead, t), l_visible, "source")
    step("owner and account")

    acc = pit.Queries(a_row, t)
    out.update(_engagement(tables, "opportunity_id", vocab, account_vocab, ent, acc, step))
    won, lost, created_n, closed_n = _deal_outcomes(tables, opp_account, acc)
    out["account_won_deals"] = won
    out["account_lost_deals"] = lost
    # Other deals of the account open at t: this one is open at t and created before it.
    out["account_open_deals"] = np.maximum(created_n - closed_n - visible.astype(np.int64), 0)
    step("account history")
    return out


def _running_sum(index: pit.EventIndex, values: np.ndarray) -> np.ndarray:
    """``out[p]`` = the sum of the first ``p`` values in index order (``running_count``'s
    analogue for amounts and signal values)."""
    out = np.zeros(len(index) + 1, dtype=np.float64)
    if len(index):
        np.cumsum(np.nan_to_num(values[index.rows]), out=out[1:])
    return out


def _window(
    queries: pit.Queries, index: pit.EventIndex, days: int, until_days: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Index positions bounding each entity's events in [t - days, t - until_days)."""
    lo = queries.positions(index, queries.thresholds(index.distinct_times, days * _DAY))
    hi = queries.positions(index, queries.thresholds(index.distinct_times, until_days * _DAY))
    return lo, hi


def _renewal_activity(tables: AnyTables, deal_vocab: pd.Series | np.ndarray,
                      renewal: pit.Queries) -> Columns:
    """The open renewal deal's own activities before t: in the last 14 days, the days since
    the latest, and the contacts they touched. Better deals are busier and multi-threaded;
    a troubled one goes quiet."""
    acts = tables.activities
    code = _relevant(pit.codes(keys(acts, "opportunity_id"), deal_vocab), renewal.keys,
                     len(deal_vocab))
    idx = pit.index_events(code, times(acts, "occurred_at"))
    firsts = pit.running_count(_first_sightings(idx, pit.id_codes(keys(acts, "contact_id"))))
    lo, hi = _window(renewal, idx, 14)
    open_deal = renewal.keys >= 0
    return {
        "renewal_activities_14d": np.where(open_deal, hi - lo, 0),
        "renewal_contacts": np.where(open_deal, firsts[hi] - firsts[renewal.starts(idx)], 0),
        "renewal_days_since_activity": pit.days_between(
            renewal.times, _take_time(idx.times, renewal.last(idx))),
    }


def _signal_columns(tables: AnyTables, accounts: pd.Series | np.ndarray,
                    acc: pit.Queries) -> Columns:
    """Usage, tickets and survey answers of each account before t."""
    sig = tables.account_signals
    s_account = _relevant(pit.codes(keys(sig, "account_id"), accounts), acc.keys, len(accounts))
    s_time = times(sig, "observed_at")
    value = floats(sig, "value")
    kind = keys(sig, "signal")
    ranked = pit.rank_times(s_time)
    t = acc.times
    out: Columns = {}

    def index(name: str, where: np.ndarray | None = None) -> pit.EventIndex:
        mask = equals(sig, "signal", name) if len(kind) else np.zeros(0, dtype=bool)
        if where is not None:
            mask &= where
        return pit.index_events(np.where(mask, s_account, -1), s_time, ranked)

    def mean(idx: pit.EventIndex, total: np.ndarray, days: int, until: int = 0) -> np.ndarray:
        lo, hi = _window(acc, idx, days, until)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(hi > lo, (total[hi] - total[lo]) / (hi - lo), np.nan)

    def last(idx: pit.EventIndex) -> tuple[np.ndarray, np.ndarray]:
        at = acc.last(idx)
        found = at >= 0
        rows = idx.rows[np.where(found, at, 0)] if len(idx) else np.zeros(len(at), np.int64)
        got = value[rows] if len(value) else np.full(len(at), np.nan)
        when = _take_time(idx.times, at)
        return np.where(found, got, np.nan), pit.days_between(t, when)

    sums: dict[str, dict[int, np.ndarray]] = {}
    for name in ("active_users", "logins"):
        idx = index(name)
        total = _running_sum(idx, value)
        recent, before = mean(idx, total, 30), mean(idx, total, 90, 30)
        out[f"{name}_30d"] = recent
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{name}_trend"] = np.where(before > 0, recent / before - 1.0, np.nan)
        sums[name] = {}
        for days in (14, 30):
            lo, hi = _window(acc, idx, days)
            sums[name][days] = total[hi] - total[lo]
        if name == "active_users":
            out["active_users_last"], out["days_since_usage"] = last(idx)
            # The 30-day average against every reading before it: a drop from the
            # account's own usual level, whatever its size and reach.
            start = acc.starts(idx)
            lo, _ = _window(acc, idx, 30)
            with np.errstate(divide="ignore", invalid="ignore"):
                usual = np.where(lo > start, (total[lo] - total[start]) / (lo - start), np.nan)
                out["active_users_vs_usual"] = np.where(usual > 0, recent / usual - 1.0,
                                                        np.nan)
    # Logins per active user: how intensely the users there are use it.
    with np.errstate(divide="ignore", invalid="ignore"):
        for days in (14, 30):
            users = sums["active_users"][days]
            out[f"logins_per_user_{days}d"] = np.where(users > 0,
                                                       sums["logins"][days] / users, np.nan)
    seats, _ = last(index("licensed_seats"))
    out["licensed_seats"] = seats
    with np.errstate(divide="ignore", invalid="ignore"):
        out["seat_utilization"] = np.where(seats > 0, out["active_users_30d"] / seats, np.nan)
    tickets = index("ticket_opened")
    for days in (30, 90):
        lo, hi = _window(acc, tickets, days)
        out[f"tickets_{days}d"] = hi - lo
    severe = index("ticket_opened", value >= 3 if len(value) else None)
    lo, hi = _window(acc, severe, 90)
    out["severe_tickets_90d"] = hi - lo
    out["nps_last"], out["days_since_nps"] = last(index("nps"))
    out["csat_last"], _ = last(index("csat"))
    return out


def _account_columns(tables: AnyTables, snapshots: Frame, step: Step,
                     owners: DealOwners | None = None) -> Columns:
    accounts_table = tables.accounts
    accounts = keys(accounts_table, "account_id")
    t, row, _, visible = _rows_at(accounts_table, "account_id", snapshots)
    acc = pit.Queries(np.where(visible, row, -1), t)
    out: Columns = {
        "industry": _category(accounts_table, "industry", row, visible, "industry"),
        "country": _category(accounts_table, "country", row, visible, "country"),
        "employees": _numeric(accounts_table, "employees", row, visible),
        EXISTS: visible,
    }
    small, large = SEGMENT_EMPLOYEES
    employees = out["employees"]
    out["segment"] = np.where(
        np.isnan(employees), -1, np.where(employees >= large, 2, np.where(employees >= small, 1, 0))
    )

    # Terms of contract known at t: started before t; ended (renewal closed, or no
    # renewal within the grace) before t.
    c = contracts.read_contracts(tables, accounts)
    ends = c.ends()
    starts_idx = pit.index_events(c.account, c.start)
    ends_idx = pit.index_events(c.account, ends)
    begun, ended = acc.count(starts_idx), acc.count(ends_idx)
    out["active_contracts"] = begun - ended
    value_in = _running_sum(starts_idx, c.amount)
    value_out = _running_sum(ends_idx, c.amount)
    out["contract_value"] = (
        value_in[acc.positions(starts_idx, acc.thresholds(starts_idx.distinct_times))]
        - value_out[acc.positions(ends_idx, acc.thresholds(ends_idx.distinct_times))]
    )
    first = acc.starts(starts_idx)
    first_start = _take_time(starts_idx.times, np.where(begun > 0, first, -1))
    out["tenure_days"] = pit.days_between(t, first_start)

    # The next renewal: the earliest-started term still running at t (terms sorted by
    # account then start, so by due date too).
    term = np.full(len(t), -1, dtype=np.int64)
    width = int(np.max(begun)) if len(begun) else 0
    term_rows = starts_idx.rows
    for j in range(width):
        pos = first + j
        ok = (term < 0) & (j < begun)
        cand = term_rows[np.where(ok, pos, 0)] if len(term_rows) else pos
        running = ok & (ends[cand] >= t) if len(term_rows) else ok
        term = np.where(running, cand, term)
    has_term = term >= 0
    at = np.maximum(term, 0)
    out["days_to_renewal"] = np.where(
        has_term, pit.days_between(c.due[at], t) if len(c) else np.nan, np.nan
    )
    out["term_amount"] = np.where(has_term, c.amount[at] if len(c) else np.nan, np.nan)
    renewal = np.where(has_term & (c.renewal_created[at] < t) if len(c) else has_term,
                       c.renewal[at] if len(c) else -1, -1)
    opps = tables.opportunities
    term_deal = np.where(has_term, c.deal[at] if len(c) else -1, -1)
    out["term_product"] = _category_as_of(opps, _deal_changes(tables), "product",
                                          pit.Queries(term_deal, t), has_term, "term_product")
    deal_vocab = keys(opps, "opportunity_id")
    renewal_q = pit.Queries(renewal, t)
    history = _deal_history(tables, deal_vocab, renewal_q)
    out["renewal_stage"] = history["stage"]
    out["renewal_days_in_stage"] = history["days_in_stage"]
    out["renewal_close_date_pushes"] = history["close_date_pushes"]
    out.update(_renewal_activity(tables, deal_vocab, renewal_q))
    # The account's owner: the owner of the renewing contract's deal; their record so far,
    # on every deal and on renewals alone.
    book = owners or deal_owners(tables, with_activities=True)
    owner_code = book.codes(keys(opps, "owner_id"))
    whose = pit.Queries(_pick(owner_code, term_deal, has_term), t)
    out.update(_owner_record(book, whose))
    out["owner_activity_rate"] = _owner_activity_rate(book, whose)
    renewal_owner = np.where(book.renewal, book.owner, -1)
    won, lost, _, _ = _outcomes(book.closed, book.created, book.won, renewal_owner, whose)
    out["owner_renewal_rate"] = _win_rate(won, lost)
    out["owner_renewals_closed"] = won + lost
    step("contracts")

    o_account = pit.codes(keys(opps, "account_id"), accounts)
    for product, name in ((contracts.RENEWAL_PRODUCT, "renewals"),
                          (contracts.EXPANSION_PRODUCT, "expansions")):
        group = np.where(equals(opps, "product", product), o_account, -1)
        won, lost, created_n, _ = _deal_outcomes(tables, group, acc)
        out[f"{name}_won"] = won
        out[f"{name}_lost"] = lost
        out[f"{name}_opened"] = created_n
    expansions = pit.index_events(
        np.where(equals(opps, "product", contracts.EXPANSION_PRODUCT), o_account, -1),
        times(opps, "created_at"),
    )
    out["days_since_expansion"] = pit.days_between(t, _take_time(expansions.times,
                                                                 acc.last(expansions)))
    step("renewals and expansions")

    out.update(_engagement(tables, "account_id", accounts, accounts, acc, acc, step))
    out.update(_signal_columns(tables, accounts, acc))
    step("signals")
    return out


@dataclass(frozen=True)
class EntityFeatures:
    """How the features of one kind of entity are computed, and in how many steps."""

    compute: Callable[[AnyTables, Frame, Step, DealOwners | None], Columns]
    steps: int
    """How many times ``compute`` calls its step callback."""


ENTITY_FEATURES: dict[str, EntityFeatures] = {
    "lead_id": EntityFeatures(_lead_columns, steps=5),
    "opportunity_id": EntityFeatures(_deal_columns, steps=6),
    "account_id": EntityFeatures(_account_columns, steps=6),
}
"""Feature computation per entity key (a feature set's ``entity_key``)."""


def feature_columns(
    tables: AnyTables,
    snapshots: Frame,
    feature_set: FeatureSet,
    *,
    on_step: Step | None = None,
    own: OwnFeatures = NO_OWN,
    owners: DealOwners | None = None,
) -> Columns:
    """The features of each snapshot as plain arrays, from rows dated strictly before its
    ``as_of``: what ``build_features`` computes, before it becomes a typed DataFrame.

    One array per declared feature, in ``feature_set.names`` order, one value per snapshot
    in snapshot order: float64 for numbers and yes/no answers (NaN: not known), int64 for
    counts, and for categories small signed integer codes into the feature's fixed levels
    (``category_dtype(name).categories``; -1: not known). Serving scores these directly;
    ``tables`` and ``snapshots`` may be DataFrames or ``features.columns`` tables.
    """
    columns = entity_columns(tables, snapshots, feature_set.entity_key, on_step=on_step,
                             own=own, owners=owners)
    return select_features(columns, feature_set)


def entity_columns(
    tables: AnyTables, snapshots: Frame, key: str, *, on_step: Step | None = None,
    own: OwnFeatures = NO_OWN, owners: DealOwners | None = None,
) -> Columns:
    """Every feature the entity ``key`` has, per snapshot: what each of its feature sets
    picks from (:func:`select_features`), so sets of one entity can share one pass. An
    export's ``own`` columns come as text or float (``features.own``). ``owners``: the
    deal owners' record of the whole CRM when ``tables`` hold only some of its accounts
    (default: read from ``tables``)."""
    missing = {key, "as_of"} - set(snapshots.columns)
    if missing:
        raise ValueError(f"snapshots lack columns {sorted(missing)}")
    entity = ENTITY_FEATURES.get(key)
    if entity is None:
        raise ValueError(f"no features for entity key {key!r}")
    columns = entity.compute(tables, snapshots, on_step or _noop, owners)
    own = own or tables.own or NO_OWN
    if own:
        columns.update(own_columns(own, key, snapshots, columns[EXISTS]))
    return columns


def select_features(columns: Columns, feature_set: FeatureSet) -> Columns:
    """The feature set's arrays from an entity's ``columns``, typed as
    :func:`feature_columns` gives them."""
    unknown = [name for name in feature_set.names if name not in columns]
    if unknown:
        own = own_names(feature_set)
        if not set(unknown) <= own:
            raise KeyError(f"feature set {feature_set.name} declares uncomputed features "
                           f"{sorted(set(unknown) - own)}")
        # An export's own column nothing sent (a request without its attributes): not known.
        n = len(columns[EXISTS])
        columns = {**columns, **{name: np.full(n, np.nan) if feature_set.spec(name).dtype
                                 != "category" else np.full(n, -1) for name in unknown}}
    return {spec.name: _plain(columns[spec.name], spec) for spec in feature_set.features}


def own_names(feature_set: FeatureSet) -> frozenset[str]:
    """The features of a derived set (``lead_v1+own``) that its declared base set lacks:
    an export's own columns (``features.own``)."""
    base = FEATURE_SETS.get(feature_set.base_name)
    if base is None or feature_set.name == feature_set.base_name:
        return frozenset()
    return frozenset(feature_set.names) - frozenset(base.names)


def build_features(
    tables: AnyTables,
    snapshots: Frame,
    feature_set: FeatureSet,
    *,
    on_step: Step | None = None,
    own: OwnFeatures = NO_OWN,
    owners: DealOwners | None = None,
) -> pd.DataFrame:
    """Features of each snapshot, from rows dated strictly before its ``as_of``.

    Returns one row per snapshot, with the same order and index: the entity key, ``as_of``,
    then ``feature_set.names`` in order, typed per the spec (categories with fixed levels).
    """
    columns = feature_columns(tables, snapshots, feature_set, on_step=on_step, own=own,
                              owners=owners)
    return features_frame(columns, snapshots, feature_set)


def features_frame(columns: Columns, snapshots: Frame, feature_set: FeatureSet) -> pd.DataFrame:
    """:func:`build_features` from the set's computed columns (consumed)."""
    key = feature_set.entity_key
    if isinstance(snapshots, ColumnTable):
        ids = pd.array(snapshots[key], dtype="string")
        as_of = pd.DatetimeIndex(snapshots["as_of"].view("datetime64[ns]"), tz="UTC")
        index: pd.Index = pd.RangeIndex(len(snapshots))
    else:
        ids = snapshots[key].astype("string").array
        as_of = pd.DatetimeIndex(snapshots["as_of"])
        as_of = as_of.tz_localize("UTC") if as_of.tz is None else as_of.tz_convert("UTC")
        index = snapshots.index
    data: dict[str, object] = {key: ids, "as_of": as_of.astype("datetime64[ns, UTC]").array}
    for spec in feature_set.features:
        data[spec.name] = _cast(columns.pop(spec.name), spec)
    return pd.DataFrame(data, index=index, copy=False)
