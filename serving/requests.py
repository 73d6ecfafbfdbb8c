"""Requests -> the data contract's tables: what the API (and batch files) hand to features.

Requests are turned into the contract's tables as numpy column tables
(``features.columns``), which for a handful of rows cost far less than DataFrames; batch
files become contract DataFrames through :func:`rows_to_table`. A key seen twice keeps
its first row, as the loader does.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.columns import ColumnTables, RowColumns, column_array, tables_from_rows
from features.contracts import EXPANSION_PRODUCT
from features.declarations import FeatureSet
from features.own import TABLE_KEYS, OwnFeature, OwnFeatures
from features.reasons import ContextPart
from features.schema import ACTIVITIES, PANDAS_DTYPES, TABLES, Table, empty_frame
from serving.schemas import AccountBatch, Context, DealBatch, LeadBatch
from serving.scoring import Gaps

FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far past the server's clock a record's creation may be (clock skew), not more."""


@functools.cache
def _empty(table_name: str) -> pd.DataFrame:
    """Empty tables are built once: feature code never mutates its inputs."""
    return empty_frame(TABLES[table_name])


_DTYPES: dict[str, Any] = {kind: pd.api.types.pandas_dtype(d) for kind, d in PANDAS_DTYPES.items()}
"""The contract's dtypes as objects: a dtype named by a string is looked up on every use."""


def _column(values: list[Any], kind: str) -> Any:
    """One column in the contract's dtype, straight from Python values (None: missing).

    Timestamps go through integer nanoseconds: a third faster than letting pandas parse
    the datetime objects, which counts at a few rows a request.
    """
    if kind == "timestamp":
        ns = column_array(values, kind)
        return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
    if kind == "float":
        return column_array(values, kind)
    return pd.array(values, dtype=_DTYPES[kind])


def rows_to_table(rows: list[dict[str, Any]], table: Table) -> pd.DataFrame:
    """A contract DataFrame from validated rows, typed as ``coerce_dtypes`` types it (batch
    scoring of files; requests become ``features.columns`` tables instead).

    Built column by column: four times faster than a DataFrame plus ``coerce_dtypes``.
    """
    if not rows:
        return _empty(table.name)
    return pd.DataFrame(
        {c.name: _column([r.get(c.name) for r in rows], c.kind) for c in table.columns}
    )


def columns_to_table(columns: dict[str, Any], table: Table, n: int) -> pd.DataFrame:
    """:func:`rows_to_table` of validated values held a column at a time (a list of
    Python values, None missing, per column; a timestamp column may be a UTC
    ``DatetimeIndex`` already)."""
    if n == 0:
        return _empty(table.name)
    return pd.DataFrame({
        c.name: columns[c.name] if isinstance(columns[c.name], pd.DatetimeIndex)
        else _column(columns[c.name], c.kind)
        for c in table.columns
    })


def _row(model: Any, **fill: Any) -> dict[str, Any]:
    """A validated record's fields as a row (the schemas declare every contract column;
    extra fields such as nested activities are ignored by ``rows_to_table``)."""
    row = dict(model.__dict__)
    for key, value in fill.items():
        if row.get(key) is None:
            row[key] = value
    return row


def _record_columns(records: Sequence[Any], table: Table,
                    fill: dict[str, list[Any]]) -> RowColumns:
    """Validated records of one model as ``table``'s columns, read a field at a time (a
    column the model lacks is missing); ``fill`` gives, per column, each row's value where
    the record has none (the enclosing lead's id), as :func:`_row` fills a row."""
    if not records:
        return RowColumns({}, 0)
    fields = type(records[0]).model_fields
    names = [c.name for c in table.columns if c.name in fields]
    read = operator.attrgetter(*names)
    if len(names) == 1:
        columns = {names[0]: [read(r) for r in records]}
    else:
        columns = dict(zip(names, map(list, zip(*map(read, records), strict=True)),
                           strict=True))
    for name, values in fill.items():
        columns[name] = [v if v is not None else f
                         for v, f in zip(columns[name], values, strict=True)]
    return RowColumns(columns, len(records))


def _context_rows(context: Context | None) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {
        "accounts": [], "leads": [], "opportunities": [], "opportunity_history": [],
        "activities": [],
    }
    if context is None:
        return rows
    rows["accounts"] = [_row(a) for a in context.accounts]
    for lead in context.leads:
        rows["leads"].append(_row(lead))
        rows["activities"] += [
            _row(a, lead_id=lead.lead_id, account_id=lead.account_id)
            for a in lead.activities
        ]
    rows["opportunities"] = [_row(o) for o in context.opportunities]
    rows["opportunity_history"] = [
        _row(h) for h in context.opportunity_history
    ]
    rows["activities"] += [_row(a) for a in context.activities]
    return rows


def _tables(own: dict[str, Any], context: Context | None) -> ColumnTables:
    """The request's rows as numpy column tables (no DataFrames: see ``features.columns``).

    A key seen twice keeps its first row, as the loader keeps the first occurrence of a
    repeated id in a file; request rows come before context rows, so context never
    overrides what the request itself says.
    """
    ctx = _context_rows(context)
    joined: dict[str, Any] = dict(own)
    for name, rows in ctx.items():
        mine = own.get(name, [])
        joined[name] = (mine.plus(rows, TABLES[name]) if isinstance(mine, RowColumns)
                        else mine + rows)
    return tables_from_rows(joined)


