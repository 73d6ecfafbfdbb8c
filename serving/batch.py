"""Batch scoring of a CSV or Parquet file of leads or deals, for CRMs that sync nightly.

Rows are checked by the same request schemas as the API, turned into the contract's
tables with the same code, and scored through the same ``score_tables``; the output holds
the same fields as an API result (grade and percentile by the model's own cut-offs), with
reasons and risk flags as JSON text columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from pydantic import AfterValidator, BaseModel, TypeAdapter, ValidationError

from features.integrity import check_references
from features.own import OwnFeatures, read_own
from features.reading import DataContractError
from features.reading import read_table_file as read_arrow_table
from features.reasons import ContextPart
from features.rules import CheckedTable, check_rows, no_rows
from features.schema import (
    PANDAS_DTYPES,
    TABLES,
    CRMTables,
    Table,
)
from features.snapshots import data_end_of
from features.tasks import TASKS, TaskSpec
from serving.endpoints import Endpoint, suggest
from serving.errors import validation_items
from serving.models import GRADING_MISSING, LoadedModel, source_from_settings
from serving.requests import LEAD_CATEGORIES, columns_to_table, rows_to_table
from serving.results import list_adapter
from serving.schemas import TIMESTAMP_RANGE, clean_text
from serving.scoring import TREND_DAYS, Gaps, entity_features, score_tables
from serving.settings import ScoringSettings
from serving.staleness import as_of_after, past_data_warning

log = logging.getLogger("leadscore.serving.batch")

ARROW_TEXT = pd.StringDtype("pyarrow")

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
    rejected: int = 0
    """Input rows that are not valid (each in ``report`` with its column and reason)."""
    read: int = 0
    """Input rows read: ``scored + not_applicable + skipped + rejected``."""
    report: Path | None = None
    """Every row not scored (rejected, closed, not yet created, or not applicable), and why
    (``REPORT_COLUMNS``)."""
    data_rejected: int = 0
    """Rows of the ``--data`` tables left out as invalid (each in ``data_report``, once per
    problem)."""
    data_report: Path | None = None
    """Every ``--data`` row left out, with its file, row, column and reason
    (``DATA_REPORT_COLUMNS``); None without ``--data``."""


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


def _cells(column: pd.Series) -> list[Any]:
    """One column's cells as ``_records`` hands them to the schema (blanks as None)."""
    values: list[Any] = column.astype(object).where(column.notna(), None).tolist()
    return values


def _task(task: str) -> tuple[TaskSpec, Endpoint]:
    spec = TASKS.get(task)
    if spec is None:
        raise BatchInputError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    return spec, spec.endpoint.load()


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> tuple[TypeAdapter[list[Any]], bool]:
    """One field of ``model`` as a validator of a whole column: the field's own type,
    constraints and validators, under the model's config (finite numbers only); and
    whether the field's text check (``serving.schemas.clean_text``) was taken out of it,
    to run over the whole column at once (:func:`_clean_column`) instead of once a cell."""
    info = model.model_fields[name]
    metadata = [m for m in info.metadata if not _is_clean_text(m)]
    annotation, inner = _without_clean_text(info.annotation)
    kind: Any = Annotated[(annotation, *metadata)] if metadata else annotation
    return (TypeAdapter(list[kind], config=model.model_config),
            inner or len(metadata) != len(info.metadata))


def _is_clean_text(item: Any) -> bool:
    return isinstance(item, AfterValidator) and item.func is clean_text


def _without_clean_text(kind: Any) -> tuple[Any, bool]:
    """``kind`` without the text check inside it (an optional text field, ``Text | None``,
    holds it within the union, where the field's own metadata does not reach), and
    whether one was taken out."""
    if get_origin(kind) is Annotated:
        base, *extras = get_args(kind)
        kept = [m for m in extras if not _is_clean_text(m)]
        if len(kept) == len(extras):
            return kind, False
        return (Annotated[(base, *kept)] if kept else base), True
    if get_origin(kind) in (Union, UnionType):
        parts = [_without_clean_text(a) for a in get_args(kind)]
        if not any(taken for _, taken in parts):
            return kind, False
        return Union[tuple(p for p, _ in parts)], True  # noqa: UP007 (built from parts)
    return kind, False


