"""`leadscore score --export`: check the write-back target first, write the file last."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from features.mapping.document import MappingError
from features.mapping.export_format import EXPORT_FORMATS
from features.mapping.load import load_mapping
from features.mapping.spec import Mapping
from serving.batch import read_table_file
from serving.write_back import WriteBackError, export_target, write_back


def export_mapping(task: str, crm: str, mapping: Path | None) -> tuple[Mapping, str]:
    """The mapping whose export: section is used, checked before anything is scored:
    raises ``typer.Exit(2)`` with the reason when it cannot serve ``task``."""
    if crm not in EXPORT_FORMATS:
        typer.echo(f"unknown --export {crm!r}; use one of {', '.join(EXPORT_FORMATS)}",
                   err=True)
        raise typer.Exit(2)
    origin = str(mapping) if mapping is not None else f"the {crm} preset"
    try:
        loaded = load_mapping(mapping if mapping is not None else Path(crm))
        export_target(loaded, crm, task, origin)
    except MappingError as exc:
        typer.echo(f"error: the mapping has {len(exc.problems)} problem(s):", err=True)
        for line in exc.problems:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(2) from None
    except WriteBackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return loaded, origin


def run_write_back(task: str, output: Path, crm: str, mapping: Mapping, origin: str,
                   scored_at: pd.Timestamp | None) -> int:
    """Write the CRM's import file beside ``output``; returns the exit code."""
    results = read_table_file(output)
    try:
        done = write_back(results, task, mapping, crm, origin, output.parent,
                          scored_at.to_pydatetime() if scored_at is not None else None)
    except WriteBackError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    fields = ", ".join(done.target.fields.values())
    typer.echo(f"{crm} import file for {done.target.object}: {done.rows:,} record(s) by "
               f"{done.target.id} ({fields}) -> {done.path}")
    if done.shortened:
        typer.echo(f"{done.shortened:,} record(s) had more reasons than fit in "
                   f"{done.target.text_length} characters: the first ones are written")
    return 0
