"""The mapping's ``features:``: an export's own columns, typed and keyed by their record.

``convert`` reads each declared column beside its table's contract columns (prefixed
:data:`OWN_PREFIX`); here they leave the contract table, become numbers, yes/no answers or
category text, and every value that is neither is counted in the import report and left
empty (never guessed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from features.mapping.spec import Mapping
from features.mapping.values import Unplaced
from features.own import NONE, TABLE_KEYS, OwnFeature, OwnFeatures
from features.schema import CRMTables

OWN_PREFIX = "own:"

YES = frozenset({"yes", "y", "true", "t", "1", "1.0"})
NO = frozenset({"no", "n", "false", "f", "0", "0.0"})
"""What a yes/no column may hold once its value map (if any) is applied, ignoring case."""


def _numbers(text: pd.Series, unplaced: Unplaced) -> pd.Series:
    num = pd.to_numeric(text, errors="coerce")
    bad = text.notna() & num.isna()
    if bad.any():
        unplaced.add(text[bad])
    return num.astype("float64")


def _yes_no(text: pd.Series, unplaced: Unplaced) -> pd.Series:
    low = text.astype(object).where(text.notna(), None).map(
        lambda v: None if v is None else str(v).strip().lower())
    out = pd.Series(np.nan, index=text.index, dtype="float64")
    out[low.isin(YES)] = 1.0
    out[low.isin(NO)] = 0.0
    bad = low.notna() & out.isna()
    if bad.any():
        unplaced.add(text[bad])
    return out


def own_values(
    mapping: Mapping, tables: dict[str, pd.DataFrame],
    placed: Callable[[str, str, str], Unplaced],
) -> OwnFeatures:
    """Take the own columns out of the converted ``tables`` (in place), typed per the
    mapping; ``placed(table, column, what)`` counts the values that could not be read."""
    if not mapping.features:
        return NONE
    allowed = {name for table in mapping.features for _, part in mapping.parts(table)
               for name in part.allow_current_values}
    features: list[OwnFeature] = []
    values: dict[str, pd.DataFrame] = {}
    for table, named in mapping.features.items():
        frame = tables[table]
        key = TABLE_KEYS[table]
        data: dict[str, pd.Series] = {key: frame[key]}
        for name, om in named.items():
            col = f"{OWN_PREFIX}{name}"
            text = frame[col] if col in frame else pd.Series(None, index=frame.index,
                                                             dtype=object)
            source = om.column[0]
            if om.type == "number":
                data[name] = _numbers(text, placed(table, name, f"{source}: not a number, "
                                                   "left empty"))
            elif om.type == "yes_no":
                data[name] = _yes_no(text, placed(table, name, f"{source}: not a yes/no "
                                                  "answer, left empty"))
            else:
                data[name] = text.astype(object).where(text.notna(), None)
            features.append(OwnFeature(name, table, om.type, om.known_at, source,
                                       allowed=name in allowed))
        tables[table] = frame.drop(columns=[c for c in frame if c.startswith(OWN_PREFIX)])
        values[table] = pd.DataFrame(data).reset_index(drop=True)
    return OwnFeatures(tuple(features), values)


def _as_text(values: pd.Series) -> pd.Series:
    """Typed numbers as the text a field history holds (None where empty)."""
    return values.map(lambda v: None if pd.isna(v) else repr(float(v))).astype(object)


def own_history(
    own: OwnFeatures, table: str, changes: pd.DataFrame,
    placed: Callable[[str, str, str], Unplaced],
) -> OwnFeatures:
    """``own`` with the changes of ``table``'s ``history`` features (key, ``changed_at`` as
    ISO text, ``field``, ``old_value``, ``new_value`` as read from the export), each value
    typed as its feature's column is; a change whose time cannot be read is counted and
    left out."""
    key = TABLE_KEYS[table]
    at = pd.to_datetime(changes["changed_at"], utc=True, errors="coerce", format="ISO8601")
    pieces = []
    for f in own.features:
        if f.table != table or f.known_at != "history":
            continue
        mine = (changes["field"] == f.name).to_numpy()
        timed = mine & at.notna().to_numpy()
        if (mine & ~timed).any():
            placed(table, f.name, f"{f.column}: a change without a readable time, not "
                   "read").add(changes.loc[mine & ~timed, "changed_at"].astype(object))
        rows = changes.loc[timed]
        piece = {key: rows[key].astype(object), "changed_at": at[timed], "field": f.name}
        for side in ("old_value", "new_value"):
            text = rows[side].astype(object)
            if f.kind == "number":
                piece[side] = _as_text(_numbers(text, placed(
                    table, f.name, f"{f.column}: not a number, left empty")))
            elif f.kind == "yes_no":
                piece[side] = _as_text(_yes_no(text, placed(
                    table, f.name, f"{f.column}: not a yes/no answer, left empty")))
            else:
                piece[side] = text.where(text.notna(), None)
        pieces.append(pd.DataFrame(piece))
    if not pieces:
        return own
    history = pd.concat(pieces, ignore_index=True).sort_values(
        [key, "changed_at"], kind="stable").reset_index(drop=True)
    return OwnFeatures(own.features, own.values, {**own.history, table: history})


def valid_only(own: OwnFeatures, valid: CRMTables) -> OwnFeatures:
    """The own values of the records validation kept (the first row of a repeated key)."""
    if not own:
        return own
    kept = {}
    for table, frame in own.values.items():
        key = TABLE_KEYS[table]
        ids = valid.get(table)[key].dropna().astype(object)
        rows = frame[frame[key].isin(set(ids))]
        kept[table] = rows.drop_duplicates(key, keep="first").reset_index(drop=True)
    history = {table: frame[frame[TABLE_KEYS[table]].isin(set(kept[table][TABLE_KEYS[table]]))]
               .reset_index(drop=True) for table, frame in own.history.items() if table in kept}
    return OwnFeatures(own.features, kept, history)


__all__ = ["OWN_PREFIX", "own_history", "own_values", "valid_only"]
