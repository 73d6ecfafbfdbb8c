"""A synthetic B2B CRM whose ground truth is known exactly.

Why a simulator: a model's test AUC means little without the best score any model could
reach on the same rows. Here every lead and deal is driven by a small continuous-time
Markov chain over *hidden* states, and every table row a model reads is an emission of
those states. Because the chains are Markov, the probability of the label given the hidden
state at any time ``t`` has a closed form (leads) or a 10-state linear solve (deals): that
is the oracle in ``leadscore.truth``.

Leads. Each lead has a hidden intent ``z`` (source, seniority, function, firmographic fit,
noise). It starts ``cold``; it may turn ``hot`` (buying now), go ``dead`` (interest gone)
or, rarely, qualify straight from cold. A hot lead qualifies or dies. Activity rates depend
on the state: quiet when cold (scaled by intent), a burst when hot, fading when dead. Dead
leads are disqualified by sales some weeks later, or linger open. Qualified leads become
opportunities.

Deals. Each deal has a hidden quality (the lead's intent, the rep's skill, the product,
the account's fit, noise) and a hidden regime, ``healthy`` or ``troubled``. In each open
stage, prospecting -> qualification -> meeting_demo -> proposal -> negotiation, it advances,
is lost, moves back a stage or switches regime, at rates set by stage, regime and quality.
Troubled deals advance slowly, get lost often, have their close date pushed and amount cut,
and go quiet. Near quarter end, every rate in proposal and negotiation speeds up by the same
factor (a change of clock that leaves the win probability unchanged, so the oracle stays
exact). Won deals bring renewals and expansions (deals with no lead).

Nothing of the hidden state is written into the tables: it goes to ``_truth/`` beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.schema import ACTIVITY_TYPES, OPEN_STAGES, TABLES, CRMTables, coerce_dtypes
from leadscore.truth import TRUTH_DIR

DAY_NS = 86_400 * 10**9

# ---------------------------------------------------------------------------------------
# Vocabularies and effects on hidden intent / quality (log-rate units).
SOURCES = (
    "inbound_web_form", "webinar", "referral", "paid_search", "cold_outbound", "event",
    "partner",
)
SOURCE_WEIGHTS = np.array([0.22, 0.12, 0.07, 0.18, 0.25, 0.08, 0.08])
SOURCE_EFFECT = np.array([0.55, 0.25, 1.0, -0.15, -0.9, 0.05, 0.45])

SENIORITIES = ("c_level", "vp", "director", "manager", "individual", "unknown")
SENIORITY_WEIGHTS = np.array([0.06, 0.10, 0.18, 0.26, 0.28, 0.12])
SENIORITY_EFFECT = np.array([0.45, 0.4, 0.3, 0.05, -0.35, 0.0])
SENIORITY_TITLE = ("Chief {f} Officer", "VP of {f}", "Director of {f}", "{f} Manager",
                   "{f} Specialist", "{f}")

FUNCTIONS = ("sales", "marketing", "it", "finance", "operations", "engineering", "hr",
             "other")
FUNCTION_WEIGHTS = np.array([0.2, 0.18, 0.16, 0.1, 0.12, 0.12, 0.06, 0.06])
FUNCTION_EFFECT = np.array([0.35, 0.2, 0.3, 0.0, 0.1, 0.15, -0.35, -0.4])
FUNCTION_LABEL = ("Sales", "Marketing", "IT", "Finance", "Operations", "Engineering",
                  "People", "Office")

INDUSTRIES = ("software", "financial_services", "healthcare", "manufacturing", "retail",
              "education", "logistics", "media", "government", "energy")
INDUSTRY_WEIGHTS = np.array([0.2, 0.13, 0.11, 0.13, 0.1, 0.07, 0.08, 0.07, 0.05, 0.06])
INDUSTRY_EFFECT = np.array([0.5, 0.35, 0.1, 0.1, -0.1, -0.3, 0.0, -0.15, -0.45, 0.05])

COUNTRIES = ("US", "GB", "DE", "FR", "CA", "AU", "NL", "IN", "BR", "ES")
COUNTRY_WEIGHTS = np.array([0.42, 0.12, 0.1, 0.07, 0.07, 0.05, 0.05, 0.05, 0.04, 0.03])
COUNTRY_EFFECT = np.array([0.15, 0.1, 0.05, 0.0, 0.1, 0.05, 0.05, -0.3, -0.25, -0.1])

PRODUCTS = ("starter", "professional", "enterprise", "renewal", "expansion")
PRODUCT_BASE_AMOUNT = np.array([9_000.0, 28_000.0, 85_000.0, 0.0, 0.0])
PRODUCT_EFFECT = np.array([0.25, 0.0, -0.35, 1.0, 0.5])

# Activity types in ACTIVITY_TYPES order, and the share of each that is inbound.
N_TYPES = len(ACTIVITY_TYPES)
INBOUND_SHARE = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.1, 0.0])


def _rates(**kw: float) -> np.ndarray:
    out = np.zeros(N_TYPES)
    for name, value in kw.items():
        out[ACTIVITY_TYPES.index(name)] = value
    return out


# Lead activity rates per day, by hidden state. Inbound engagement scales with intent.
LEAD_COLD = _rates(email_opened=0.15, email_clicked=0.04, web_visit=0.15,
                   content_download=0.03, pricing_page_visit=0.008, webinar_attended=0.006)
LEAD_COLD_OUT = _rates(email_sent=0.12, call=0.02)
LEAD_HOT = _rates(email_opened=0.3, email_clicked=0.12, email_replied=0.1, web_visit=0.4,
                  pricing_page_visit=0.2, content_download=0.05, form_submitted=0.06,
                  webinar_attended=0.02, email_sent=0.2, call=0.1, meeting=0.05, demo=0.03)
LEAD_DEAD_FACTOR = 0.01
LEAD_DEAD_DAYS = 45.0

# Deal activity rates per day by stage (rows) for a healthy deal; troubled deals x0.25.
DEAL_RATES = np.stack([
    _rates(email_sent=0.25, email_opened=0.15, email_replied=0.06, call=0.1, meeting=0.03),
    _rates(email_sent=0.2, email_opened=0.15, email_replied=0.08, call=0.08, meeting=0.08,
           web_visit=0.05),
    _rates(email_sent=0.2, email_opened=0.12, email_replied=0.08, call=0.06, meeting=0.08,
           demo=0.12, web_visit=0.06, pricing_page_visit=0.04),
    _rates(email_sent=0.2, email_opened=0.15, email_replied=0.1, call=0.08, meeting=0.06,
           pricing_page_visit=0.08, content_download=0.02),
    _rates(email_sent=0.25, email_opened=0.15, email_replied=0.12, call=0.12, meeting=0.08),
])
TROUBLED_ACTIVITY_FACTOR = 0.15

# Deal stage dynamics (per day), healthy regime at quality 0.
ADVANCE = 0.78 * np.array([1 / 12, 1 / 18, 1 / 18, 1 / 22, 1 / 16])
LOSE = 0.78 * np.array([0.035, 0.022, 0.018, 0.014, 0.010])
BACK = np.array([0.0, 0.003, 0.003, 0.004, 0.005])
TO_TROUBLED = 0.007
TO_HEALTHY = 0.004
TROUBLED_ADVANCE = 0.35
TROUBLED_LOSE = 4.0
QUARTER_END_DAYS = 15.0
QUARTER_END_SPEEDUP = 2.5
PRESSURE_STAGES = (3, 4)
# Within-state emissions that write history rows (per day): healthy, troubled.
PUSH_RATE = (0.004, 0.05)
CUT_RATE = (0.001, 0.02)
RAISE_RATE = (0.003, 0.0005)
MAX_DEAL_STEPS = 80


@dataclass(frozen=True)
class GeneratorConfig:
    n_leads: int
    seed: int = 0
    start: str = "2024-01-01"
    months: int = 24

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def end_ts(self) -> pd.Timestamp:
        return self.start_ts + pd.DateOffset(months=self.months)

    @property
    def days(self) -> float:
        return float((self.end_ts - self.start_ts) / pd.Timedelta(days=1))


@dataclass(frozen=True)
class GeneratedCRM:
    """The five contract tables (as Arrow) and the hidden truth behind them."""

    config: GeneratorConfig
    arrow: dict[str, pa.Table]
    truth: dict[str, pa.Table]

    @property
    def tables(self) -> CRMTables:
        frames = {
            name: coerce_dtypes(tbl.to_pandas(), TABLES[name]) for name, tbl in self.arrow.items()
        }
        return CRMTables(**frames)


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


# ---------------------------------------------------------------------------------------
# Small vectorised helpers.


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()),
                          width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def _take(ids: pa.Array, idx: np.ndarray) -> pa.Array:
    """ids[idx], with idx < 0 meaning null."""
    mask = idx < 0
    out = ids.take(pa.array(np.where(mask, 0, idx)))
    if mask.any():
        out = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), out)
    return out


def _ts(start_ns: int, days: np.ndarray) -> pa.Array:
    """Day offsets to UTC timestamps, rounded to the second; NaN becomes null."""
    mask = np.isnan(days)
    secs = np.round(np.where(mask, 0.0, days) * 86_400.0).astype(np.int64)
    ns = start_ns + secs * 10**9
    return pa.array(ns, type=pa.timestamp("ns", tz="UTC"), mask=mask)


def _dates(start_ns: int, days: np.ndarray) -> pa.Array:
    """Day offsets to midnight UTC of that day (expected close dates are dates)."""
    mask = np.isnan(days)
    start_day = start_ns // DAY_NS
    whole = np.floor(np.where(mask, 0.0, days)).astype(np.int64)
    ns = (start_day + whole) * DAY_NS
    return pa.array(ns, type=pa.timestamp("ns", tz="UTC"), mask=mask)


def _choice(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=weights / weights.sum())


def _emit(
    rng: np.random.Generator,
    start: np.ndarray,
    end: np.ndarray,
    rates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson emissions on intervals: (interval index, time, type) per event.

    ``rates`` is (n_intervals, n_types) per day. Event times are uniform in the interval,
    which is what a homogeneous Poisson process gives once its count is known.
    """
    dur = np.maximum(end - start, 0.0)
    counts = rng.poisson(rates * dur[:, None])
    flat = np.repeat(np.arange(counts.size), counts.ravel())
    interval = flat // rates.shape[1]
    kind = flat % rates.shape[1]
    time = start[interval] + rng.random(interval.size) * dur[interval]
    return interval, time, kind


