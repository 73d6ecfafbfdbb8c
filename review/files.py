"""``leadscore pipeline``: read a CRM folder, build the review as of a date, write
``review.html``, ``review.json`` and ``at_risk.csv``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.loader import load_crm
from features.reasons import words
from review.backtest import RUN_ONE, attach_backtest, read_last_backtest
from review.build import build_review
from review.forecasting import ForecastSection, attach_forecast
from review.render import money, pct, render_html
from review.schemas import Review
from review.settings import ReviewSettings
from serving.models import LoadedModel, source_for_uri, source_from_settings

AT_RISK_COLUMNS = (
    "rank", "opportunity_id", "owner_id", "account_id", "product", "stage", "amount",
    "close_date", "probability", "stage_win_rate", "money_at_risk", "score", "grade",
    "percentile", "risk_level", "risk_flags", "reasons_down", "score_7d_ago",
    "score_28d_ago", "trend_change", "trend_direction", "warnings",
)


def at_risk_frame(review: Review) -> pd.DataFrame:
    """Every open deal of the review, most money at risk first, one row each: what the
    page's table shows, with flags and reasons as text joined by " | "."""
    rows = []
    for d in review.at_risk.deals:
        r, t = d.result, d.result.trend
        rows.append({
            "rank": d.rank, "opportunity_id": d.opportunity_id, "owner_id": d.owner_id,
            "account_id": d.account_id, "product": d.product, "stage": r.stage,
            "amount": d.amount,
            "close_date": None if d.close_date is None else d.close_date.date().isoformat(),
            "probability": round(r.probability, 4), "stage_win_rate": d.stage_win_rate,
            "money_at_risk": d.money_at_risk, "score": r.score, "grade": r.grade,
            "percentile": r.percentile, "risk_level": r.risk.level,
            "risk_flags": " | ".join(f.reason for f in r.risk.flags),
            "reasons_down": " | ".join(x.text for x in r.reasons.down),
            "score_7d_ago": None if t is None else t.score_7d_ago,
            "score_28d_ago": None if t is None else t.score_28d_ago,
            "trend_change": None if t is None else t.change,
            "trend_direction": None if t is None else t.direction,
            "warnings": " | ".join(r.warnings),
        })
    return pd.DataFrame(rows, columns=list(AT_RISK_COLUMNS))


def write_review(review: Review, out: Path, page_deals: int) -> dict[str, Path]:
    """The three files of a review in ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "review.html", "json": out / "review.json",
             "csv": out / "at_risk.csv"}
    paths["html"].write_text(render_html(review, page_deals), encoding="utf-8")
    paths["json"].write_text(json.dumps(review.model_dump(mode="json"), indent=1) + "\n",
                             encoding="utf-8")
    at_risk_frame(review).to_csv(paths["csv"], index=False)
    return paths


@dataclass(frozen=True)
class ReviewRun:
    review: Review
    paths: dict[str, Path]
    rejected_rows: int
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each step: load, model, review, write."""


def load_deal_model(settings: ReviewSettings, uri: str | None) -> LoadedModel:
    """``uri`` (as ``leadscore score --model`` takes it), else the settings' deal model
    (the registry's ``champion`` by default)."""
    if uri:
        return source_for_uri("deal_close", uri, settings.tracking_uri).load("deal_close")
    return source_from_settings(settings).load("deal_close")


