"""Scores back into the CRM: `leadscore score --export salesforce|hubspot`.

A batch of results becomes the CRM's own import file for the scored object (Salesforce
Data Loader / Data Import Wizard, HubSpot import), keyed by the CRM's record id, with the
fields the mapping's ``export:`` section names: a nightly sync is one command and one
upload. The contract's ids are the CRM's own when the data came in through `leadscore
import` with the CRM's preset (Salesforce ``Id`` -> ``lead_id``, HubSpot ``Record ID`` ->
``lead_id``), so the record id is the result's key; a key that is not a record id of the
CRM (synthetic or flat-file data) is refused rather than written where it updates nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.mapping.spec import ExportTarget, Mapping
from features.tasks import task_spec

ELLIPSIS = "…"
SEPARATOR = "; "


class WriteBackError(ValueError):
    """The results cannot be written back with this mapping."""


@dataclass(frozen=True)
class WriteBack:
    path: Path
    rows: int
    target: ExportTarget
    shortened: int
    """Rows whose reasons did not all fit in the field (the first ones are written)."""


def export_target(mapping: Mapping, crm: str, task: str, origin: str) -> ExportTarget:
    """The mapping's write-back target for ``task``; ``origin`` names the mapping."""
    if mapping.export is None:
        raise WriteBackError(f"{origin} has no export: section, so nothing says which CRM "
                             "fields take the scores; add one (the salesforce and hubspot "
                             "presets have one to start from)")
    if mapping.export.crm != crm:
        raise WriteBackError(f"{origin}'s export: section is for {mapping.export.crm}, "
                             f"not {crm}")
    target = mapping.export.tasks.get(task)
    if target is None:
        raise WriteBackError(f"{origin}'s export: section has no entry for {task} "
                             f"(it has: {', '.join(mapping.export.tasks) or 'none'})")
    return target


def reasons_text(up: list[dict[str, Any]], down: list[dict[str, Any]], limit: int
                 ) -> tuple[str, bool]:
    """The top reasons as one text of at most ``limit`` characters: for and against in
    turn (the strongest of each first), each whole, as many as fit; and whether any was
    left out. A first reason longer than the field is cut with an ellipsis."""
    ups = [f"+ {r['text']}" for r in up]
    downs = [f"- {r['text']}" for r in down]
    turns = [r for pair in zip(ups, downs, strict=False) for r in pair]
    turns += ups[len(downs):] + downs[len(ups):]
    text = ""
    for n, reason in enumerate(turns):
        joined = reason if not text else text + SEPARATOR + reason
        if len(joined) > limit:
            if not text:
                return reason[:limit - 1] + ELLIPSIS, True
            return text, True
        text = joined
        if n == len(turns) - 1:
            return text, False
    return text, False


def _json_list(cell: object) -> list[dict[str, Any]]:
    if cell is None or (isinstance(cell, float) and pd.isna(cell)) or cell == "":
        return []
    value = json.loads(str(cell))
    return value if isinstance(value, list) else []


def _record_ids(results: pd.DataFrame, key: str, target: ExportTarget, crm: str) -> pd.Series:
    """The results' keys, checked to be the CRM's record ids."""
    if key not in results:
        raise WriteBackError(f"the results have no {key} column")
    ids = results[key].astype("string")
    missing = int(ids.isna().sum())
    pattern = re.compile(target.id_pattern)
    wrong = ids[ids.notna() & ~ids.fillna("").map(lambda v: bool(pattern.fullmatch(v)))]
    if missing or len(wrong):
        examples = ", ".join(repr(v) for v in wrong.head(3))
        raise WriteBackError(
            f"{missing + len(wrong):,} of {len(ids):,} scored row(s) have no {crm} "
            f"{target.object} id ({key} {examples or 'missing'}; ids must match "
            f"{target.id_pattern}): write-back updates the CRM's records by their own ids, "
            f"which `leadscore import --mapping {crm}` keeps as {key}"
        )
    return ids


def write_back_frame(results: pd.DataFrame, task: str, target: ExportTarget, crm: str,
                     scored_at: datetime | None = None) -> tuple[pd.DataFrame, int]:
    """The import file's rows for ``results`` (one per scored record), and how many rows'
    reasons were shortened to fit."""
    key = task_spec(task).entity_key
    out = pd.DataFrame({target.id: _record_ids(results, key, target, crm)})
    shortened = 0
    for value, field in target.fields.items():
        if value == "reasons":
            texts = [reasons_text(_json_list(u), _json_list(d), target.text_length)
                     for u, d in zip(results.get("reasons_up", [None] * len(results)),
                                     results.get("reasons_down", [None] * len(results)),
                                     strict=True)]
            out[field] = [t for t, _ in texts]
            shortened = sum(cut for _, cut in texts)
        elif value == "risk_reasons":
            out[field] = [_fit(SEPARATOR.join(f["reason"] for f in _json_list(c)),
                               target.text_length)
                          for c in results.get("risk_flags", [None] * len(results))]
        elif value == "trend":
            out[field] = results.get("trend_direction")
        elif value == "scored_at":
            out[field] = pd.Timestamp(scored_at).strftime("%Y-%m-%dT%H:%M:%SZ") \
                if scored_at is not None else None
        elif value == "probability":
            out[field] = results["probability"].round(4)
        else:
            if value not in results:
                raise WriteBackError(f"the {task} results have no {value} to write to {field}")
            out[field] = results[value].to_numpy()
    return out, shortened


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + ELLIPSIS


def write_back(results: pd.DataFrame, task: str, mapping: Mapping, crm: str, origin: str,
               folder: Path, scored_at: datetime | None = None) -> WriteBack:
    """Write the CRM's import file for ``results`` into ``folder``."""
    target = export_target(mapping, crm, task, origin)
    frame, shortened = write_back_frame(results, task, target, crm, scored_at)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / target.file
    frame.to_csv(path, index=False, na_rep="")
    return WriteBack(path, len(frame), target, shortened)
