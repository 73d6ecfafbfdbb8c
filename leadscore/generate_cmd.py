"""`leadscore generate`: simulate, write, and show what was written."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.mapping.export_format import EXPORT_FORMATS, write_export
from leadscore.generator import GeneratedCRM, generate_crm, write_crm

PHASES = ("accounts", "leads", "lead activities", "deals", "deal history", "deal activities",
          "activities table", "writing tables", "truth")
FORMATS: tuple[str, ...] = ("contract", *EXPORT_FORMATS)
"""What `generate` writes: the contract's tables, or one CRM's export of them."""


def run_generate(out: Path, n_leads: int, seed: int, start: str, months: int,
                 console: Console | None = None, installed_base: int | None = None,
                 fmt: str = "contract", drift: bool = False) -> None:
    console = console or Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("simulating", total=len(PHASES) + 1)

        def step(phase: str) -> None:
            bar.update(task, advance=1, description=f"simulating: {phase}")

        crm = generate_crm(n_leads, seed=seed, start=start, months=months, progress=step,
                           installed_base=installed_base, drift=drift)
        if fmt == "contract":
            bar.update(task, description="writing Parquet")
            write_crm(crm, out)
        else:
            bar.update(task, description=f"writing the {fmt} export")
            files = write_export(crm.tables, fmt, out).files
        bar.update(task, advance=1, description="done")
    if fmt == "contract":
        _print_contract(console, crm, out, months, seed)
        return
    table = Table(title=f"{out}: a {fmt} export ({crm.config.start} + {months} months, "
                        f"seed {seed})")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for path in files:
        with path.open(encoding="utf-8") as f:
            table.add_row(path.name, f"{sum(1 for _ in f) - 1:,}")
    console.print(table)
    console.print(f"import it: leadscore import --mapping {fmt} --source {out} --out DIR "
                  "(account_signals and the ground truth are not part of a CRM export)",
                  soft_wrap=True)


def _print_contract(console: Console, crm: GeneratedCRM, out: Path, months: int,
                    seed: int) -> None:
    drifted = (f", drifting from day {crm.config.drift_start_day:.0f}"
               if crm.config.drift_start_day is not None else "")
    table = Table(title=f"{out} ({crm.config.start} + {months} months, seed {seed}{drifted})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, tbl in crm.arrow.items():
        table.add_row(name, f"{tbl.num_rows:,}")
    console.print(table)
    console.print(f"{crm.truth['customers'].num_rows:,} customers, "
                  f"{crm.config.installed:,} of them drawn for the installed base (bought "
                  "before the first day; those still customers then are kept)")
    console.print(f"ground truth for evaluation only: {out / '_truth'}")