def request_own(records: Sequence[Any], table: str) -> OwnFeatures | None:
    """The records' ``attributes`` (an export's own columns) as ``features.own`` reads
    them: text is a category, a number or true/false a number (None: none sent).

    Each feature set that reads one encodes it as training did: a category through the
    levels it learned (an unseen one is not known), after :func:`attribute_problems` has
    held every value to its feature's kind."""
    sent = [r for r in records if getattr(r, "attributes", None)]
    if not sent:
        return None
    key = TABLE_KEYS[table]
    names = list(dict.fromkeys(n for r in sent for n in r.attributes))
    data: dict[str, Any] = {key: [getattr(r, key) for r in sent]}
    features = []
    for name in names:
        values = [r.attributes.get(name) for r in sent]
        text = any(isinstance(v, str) for v in values)
        data[name] = (np.array(values, dtype=object) if text else
                      np.array([np.nan if v is None else float(v) for v in values]))
        features.append(OwnFeature(name, table, "category" if text else "number",
                                   "creation", name))
    return OwnFeatures(tuple(features), {table: pd.DataFrame(data)})


def attribute_problems(
    items: Sequence[Any], name: str, feature_sets: Sequence[FeatureSet]
) -> list[dict[str, Any]]:
    """Attributes whose kind is not the one the model reads (text for a number, a number
    for a category), as validation errors with their ``loc``."""
    specs = {s.name: s for fs in feature_sets for s in fs.features}
    problems: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        for attr, value in (getattr(item, "attributes", None) or {}).items():
            spec = specs.get(attr)
            if spec is None or value is None:
                continue
            text = isinstance(value, str)
            if spec.dtype == "category" and not text:
                want = "text (a category)"
            elif spec.dtype != "category" and text:
                want = "a number" if spec.dtype in ("float", "int") else "true or false"
            else:
                continue
            problems.append({"loc": ("body", name, i, "attributes", attr),
                             "msg": f"{attr} is {want} for the model, not {value!r}",
                             "type": "attribute_kind"})
    return problems


def lead_tables(batch: LeadBatch) -> ColumnTables:
    """The contract tables holding the batch's leads, their activities, their field changes
    (if sent) and any context."""
    leads, activities, changes = [], [], []
    lead_ids: list[Any] = []
    account_ids: list[Any] = []
    for lead in batch.leads:
        leads.append(_row(lead))
        activities += lead.activities
        lead_ids += [lead.lead_id] * len(lead.activities)
        account_ids += [lead.account_id] * len(lead.activities)
        changes += [_row(c, lead_id=lead.lead_id) for c in lead.field_history]
    acts = _record_columns(activities, ACTIVITIES,
                           {"lead_id": lead_ids, "account_id": account_ids})
    out = _tables({"leads": leads, "activities": acts, "lead_field_history": changes},
                  batch.context)
    return replace(out, own=request_own(batch.leads, "leads"))


def deal_tables(batch: DealBatch) -> ColumnTables:
    """The contract tables holding the batch's deals, their history, activities and context."""
    deals, history, activities, changes = [], [], [], []
    deal_ids: list[Any] = []
    account_ids: list[Any] = []
    for deal in batch.deals:
        deals.append(_row(deal))
        changes += [_row(c, opportunity_id=deal.opportunity_id) for c in deal.field_history]
        history += [
            _row(h, opportunity_id=deal.opportunity_id)
            for h in deal.history
        ]
        activities += deal.activities
        deal_ids += [deal.opportunity_id] * len(deal.activities)
        account_ids += [deal.account_id] * len(deal.activities)
    acts = _record_columns(activities, ACTIVITIES,
                           {"opportunity_id": deal_ids, "account_id": account_ids})
    out = _tables(
        {"opportunities": deals, "opportunity_history": history, "activities": acts,
         "opportunity_field_history": changes},
        batch.context,
    )
    return replace(out, own=request_own(batch.deals, "opportunities"))


def account_tables(batch: AccountBatch) -> ColumnTables:
    """The contract tables of the batch's accounts: the accounts, their deals and the deals'
    history, their activities and their signals."""
    accounts, deals, history, activities, signals = [], [], [], [], []
    for account in batch.accounts:
        accounts.append(_row(account))
        for deal in account.deals:
            deals.append(_row(deal, account_id=account.account_id))
            history += [_row(h, opportunity_id=deal.opportunity_id) for h in deal.history]
        activities += [_row(a, account_id=account.account_id) for a in account.activities]
        signals += [_row(s, account_id=account.account_id) for s in account.signals]
    # The owners' other deals count only in their record: their accounts are not in
    # ``accounts``, so nothing else reads them.
    ours = {d["opportunity_id"] for d in deals}
    ctx = batch.context or Context()
    deals += [_row(o) for o in ctx.opportunities if o.opportunity_id not in ours]
    history += [_row(h) for h in ctx.opportunity_history if h.opportunity_id not in ours]
    out = tables_from_rows({
        "accounts": accounts, "opportunities": deals, "opportunity_history": history,
        "activities": activities, "account_signals": signals,
    })
    return replace(out, own=request_own(batch.accounts, "accounts"))


