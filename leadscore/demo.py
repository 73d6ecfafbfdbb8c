"""`leadscore demo`: the sample end to end, from validation to a registered model per task."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from features.loader import load_crm
from features.tasks import TASKS
from leadscore.funnel import funnel_summary
from leadscore.generate_cmd import run_generate
from modeling.registry import CHAMPION, resolve_alias
from training.commands import run_train
from training.train import TrainResult, train_settings


def run_demo(
    data: Path = Path("data/sample"),
    tracking_uri: str | None = None,
    console: Console | None = None,
    sample_leads: int = 5000,
    seed: int = 7,
) -> dict[str, TrainResult]:
    """Generate or load the sample, validate it, show the funnel, train and register every
    task."""
    console = console or Console()
    if not (data / "leads.parquet").exists() and not (data / "leads.csv").exists():
        console.print(f"no sample in {data}: generating {sample_leads:,} leads (seed {seed})")
        run_generate(out=data, n_leads=sample_leads, seed=seed, start="2023-01-01", months=36,
                     console=console)
    with console.status(f"validating {data}"):
        loaded = load_crm(data)
    summary = loaded.summary()
    table = Table(title=f"validation of {data}")
    for name in ("table", "read", "valid", "rejected"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for rec in summary.to_dict("records"):
        table.add_row(str(rec["table"]), *(f"{rec[k]:,}" for k in ("read", "valid", "rejected")))
    console.print(table)
    f = funnel_summary(loaded.tables)
    console.print(
        f"{f.leads:,} leads, {f.qualification_rate:.1%} qualified; {f.opportunities:,} deals, "
        f"win rate {f.win_rate:.1%} of {f.closed:,} closed; median won cycle "
        f"{f.median_won_cycle_days:.0f} days"
    )
    funnel = Table(title="deals reaching each stage (renewals open at proposal), and median "
                   "days in it")
    for name in ("stage", "deals", "median days"):
        funnel.add_column(name, justify="left" if name == "stage" else "right")
    for stage, n in f.reached.items():
        funnel.add_row(stage, f"{n:,}", f"{f.median_days_in_stage.get(stage, math.nan):.1f}")
    console.print(funnel)
    results = {}
    for task in TASKS:
        settings = train_settings(task=task, data=data, tracking_uri=tracking_uri, seed=seed)
        results[task] = run_train(settings, console)
    console.print(served_table(results, tracking_uri))
    return results


def served_table(results: dict[str, TrainResult], tracking_uri: str | None = None) -> Table:
    """Per task, what `leadscore serve` would serve now and why."""
    table = Table(title="what `leadscore serve` serves", show_lines=True)
    table.add_column("task")
    table.add_column("served")
    table.add_column("why", overflow="fold")
    for task, result in results.items():
        champion = resolve_alias(task, CHAMPION, tracking_uri)
        reason = result.decision.reason if result.decision else ""
        if result.withheld:
            table.add_row(task, "nothing (withheld)", result.withheld)
        elif champion is None:
            table.add_row(task, "nothing", "no version is registered as champion")
        elif champion == result.version:
            why = reason or "trained on the same data, settings and code as before"
            table.add_row(task, f"version {champion}", why)
        else:
            table.add_row(task, f"version {champion} (kept)",
                          f"the new version {result.version} is challenger: {reason}")
    return table