def _clean_column(values: list[Any]) -> bool:
    """Whether every text of a column passes ``clean_text``: no NUL, no lone surrogate."""
    text = "".join(v for v in values if isinstance(v, str))
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _timestamps_in_range(column: pd.Series) -> bool:
    """A datetime column whose every value ``serving.schemas.Timestamp`` accepts as it is
    (naive values read as UTC, every value in the schema's range)."""
    stamps = pd.DatetimeIndex(column)
    utc = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    values = utc[~utc.isna()]
    return len(values) == 0 or bool(
        values.min() >= TIMESTAMP_RANGE[0] and values.max() < TIMESTAMP_RANGE[1])


def _by_column(frame: pd.DataFrame, table: Table, model: type[BaseModel]) -> pd.DataFrame | None:
    """The rows as the contract's DataFrame when every column passes the record schema's
    rules checked a column at a time, else None (the caller then checks row by row).

    The same field validators run as on each row, over a whole column in one call, and a
    datetime column is range-checked at once (its only rule); a schema with rules across
    fields (model validators) is checked by rows. Only which path ran differs: a column
    that fails here is checked again by rows, whose messages name each row.
    """
    decorators = model.__pydantic_decorators__
    if decorators.model_validators or decorators.field_validators:
        return None
    columns: dict[str, Any] = {}
    for c in table.columns:
        info = model.model_fields.get(c.name)
        if info is None:
            return None
        if c.name not in frame.columns:
            if info.is_required():
                return None
            columns[c.name] = [info.get_default(call_default_factory=True)] * len(frame)
            continue
        column = frame[c.name]
        if c.kind == "timestamp" and pd.api.types.is_datetime64_any_dtype(column.dtype):
            if (info.is_required() and bool(column.isna().any())) or not _timestamps_in_range(
                    column):
                return None
            stamps = pd.DatetimeIndex(column)
            columns[c.name] = (stamps.tz_localize("UTC") if stamps.tz is None
                               else stamps.tz_convert("UTC")).as_unit("ns")
            continue
        adapter, text = _field_adapter(model, c.name)
        try:
            columns[c.name] = adapter.validate_python(_cells(column))
        except ValidationError:
            return None
        if text and not _clean_column(columns[c.name]):
            return None
    return columns_to_table(columns, table, len(frame))


REPORT_COLUMNS = ["row", "id", "column", "reason", "outcome"]
"""The batch report: the input row (0-based), its id, the column at fault (blank: the
row), the reason, and ``rejected`` (invalid: exit 1) or ``not scored`` (valid, but closed
or not yet created at the scoring time, or one the task does not apply to then)."""
REJECTED, NOT_SCORED = "rejected", "not scored"


@dataclass(frozen=True)
class CheckedRows:
    """The valid rows of an input file and the report of every other one."""

    rows: pd.DataFrame
    """The valid rows as the contract's DataFrame, in file order."""
    positions: np.ndarray
    """Each valid row's 0-based row in the file."""
    report: pd.DataFrame
    """One line per problem (``REPORT_COLUMNS``); a row may have several."""


def _problem_lines(items: list[dict[str, str]], row: int, ident: Any) -> list[dict[str, Any]]:
    return [{"row": row, "id": ident, "column": i["field"], "reason": i["reason"],
             "outcome": REJECTED} for i in items]


