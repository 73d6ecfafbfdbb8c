"""The checks across tables: references that resolve, and rows inside their parent's life.

Run once every table went through its own rules, so that a parent rejected by them takes
its children with it. The output keeps referential integrity: every non-null reference in
the valid rows resolves to a valid row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.parsing import np_mask
from features.report import (
    AFTER_DEAL_CLOSED,
    BEFORE_ACCOUNT_CREATED,
    BEFORE_DEAL_CREATED,
    BEFORE_ENTITY_CREATED,
    ORPHAN_FK,
    iso,
    joined,
    quoted,
)
from features.rules import CheckedTable
from features.schema import FIELD_HISTORIES, TABLES, ForeignKey


def orphan_reasons(refs: pa.Array | pa.ChunkedArray, orphan: np.ndarray,
                   all_keys: pa.Array | pa.ChunkedArray, fk: ForeignKey) -> pa.Array:
    """Why each ``orphan`` reference is rejected: its parent was rejected, or there is
    none."""
    missing = refs.filter(pa.array(orphan))
    existed = pc.is_in(missing, all_keys)
    target = f"{fk.table}.{fk.ref_column}"
    return pc.if_else(
        existed,
        joined(f"{ORPHAN_FK}: {target} ", quoted(missing), " was rejected"),
        joined(f"{ORPHAN_FK}: no {target} ", quoted(missing)),
    )


HeldKeys = Mapping[str, tuple[pa.Array, pa.Array]]
"""Keys of a table held outside the checked tables (a batch's input file), by table: the
valid ones, and every one (the rejected ones name a parent that "was rejected")."""


def check_references(checked: dict[str, CheckedTable], present: Collection[str] | None = None,
                     held: HeldKeys | None = None) -> None:
    """Every check across tables, in order: references, then rows inside their parent's
    life. ``present`` and ``held`` as in :func:`check_foreign_keys`."""
    check_foreign_keys(checked, present, held)
    check_history_dates(checked)
    check_signal_dates(checked)
    check_field_history_dates(checked)


def check_foreign_keys(checked: dict[str, CheckedTable], present: Collection[str] | None = None,
                       held: HeldKeys | None = None) -> None:
    """Reject rows whose references are absent or rejected, until nothing changes.

    Each foreign key is re-checked only when its parent lost rows since the last check,
    always taking the first such key in dependency order: accounts before leads and
    opportunities (whose mutual references settle first), then history, activities and
    signals.

    ``present`` (default: every table) names the tables whose rows are all there: a
    reference into any other table is not checked, since its rows are somewhere else (a
    folder given to batch scoring may hold only some tables). ``held`` adds keys of a
    table that live outside ``checked`` (a batch's input rows) to its valid keys.
    """
    held = held or {}
    fks: list[tuple[str, ForeignKey]] = [
        (name, fk) for name, t in TABLES.items() for fk in t.foreign_keys
        if present is None or fk.table in present
    ]
    version = dict.fromkeys(TABLES, 0)
    checked_at = [-1] * len(fks)
    reported = [np.zeros(checked[name].n_rows, dtype=bool) for name, _ in fks]
    while True:
        stale = [i for i, (_, fk) in enumerate(fks) if checked_at[i] != version[fk.table]]
        if not stale:
            return
        i = stale[0]
        child_name, fk = fks[i]
        checked_at[i] = version[fk.table]
        child, parent = checked[child_name], checked[fk.table]
        refs = child.values(fk.column)
        all_keys = parent.values(fk.ref_column)
        valid_keys = all_keys.filter(pa.array(parent.valid))
        if fk.table in held:
            valid_held, all_held = held[fk.table]
            valid_keys = pa.chunked_array([*valid_keys.chunks, valid_held.cast(valid_keys.type)],
                                          type=valid_keys.type)
            all_keys = pa.chunked_array([*all_keys.chunks, all_held.cast(all_keys.type)],
                                        type=all_keys.type)
        orphan = np_mask(pc.and_(pc.is_valid(refs), pc.invert(pc.is_in(refs, valid_keys))))
        orphan &= ~reported[i]
        if not orphan.any():
            continue
        reported[i] |= orphan
        reason = orphan_reasons(refs, orphan, all_keys, fk)
        if child.reject(orphan, fk.column, reason):
            version[child_name] += 1


def check_history_dates(checked: dict[str, CheckedTable]) -> None:
    """Reject history rows dated before their deal was created or after it closed."""
    hist, opps = checked["opportunity_history"], checked["opportunities"]
    keep = pa.array(opps.valid)
    opp_ids = opps.values("opportunity_id").filter(keep)
    created = opps.values("created_at").filter(keep)
    closed = opps.values("closed_at").filter(keep)
    pos = pc.index_in(hist.values("opportunity_id"), value_set=opp_ids)
    deal_created = created.take(pos)
    deal_closed = closed.take(pos)
    changed = hist.values("changed_at")
    for code, cmp, bound, word in (
        (BEFORE_DEAL_CREATED, pc.less, deal_created, "created_at"),
        (AFTER_DEAL_CLOSED, pc.greater, deal_closed, "closed_at"),
    ):
        _reject_changes(hist, np_mask(cmp(changed, bound)), changed, bound, code,
                        f" is {'before' if cmp is pc.less else 'after'} the deal's {word} ")


def check_signal_dates(checked: dict[str, CheckedTable]) -> None:
    """Reject account signals observed before their account was created.

    As with a deal's history: an account cannot be watched before it exists, so such a row
    is a broken export, and features would see it before the account was there to score.
    """
    signals, accounts = checked["account_signals"], checked["accounts"]
    if signals.n_rows == 0:
        return
    keep = pa.array(accounts.valid)
    pos = pc.index_in(
        signals.values("account_id"), value_set=accounts.values("account_id").filter(keep)
    )
    created = accounts.values("created_at").filter(keep).take(pos)
    observed = signals.values("observed_at")
    wrong = np_mask(pc.less(observed, created))
    if wrong.any():
        m = pa.array(wrong)
        signals.reject(
            wrong,
            "observed_at",
            joined(
                f"{BEFORE_ACCOUNT_CREATED}: observed_at ",
                iso(observed.filter(m)),
                " is before the account's created_at ",
                iso(created.filter(m)),
            ),
        )


def check_field_history_dates(checked: dict[str, CheckedTable]) -> None:
    """Reject field changes dated before their lead or deal was created.

    A record cannot be edited before it exists; such a row is a broken export (a merge
    that kept the older history), and its old value would read as the record's value at
    times it was not there to score. Changes after a deal closed are kept: records are
    edited after the fact, and features read them only as of their time.
    """
    for name, entity in FIELD_HISTORIES.items():
        hist, parent = checked[name], checked[entity.name]
        if hist.n_rows == 0:
            continue
        key = entity.key
        assert key is not None
        keep = pa.array(parent.valid)
        pos = pc.index_in(hist.values(key), value_set=parent.values(key).filter(keep))
        created = parent.values(entity.time_column).filter(keep).take(pos)
        changed = hist.values("changed_at")
        _reject_changes(hist, np_mask(pc.less(changed, created)), changed, created,
                        BEFORE_ENTITY_CREATED, f" is before the {entity.name} row's created_at ")


def _reject_changes(hist: CheckedTable, wrong: np.ndarray, changed: pa.Array, bound: pa.Array,
                    code: str, relation: str) -> None:
    """Reject the history rows ``wrong`` marks, each saying its ``changed_at``, how it
    stands to its record's time (``relation``) and that time."""
    if wrong.any():
        m = pa.array(wrong)
        hist.reject(wrong, "changed_at", joined(f"{code}: changed_at ", iso(changed.filter(m)),
                                                relation, iso(bound.filter(m))))
