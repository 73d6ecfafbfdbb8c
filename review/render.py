"""The review as one self-contained HTML page: server-rendered with Jinja2 from the
template shipped in this package, charts as inline SVG, a small inline script for the
at-risk table's sorting and owner filter. Nothing is fetched from the network."""

from __future__ import annotations

import functools
import math
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from features.reasons import words
from features.schema import OPEN_STAGES
from review import charts
from review.backtest import RUN_ONE
from review.changes import LABELS
from review.forecasting import ForecastSection
from review.schemas import Review

PAGE_DEALS = 1000
"""Most at-risk deals listed on the page (at_risk.csv and review.json hold every open
deal)."""

FORECAST_TEMPLATE = "forecast.html.j2"
"""The forecast section's template, for a :class:`ForecastSection`; any other forecast
object is shown as its JSON."""

GAINS = frozenset({"new", "pulled_in", "increased", "won"})


def money(value: float | None, compact: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    sign = "−" if value < 0 else ""
    v = abs(value)
    if compact and v >= 1e6:
        return f"{sign}${v / 1e6:,.2f}M"
    if compact and v >= 1e4:
        return f"{sign}${v / 1e3:,.0f}k"
    return f"{sign}${v:,.0f}"


def pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def day(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d")


@functools.cache
def environment() -> Environment:
    """The templates of this package (the review page, and the served page's sign-in)."""
    env = Environment(
        loader=PackageLoader("review", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, pct=pct, num=num, day=day, words=words)
    return env


def _charts(review: Review) -> dict[str, Markup]:
    periods = [p.label + ("" if p.complete else " (to date)") for p in review.periods]
    stages = [f"{words(c.stage)} → {words(c.next_stage)}" for c in review.overall[0].conversion]
    conversion = charts.grouped_bars(
        "Stage-to-stage conversion by period of entry", stages, periods,
        [[f.conversion[i].rate for f in review.overall] for i in range(len(stages))],
        maximum=1.0)
    rows = []
    for line in review.changes.lines:
        size = line.amount_change if line.amount_change is not None else line.amount
        rows.append((f"{line.label} ({line.count})", size, line.kind in GAINS,
                     money(size, compact=True)))
    changes = charts.signed_bars("The week's changes, by amount", rows)
    return {"conversion": conversion, "changes": changes}


def render_html(review: Review, page_deals: int = PAGE_DEALS, sign_out: str | None = None) -> str:
    """The page of ``review``; it lists the deals with money at risk, at most
    ``page_deals`` of them, most first; ``sign_out``: where its sign-out button posts,
    when the page is served behind a sign-in. The forecast section says "forecast: not
    computed" while ``review.forecast`` is None, and renders
    ``templates/forecast.html.j2`` when it is set."""
    env = environment()
    template = env.get_template("review.html.j2")
    return template.render(
        forecast_template=FORECAST_TEMPLATE if isinstance(review.forecast, ForecastSection)
        else None,
        review=review, sign_out=sign_out, current=review.current, now=review.overall[-1],
        before=review.overall[-2] if len(review.overall) > 1 else None,
        deals=[d for d in review.at_risk.deals if d.money_at_risk > 0][:page_deals],
        charts=_charts(review), labels=LABELS, run_backtest=RUN_ONE,
        page_deals=page_deals, gains=GAINS, stage_rank={s: i for i, s in enumerate(OPEN_STAGES)},
    )