def checked_rows(frame: pd.DataFrame, task: str, source: str) -> CheckedRows:
    """Every row held to the API's schema and its rules: the valid ones to score, and
    each other row in the report with its column and reason. A repeated id keeps its
    first row (as the API and the loader do) and reports the others. Raises only when the
    file cannot be read as the task's rows at all (a required column missing)."""
    spec, endpoint = _task(task)
    table, model = TABLES[spec.table], endpoint.record
    missing = [c.name for c in table.columns if not c.nullable and c.name not in frame.columns]
    if missing:
        raise BatchInputError(f"{source}: missing required columns {missing}")
    key = spec.entity_key
    lines: list[dict[str, Any]] = []
    fast = _by_column(frame, table, model)
    if fast is not None:
        rows, positions = fast, np.arange(len(frame))
    else:
        adapter = TypeAdapter(model)
        good, kept = [], []
        for i, record in enumerate(_records(frame, table)):
            try:
                item = adapter.validate_python(record)
            except ValidationError as exc:
                lines += _problem_lines(validation_items(exc.errors()), i, record.get(key))
                continue
            good.append({c: getattr(item, c) for c in table.column_names})
            kept.append(i)
        rows = rows_to_table(good, table)
        positions = np.asarray(kept, dtype=np.int64)
    ids = rows[key].astype(object)
    repeated = ids.duplicated(keep="first").to_numpy()
    if repeated.any():
        first: dict[Any, int] = {}
        for at, v in enumerate(ids):
            first.setdefault(v, int(positions[at]))
        for dup in np.flatnonzero(repeated).tolist():
            lines.append({"row": int(positions[dup]), "id": ids.iat[dup], "column": key,
                          "reason": f"duplicate of row {first[ids.iat[dup]]}: each id is "
                          "scored once (the first row)", "outcome": REJECTED})
        rows = rows.loc[~repeated].reset_index(drop=True)
        positions = positions[~repeated]
    return CheckedRows(rows, positions, pd.DataFrame(lines, columns=REPORT_COLUMNS))


def validated_rows(frame: pd.DataFrame, task: str, source: str) -> pd.DataFrame:
    """Check every row with the API's schema; raise with each bad row, field and reason.

    The rows come back as the contract's DataFrame (``rows_to_table`` of the validated
    records). A file that passes is checked a column at a time (:func:`_by_column`), one
    that does not row by row, for messages that name each row and field.
    """
    spec, endpoint = _task(task)
    table, model = TABLES[spec.table], endpoint.record
    missing = [c.name for c in table.columns if not c.nullable and c.name not in frame.columns]
    if missing:
        raise BatchInputError(f"{source}: missing required columns {missing}")
    fast = _by_column(frame, table, model)
    if fast is not None:
        return fast
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
    return rows_to_table([{c: getattr(it, c) for c in table.column_names} for it in items],
                         table)


def arrow_text(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """``frame`` with its text columns held as Arrow strings, as the loader holds them.

    The feature code hands ids and text to Arrow (``features.point_in_time.arrow_strings``):
    a Python-backed column is converted again on every such call, an Arrow-backed one is
    read without a copy. Values are unchanged.
    """
    text = [c.name for c in table.columns if PANDAS_DTYPES[c.kind] == "string"
            and c.name in frame.columns and frame[c.name].dtype != ARROW_TEXT]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].astype(ARROW_TEXT) for c in text})


DATA_REPORT_COLUMNS = ["file", "row", "column", "reason"]
"""The report of the ``--data`` rows left out: the file, its 0-based data row, why."""


