"""The forecast of bookings for the current and the next period, as of a time.

P(a deal closes won inside a period) = P(won) x P(it closes inside the period | won):
the first from the ``deal_close`` model's calibrated probability, scored on the deal's
features as of the time (``features.build.build_features``, the computation serving
scores with), the second from the time-to-close model. Deals not created yet add the
past rate of deals created and won inside one period. A Monte Carlo over the deals gives
P10 / P50 / P90, beside closed-won so far and the weighted pipelines a CRM shows (its
default stage probabilities, and its stage win rates), each with its own range from the
same Monte Carlo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.build import build_features
from features.schema import OPEN_STAGES, CRMTables
from features.sets import DEAL_V1
from forecast.new_deals import new_deal_rates
from forecast.periods import Period, PeriodKind, check_kind, period_of, utc
from forecast.pipelines import crm_default_weights, expected_in, stage_weights, stage_win_rates
from forecast.simulate import NO_NEW_WINS, quantiles, simulate

DRAWS = 10_000
METHODS = ("model", "crm_default", "stage_rate")
"""Every forecast's methods: ours, the CRM-default weighted pipeline, the stage-rate one."""


class DealScorer(Protocol):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


class TimeModel(Protocol):
    def prob_closed_within(self, frame: pd.DataFrame, days: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Range:
    """A distribution of bookings: its P10 / P50 / P90 and mean."""

    p10: float
    p50: float
    p90: float
    mean: float

    @classmethod
    def of(cls, samples: np.ndarray, offset: float = 0.0) -> Range:
        q10, q50, q90 = quantiles(samples)
        return cls(q10 + offset, q50 + offset, q90 + offset, float(samples.mean()) + offset)

    def holds(self, value: float) -> bool:
        return bool(self.p10 <= value <= self.p90)


@dataclass(frozen=True)
class PeriodForecast:
    period: str
    start: str
    end: str
    closed_won: float
    """Won before the as-of time inside the period."""
    bookings: Range
    """Ours: closed-won so far + the open deals + deals not created yet."""
    open_expected: float
    """Sum over open deals of amount x P(won inside the period)."""
    new_deals_expected: float
    """Expected wins from deals created after the as-of time."""
    crm_default_weighted: float
    """Closed-won so far + the CRM-default weighted pipeline (10/20/40/60/80 %)."""
    stage_rate_weighted: float
    """Closed-won so far + the pipeline weighted by the stages' win rates."""
    crm_default: Range
    stage_rate: Range
    open_deals_expected_in: int
    """Open deals whose close date puts them in the period (the weighted pipelines')."""
    independent_cv: float = 0.0
    """Standard deviation / mean of what is still to close, over independent deals alone
    (before the common error): what a later forecast's :func:`spread_of` subtracts."""

    def range_of(self, method: str) -> Range:
        return {"model": self.bookings, "crm_default": self.crm_default,
                "stage_rate": self.stage_rate}[method]


@dataclass(frozen=True)
class DealForecast:
    opportunity_id: str
    stage: str
    amount: float
    close_date: str | None
    p_won: float
    p_close_current: float
    """P(closes inside the current period | won)."""
    p_won_current: float
    p_won_next: float


@dataclass(frozen=True)
class Forecast:
    """What the review shows as its forecast; JSON-serialisable by :meth:`to_json`."""

    as_of: str
    period_kind: PeriodKind
    draws: int
    seed: int
    current: PeriodForecast
    next: PeriodForecast
    deals: list[DealForecast]
    stage_win_rates: dict[str, float]
    spread: float = 0.0
    """The past periods' common error (:func:`spread_of`) the range was widened by."""
    spread_from: str = "none"
    """Where the past errors came from: ``backtest`` (forecasts made out of sample, each
    from its period's start with models trained then), ``same models`` (this forecast's
    models on the periods before, in sample) or ``none`` (a given spread, or none)."""
    shock_sd: tuple[float, float] = (0.0, 0.0)
    """The log shock's standard deviation in the current and the next period."""
    past_errors: list[PastError] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def open_deals(tables: CRMTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """``deal_v1`` features, as of ``as_of``, of every deal open then (created before it,
    not closed before it, in an open stage by its history)."""
    return open_deals_at(tables, [as_of])[0]


def open_deals_at(tables: CRMTables, times: list[pd.Timestamp]) -> list[pd.DataFrame]:
    """:func:`open_deals` at several times, from one pass of the feature computation."""
    opps = tables.opportunities
    ids, stamps = [], []
    for t in times:
        is_open = (opps["created_at"] < t) & (opps["closed_at"].isna() | (opps["closed_at"] >= t))
        chosen = opps.loc[is_open, "opportunity_id"].astype(str).to_numpy()
        ids.append(chosen)
        stamps.append(np.full(len(chosen), t.value, dtype=np.int64))
    snaps = pd.DataFrame({
        "opportunity_id": pd.array(np.concatenate(ids) if ids else [], dtype="string"),
        "as_of": pd.DatetimeIndex(np.concatenate(stamps).astype("datetime64[ns]"), tz="UTC"),
    })
    feats = build_features(tables, snaps, DEAL_V1)
    is_open_stage = feats["stage"].astype("object").isin(OPEN_STAGES).to_numpy()
    bounds = np.cumsum([0, *map(len, ids)])
    return [
        feats.iloc[lo:hi].loc[is_open_stage[lo:hi]].reset_index(drop=True)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


SPREAD_PERIODS = 6
"""Past periods whose forecast errors widen the range (see :func:`past_errors`)."""


@dataclass(frozen=True)
class PastError:
    period: str
    expected: float
    actual: float
    independent_cv: float = 0.0
    """The coefficient of variation the Monte Carlo over independent deals alone gives
    that period's bookings (its standard deviation / ``expected``)."""
    end: str = ""
    """The period's end (ISO): a forecast only uses errors of periods over by its time."""


def errors_from_json(saved: dict[str, Any]) -> list[PastError]:
    """Our errors in a saved ``backtest.json`` (``modeling.registry.last_backtest``),
    warm-up periods first, oldest first: what a forecast after them can rest its range on.
    None from a backtest saved before its periods carried their expectation."""
    out = []
    for r in [*saved.get("warmup_periods", []), *saved.get("periods", [])]:
        if "expected" not in r or "end" not in r:
            return []
        out.append(PastError(str(r["period"]), float(r["expected"]), float(r["actual"]),
                             float(r["independent_cv"]), str(r["end"])))
    return out


def _expected_and_variance(feats: pd.DataFrame, p_won: np.ndarray, time_model: TimeModel,
                           as_of: pd.Timestamp, end: pd.Timestamp) -> tuple[float, float]:
    """Sum over the open deals of amount x P(won by ``end``), and the variance of the
    sum of independent wins (amount^2 x p x (1 - p))."""
    if not len(feats):
        return 0.0, 0.0
    days = np.array([(end - as_of) / pd.Timedelta(days=1)])
    q = p_won * time_model.prob_closed_within(feats, days)[:, 0]
    amounts = feats["amount"].astype("float64").fillna(0.0).to_numpy()
    return float(q @ amounts), float((q * (1.0 - q)) @ amounts**2)


def expected_won(feats: pd.DataFrame, p_won: np.ndarray, time_model: TimeModel,
                 as_of: pd.Timestamp, end: pd.Timestamp) -> float:
    """Sum of amount x P(won) x P(closed by ``end`` | won) over the open deals."""
    return _expected_and_variance(feats, p_won, time_model, as_of, end)[0]


def past_errors(tables: CRMTables, as_of: pd.Timestamp, kind: str, deal_model: DealScorer,
                time_model: TimeModel, periods: int = SPREAD_PERIODS) -> list[PastError]:
    """The same models' expected bookings of each of the last ``periods`` whole periods
    before ``as_of``, from their start, beside what closed won in them.

    Their spread is what the Monte Carlo over independent deals leaves out: one period
    can run hot or cold for every deal at once (a slow quarter, a push at its end).
    """
    p = period_of(as_of, kind).previous()
    chosen: list[Period] = []
    while len(chosen) < periods and p.end <= as_of:
        chosen.append(p)
        p = p.previous()
    opps = tables.opportunities
    first = opps["created_at"].min() if len(opps) else as_of
    chosen = [q for q in chosen if q.start > first]
    frames = open_deals_at(tables, [q.start for q in chosen]) if chosen else []
    out = []
    for q, feats in zip(chosen, frames, strict=True):
        p_won = (np.asarray(deal_model.predict_proba(feats), dtype=float) if len(feats)
                 else np.zeros(0))
        expected, variance = _expected_and_variance(feats, p_won, time_model, q.start, q.end)
        new = new_deal_rates(tables, q.start, kind).current
        expected += new.expected_amount
        if len(new.amounts):  # a compound Poisson sum: lambda x E[amount^2]
            variance += new.expected_count * float(np.mean(new.amounts**2))
        cv = float(np.sqrt(variance) / expected) if expected > 0 else 0.0
        out.append(PastError(q.label, expected, _won_in(tables, q, as_of), cv,
                             q.end.isoformat()))
    return out


def spread_of(errors: list[PastError]) -> float:
    """The part of the past periods' error that independent deals do not explain.

    The mean square of log(actual / expected) (around 0: the P50 is not corrected for a
    bias, so a bias widens the range) minus the mean squared coefficient of variation of
    the Monte Carlo over independent deals, which already has that much; 0 when that is
    negative or with fewer than three periods.
    """
    used = _usable(errors)
    if len(used) < 3:
        return 0.0
    total = float(np.mean([np.log(e.actual / e.expected) ** 2 for e in used]))
    independent = float(np.mean([e.independent_cv**2 for e in used]))
    return float(np.sqrt(max(0.0, total - independent)))


def _usable(errors: list[PastError]) -> list[PastError]:
    return [e for e in errors if e.actual > 0 and e.expected > 0]


Z90 = 1.2815515655446004
"""The standard normal's 90th percentile."""


def t90_over_z90(dof: int) -> float:
    """Student's t 90th percentile with ``dof`` degrees of freedom, over the normal's: how
    much wider a P10-P90 is when its variance is estimated from ``dof`` squared errors
    (Cornish-Fisher expansion to 1/dof^2: 1.122 at 6, within 0.002 of the table)."""
    z, n = Z90, float(dof)
    t = z + (z**3 + z) / (4 * n) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)
    return t / z


def shock_sd(samples: np.ndarray, common: float, dof: int) -> float:
    """The standard deviation of the log shock that gives ``samples`` (the independent-
    deal draws) a total log spread of t90/z90 x sqrt(cv^2 + common^2)."""
    mean = float(samples.mean())
    cv = float(samples.std() / mean) if mean > 0 else 0.0
    k = t90_over_z90(dof) if dof >= 3 else 1.0
    return float(np.sqrt(max(0.0, (k**2 - 1.0) * cv**2 + k**2 * common**2)))


def _close_dates(feats: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    days = feats["days_to_close"].astype("float64")
    return pd.Series(as_of + pd.to_timedelta(days.to_numpy(), unit="D"), index=feats.index)


def _won_in(tables: CRMTables, period: Period, before: pd.Timestamp) -> float:
    opps = tables.opportunities
    won = opps["is_won"].fillna(False).astype(bool)
    at = opps["closed_at"]
    inside = won & at.notna() & (at >= period.start) & (at < min(period.end, before))
    return float(opps.loc[inside, "amount"].astype(float).sum())


def forecast(
    tables: CRMTables,
    as_of: pd.Timestamp | str,
    period: str,
    deal_model: DealScorer | None,
    time_model: TimeModel,
    *,
    p_won: np.ndarray | None = None,
    draws: int = DRAWS,
    seed: int = 0,
    new_deals: bool = True,
    spread: float | None = None,
    spread_periods: int = SPREAD_PERIODS,
    errors: list[PastError] | None = None,
    models: dict[str, Any] | None = None,
) -> Forecast:
    """Bookings of the period holding ``as_of`` and of the next, from ``tables`` as of then.

    ``p_won`` (one per open deal, in :func:`open_deals` order) replaces the deal model's
    probabilities: the oracle's forecast on generated data. Everything reads rows dated
    before ``as_of`` only.

    Our range multiplies each draw of what is still to close by exp(s x Z), Z standard
    normal: ``spread``, the periods' common error which independent deals do not have,
    and, when it is measured, the widening of a range whose variance rests on that few
    periods (:func:`shock_sd`). It is measured on ``errors`` when given: forecasts of
    past periods made out of sample (a backtest's, each from its period's start with
    models trained then), the last ``spread_periods`` of them. Else, with ``spread``
    None, on the last ``spread_periods`` periods by :func:`past_errors` with this
    forecast's own models, in sample (0 without a deal model).
    """
    kind = check_kind(period)
    t = utc(as_of)
    current = period_of(t, kind)
    nxt = current.next()
    feats = open_deals(tables, t)
    n = len(feats)
    if p_won is None:
        if deal_model is None:
            raise ValueError("give a deal model or the probabilities of winning")
        won_p = np.asarray(deal_model.predict_proba(feats), dtype=float) if n else np.zeros(0)
    else:
        won_p = np.asarray(p_won, dtype=float)
        if len(won_p) != n:
            raise ValueError(f"p_won has {len(won_p)} values for {n} open deals")
    day = pd.Timedelta(days=1)
    to_end = np.array([(current.end - t) / day, (nxt.end - t) / day])
    closed_by = (time_model.prob_closed_within(feats, to_end) if n
                 else np.zeros((0, 2)))
    p_cur = won_p * closed_by[:, 0]
    p_nxt = won_p * np.clip(closed_by[:, 1] - closed_by[:, 0], 0.0, None)
    amounts = feats["amount"].astype("float64").fillna(0.0).to_numpy()
    rates = new_deal_rates(tables, t, kind) if new_deals else None
    new_cur = rates.current if rates else NO_NEW_WINS
    new_nxt = rates.next if rates else NO_NEW_WINS
    cur_s, nxt_s = simulate(amounts, p_cur, p_nxt, new_cur, new_nxt, draws=draws, seed=seed)
    cvs = [float(x.std() / x.mean()) if x.mean() > 0 else 0.0 for x in (cur_s, nxt_s)]
    dof = 0
    spread_from = "none"
    if errors is not None:
        errors = [e for e in errors if not e.end or utc(e.end) <= t][-spread_periods:]
        spread_from = "backtest"
    elif spread is None and deal_model is not None:
        errors = past_errors(tables, t, kind, deal_model, time_model, spread_periods)
        spread_from = "same models"
    if errors is not None:
        spread = spread_of(errors)
        dof = len(_usable(errors))
    errors = errors or []
    spread = spread or 0.0
    sds = (shock_sd(cur_s, spread, dof), shock_sd(nxt_s, spread, dof))
    z = np.random.default_rng([seed, 1]).standard_normal((2, draws))
    cur_s, nxt_s = cur_s * np.exp(sds[0] * z[0]), nxt_s * np.exp(sds[1] * z[1])

    stages = feats["stage"].astype("object").to_numpy()
    close = _close_dates(feats, t)
    in_cur = expected_in(close, current, t, current=True)
    in_nxt = expected_in(close, nxt, t, current=False)
    win_rates = stage_win_rates(tables, t)
    weights = {"crm_default": crm_default_weights(stages),
               "stage_rate": stage_weights(stages, win_rates)}
    closed_cur = _won_in(tables, current, t)
    baseline: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, (name, w) in enumerate(weights.items()):
        baseline[name] = simulate(amounts, w * in_cur, w * in_nxt, draws=draws, seed=seed + 1 + i)

    def period_forecast(p: Period, samples: np.ndarray, j: int, closed: float,
                        expected: np.ndarray, new_expected: float, inside: np.ndarray
                        ) -> PeriodForecast:
        return PeriodForecast(
            period=p.label, start=p.start.isoformat(), end=p.end.isoformat(),
            closed_won=closed,
            bookings=Range.of(samples, closed),
            open_expected=float(expected @ amounts) if n else 0.0,
            new_deals_expected=new_expected,
            crm_default_weighted=closed + float((weights["crm_default"] * inside) @ amounts),
            stage_rate_weighted=closed + float((weights["stage_rate"] * inside) @ amounts),
            crm_default=Range.of(baseline["crm_default"][j], closed),
            stage_rate=Range.of(baseline["stage_rate"][j], closed),
            open_deals_expected_in=int(inside.sum()), independent_cv=cvs[j],
        )

    deals = [
        DealForecast(
            opportunity_id=str(feats["opportunity_id"].iat[i]), stage=str(stages[i]),
            amount=float(amounts[i]),
            close_date=None if pd.isna(close.iat[i]) else close.iat[i].isoformat(),
            p_won=float(won_p[i]), p_close_current=float(closed_by[i, 0]),
            p_won_current=float(p_cur[i]), p_won_next=float(p_nxt[i]),
        )
        for i in range(n)
    ]
    return Forecast(
        as_of=t.isoformat(), period_kind=kind, draws=draws, seed=seed,
        current=period_forecast(current, cur_s, 0, closed_cur, p_cur, new_cur.expected_amount,
                                in_cur),
        next=period_forecast(nxt, nxt_s, 1, 0.0, p_nxt, new_nxt.expected_amount, in_nxt),
        deals=deals, stage_win_rates=win_rates, spread=spread, spread_from=spread_from,
        shock_sd=sds,
        past_errors=errors,
        models=dict(models or {}),
    )
