"""What `leadscore import` prints: the tables, the problems, what was derived or unplaced."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from features.mapping.importing import (
    ExportError,
    ImportResult,
    MappingError,
    import_settings,
    run_import,
)


def run_import_command(mapping: Path, source: Path, out: Path, report: Path | None) -> int:
    """Run the import and print its report; returns the exit code."""
    console = Console()
    settings = import_settings(mapping=mapping, source=source, out=out, report=report)
    try:
        with console.status("importing", spinner="dots") as status:
            result = run_import(settings, progress=status.update)
    except MappingError as exc:
        typer.echo(f"error: the mapping has {len(exc.problems)} problem(s):", err=True)
        for line in exc.problems:
            typer.echo(f"  {line}", err=True)
        return 2
    except (ExportError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    print_result(console, result, str(source))
    return 0 if result.ok else 1


def print_result(console: Console, result: ImportResult, source: str) -> None:
    counts = Table(title=f"import of {source}")
    for name in ("table", "read", "valid", "rejected"):
        counts.add_column(name, justify="left" if name == "table" else "right")
    for rec in result.load.summary().to_dict("records"):
        cells = [str(rec["table"])] + [f"{rec[k]:,}" for k in ("read", "valid", "rejected")]
        counts.add_row(*cells, style="red" if rec["rejected"] else None)
    console.print(counts)
    conv = result.converted
    for note in conv.notes:
        console.print(f"derived: {note}", highlight=False, markup=False, soft_wrap=True)
    for note in conv.timing.notes:
        console.print(f"known at: {note}", highlight=False, markup=False, soft_wrap=True)
    for table, cols in conv.not_in_export.items():
        console.print(f"not in the export: {table}.{', '.join(cols)} (left empty)",
                      highlight=False, markup=False, soft_wrap=True)
    for s in conv.skipped:
        console.print(f"skipped: {s['rows']:,} row(s) of {s['file']} by {s['column']} "
                      f"{s['values']} (skip_rows)", highlight=False, markup=False, soft_wrap=True)
    if conv.own.features:
        own = Table(title="the export's own columns (features:)")
        for name in ("table", "feature", "from", "type", "known at", "filled", "in the models"):
            own.add_column(name, justify="right" if name == "filled" else "left")
        rows = result.summary()["own_features"]
        for row in rows:
            own.add_row(row["table"], row["name"], row["column"], row["type"], row["known_at"],
                        f"{row['filled']:.0%}", row["use"])
        console.print(own)
        left = sum(1 for row in rows if row["use"].startswith("no"))
        if left:
            console.print(f"{left} own column(s) known only at export are left out of the "
                          "models: only their value on the export's day exists, which may "
                          "tell the outcome. List one under its table's allow_current_values "
                          "to use it; the model card then names it as a leak risk.",
                          soft_wrap=True)
    if conv.unplaced:
        un = Table(title="values nothing mapped (kept as written, or the default where one is set)")
        for name in ("table.column", "what", "rows", "examples"):
            un.add_column(name, justify="right" if name == "rows" else "left")
        for u in conv.unplaced:
            examples = ", ".join(f"{v!r} {n:,}" for v, n in u["examples"])  # type: ignore[attr-defined]
            un.add_row(f"{u['table']}.{u['column']}", str(u["what"]), f"{u['rows']:,}", examples)
        console.print(un)
    if not result.ok:
        codes = result.rejections["reason"].str.split(":", n=1).str[0]
        top = (result.rejections.assign(reason=codes)
               .groupby(["file", "column", "table", "reason"], sort=False).size()
               .sort_values(ascending=False, kind="stable").head(10))
        reasons = Table(title="top reasons (rows of the export)")
        for name in ("file", "column", "table", "reason", "count"):
            reasons.add_column(name, justify="right" if name == "count" else "left")
        for (f, c, t, r), n in top.items():
            reasons.add_row(str(f), str(c), str(t), str(r), f"{n:,}")
        console.print(reasons)
        console.print(f"{len(result.rejections):,} problem(s) written to {result.report}",
                      soft_wrap=True)
    else:
        console.print(f"every row is valid; empty report written to {result.report}",
                      soft_wrap=True)
    console.print(f"tables written to {result.out}; summary in {result.summary_file}",
                  soft_wrap=True)