def checked_context(
    data_dir: Path | None, now: pd.Timestamp | None = None,
    held: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The contract tables found in ``data_dir``, checked as ``validate`` checks them, text
    as Arrow strings; and every row left out, with its file, row, column and reason.

    Each table gets its own rules (types, known values such as stages and activity types,
    required values, nothing after ``now``, each id once), then the references between
    the tables and the dates against a parent's (``features.integrity``, the loader's own
    code, reasons included): a row whose parent is absent or was rejected is left out. A
    folder given as ``--data`` may hold only some tables, the rest coming with the input
    file or not at all: a reference into a table the folder does not hold is not checked.
    ``held`` gives, per table, the ids of the input file's rows (valid ones, and every
    one): they count as that table's rows, so an activity of a lead that only the input
    holds is not an orphan.
    """
    found: dict[str, pd.DataFrame] = {}
    if data_dir is None:
        return found, pd.DataFrame(columns=DATA_REPORT_COLUMNS)
    stamp = pd.Timestamp.now(tz="UTC") if now is None else now
    checked: dict[str, CheckedTable] = {}
    paths: dict[str, Path] = {}
    for name, table in TABLES.items():
        path = next((data_dir / f"{name}{suffix}" for suffix in (".parquet", ".csv")
                     if (data_dir / f"{name}{suffix}").exists()), None)
        if path is None:
            checked[name] = no_rows(table)
            continue
        try:
            tbl, _ = read_arrow_table(path, table)
        except DataContractError as exc:
            raise BatchInputError(str(exc)) from None
        checked[name] = check_rows(tbl, table, path, stamp)
        paths[name] = path
        del tbl
    check_references(checked, present=paths, held={
        name: (pa.array(list(valid), pa.string()), pa.array(list(every), pa.string()))
        for name, (valid, every) in (held or {}).items()})
    lines: list[pd.DataFrame] = []
    for name, path in paths.items():
        table_checked = checked.pop(name)  # its parsed columns go once its frame is made
        rejected = table_checked.rejections()
        if len(rejected):
            lines.append(pd.DataFrame({"file": str(path), "row": rejected["row"],
                                       "column": rejected["column"],
                                       "reason": rejected["reason"]}))
        found[name] = arrow_text(table_checked.frame(), TABLES[name])
        del table_checked
    report = (pd.concat(lines, ignore_index=True).sort_values(["file", "row"], kind="stable")
              if lines else pd.DataFrame(columns=DATA_REPORT_COLUMNS))
    return found, report.reset_index(drop=True)


def data_report_path_for(output: Path) -> Path:
    """Where the ``--data`` rows left out are listed: ``<output>.data-report.csv``."""
    return output.with_name(output.name + ".data-report.csv")


def _combine(entity: pd.DataFrame, table: Table, context: dict[str, pd.DataFrame]) -> pd.DataFrame:
    other = context.get(table.name)
    if other is None or other.empty:
        return entity
    merged = pd.concat([entity, other], ignore_index=True)
    return merged.drop_duplicates(subset=[table.key], keep="first").reset_index(drop=True)


def batch_tables(rows: pd.DataFrame, task: str, context: dict[str, pd.DataFrame]) -> CRMTables:
    """The entities' own rows (from :func:`validated_rows`) on top of whatever tables the
    data folder holds."""
    table = TABLES[TASKS[task].table]
    entity = _combine(arrow_text(rows, table), table, context)
    frames = {t.name: context.get(t.name, rows_to_table([], t)) for t in TABLES.values()}
    frames[table.name] = entity
    return CRMTables(**frames)


def report_path_for(output: Path) -> Path:
    """Where the report of an output goes: beside it, ``<output>.report.csv``."""
    return output.with_name(output.stem + ".report.csv")


def _not_scored(rows: pd.DataFrame, positions: np.ndarray, keep: np.ndarray, task: str,
                as_of: pd.Timestamp) -> pd.DataFrame:
    """A report line for each valid row left out: created after the scoring time, or
    closed by then (nothing to predict), naming the first outcome column that closed it.
    Column-wise: most rows of a CRM's export are closed ones."""
    spec = TASKS[task]
    left = np.flatnonzero(~keep)
    sub = rows.iloc[left]
    when = as_of.isoformat()
    reason = np.full(len(sub), f"closed at or before the scoring time ({when}): not scored",
                     dtype=object)
    for c in reversed(spec.closed_by):  # the first column that closed it wins
        hit = (sub[c] <= as_of).fillna(False).to_numpy(dtype=bool)
        reason[hit] = f"{c} is at or before the scoring time ({when}): not scored"
    late = (sub["created_at"] > as_of).fillna(False).to_numpy(dtype=bool)
    reason[late] = f"created after the scoring time ({when}): not scored"
    return pd.DataFrame({"row": positions[left].astype(np.int64),
                         "id": sub[spec.entity_key].astype(object).to_numpy(), "column": "",
                         "reason": reason, "outcome": NOT_SCORED}, columns=REPORT_COLUMNS)


