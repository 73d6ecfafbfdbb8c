"""Batch scoring of a CSV or Parquet file of leads or deals, for CRMs that sync nightly.

Rows are checked by the same request schemas as the API, turned into the contract's
tables with the same code, and scored through the same ``score_tables``; the output holds
the same fields as an API result (grade and percentile by the model's own cut-offs), with
reasons and risk flags as JSON text columns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from features.reasons import ContextPart
from features.schema import (
    TABLES,
    CRMTables,
    Table,
    coerce_dtypes,
)
from features.snapshots import data_end_of
from features.tasks import TASKS, TaskSpec
from serving.endpoints import Endpoint, suggest
from serving.errors import validation_items
from serving.models import GRADING_MISSING, LoadedModel, source_from_settings
from serving.requests import LEAD_CATEGORIES, rows_to_table
from serving.scoring import TREND_DAYS, Gaps, entity_features, score_tables
from serving.settings import ScoringSettings
from serving.staleness import as_of_after, past_data_warning

log = logging.getLogger("leadscore.serving.batch")

CHUNK_ROWS = 5000
"""Entities scored and explained per block: bounds the contributions' memory."""


class BatchInputError(ValueError):
    """The input file has rows that do not meet the contract; the message lists them."""


@dataclass(frozen=True)
class BatchReport:
    task: str
    scored: int
    skipped: int
    model_version: str
    output: Path
    not_applicable: int = 0
    """Open entities the task does not apply to (an account with no renewal due, or not a
    customer): no output row."""
    warnings: tuple[str, ...] = ()
    as_of: pd.Timestamp | None = None
    """The snapshot time every row was scored at (UTC)."""
    data_end: pd.Timestamp | None = None
    """The newest event in the file and ``data_dir``; None when nothing dates them."""
    as_of_default: bool = False
    """``as_of`` was not given: it is just after ``data_end``."""