def _quarter_windows(cfg: GeneratorConfig, horizon_days: float) -> np.ndarray:
    """(start, end) day offsets of the last QUARTER_END_DAYS of every quarter."""
    ends = pd.date_range(cfg.start_ts, cfg.start_ts + pd.Timedelta(days=horizon_days),
                         freq="QS", inclusive="right")
    out = []
    for e in ends:
        d = float((e - cfg.start_ts) / pd.Timedelta(days=1))
        out.append((d - QUARTER_END_DAYS, d))
    return np.array(out, dtype=float).reshape(-1, 2)


def _advance_clock(t0: np.ndarray, intrinsic: np.ndarray, windows: np.ndarray,
                   speed: float) -> np.ndarray:
    """Wall time at which ``intrinsic`` days of work end, starting at t0, when work runs
    ``speed`` times faster inside the windows."""
    t = t0.copy()
    rem = intrinsic.copy()
    for ws, we in windows:
        before = np.clip(ws - t, 0.0, None)
        step = np.minimum(rem, before)
        t += step
        rem -= step
        inside = (rem > 0) & (t >= ws) & (t < we)
        cap = (we - t) * speed
        step = np.where(inside, np.minimum(rem, cap), 0.0)
        t += step / speed
        rem -= step
    return t + rem


# ---------------------------------------------------------------------------------------
# Deal chain: rates, exact win probabilities, simulation.


