"""`leadscore pipeline ...`: the manager's pipeline commands (a Typer sub-app).

``backtest`` forecasts each of the last N periods from its start with models trained on
what was known then, and compares with what closed (``training.backtest``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from training.backtest import Backtest

pipeline_app = typer.Typer(
    help="The pipeline review as of a date (no subcommand), and the forecast's backtest.",
    invoke_without_command=True, add_completion=False,
)
"""`leadscore pipeline` itself (the review) is this app's callback, in ``leadscore.cli``."""

METHOD_NAMES = {
    "model": "ours (P(won) x P(closes in the period | won))",
    "crm_default": "CRM-default weighted pipeline (10/20/40/60/80 %)",
    "stage_rate": "stage-rate weighted pipeline",
    "oracle": "oracle (the truth's P(won), on generated data)",
}


@pipeline_app.command()
def backtest(
    data: Path = typer.Option(..., "--data", help="Folder with one CSV or Parquet file per table."),
    periods: int = typer.Option(6, "--periods", min=1, help="How many past periods to forecast."),
    period: str = typer.Option("month", "--period", help="month or quarter."),
    draws: int = typer.Option(10_000, "--draws", min=1000, help="Monte Carlo draws."),
    seed: int = typer.Option(7, help="Seed of the models and the Monte Carlo."),
    warmup: int = typer.Option(
        6, "--warmup", min=0,
        help="Periods forecast before the scored ones only for the errors the first "
             "scored ranges rest on."),
    out: Path = typer.Option(None, "--out", help="Also write backtest.json here (a folder)."),
    log: bool = typer.Option(True, help="Log the run and backtest.json to MLflow."),
) -> None:
    """Forecast each of the last N periods from its start, as if then, and score it.

    As of each period's start, models are trained on the CRM as it stood then; the
    forecast's P50 and P10-P90 are compared with the bookings that closed won in the
    period: WAPE and the share of periods inside P10-P90, for ours, the CRM-default and
    the stage-rate weighted pipelines, and the oracle's on generated data. Each range
    rests on the errors of this backtest's forecasts of the periods before it.
    """
    from rich.console import Console
    from rich.table import Table

    from features.loader import DataContractError
    from features.tasks import TRUTH, task_spec
    from forecast.periods import PERIOD_KINDS
    from leadscore.memory import reuse_freed_memory
    from training.backtest import log_backtest, run_backtest
    from training.data import read_tables

    reuse_freed_memory()
    if period not in PERIOD_KINDS:
        typer.echo(f"unknown period {period!r}; use one of {', '.join(PERIOD_KINDS)}", err=True)
        raise typer.Exit(2)
    console = Console()
    try:
        tables, _ = read_tables(data)
    except (DataContractError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    oracle = task_spec("deal_close").oracle_for(TRUTH.load()(data))
    try:
        with console.status("backtesting", spinner="dots") as status:
            result = run_backtest(tables, periods, period, oracle=oracle, draws=draws,
                                  seed=seed, warmup=warmup,
                                  on_step=lambda s: status.update(s))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    result.data = str(data.resolve())
    per = Table(title=f"bookings per {period}: actual and P10 / P50 / P90")
    per.add_column("period")
    per.add_column("actual", justify="right")
    for m in result.methods:
        per.add_column(m, justify="right")
    for p in result.periods:
        per.add_row(p.period, f"{p.actual:,.0f}", *(
            f"{p.ranges[m].p10:,.0f} / {p.ranges[m].p50:,.0f} / {p.ranges[m].p90:,.0f}"
            for m in result.methods))
    console.print(per)
    console.print(_summary(result, "current", f"backtest over {len(result.periods)} {period}s, "
                           f"{result.periods[0].period} to {result.periods[-1].period}"))
    later = [p for p in result.periods if p.next_actual is not None]
    if later:
        console.print(_summary(
            result, "next", f"the {period} after, forecast from the same origins: "
                            f"{len(later)} {period}s, {later[0].next_period} to "
                            f"{later[-1].next_period}"))
    if result.warmup:
        console.print(f"the ranges rest on the errors of this backtest's earlier forecasts; "
                      f"warm-up {period}s forecast for them only: "
                      f"{', '.join(p.period for p in result.warmup)}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "backtest.json").write_text(json.dumps(result.to_json(), indent=2, default=str))
        console.print(f"wrote {out / 'backtest.json'}")
    if log:
        run_id = log_backtest(result, {"data": str(data), "periods": periods, "period": period,
                                       "draws": draws, "seed": seed, "warmup": warmup})
        console.print(f"logged to MLflow: experiment pipeline_backtest, run {run_id}")


def _summary(result: Backtest, horizon: str, title: str) -> Any:
    """The WAPE, coverage and bias of each forecast, as a table (``rich``)."""
    from rich.table import Table

    summary = Table(title=title)
    for name in ("forecast", "WAPE of P50", "actual inside P10-P90", "bias"):
        summary.add_column(name, justify="left" if name == "forecast" else "right")
    for m in result.methods:
        held = [r.holds(a) for a, r in result.pairs(m, horizon)]
        summary.add_row(METHOD_NAMES[m], f"{result.wape(m, horizon):.1%}",
                        f"{sum(held)} of {len(held)} ({result.coverage(m, horizon):.0%})",
                        f"{result.bias(m, horizon):+.1%}")
    return summary