def run_review(
    data: Path, out: Path, settings: ReviewSettings, as_of: pd.Timestamp | None = None,
    model_uri: str | None = None, progress: Callable[[int], None] | None = None,
) -> ReviewRun:
    """Load ``data``, build the review and write its files to ``out``."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    loaded = load_crm(data)
    seconds["load"] = time.perf_counter() - t
    t = time.perf_counter()
    model = load_deal_model(settings, model_uri)
    seconds["model"] = time.perf_counter() - t
    t = time.perf_counter()
    review = build_review(loaded.tables, model, settings, as_of=as_of,
                          period=settings.period, target=settings.review_target,
                          history_periods=settings.review_history_periods, progress=progress)
    seconds["review"] = time.perf_counter() - t
    t = time.perf_counter()
    saved = read_last_backtest(settings.tracking_uri)
    attach_forecast(review, loaded.tables, model, settings.tracking_uri, saved, data)
    attach_backtest(review, saved, data)
    seconds["forecast"] = time.perf_counter() - t
    t = time.perf_counter()
    paths = write_review(review, out, settings.review_page_deals)
    seconds["write"] = time.perf_counter() - t
    rejected = int(loaded.rejections["row"].count()) if not loaded.ok else 0
    return ReviewRun(review, paths, rejected, seconds)


def forecast_line(review: Review) -> str:
    """The forecast in one line per period: P50 and range beside the CRM's weighting."""
    f = review.forecast
    if not isinstance(f, ForecastSection):
        return "forecast: not computed"
    parts = []
    for p in (f.current, f.next):
        b = p["bookings"]
        parts.append(f"{p['period']} P50 {money(b['p50'])} (P10 {money(b['p10'])} to P90 "
                     f"{money(b['p90'])}; CRM default weighted "
                     f"{money(p['crm_default_weighted'])})")
    return f"forecast of bookings, closed won included: {'; '.join(parts)}"


def backtest_line(review: Review) -> str:
    """The last backtest in one line: its periods, our WAPE beside the CRM default's, and
    how often the range held the actual; or the command that runs one."""
    bt = review.backtest
    if bt is None:
        return f"backtest: none has run yet ({RUN_ONE})"
    scores = {s.method: s for s in bt.methods}
    parts = [f"{s.label} WAPE {pct(s.wape, 1)}" for m, s in scores.items()
             if m in ("model", "crm_default")]
    ours = scores.get("model")
    held = f"; ours inside P10-P90 in {ours.held} of {ours.periods}" if ours else ""
    when = f" (ran {bt.ran_at:%Y-%m-%d %H:%M} UTC)" if bt.ran_at else ""
    return (f"last backtest, {bt.periods} {bt.period_kind}s {bt.first_period} to "
            f"{bt.last_period}{when}: {', '.join(parts)}{held}")


def summary_lines(review: Review, top: int = 5) -> list[str]:
    """What the command prints: the period in a few lines and the deals most at risk."""
    p, f = review.current, review.overall[-1]
    span = "" if p.complete else f" to date ({p.start:%Y-%m-%d} to {review.as_of:%Y-%m-%d})"
    ar = review.at_risk
    lines = [
        f"pipeline review as of {review.as_of:%Y-%m-%d %H:%M} UTC, {review.period_kind} "
        f"{p.label}{span}; deals scored by {review.model.name} version {review.model.version}",
        f"open: {ar.open_deals:,} deals, {money(ar.open_amount)}; money at risk "
        f"{money(ar.money_at_risk)}",
        f"{p.label}: won {f.won:,} ({money(f.won_amount)}), lost {f.lost:,}, win rate "
        f"{pct(f.win_rate)}, velocity {money(f.velocity_per_day)}/day",
    ]
    if review.coverage is not None:
        c = review.coverage
        lines.append(
            f"coverage: target met ({money(c.won_so_far)} won of {money(c.target)})"
            if c.ratio is None else
            f"coverage {c.ratio:.2f}x: {money(c.open_closing)} in {c.deals_closing:,} deals "
            f"expected to close in {c.period} against {money(c.remaining)} left of "
            f"{money(c.target)}")
    week = ", ".join(f"{x.label} {x.count:,}" for x in review.changes.lines)
    lines.append(f"week to {review.changes.until:%Y-%m-%d}: {week}")
    lines.append(f"most at risk (of {ar.open_deals:,} open deals):")
    for d in ar.deals[:top]:
        # The line states the probability against the stage's rate already.
        flags = [f for f in d.result.risk.flags if f.flag != "low_probability"]
        down = d.result.reasons.down
        why = (f"flagged: {'; '.join(f.reason for f in flags[:2])}" if flags else
               f"no flag; most against it: {down[0].text}" if down else "")
        lines.append(
            f"  {d.rank}. {d.opportunity_id} ({d.owner_id}, {words(d.result.stage)})"
            f" {money(d.amount)} at {pct(d.result.probability)} against "
            f"{pct(d.stage_win_rate)} for its stage: {money(d.money_at_risk)} at risk"
            + (f"; {why}" if why else ""))
    lines.append(forecast_line(review))
    lines.append(backtest_line(review))
    lines += [f"warning: {w}" for w in review.warnings]
    return lines
