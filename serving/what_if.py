"""What would raise this score: each action of the catalogue (``features.actions``) added
to the request as the row that records it, and the request scored again.

The changed request goes through the very ``score_tables`` the answer came from, as of the
same time, so a suggestion's probability is exactly what the client gets by appending the
suggestion's ``add`` rows to the entity and scoring again (the tests do). Entities of one
batch that share an account are re-scored in separate passes, so one entity's action
never shows in another's account features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.actions import Action, actions_for
from features.columns import AnyTables, ColumnTable, ColumnTables, table_from_rows
from features.schema import TABLES
from features.tasks import TASKS
from modeling.grading import Grading, to_score
from serving.models import LoadedModel
from serving.requests import rows_to_table
from serving.schemas import WhatIf
from serving.scoring import Gaps, Scored, score_tables

TOP = 3
RECORDED_BEFORE = timedelta(seconds=1)
"""An action's row is dated this long before the scoring time: features read only what
happened strictly before it."""
NEW_CONTACT = "what-if-new-contact"


def _with_rows(tables: AnyTables, name: str, rows: list[dict[str, Any]]) -> AnyTables:
    """``tables`` with ``rows`` appended to table ``name`` (either form of tables)."""
    table = TABLES[name]
    if isinstance(tables, ColumnTables):
        old: ColumnTable = getattr(tables, name)
        new = table_from_rows(rows, table)
        merged = ColumnTable({c: np.concatenate([old[c], new[c]]) for c in old.columns},
                             old.length + new.length)
        changed: dict[str, Any] = {name: merged}
        return dataclasses.replace(tables, **changed)
    frame = pd.concat([tables.get(name), rows_to_table(rows, table)], ignore_index=True)
    return dataclasses.replace(tables, **{name: frame})


def _accounts_of(tables: AnyTables, table: str, key: str, ids: list[str]) -> list[str | None]:
    frame = getattr(tables, table)
    account: dict[str, str | None] = {}
    for k, a in zip(list(frame[key]), list(frame["account_id"]), strict=True):
        account.setdefault(str(k), None if a is None or a is pd.NA or a != a else str(a))
    return [account.get(i) for i in ids]


def _passes(accounts: list[str | None]) -> list[int]:
    """Per entity, the pass it is re-scored in: the n-th entity of an account in the n-th."""
    seen: dict[str | None, int] = {}
    out = []
    for a in accounts:
        n = seen.get(a, 0) if a is not None else 0
        out.append(n)
        if a is not None:
            seen[a] = n + 1
    return out


def _recorded(action: Action, key: str, entity_id: str, account: str | None,
              at: datetime) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The action's row: its contract table, the row there, and the row as the entity's
    request carries it (under ``activities`` or ``history``)."""
    when = at - RECORDED_BEFORE
    request: dict[str, Any]
    if action.stage is not None:
        request = {"changed_at": when.isoformat(), "stage": action.stage}
        return "opportunity_history", {**request, "changed_at": when,
                                       "opportunity_id": entity_id}, request
    assert action.activity is not None
    kind, direction = action.activity
    request = {"activity_id": f"what-if-{action.name}-{entity_id}",
               "occurred_at": when.isoformat(),
               "contact_id": NEW_CONTACT if action.new_contact else None,
               "type": kind, "direction": direction}
    row = {**request, "occurred_at": when, "account_id": account}
    if key != "account_id":
        row[key] = entity_id
    return "activities", row, request


_REQUEST_FIELD = {"activities": "activities", "opportunity_history": "history"}


def what_if(
    model: LoadedModel, tables: AnyTables, scored: Scored, as_of: datetime,
    grading: Grading, gaps: Sequence[Gaps] = (),
) -> list[list[WhatIf]]:
    """Per entity of ``scored``, up to three actions that raise its score, most first.

    An action is listed when it raises the 0-100 score by a point at least, and, when it
    extends another action (``Action.extends``), by a point more than that one does.
    """
    key = scored.feature_set.entity_key
    ids = scored.ids
    accounts = _accounts_of(tables, TASKS[model.task].table, key, ids)
    passes = _passes(accounts)
    now_p = scored.probabilities.tolist()
    now_score = [to_score(p) for p in now_p]
    found: list[list[WhatIf]] = [[] for _ in ids]
    reached: dict[tuple[str, int], int] = {}
    """(action, entity) -> the score the action would give."""
    for action in actions_for(key):
        applies = action.applies(scored.columns).tolist()
        for n in range(max(passes, default=-1) + 1):
            members = [i for i in range(len(ids)) if applies[i] and passes[i] == n]
            if not members:
                continue
            rows: dict[str, list[dict[str, Any]]] = {}
            asks = {}
            for i in members:
                table, row, request = _recorded(action, key, ids[i], accounts[i], as_of)
                rows.setdefault(table, []).append(row)
                asks[i] = {_REQUEST_FIELD[table]: [request]}
            changed = tables
            for table, added in rows.items():
                changed = _with_rows(changed, table, added)
            again = score_tables(model, changed, [ids[i] for i in members], as_of,
                                 explain=False, gaps=[gaps[i] for i in members] if gaps else ())
            for j, i in enumerate(members):
                p = float(again.probabilities[j])
                score = to_score(p)
                reached[action.name, i] = score
                floor = now_score[i]
                if action.extends is not None:
                    floor = max(floor, reached.get((action.extends, i), floor))
                if score <= floor:
                    continue
                found[i].append(WhatIf.model_validate({
                    "action": action.name, "text": action.text, "probability": p,
                    "score": score, "grade": grading.grade(score), "gain": p - now_p[i],
                    "add": asks[i]}))
    return [sorted(f, key=lambda w: -w.gain)[:TOP] for f in found]