def read_table_file(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (by extension)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    raise BatchInputError(f"{path}: expected a .csv or .parquet file")


def write_table_file(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise BatchInputError(f"{path}: write .csv or .parquet")


def _records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """Rows with the table's columns only, blanks as None (what the schemas expect)."""
    cols = [c for c in table.column_names if c in frame.columns]
    sub = frame[cols].astype(object).where(frame[cols].notna(), None)
    return [{str(k): v for k, v in rec.items()} for rec in sub.to_dict(orient="records")]


def _task(task: str) -> tuple[TaskSpec, Endpoint]:
    spec = TASKS.get(task)
    if spec is None:
        raise BatchInputError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    return spec, spec.endpoint.load()


def validated_rows(frame: pd.DataFrame, task: str, source: str) -> list[dict[str, Any]]:
    """Check every row with the API's schema; raise with each bad row, field and reason."""
    spec, endpoint = _task(task)
    table, model = TABLES[spec.table], endpoint.record
    missing = [c.name for c in table.columns if not c.nullable and c.name not in frame.columns]
    if missing:
        raise BatchInputError(f"{source}: missing required columns {missing}")
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    try:
        items = adapter.validate_python(_records(frame, table))
    except ValidationError as exc:
        lines = [
            f"row {i['field'].split('.', 1)[0]}: {i['field'].partition('.')[2]}: {i['reason']}"
            for i in validation_items(exc.errors())
        ]
        raise BatchInputError(
            f"{source}: {exc.error_count()} invalid values\n" + "\n".join(lines)
        ) from None
    return [{c: getattr(it, c) for c in table.column_names} for it in items]


def read_context(data_dir: Path | None) -> dict[str, pd.DataFrame]:
    """The contract tables found in ``data_dir`` (``<table>.csv`` or ``.parquet``)."""
    found: dict[str, pd.DataFrame] = {}
    if data_dir is None:
        return found
    for name, table in TABLES.items():
        for suffix in (".parquet", ".csv"):
            path = data_dir / f"{name}{suffix}"
            if path.exists():
                raw = read_table_file(path)
                found[name] = coerce_dtypes(raw.reindex(columns=table.column_names), table)
                break
    return found


def _combine(entity: pd.DataFrame, table: Table, context: dict[str, pd.DataFrame]) -> pd.DataFrame:
    other = context.get(table.name)
    if other is None or other.empty:
        return entity
    merged = pd.concat([entity, other], ignore_index=True)
    return merged.drop_duplicates(subset=[table.key], keep="first").reset_index(drop=True)


def batch_tables(
    rows: list[dict[str, Any]], task: str, context: dict[str, pd.DataFrame]
) -> CRMTables:
    """The entities' own rows on top of whatever tables the data folder holds."""
    table = TABLES[TASKS[task].table]
    entity = _combine(rows_to_table(rows, table), table, context)
    frames = {t.name: context.get(t.name, rows_to_table([], t)) for t in TABLES.values()}
    frames[table.name] = entity
    return CRMTables(**frames)


def _open_mask(rows: list[dict[str, Any]], task: str, as_of: pd.Timestamp) -> np.ndarray:
    """Entities created by ``as_of`` and still open then: closed ones have nothing to predict."""
    cols = TASKS[task].closed_by
    out = np.ones(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        if pd.Timestamp(row["created_at"]) > as_of:
            out[i] = False
        for c in cols:
            ts = row.get(c)
            if ts is not None and pd.Timestamp(ts) <= as_of:
                out[i] = False
    return out


def _flatten(result: Any) -> dict[str, Any]:
    return _flatten_dict(result.model_dump(mode="json"))


def _flatten_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A result as one flat row: reasons and risk flags as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "reasons":
            flat["reasons_up"] = json.dumps(value["up"])
            flat["reasons_down"] = json.dumps(value["down"])
        elif key == "model":
            flat["model_name"] = value["name"]
            flat["model_version"] = value["version"]
            flat["feature_set"] = value["feature_set"]
        elif key == "warnings":
            flat["warnings"] = json.dumps(value)
        elif key == "risk":
            flat["risk_level"] = value["level"]
            flat["risk_flags"] = json.dumps(value["flags"])
        elif key == "what_if":
            if value is not None:
                flat["what_if"] = json.dumps(value)
        elif key == "trend":
            if value is not None:
                flat.update({f"trend_{name}": v for name, v in value.items()})
        elif key in ("renewal", "expansion"):
            if value is not None:
                flat.update(_flatten_dict(value))
        else:
            flat[key] = value
    return flat


def file_gaps(
    rows: list[dict[str, Any]], key: str, tables: CRMTables, context: dict[str, pd.DataFrame]
) -> list[Gaps]:
    """Per entity of a batch file, the rows its features read that ``--data`` lacks: an
    account not in its accounts file (or no such file), the account's deals without an
    opportunities file, a deal's lead not in its leads file; and the entity's own category
    values as the file holds them."""
    accounts = set(tables.accounts["account_id"].dropna().astype(str))
    leads = set(tables.leads["lead_id"].dropna().astype(str))
    deals_known = key == "opportunity_id" or "opportunities" in context
    out = []
    for row in rows:
        gaps: dict[ContextPart, str] = {}
        if key == "account_id":
            out.append(Gaps(gaps, _categories(row, ("industry", "country"))))
            continue
        account = row.get("account_id")
        if account is None:
            gaps["account"] = gaps["account_deals"] = "an account_id"
        elif str(account) not in accounts:
            gaps["account"] = gaps["account_deals"] = f"account {account} in accounts.csv/.parquet"
        elif not deals_known:
            gaps["account_deals"] = "opportunities.csv/.parquet in --data"
        if key == "opportunity_id":
            lead = row.get("lead_id")
            if lead is not None and str(lead) not in leads:
                gaps["lead"] = f"lead {lead} in leads.csv/.parquet"
            out.append(Gaps(gaps, _categories(row, ("product",))))
        else:
            out.append(Gaps(gaps, _categories(row, LEAD_CATEGORIES)))
    return out


def _categories(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    return {n: str(row[n]) for n in names if row.get(n) is not None}


def score_frame(
    model: LoadedModel,
    rows: list[dict[str, Any]],
    context: dict[str, pd.DataFrame],
    settings: ScoringSettings,
    as_of: datetime,
    explain: bool = True,
    progress: Callable[[int], None] | None = None,
    trend: bool = True,
    what_if: bool = False,
) -> pd.DataFrame:
    """Score validated entity rows in chunks; one output row per entity, input order kept.
    ``trend``: each row's scores 7 and 28 days earlier (``trend_*`` columns); ``what_if``:
    the actions that would raise each score (a ``what_if`` column of JSON)."""
    task = model.task
    spec, endpoint = _task(task)
    key = spec.entity_key
    tables = batch_tables(rows, task, context)
    ids = [str(r[key]) for r in rows]
    gaps = file_gaps(rows, key, tables, context)
    trend_days = TREND_DAYS if trend else ()
    # Every entity's features in one pass over the tables (as the training build does),
    # then scored and explained in blocks that bound the contributions' memory.
    entity = entity_features(tables, key, ids, as_of, trend_days)
    n, blocks = len(ids), 1 + len(trend_days)
    out: list[dict[str, Any]] = []
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        rows_at = np.concatenate([np.arange(start, stop) + b * n for b in range(blocks)])
        scored = score_tables(model, tables, ids[start:stop], as_of, explain,
                              gaps[start:stop], {k: v[rows_at] for k, v in entity.items()},
                              trend_days)
        results = endpoint.file_results(model, scored, settings)
        if what_if:
            suggest(results, model, tables, scored, as_of, settings, gaps[start:stop])
        out += [_flatten(r) for r in results]
        if progress is not None:
            progress(stop - start)
    return pd.DataFrame(out)


def batch_as_of(
    rows: list[dict[str, Any]], task: str, context: dict[str, pd.DataFrame],
    as_of: datetime | None,
) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """A file's snapshot time, ``as_of`` in UTC or, without one, just after the newest event
    in the file's rows and the ``--data`` tables; and that newest event (None when nothing
    dates them)."""
    try:
        data_end: pd.Timestamp | None = data_end_of(batch_tables(rows, task, context))
    except ValueError:
        data_end = None
    if as_of is not None:
        stamp = pd.Timestamp(as_of)
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC"),
                data_end)
    if data_end is None:
        raise BatchInputError("nothing in the file or --data is dated: pass --as-of")
    return as_of_after(data_end), data_end


def score_file(
    task: str,
    input_path: Path,
    output_path: Path,
    settings: ScoringSettings,
    *,
    data_dir: Path | None = None,
    as_of: datetime | None = None,
    explain: bool = True,
    model: LoadedModel | None = None,
    progress: Callable[[int], None] | None = None,
    trend: bool = True,
    what_if: bool = False,
) -> BatchReport:
    """Score every open lead or deal in ``input_path`` and write the results.

    ``data_dir`` holds the other contract tables (activities, opportunity_history,
    accounts...) the features read; deals need their opportunity_history there. ``as_of``
    None scores as of the data's end (:func:`batch_as_of`), not now: an export scored as
    of today would read every day since it was taken as silence.
    """
    spec, endpoint = _task(task)
    rows = validated_rows(read_table_file(input_path), task, str(input_path))
    context = read_context(data_dir)
    missing = [name for name in endpoint.needs if context.get(name) is None]
    if missing:
        files = ", ".join(f"{name}.csv/.parquet" for name in missing)
        raise BatchInputError(f"{spec.plural} need {', '.join(missing)}: pass --data with {files}")
    stamp, data_end = batch_as_of(rows, task, context, as_of)
    keep = _open_mask(rows, task, stamp)
    open_rows = [r for r, k in zip(rows, keep, strict=True) if k]
    if model is None:
        model = source_from_settings(settings).load(task)
    if open_rows:
        result = score_frame(model, open_rows, context, settings, stamp.to_pydatetime(), explain,
                             progress, trend, what_if)
    else:
        result = pd.DataFrame()
    write_table_file(result, output_path)
    graded = getattr(model.model, "grading", None) is not None
    late = None if as_of is None or data_end is None else past_data_warning(
        stamp, data_end, settings.stale_data_days)
    return BatchReport(
        task=task,
        scored=len(result),
        skipped=len(rows) - len(open_rows),
        model_version=model.version,
        output=output_path,
        not_applicable=len(open_rows) - len(result),
        warnings=tuple(w for w in (None if graded else GRADING_MISSING, late) if w is not None),
        as_of=stamp,
        data_end=data_end,
        as_of_default=as_of is None,
    )