def deal_rates(quality: np.ndarray) -> dict[str, np.ndarray]:
    """Per-deal rate arrays of shape (n, 5 stages, 2 regimes)."""
    q = quality[:, None, None]
    regime_adv = np.array([1.0, TROUBLED_ADVANCE])[None, None, :]
    regime_lose = np.array([1.0, TROUBLED_LOSE])[None, None, :]
    adv = ADVANCE[None, :, None] * np.exp(0.25 * q) * regime_adv
    lose = LOSE[None, :, None] * np.exp(-0.7 * q) * regime_lose
    back = np.broadcast_to(BACK[None, :, None], adv.shape).copy()
    switch = np.empty_like(adv)
    switch[..., 0] = TO_TROUBLED * np.exp(-0.6 * quality)[:, None]
    switch[..., 1] = TO_HEALTHY * np.exp(0.3 * quality)[:, None]
    return {"advance": adv, "lose": lose, "back": back, "switch": switch}


def deal_win_probabilities(quality: np.ndarray) -> np.ndarray:
    """P(eventually won | stage, regime) for each deal: shape (n, 5, 2).

    Absorbing-chain solve on the 10 transient states (stage x regime).
    """
    r = deal_rates(quality)
    n, n_stages = quality.shape[0], len(OPEN_STAGES)
    size = n_stages * 2
    a = np.zeros((n, size, size))
    b = np.zeros((n, size))
    for s in range(n_stages):
        for g in range(2):
            i = s * 2 + g
            adv, lose = r["advance"][:, s, g], r["lose"][:, s, g]
            back, sw = r["back"][:, s, g], r["switch"][:, s, g]
            a[:, i, i] = adv + lose + back + sw
            if s + 1 < n_stages:
                a[:, i, (s + 1) * 2 + g] -= adv
            else:
                b[:, i] = adv
            if s > 0:
                a[:, i, (s - 1) * 2 + g] -= back
            a[:, i, s * 2 + (1 - g)] -= sw
    p = np.linalg.solve(a, b[..., None])[..., 0]
    return np.asarray(p.reshape(n, n_stages, 2))


@dataclass
class _DealRun:
    """Hidden trajectories of a batch of deals (indices into the batch)."""

    seg_deal: np.ndarray
    seg_start: np.ndarray
    seg_end: np.ndarray
    seg_stage: np.ndarray
    seg_regime: np.ndarray
    seg_next: np.ndarray  # 0 advance, 1 lose, 2 back, 3 switch, -1 cut off (still open)
    closed_at: np.ndarray
    won: np.ndarray


def _simulate_deals(
    rng: np.random.Generator,
    created: np.ndarray,
    start_stage: np.ndarray,
    start_regime: np.ndarray,
    quality: np.ndarray,
    windows: np.ndarray,
    horizon: float,
) -> _DealRun:
    n = created.size
    r = deal_rates(quality)
    stage = start_stage.copy()
    regime = start_regime.copy()
    t = created.copy()
    closed_at = np.full(n, np.nan)
    won = np.zeros(n, dtype=bool)
    active = np.arange(n)
    segs: list[tuple[np.ndarray, ...]] = []
    for _ in range(MAX_DEAL_STEPS):
        if active.size == 0:
            break
        s, g = stage[active], regime[active]
        adv = r["advance"][active, s, g]
        lose = r["lose"][active, s, g]
        back = r["back"][active, s, g]
        sw = r["switch"][active, s, g]
        total = adv + lose + back + sw
        intrinsic = rng.exponential(size=active.size) / total
        t0 = t[active]
        plain_end = t0 + intrinsic
        pressured = np.isin(s, PRESSURE_STAGES)
        t1 = plain_end
        if pressured.any():
            t1 = plain_end.copy()
            t1[pressured] = _advance_clock(t0[pressured], intrinsic[pressured], windows,
                                           QUARTER_END_SPEEDUP)
        u = rng.random(active.size) * total
        event = np.where(u < adv, 0, np.where(u < adv + lose, 1, np.where(u < adv + lose + back,
                                                                            2, 3)))
        cut = t1 > horizon
        event = np.where(cut, -1, event)
        t1 = np.minimum(t1, horizon)
        segs.append((active, t0, t1, s, g, event))
        t[active] = t1
        win_now = (event == 0) & (s == len(OPEN_STAGES) - 1)
        lost_now = event == 1
        closed_at[active[win_now | lost_now]] = t1[win_now | lost_now]
        won[active[win_now]] = True
        stage[active] = np.where(event == 0, s + 1, np.where(event == 2, s - 1, s))
        regime[active] = np.where(event == 3, 1 - g, g)
        keep = (event >= 0) & ~win_now & ~lost_now
        active = active[keep]
    if active.size:  # a deal that never settles is closed lost by its owner
        closed_at[active] = t[active]
    cols = [np.concatenate(c) for c in zip(*segs, strict=True)]
    return _DealRun(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], closed_at, won)


