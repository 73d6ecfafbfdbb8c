"""The review's backtest section: how far the forecast has been from what closed.

Read from the latest `leadscore pipeline backtest` run logged to MLflow
(``modeling.registry.last_backtest``): a manager weighs a forecast's range by how often
such ranges held the actual, which no CRM's weighted pipeline shows. When no backtest has
run, the section says so and names the command that runs one: never a made-up figure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from review.schemas import BacktestSection, MethodScore, Review

RUN_ONE = "leadscore pipeline backtest --data DIR --periods 6"
"""The command a manager's data scientist runs to fill the section."""

METHOD_LABELS = {
    "model": "ours",
    "crm_default": "CRM-default weighted pipeline (10/20/40/60/80 %)",
    "stage_rate": "stage-rate weighted pipeline",
    "oracle": "oracle (the generator's true P(won))",
}


def _ran_at(saved: dict[str, Any]) -> datetime | None:
    if saved.get("ran_at"):
        return datetime.fromisoformat(str(saved["ran_at"])).astimezone(UTC)
    if saved.get("run_started_ms"):
        return datetime.fromtimestamp(int(saved["run_started_ms"]) / 1000, tz=UTC)
    return None


def backtest_section(saved: dict[str, Any] | None,
                     data: Path | None = None) -> BacktestSection | None:
    """The section from a ``backtest.json`` as ``last_backtest`` returns it; None for none
    or for one without periods. ``data``: the reviewed folder, to say whether the backtest
    was of it."""
    if not saved or not saved.get("periods"):
        return None
    periods = saved["periods"]
    metrics = saved.get("metrics", {})
    methods = []
    for m, label in METHOD_LABELS.items():
        if f"wape_{m}" not in metrics:
            continue
        held = sum(1 for p in periods
                   if p["ranges"][m]["p10"] <= p["actual"] <= p["ranges"][m]["p90"])
        methods.append(MethodScore(method=m, label=label, wape=float(metrics[f"wape_{m}"]),
                                   held=held, periods=len(periods),
                                   bias=float(metrics.get(f"bias_{m}", 0.0))))
    return BacktestSection(
        run_id=str(saved.get("run_id", "")), ran_at=_ran_at(saved),
        data=str(saved.get("data") or ""),
        same_data=(None if data is None or not saved.get("data")
                   else Path(str(saved["data"])) == data.resolve()),
        period_kind=str(saved.get("period_kind", "")),
        first_period=str(periods[0]["period"]), last_period=str(periods[-1]["period"]),
        periods=len(periods), methods=methods,
        reduction_vs_crm_default=metrics.get("wape_reduction_vs_crm_default"),
        reduction_vs_stage_rate=metrics.get("wape_reduction_vs_stage_rate"),
    )


def read_last_backtest(tracking_uri: str | None) -> dict[str, Any] | None:
    """The last backtest's ``backtest.json``, or None when there is none or the tracking
    store cannot be read (the review is still worth showing without it)."""
    from modeling.registry import last_backtest

    try:
        return last_backtest(tracking_uri)
    except Exception:  # an unreachable store must not take the review down
        return None


def attach_backtest(review: Review, saved: dict[str, Any] | None,
                    data: Path | None = None) -> None:
    """Fill ``review.backtest`` from the last backtest, or leave it None (the page then
    says no backtest has run and how to run one)."""
    review.backtest = backtest_section(saved, data)