def _not_applicable(open_rows: pd.DataFrame, positions: np.ndarray, result: pd.DataFrame,
                    task: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """A report line for each open row with no output row: the task does not apply to it
    then (an account with no renewal due, or not a customer)."""
    key = TASKS[task].entity_key
    ids = open_rows[key].astype(str)
    done = ids.isin(result[key].astype(str)) if key in result else np.zeros(len(ids), bool)
    left = np.flatnonzero(~np.asarray(done, dtype=bool))
    return pd.DataFrame({"row": positions[left].astype(np.int64),
                         "id": ids.iloc[left].to_numpy(dtype=object), "column": "",
                         "reason": f"{task} does not apply to it at the scoring time "
                         f"({as_of.isoformat()}): not scored", "outcome": NOT_SCORED},
                        columns=REPORT_COLUMNS)


def _open_mask(rows: pd.DataFrame, task: str, as_of: pd.Timestamp) -> np.ndarray:
    """Entities created by ``as_of`` and still open then: closed ones have nothing to predict."""
    out = ~(rows["created_at"] > as_of).to_numpy()
    for c in TASKS[task].closed_by:
        out &= ~(rows[c] <= as_of).to_numpy()
    return np.asarray(out, dtype=bool)


def _flatten(results: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """Results as flat rows (:func:`_flatten_dict`), dumped as JSON values in one call
    (each row what its ``model_dump(mode="json")`` gives)."""
    if not results:
        return []
    dumped: list[dict[str, Any]] = list_adapter(type(results[0])).dump_python(
        list(results), mode="json")
    return [_flatten_dict(d) for d in dumped]


def _json(value: Any) -> str:
    """A result's list as compact JSON text (UTF-8, as the file is)."""
    return orjson.dumps(value).decode()


def _flatten_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A result as one flat row: reasons and risk flags as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "reasons":
            flat["reasons_up"] = _json(value["up"])
            flat["reasons_down"] = _json(value["down"])
        elif key == "model":
            flat["model_name"] = value["name"]
            flat["model_version"] = value["version"]
            flat["feature_set"] = value["feature_set"]
        elif key == "warnings":
            flat["warnings"] = _json(value)
        elif key == "risk":
            flat["risk_level"] = value["level"]
            flat["risk_flags"] = _json(value["flags"])
        elif key == "what_if":
            if value is not None:
                flat["what_if"] = _json(value)
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
    rows: pd.DataFrame, key: str, tables: CRMTables, context: dict[str, pd.DataFrame]
) -> list[Gaps]:
    """Per entity of a batch file, the rows its features read that ``--data`` lacks: an
    account not in its accounts file (or no such file), the account's deals without an
    opportunities file, a deal's lead not in its leads file; and the entity's own category
    values as the file holds them."""
    accounts = set(tables.accounts["account_id"].dropna().astype(str))
    leads = set(tables.leads["lead_id"].dropna().astype(str))
    deals_known = key == "opportunity_id" or "opportunities" in context
    names = (("industry", "country") if key == "account_id"
             else ("product",) if key == "opportunity_id" else LEAD_CATEGORIES)
    cells = {c: _cells(rows[c]) for c in {*names, "account_id", "lead_id"} if c in rows}
    out = []
    for i in range(len(rows)):
        row = {c: v[i] for c, v in cells.items()}
        gaps: dict[ContextPart, str] = {}
        if key == "account_id":
            out.append(Gaps(gaps, _categories(row, names)))
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
        out.append(Gaps(gaps, _categories(row, names)))
    return out


def _categories(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    return {n: str(row[n]) for n in names if row.get(n) is not None}


def score_frame(
    model: LoadedModel,
    rows: pd.DataFrame,
    context: dict[str, pd.DataFrame],
    settings: ScoringSettings,
    as_of: datetime,
    explain: bool = True,
    progress: Callable[[int], None] | None = None,
    trend: bool = True,
    what_if: bool = False,
    own: OwnFeatures | None = None,
) -> pd.DataFrame:
    """Score validated entity rows in chunks; one output row per entity, input order kept.
    ``trend``: each row's scores 7 and 28 days earlier (``trend_*`` columns); ``what_if``:
    the actions that would raise each score (a ``what_if`` column of JSON); ``own``: the
    data folder's own columns (``features.own``), for a model trained on them.

    Python's cyclic garbage collector is paused meanwhile: the results are hundreds of
    thousands of small containers, and each collection would walk them and every id of
    the tables again (3x the time of building them, on the 100k CRM); what they free,
    reference counting frees.
    """
    with _gc_paused():
        return _score_frame(model, rows, context, settings, as_of, explain, progress, trend,
                            what_if, own)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _score_frame(
    model: LoadedModel,
    rows: pd.DataFrame,
    context: dict[str, pd.DataFrame],
    settings: ScoringSettings,
    as_of: datetime,
    explain: bool,
    progress: Callable[[int], None] | None,
    trend: bool,
    what_if: bool,
    own: OwnFeatures | None,
) -> pd.DataFrame:
    task = model.task
    spec, endpoint = _task(task)
    key = spec.entity_key
    tables = dataclasses.replace(batch_tables(rows, task, context), own=own or None)
    ids = [str(k) for k in _cells(rows[key])]
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
        if what_if:
            results = endpoint.file_results(model, scored, settings)
            suggest(results, model, tables, scored, as_of, settings, gaps[start:stop])
            out += _flatten(results)
        else:
            out += [_flatten_dict(r) for r in endpoint.file_records(model, scored, settings)]
        if progress is not None:
            progress(stop - start)
    return pd.DataFrame(out)


def batch_as_of(
    rows: pd.DataFrame, task: str, context: dict[str, pd.DataFrame],
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


def prepare_explainers(model: LoadedModel) -> None:
    """Build the model's TreeSHAP tables (``ScoringModel.explainers``) with the model's
    load, before the first block is scored."""
    explainers = getattr(model.model, "explainers", None)
    if explainers is not None:
        explainers()


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
    frame = read_table_file(input_path)
    checked = checked_rows(frame, task, str(input_path))
    rows = checked.rows
    key = spec.entity_key
    context, data_rejected = checked_context(data_dir, held={spec.table: (
        _cells(rows[key].astype(str)), _cells(frame[key].dropna().astype(str)))})
    data_report = None
    if data_dir is not None:
        data_report = data_report_path_for(output_path)
        write_table_file(data_rejected, data_report)
    missing = [name for name in endpoint.needs if context.get(name) is None]
    if missing:
        files = ", ".join(f"{name}.csv/.parquet" for name in missing)
        raise BatchInputError(f"{spec.plural} need {', '.join(missing)}: pass --data with {files}")
    stamp, data_end = batch_as_of(rows, task, context, as_of)
    keep = _open_mask(rows, task, stamp)
    open_rows = rows[keep].reset_index(drop=True)
    if model is None:
        model = source_from_settings(settings).load(task)
    if explain and len(open_rows):
        prepare_explainers(model)
    if len(open_rows):
        result = score_frame(model, open_rows, context, settings, stamp.to_pydatetime(), explain,
                             progress, trend, what_if,
                             read_own(data_dir) if data_dir is not None else None)
    else:
        result = pd.DataFrame()
    report = pd.concat([checked.report, _not_scored(rows, checked.positions, keep, task, stamp),
                        _not_applicable(open_rows, checked.positions[keep], result, task, stamp)],
                       ignore_index=True).sort_values("row", kind="stable")
    report_path = report_path_for(output_path)
    write_table_file(report, report_path)
    write_table_file(result, output_path)
    graded = getattr(model.model, "grading", None) is not None
    late = None if as_of is None or data_end is None else past_data_warning(
        stamp, data_end, settings.stale_data_days)
    return BatchReport(
        task=task,
        scored=len(result),
        skipped=len(rows) - len(open_rows),
        rejected=int(checked.report["row"].nunique()),
        read=len(frame),
        report=report_path,
        data_rejected=len(data_rejected[["file", "row"]].drop_duplicates()),
        data_report=data_report,
        model_version=model.version,
        output=output_path,
        not_applicable=len(open_rows) - len(result),
        warnings=tuple(w for w in (None if graded else GRADING_MISSING, late) if w is not None),
        as_of=stamp,
        data_end=data_end,
        as_of_default=as_of is None,
    )