# ---------------------------------------------------------------------------------------
# Lead chain.


def lead_rates(z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-lead transition rates per day from the hidden intent z."""
    return {
        "to_hot": 0.02 * np.exp(0.9 * z),
        "to_dead": 0.02 * np.exp(-0.4 * z),
        "cold_qualify": 0.002 * np.exp(0.9 * z),
        "hot_qualify": 0.12 * np.exp(0.2 * z),
        "hot_dead": np.full_like(z, 0.04),
    }


# ---------------------------------------------------------------------------------------
# The generator.


def generate_crm(
    n_leads: int,
    seed: int = 0,
    start: str = "2024-01-01",
    months: int = 24,
    progress: Progress = _noop,
) -> GeneratedCRM:
    """Simulate a CRM of ``n_leads`` leads over ``months`` months from ``start``."""
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    cfg = GeneratorConfig(n_leads=n_leads, seed=seed, start=start, months=months)
    rng = np.random.default_rng(seed)
    start_ns = int(cfg.start_ts.value)
    D = cfg.days

    # ---- accounts ---------------------------------------------------------------------
    progress("accounts")
    n_acc = max(1, int(round(n_leads / 2.5)))
    acc_industry = _choice(rng, n_acc, INDUSTRY_WEIGHTS)
    acc_country = _choice(rng, n_acc, COUNTRY_WEIGHTS)
    acc_employees = np.maximum(5, np.round(np.exp(rng.normal(5.0, 1.5, n_acc)))).astype(np.int64)
    log_emp = np.log(acc_employees)
    size_effect = -0.12 * (log_emp - 6.0) ** 2 + 0.25  # mid-market fits best
    acc_fit = (INDUSTRY_EFFECT[acc_industry] + COUNTRY_EFFECT[acc_country] + size_effect
               + rng.normal(0.0, 0.25, n_acc))
    acc_revenue = np.round(acc_employees * np.exp(rng.normal(np.log(180_000), 0.5, n_acc)), -3)

    # ---- leads ------------------------------------------------------------------------
    progress("leads")
    # Creation times with growth: density proportional to 1 + 0.6 t/D.
    u = rng.random(n_leads)
    g = 0.6
    lead_created = D * (np.sqrt(1 + g * (2 + g) * u) - 1) / g
    lead_created = np.sort(lead_created)
    # Leads cluster on accounts (Zipf-like weights).
    acc_w = 1.0 / np.arange(1, n_acc + 1) ** 0.6
    lead_acc = rng.choice(n_acc, size=n_leads, p=acc_w / acc_w.sum())
    lead_acc = rng.permutation(n_acc)[lead_acc]
    source = _choice(rng, n_leads, SOURCE_WEIGHTS)
    seniority = _choice(rng, n_leads, SENIORITY_WEIGHTS)
    function = _choice(rng, n_leads, FUNCTION_WEIGHTS)
    # Hidden intent.
    latent_need = rng.normal(0.0, 1.0, n_leads)
    z = (-1.35 + SOURCE_EFFECT[source] + SENIORITY_EFFECT[seniority]
         + FUNCTION_EFFECT[function] + 0.8 * acc_fit[lead_acc] + 0.3 * latent_need
         + rng.normal(0.0, 0.2, n_leads))
    # BANT answers for some leads (those who filled a qualifying form), tied to intent.
    has_bant = rng.random(n_leads) < np.where(np.isin(source, (0, 1, 2)), 0.55, 0.2)
    budget = rng.random(n_leads) < _sigmoid(0.9 * latent_need - 0.2)
    authority = rng.random(n_leads) < np.where(seniority <= 2, 0.8, 0.2)
    need = rng.random(n_leads) < _sigmoid(1.2 * latent_need + 0.4)
    timeline = np.round(np.exp(rng.normal(4.5 - 0.4 * latent_need, 0.5))).astype(np.int64)

    lr = lead_rates(z)
    exp1 = rng.exponential(size=(n_leads, 3))
    t_cold_hot = exp1[:, 0] / lr["to_hot"]
    t_cold_dead = exp1[:, 1] / lr["to_dead"]
    t_cold_q = exp1[:, 2] / lr["cold_qualify"]
    exp2 = rng.exponential(size=(n_leads, 2))
    t_hot_q = exp2[:, 0] / lr["hot_qualify"]
    t_hot_dead = exp2[:, 1] / lr["hot_dead"]
    cold_exit = np.minimum(np.minimum(t_cold_hot, t_cold_dead), t_cold_q)
    went_hot = t_cold_hot == cold_exit
    t_hot = np.where(went_hot, lead_created + t_cold_hot, np.nan)
    hot_q = went_hot & (t_hot_q < t_hot_dead)
    t_qual = np.where(t_cold_q == cold_exit, lead_created + t_cold_q,
                      np.where(hot_q, t_hot + t_hot_q, np.nan))
    t_dead = np.where(t_cold_dead == cold_exit, lead_created + t_cold_dead,
                      np.where(went_hot & ~hot_q, t_hot + t_hot_dead, np.nan))
    disq = ~np.isnan(t_dead) & (rng.random(n_leads) < 0.8)
    t_disq = np.where(disq, t_dead + rng.exponential(21.0, n_leads), np.nan)

    # Lead activities: cold, hot, dead intervals, clipped to the data's end.
    progress("lead activities")
    stop = np.fmin(np.fmin(t_qual, t_disq), D)
    cold_end = np.minimum(lead_created + cold_exit, stop)
    hot_end = np.minimum(np.fmin(t_qual, t_dead), stop)
    dead_end = np.minimum(t_dead + LEAD_DEAD_DAYS, stop)
    scale = np.exp(1.0 * (z + 1.0))[:, None]
    iv_start = np.concatenate([lead_created, np.nan_to_num(t_hot, nan=D),
                               np.nan_to_num(t_dead, nan=D)])
    iv_end = np.concatenate([cold_end, np.nan_to_num(hot_end, nan=D),
                             np.nan_to_num(dead_end, nan=D)])
    iv_lead = np.tile(np.arange(n_leads), 3)
    cold_rates = LEAD_COLD[None, :] * scale + LEAD_COLD_OUT[None, :]
    iv_rates = np.concatenate([
        cold_rates,
        np.broadcast_to(LEAD_HOT, (n_leads, N_TYPES)),
        LEAD_COLD[None, :] * scale * LEAD_DEAD_FACTOR + LEAD_COLD_OUT[None, :],
    ])
    a_iv, la_time, la_type = _emit(rng, iv_start, iv_end, iv_rates)
    la_lead = iv_lead[a_iv]
    del iv_rates, cold_rates

    # ---- reps and deals ---------------------------------------------------------------
    progress("deals")
    n_reps = max(4, n_leads // 1000)
    rep_skill = rng.normal(0.0, 0.5, n_reps)
    windows = _quarter_windows(cfg, D + 3 * 365)
    horizon = D + 3 * 365.0

    to_opp = ~np.isnan(t_qual) & (t_qual < D) & (rng.random(n_leads) < 0.9)
    opp_lead = np.flatnonzero(to_opp)
    opp_created = t_qual[opp_lead] + rng.random(opp_lead.size) * 2.0
    keep = opp_created < D
    opp_lead, opp_created = opp_lead[keep], opp_created[keep]
    n0 = opp_lead.size
    emp = acc_employees[lead_acc[opp_lead]]
    prod = np.where(emp > 1500, 2, np.where(emp > 150, 1, 0))
    prod = np.where(rng.random(n0) < 0.2, rng.integers(0, 3, n0), prod)
    batch = {
        "lead": opp_lead,
        "account": lead_acc[opp_lead],
        "created": opp_created,
        "product": prod,
        "owner": rng.integers(0, n_reps, n0),
        "start_stage": np.zeros(n0, dtype=np.int64),
        "base_quality": 0.3 * z[opp_lead],
    }
    all_batches: list[dict[str, np.ndarray]] = []
    runs: list[_DealRun] = []
    for _round in range(6):
        m = batch["created"].size
        if m == 0:
            break
        quality = (batch["base_quality"] + rep_skill[batch["owner"]]
                   + PRODUCT_EFFECT[batch["product"]] + 0.6 * acc_fit[batch["account"]]
                   + rng.normal(0.0, 0.2, m))
        start_regime = (rng.random(m) < _sigmoid(-1.6 - 0.8 * quality)).astype(np.int64)
        batch["quality"] = quality
        batch["start_regime"] = start_regime
        run = _simulate_deals(rng, batch["created"], batch["start_stage"], start_regime,
                              quality, windows, horizon)
        all_batches.append(batch)
        runs.append(run)
        # Post-purchase: renewals a year on, expansions within the year, for won deals.
        won_idx = np.flatnonzero(run.won & (run.closed_at < D))
        renew_at = run.closed_at[won_idx] + 330.0 + rng.random(won_idx.size) * 20.0
        renews = rng.random(won_idx.size) < 0.85
        expand = rng.random(won_idx.size) < 0.3
        expand_at = run.closed_at[won_idx] + 60.0 + rng.random(won_idx.size) * 240.0
        parent = np.concatenate([won_idx[renews], won_idx[expand]])
        created = np.concatenate([renew_at[renews], expand_at[expand]])
        kind = np.concatenate([np.full(renews.sum(), 3), np.full(expand.sum(), 4)])
        ok = created < D
        parent, created, kind = parent[ok], created[ok], kind[ok]
        batch = {
            "lead": np.full(parent.size, -1),
            "account": batch["account"][parent],
            "created": created,
            "product": kind,
            "owner": batch["owner"][parent],
            "start_stage": np.where(kind == 3, 3, 1).astype(np.int64),
            "base_quality": 0.7 * batch["quality"][parent],
            "_parent_batch": np.full(parent.size, len(all_batches) - 1),
            "_parent_idx": parent,
        }

    # Flatten rounds into one deal index space.
    progress("deal history")
    offsets = np.cumsum([0] + [b["created"].size for b in all_batches])
    n_opp = int(offsets[-1])

    def cat(key: str) -> np.ndarray:
        return np.concatenate([b[key] for b in all_batches]) if all_batches else np.array([])

    d_lead = cat("lead").astype(np.int64)
    d_acc = cat("account").astype(np.int64)
    d_created = cat("created").astype(float)
    d_product = cat("product").astype(np.int64)
    d_owner = cat("owner").astype(np.int64)
    d_start_stage = cat("start_stage").astype(np.int64)
    d_quality = cat("quality").astype(float)
    d_closed = np.concatenate([r.closed_at for r in runs]) if runs else np.array([])
    d_won = np.concatenate([r.won for r in runs]) if runs else np.array([], dtype=bool)
    parent_global = np.full(n_opp, -1)
    for k, b in enumerate(all_batches):
        if "_parent_idx" in b:
            parent_global[offsets[k]: offsets[k + 1]] = offsets[b["_parent_batch"]] + b[
                "_parent_idx"]

    # Initial amount and expected close date.
    emp = acc_employees[d_acc].astype(float)
    base_amt = PRODUCT_BASE_AMOUNT[d_product] * (emp / 200.0) ** 0.25
    amount0 = np.round(base_amt * np.exp(rng.normal(0.0, 0.4, n_opp)), -2)
    # Renewals and expansions take their amount from the deal they follow; parents sit in
    # earlier rounds, so resolving round by round sees every parent's amount first.
    factor = np.where(d_product == 3, 0.9 + 0.25 * rng.random(n_opp),
                      0.2 + 0.3 * rng.random(n_opp))
    for k in range(1, len(all_batches)):
        idx = np.arange(offsets[k], offsets[k + 1])
        amount0[idx] = np.maximum(100.0, np.round(amount0[parent_global[idx]] * factor[idx], -2))
    close0 = np.floor(d_created + 45.0 + 75.0 * rng.random(n_opp)
                      - 10.0 * d_start_stage)

    # Segments (global deal index).
    seg_deal = np.concatenate([offsets[k] + r.seg_deal for k, r in enumerate(runs)])
    seg_start = np.concatenate([r.seg_start for r in runs])
    seg_end = np.concatenate([r.seg_end for r in runs])
    seg_stage = np.concatenate([r.seg_stage for r in runs])
    seg_regime = np.concatenate([r.seg_regime for r in runs])
    seg_next = np.concatenate([r.seg_next for r in runs])

    # Contacts engaged per deal: better deals are multi-threaded.
    n_contacts = 1 + rng.poisson(0.2 + 2.5 * _sigmoid(1.5 * d_quality), n_opp)

    # Emissions in each segment: activities, pushes, amount changes.
    progress("deal activities")
    act_rates = DEAL_RATES[seg_stage] * (np.where(
        seg_regime == 1, TROUBLED_ACTIVITY_FACTOR, 1.0) * np.exp(0.8 * d_quality[seg_deal]))[
        :, None]
    a_seg, da_time, da_type = _emit(rng, seg_start, seg_end, act_rates)
    da_deal = seg_deal[a_seg]
    del act_rates
    ev_rates = np.stack([
        np.take(PUSH_RATE, seg_regime), np.take(CUT_RATE, seg_regime),
        np.take(RAISE_RATE, seg_regime)], axis=1)
    e_seg, ev_time, ev_kind = _emit(rng, seg_start, seg_end, ev_rates)
    ev_deal = seg_deal[e_seg]
    ev_stage = seg_stage[e_seg]

    # History rows: creation, stage moves, pushes / amount changes, close.
    moved = (seg_next == 0) | (seg_next == 2)
    won_final = moved & (seg_next == 0) & (seg_stage == len(OPEN_STAGES) - 1)
    move = moved & ~won_final
    mv_stage = np.where(seg_next == 0, seg_stage + 1, seg_stage - 1)[move]
    n_ev = ev_deal.size
    h_deal = np.concatenate([np.arange(n_opp), seg_deal[move], ev_deal,
                             np.flatnonzero(~np.isnan(d_closed))])
    closed_idx = np.flatnonzero(~np.isnan(d_closed))
    h_time = np.concatenate([d_created, seg_end[move], ev_time, d_closed[closed_idx]])
    h_stage = np.concatenate([
        d_start_stage, mv_stage, ev_stage,
        np.where(d_won[closed_idx], len(OPEN_STAGES), len(OPEN_STAGES) + 1)])
    push_days = np.where(ev_kind == 0, np.round(7 + 38 * rng.random(n_ev)), 0.0)
    amt_factor = np.where(ev_kind == 1, 1.0 - (0.1 + 0.3 * rng.random(n_ev)),
                          np.where(ev_kind == 2, 1.0 + (0.05 + 0.25 * rng.random(n_ev)), 1.0))
    h_push = np.concatenate([np.zeros(n_opp + move.sum()), push_days,
                             np.zeros(closed_idx.size)])
    h_factor = np.concatenate([np.ones(n_opp + move.sum()), amt_factor,
                               np.ones(closed_idx.size)])
    h_order = np.concatenate([np.zeros(n_opp), np.ones(move.sum()), np.full(n_ev, 2.0),
                              np.full(closed_idx.size, 3.0)])
    order = np.lexsort((h_order, h_time, h_deal))
    h_deal, h_time, h_stage = h_deal[order], h_time[order], h_stage[order]
    h_push, h_factor = h_push[order], h_factor[order]
    hist = pd.DataFrame({"deal": h_deal, "push": h_push, "logf": np.log(h_factor)})
    cum_push = hist.groupby("deal", sort=False)["push"].cumsum().to_numpy()
    cum_logf = hist.groupby("deal", sort=False)["logf"].cumsum().to_numpy()
    h_amount = np.round(amount0[h_deal] * np.exp(cum_logf), -2)
    h_close = close0[h_deal] + cum_push
    is_close_row = h_stage >= len(OPEN_STAGES)
    h_close = np.where(is_close_row, np.floor(h_time), h_close)
    visible = h_time < D
    # A deal created after the data's end does not exist; one closing after it is open.
    d_closed_vis = np.where(d_closed < D, d_closed, np.nan)

    # ---- activities table ----------------------------------------------------------------
    progress("activities table")
    n_la, n_da = la_time.size, da_time.size
    a_time = np.concatenate([la_time, da_time])
    a_type = np.concatenate([la_type, da_type])
    a_lead = np.concatenate([la_lead, d_lead[da_deal]])
    a_deal = np.concatenate([np.full(n_la, -1), da_deal])
    a_acc = np.concatenate([lead_acc[la_lead], d_acc[da_deal]])
    # Contacts: a lead is one contact; a deal's activities spread over its contacts.
    contact_base = np.concatenate([[0], np.cumsum(n_contacts)])
    da_contact = n_leads + contact_base[da_deal] + (
        rng.random(n_da) * n_contacts[da_deal]).astype(np.int64)
    # The lead's own contact is the deal's first contact.
    first_is_lead = (d_lead[da_deal] >= 0) & (da_contact == n_leads + contact_base[da_deal])
    da_contact = np.where(first_is_lead, d_lead[da_deal], da_contact)
    a_contact = np.concatenate([la_lead, da_contact])
    a_inbound = rng.random(a_time.size) < INBOUND_SHARE[a_type]
    keep_a = a_time < D
    a_order = np.argsort(a_time[keep_a], kind="stable")
    sel = np.flatnonzero(keep_a)[a_order]

    # ---- Arrow tables -------------------------------------------------------------------
    progress("writing tables")
    acc_ids = _ids("ACC", n_acc, 7)
    lead_ids = _ids("LEAD", n_leads, 8)
    opp_ids = _ids("OPP", n_opp, 7)
    rep_ids = _ids("REP", n_reps, 4)
    n_contact_ids = n_leads + int(contact_base[-1])
    contact_ids = _ids("CON", n_contact_ids, 8)

    acc_created = np.full(n_acc, np.nan)
    first_lead = pd.Series(lead_created).groupby(lead_acc).min()
    acc_created[first_lead.index.to_numpy()] = first_lead.to_numpy()
    acc_created = np.where(np.isnan(acc_created), rng.random(n_acc) * D, acc_created)
    acc_created = acc_created - rng.exponential(120.0, n_acc)
    acc_industry_blank = rng.random(n_acc) < 0.08
    industries = pa.array(INDUSTRIES)
    countries = pa.array(COUNTRIES)
    accounts = pa.table({
        "account_id": acc_ids,
        "name": pc.binary_join_element_wise(pa.scalar("Company "), pc.utf8_slice_codeunits(
            acc_ids, 3), ""),
        "industry": pc.if_else(pa.array(acc_industry_blank), pa.scalar(None, pa.string()),
                               industries.take(pa.array(acc_industry))),
        "employees": pa.array(acc_employees),
        "annual_revenue": pa.array(acc_revenue),
        "country": countries.take(pa.array(acc_country)),
        "created_at": _ts(start_ns, acc_created),
    })

    lead_opp = np.full(n_leads, -1)
    first_round = d_lead >= 0
    lead_opp[d_lead[first_round]] = np.flatnonzero(first_round)
    titles = np.array([t.format(f=FUNCTION_LABEL[f]) for t in SENIORITY_TITLE
                       for f in range(len(FUNCTIONS))], dtype=object)
    lead_title = pa.array(titles).take(pa.array(seniority * len(FUNCTIONS) + function))
    lead_industry_blank = rng.random(n_leads) < 0.12
    lead_emp_blank = rng.random(n_leads) < 0.25
    lead_emp = np.round(acc_employees[lead_acc] * np.exp(rng.normal(0, 0.2, n_leads)))

    def nullable_bool(values: np.ndarray, present: np.ndarray) -> pa.Array:
        return pa.array(values, mask=~present)

    qual_vis = np.where(t_qual < D, t_qual, np.nan)
    disq_vis = np.where(t_disq < D, t_disq, np.nan)
    leads = pa.table({
        "lead_id": lead_ids,
        "account_id": acc_ids.take(pa.array(lead_acc)),
        "created_at": _ts(start_ns, lead_created),
        "source": pa.array(SOURCES).take(pa.array(source)),
        "title": lead_title,
        "seniority": pa.array(SENIORITIES).take(pa.array(seniority)),
        "job_function": pa.array(FUNCTIONS).take(pa.array(function)),
        "country": countries.take(pa.array(acc_country[lead_acc])),
        "industry": pc.if_else(pa.array(lead_industry_blank | acc_industry_blank[lead_acc]),
                               pa.scalar(None, pa.string()),
                               industries.take(pa.array(acc_industry[lead_acc]))),
        "employees": pa.array(lead_emp.astype(np.int64), mask=lead_emp_blank),
        "budget_confirmed": nullable_bool(budget, has_bant),
        "is_decision_maker": nullable_bool(authority, has_bant),
        "need_stated": nullable_bool(need, has_bant),
        "timeline_days": pa.array(timeline, mask=~has_bant),
        "qualified_at": _ts(start_ns, qual_vis),
        "disqualified_at": _ts(start_ns, disq_vis),
        "opportunity_id": _take(opp_ids, lead_opp),
    })

    last_vis = pd.Series(np.arange(h_deal.size)[visible]).groupby(h_deal[visible]).max()
    cur_amount = np.full(n_opp, np.nan)
    cur_close = np.full(n_opp, np.nan)
    cur_amount[last_vis.index.to_numpy()] = h_amount[last_vis.to_numpy()]
    cur_close[last_vis.index.to_numpy()] = h_close[last_vis.to_numpy()]
    is_won_vis = np.where(np.isnan(d_closed_vis), False, d_won)
    opportunities = pa.table({
        "opportunity_id": opp_ids,
        "account_id": acc_ids.take(pa.array(d_acc)),
        "lead_id": _take(lead_ids, d_lead),
        "owner_id": rep_ids.take(pa.array(d_owner)),
        "created_at": _ts(start_ns, d_created),
        "product": pa.array(PRODUCTS).take(pa.array(d_product)),
        "amount": pa.array(cur_amount),
        "close_date": _dates(start_ns, cur_close),
        "closed_at": _ts(start_ns, d_closed_vis),
        "is_won": pa.array(is_won_vis, mask=np.isnan(d_closed_vis)),
    })

    stage_names = pa.array(list(OPEN_STAGES) + ["closed_won", "closed_lost"])
    hv = np.flatnonzero(visible)
    history = pa.table({
        "opportunity_id": opp_ids.take(pa.array(h_deal[hv])),
        "changed_at": _ts(start_ns, h_time[hv]),
        "stage": stage_names.take(pa.array(h_stage[hv])),
        "amount": pa.array(h_amount[hv]),
        "close_date": _dates(start_ns, h_close[hv]),
    })

    types = pa.array(ACTIVITY_TYPES)
    activities = pa.table({
        "activity_id": _ids("ACT", sel.size, 9),
        "occurred_at": _ts(start_ns, a_time[sel]),
        "account_id": acc_ids.take(pa.array(a_acc[sel])),
        "lead_id": _take(lead_ids, a_lead[sel]),
        "opportunity_id": _take(opp_ids, a_deal[sel]),
        "contact_id": contact_ids.take(pa.array(a_contact[sel])),
        "type": types.take(pa.array(a_type[sel])),
        "direction": pc.if_else(pa.array(a_inbound[sel]), pa.scalar("inbound"),
                                pa.scalar("outbound")),
    })

    # ---- truth ----------------------------------------------------------------------------
    progress("truth")
    p_win = deal_win_probabilities(d_quality) if n_opp else np.zeros((0, 5, 2))
    truth_leads = pa.table({
        "lead_id": lead_ids,
        "z": pa.array(z),
        **{k: pa.array(v) for k, v in lr.items()},
        "t_hot": _ts(start_ns, t_hot),
        "t_dead": _ts(start_ns, t_dead),
        "t_qualified": _ts(start_ns, t_qual),
    })
    truth_deals = pa.table({
        "opportunity_id": opp_ids,
        "quality": pa.array(d_quality),
        "won": pa.array(d_won),
        "closed_at": _ts(start_ns, d_closed),
        **{f"p_win_{OPEN_STAGES[s]}_{'healthy' if g == 0 else 'troubled'}":
           pa.array(p_win[:, s, g]) for s in range(5) for g in range(2)},
    })
    seg_order = np.lexsort((seg_start, seg_deal))
    truth_states = pa.table({
        "opportunity_id": opp_ids.take(pa.array(seg_deal[seg_order])),
        "start": _ts(start_ns, seg_start[seg_order]),
        "stage": stage_names.take(pa.array(seg_stage[seg_order])),
        "troubled": pa.array(seg_regime[seg_order] == 1),
    })
    meta = pa.table({"key": ["n_leads", "seed", "start", "months", "data_end"],
                     "value": [str(n_leads), str(seed), cfg.start, str(months),
                               cfg.end_ts.isoformat()]})

    return GeneratedCRM(
        config=cfg,
        arrow={"accounts": accounts, "leads": leads, "opportunities": opportunities,
               "opportunity_history": history, "activities": activities},
        truth={"leads": truth_leads, "deals": truth_deals, "deal_states": truth_states,
               "meta": meta},
    )


def write_crm(crm: GeneratedCRM, out_dir: Path) -> list[Path]:
    """Write one Parquet file per table, and the truth under ``_truth/``.

    Same seed, same bytes: no timestamps or random ids in the files' metadata.
    """
    out_dir = Path(out_dir)
    (out_dir / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for name, tbl in crm.arrow.items():
        schema_cols = TABLES[name].column_names
        path = out_dir / f"{name}.parquet"
        pq.write_table(tbl.select(schema_cols), path, compression="zstd")
        written.append(path)
    for name, tbl in crm.truth.items():
        path = out_dir / TRUTH_DIR / f"{name}.parquet"
        pq.write_table(tbl, path, compression="zstd")
        written.append(path)
    return written
