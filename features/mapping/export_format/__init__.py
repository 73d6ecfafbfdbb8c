"""The contract's tables written as a CRM's own export: the inverse of a preset.

One writer per preset (``salesforce.py``, ``hubspot.py``), each reading the preset's YAML
for file and column names and value maps (``preset_columns.py``), so that what a writer
writes is what the preset reads: `leadscore generate --format salesforce|hubspot` writes
the synthetic CRM this way, and `leadscore import --mapping <preset>` gives back its rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from features.mapping.export_format.crm_ids import CrmIds
from features.mapping.export_format.preset_columns import WriterError
from features.schema import CRMTables

Writer = Callable[[CRMTables, Path], tuple[list[Path], CrmIds]]


@dataclass(frozen=True)
class WrittenExport:
    format: str
    files: list[Path]
    ids: CrmIds
    """Contract id -> the CRM record id written, per key column."""


def _writers() -> dict[str, Writer]:
    from features.mapping.export_format.hubspot import write_hubspot
    from features.mapping.export_format.salesforce import write_salesforce

    return {"salesforce": write_salesforce, "hubspot": write_hubspot}


EXPORT_FORMATS: tuple[str, ...] = ("salesforce", "hubspot")
"""The presets with a writer: the formats `generate --format` can write."""


def write_export(tables: CRMTables, fmt: str, out: Path) -> WrittenExport:
    """Write ``tables`` in ``out`` as the export the preset ``fmt`` reads."""
    writers = _writers()
    if fmt not in writers:
        raise WriterError(f"unknown export format {fmt!r}; use one of {', '.join(writers)}")
    files, ids = writers[fmt](tables, Path(out))
    return WrittenExport(fmt, files, ids)


__all__ = ["EXPORT_FORMATS", "CrmIds", "WriterError", "WrittenExport", "write_export"]
