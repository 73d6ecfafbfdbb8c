"""The oracle: the true probability of a label, from the generator's hidden state.

For a lead at time t: P(qualified in (t, t + H] | hidden state at t). The lead's chain is
cold -> {hot, dead, qualified}, hot -> {qualified, dead}, with exponential holding times,
so the probability has a closed form in the rates.

For a deal at time t: P(ends closed_won | stage and regime at t), looked up in the table of
absorbing-chain solutions the generator wrote (``p_win_<stage>_<regime>``).

Only the generator's ``_truth/`` folder feeds this: models never see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.schema import OPEN_STAGES

TRUTH_DIR = "_truth"


@dataclass(frozen=True)
class Truth:
    leads: pd.DataFrame
    deals: pd.DataFrame
    deal_states: pd.DataFrame


def truth_from_arrow(truth: dict[str, object]) -> Truth:
    """Truth from the generator's in-memory Arrow tables."""
    frames = {k: v.to_pandas() for k, v in truth.items()}  # type: ignore[attr-defined]
    return Truth(frames["leads"], frames["deals"], frames["deal_states"])


def load_truth(data_dir: Path) -> Truth | None:
    """The truth beside a generated data folder, or None for data without one."""
    folder = Path(data_dir) / TRUTH_DIR
    if not (folder / "leads.parquet").exists():
        return None
    return Truth(
        pd.read_parquet(folder / "leads.parquet"),
        pd.read_parquet(folder / "deals.parquet"),
        pd.read_parquet(folder / "deal_states.parquet"),
    )


def _p_hot(qh: np.ndarray, dh: np.ndarray, h: float) -> np.ndarray:
    m = qh + dh
    return np.asarray(qh / m * (1.0 - np.exp(-m * h)))


def _p_cold(a: np.ndarray, d: np.ndarray, qc: np.ndarray, qh: np.ndarray, dh: np.ndarray,
            h: float) -> np.ndarray:
    r = a + d + qc
    m = qh + dh
    k = qh / m
    er = np.exp(-r * h)
    diff = m - r
    safe = np.abs(diff) > 1e-9
    # (e^{-rH} - e^{-mH}) / (m - r), with its limit H e^{-rH} as m -> r.
    mixed = np.where(safe, (er - np.exp(-m * h)) / np.where(safe, diff, 1.0), h * er)
    return np.asarray(qc / r * (1.0 - er) + a * k * ((1.0 - er) / r - mixed))


def lead_truth(truth: Truth, snapshots: pd.DataFrame, horizon_days: float = 30) -> np.ndarray:
    """P(qualified within ``horizon_days`` after as_of) for rows of (lead_id, as_of)."""
    t = truth.leads.set_index("lead_id").loc[snapshots["lead_id"].to_numpy()]
    as_of = pd.to_datetime(snapshots["as_of"], utc=True).to_numpy()
    h = float(horizon_days)
    t_hot = t["t_hot"].to_numpy()
    t_dead = t["t_dead"].to_numpy()
    t_q = t["t_qualified"].to_numpy()
    a, d = t["to_hot"].to_numpy(), t["to_dead"].to_numpy()
    qc, qh = t["cold_qualify"].to_numpy(), t["hot_qualify"].to_numpy()
    dh = t["hot_dead"].to_numpy()

    def before(col: np.ndarray) -> np.ndarray:
        return np.asarray(~pd.isna(col) & (col <= as_of))

    qualified, dead, hot = before(t_q), before(t_dead), before(t_hot)
    p = np.where(hot, _p_hot(qh, dh, h), _p_cold(a, d, qc, qh, dh, h))
    p = np.where(dead, 0.0, p)
    p = np.where(qualified, 1.0, p)
    return np.asarray(p, dtype=float)


def deal_truth(truth: Truth, snapshots: pd.DataFrame) -> np.ndarray:
    """P(the deal ends closed_won) for rows of (opportunity_id, as_of)."""
    snaps = pd.DataFrame({
        "opportunity_id": snapshots["opportunity_id"].astype(str).to_numpy(),
        "as_of": pd.to_datetime(snapshots["as_of"], utc=True).to_numpy(),
        "_row": np.arange(len(snapshots)),
    }).sort_values("as_of", kind="stable")
    states = truth.deal_states.assign(
        opportunity_id=truth.deal_states["opportunity_id"].astype(str),
        start=pd.to_datetime(truth.deal_states["start"], utc=True),
    ).sort_values("start", kind="stable")
    snaps["as_of"] = pd.to_datetime(snaps["as_of"], utc=True)
    merged = pd.merge_asof(snaps, states, left_on="as_of", right_on="start",
                           by="opportunity_id", direction="backward", allow_exact_matches=True)
    merged = merged.sort_values("_row")
    deals = truth.deals.set_index("opportunity_id").loc[merged["opportunity_id"].to_numpy()]
    stage = merged["stage"].to_numpy()
    troubled = merged["troubled"].fillna(False).to_numpy(dtype=bool)
    p = np.full(len(merged), np.nan)
    for s in OPEN_STAGES:
        for regime, flag in (("healthy", False), ("troubled", True)):
            sel = (stage == s) & (troubled == flag)
            p[sel] = deals[f"p_win_{s}_{regime}"].to_numpy()[sel]
    closed_at = pd.to_datetime(deals["closed_at"], utc=True).to_numpy()
    as_of = merged["as_of"].to_numpy()
    done = ~pd.isna(closed_at) & (closed_at <= as_of)
    p = np.where(done, deals["won"].to_numpy(dtype=float), p)
    return p


def truth_probabilities(truth: Truth, task: str, snapshots: pd.DataFrame,
                        horizon_days: float = 30) -> np.ndarray:
    """The oracle's probability for each snapshot row of a task."""
    if task == "lead_qualification":
        return lead_truth(truth, snapshots, horizon_days)
    if task == "deal_close":
        return deal_truth(truth, snapshots)
    raise ValueError(f"unknown task {task!r}")