def request_problems(
    items: Sequence[Any], name: str, key: str, now: datetime
) -> list[dict[str, Any]]:
    """Errors pydantic cannot see alone: repeated ids, records created in the future.

    ``items`` are the batch's records under ``name`` (``leads``, ``deals``...), each with
    its id under ``key`` and a ``created_at``. Each error is a validation error dict with
    a ``loc`` so it reads like the others.
    """
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    latest = now.astimezone(UTC) + FUTURE_TOLERANCE
    for i, item in enumerate(items):
        ident, created_at = getattr(item, key), item.created_at
        if ident in seen:
            problems.append(
                {
                    "loc": ("body", name, i, key),
                    "msg": f"duplicate of {name}.{seen[ident]}.{key}; each id may appear once",
                    "type": "duplicate_id",
                }
            )
        else:
            seen[ident] = i
        if created_at > latest:
            problems.append(
                {
                    "loc": ("body", name, i, "created_at"),
                    "msg": "created_at is in the future",
                    "type": "future_timestamp",
                }
            )
    return problems


def _sent(context: Context | None, name: str) -> bool:
    """Whether the request's context holds the list ``name``, even empty: an empty list
    says there are none, a list left out that they are not known."""
    return context is not None and name in context.model_fields_set


def _account_gaps(
    account_id: str | None, context: Context | None, owner_id: str | None = None
) -> dict[ContextPart, str]:
    """The context parts of an account (and an owner) that a request left out."""
    ctx = context or Context()
    gaps: dict[ContextPart, str] = {}
    if account_id is None:
        gaps["account"] = gaps["account_deals"] = "an account_id"
    elif account_id not in {a.account_id for a in ctx.accounts}:
        # The account's deals are counted through its row: one thing to send.
        gaps["account"] = gaps["account_deals"] = f"account {account_id} in context.accounts"
    elif not (_sent(context, "opportunities")
              or any(o.account_id == account_id for o in ctx.opportunities)):
        gaps["account_deals"] = f"the other deals of account {account_id} in " \
                                "context.opportunities"
    if owner_id is not None and not (_sent(context, "opportunities") or any(
            o.owner_id == owner_id for o in ctx.opportunities)):
        gaps["owner_deals"] = f"the deals of owner {owner_id} in context.opportunities"
    return gaps


def _raw(record: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {n: v for n in names if (v := getattr(record, n, None)) is not None}


LEAD_CATEGORIES = ("source", "industry", "country", "seniority", "job_function")


def lead_gaps(batch: LeadBatch) -> list[Gaps]:
    """Per lead: the account rows its request left out, its category values as sent."""
    return [Gaps(_account_gaps(lead.account_id, batch.context),
                 {**_raw(lead, LEAD_CATEGORIES), **_text_attributes(lead)},
                 tuple(lead.attributes))
            for lead in batch.leads]


def _text_attributes(record: Any) -> dict[str, str]:
    """A record's own columns sent as text: category values to check against the levels."""
    return {k: v for k, v in (getattr(record, "attributes", None) or {}).items()
            if isinstance(v, str)}


def deal_gaps(batch: DealBatch) -> list[Gaps]:
    """Per deal: the account, account deals, owner deals and lead its request left out,
    and its category values as sent (its product, its account's and its lead's)."""
    ctx = batch.context or Context()
    accounts = {a.account_id: a for a in ctx.accounts}
    leads = {lead.lead_id: lead for lead in ctx.leads}
    out = []
    for deal in batch.deals:
        gaps = _account_gaps(deal.account_id, batch.context, deal.owner_id)
        raw = {**_raw(deal, ("product",)), **_text_attributes(deal)}
        raw.update(_raw(accounts.get(deal.account_id), ("industry", "country")))
        if deal.lead_id is not None:
            if deal.lead_id in leads:
                raw.update(_raw(leads[deal.lead_id], ("source",)))
            else:
                gaps["lead"] = f"lead {deal.lead_id} in context.leads"
        out.append(Gaps(gaps, raw, tuple(deal.attributes)))
    return out


def account_gaps(batch: AccountBatch) -> list[Gaps]:
    """Per account: its owner's deals when the request left them out (the owner: of its
    latest deal that is not an expansion); its category values."""
    out = []
    for a in batch.accounts:
        terms = [d for d in a.deals if d.product != EXPANSION_PRODUCT]
        owner = max(terms, key=lambda d: d.created_at).owner_id if terms else None
        gaps: dict[ContextPart, str] = {}
        if owner is not None and not _sent(batch.context, "opportunities"):
            gaps["owner_deals"] = f"the deals of owner {owner} in context.opportunities"
        out.append(Gaps(gaps, {**_raw(a, ("industry", "country")), **_text_attributes(a)},
                        tuple(a.attributes)))
    return out
