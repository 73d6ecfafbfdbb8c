"""The oracle: the true probability of a label, from the generator's hidden state.

For a lead at time t: P(qualified in (t, t + H] | hidden state at t). The lead's chain is
cold -> {hot, dead, qualified}, hot -> {qualified, dead}, with exponential holding times,
so the probability has a closed form in the rates.

For a deal at time t: P(ends closed_won | stage and regime at t), looked up in the table of
absorbing-chain solutions the generator wrote (``p_win_<stage>_<regime>``).

For a customer account at time t (health h, a continuous-time chain with generator Q, and
the constants drawn at its sale):
- renewal: P(its next renewal closes won). Before the renewal deal opens (at c):
  sum_j [expm(Q (c - t))]_{h j} w_j, with w_j = P(won | health j when it opens), the deal
  chain's win probability from proposal mixed over the start regime. Once it is open, the
  deal oracle on that deal. The next renewal is the earliest-due contract whose renewal has
  not closed before t; a contract runs a year from the won deal that started it.
- expansion: P(at least one expansion deal created in (t, t + H]) = 1 - [expm((Q - L) H) 1]_h,
  with L the diagonal of expansion arrival rates by state.

Only the generator's ``_truth/`` folder feeds this: models never see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.schema import OPEN_STAGES
from leadscore.synth.health import HEALTH_STATES

TRUTH_DIR = "_truth"


POST_SALE_TABLES = ("customers", "health", "contracts")


@dataclass(frozen=True)
class Truth:
    leads: pd.DataFrame
    deals: pd.DataFrame
    deal_states: pd.DataFrame
    # After the sale; None for data generated before the generator simulated health.
    customers: pd.DataFrame | None = None
    health: pd.DataFrame | None = None
    contracts: pd.DataFrame | None = None


def truth_from_arrow(truth: dict[str, object]) -> Truth:
    """Truth from the generator's in-memory Arrow tables."""
    frames = {k: v.to_pandas() for k, v in truth.items()}  # type: ignore[attr-defined]
    return Truth(frames["leads"], frames["deals"], frames["deal_states"],
                 **{k: frames.get(k) for k in POST_SALE_TABLES})


def load_truth(data_dir: Path) -> Truth | None:
    """The truth beside a generated data folder, or None for data without one.

    Folders written before the post-sale truth existed load with those parts None.
    """
    folder = Path(data_dir) / TRUTH_DIR
    if not (folder / "leads.parquet").exists():
        return None

    def optional(name: str) -> pd.DataFrame | None:
        path = folder / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else None

    return Truth(
        pd.read_parquet(folder / "leads.parquet"),
        pd.read_parquet(folder / "deals.parquet"),
        pd.read_parquet(folder / "deal_states.parquet"),
        **{k: optional(k) for k in POST_SALE_TABLES},
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


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential of a batch of small matrices, shape (n, k, k).

    Scaling and squaring with a degree-18 Taylor polynomial: after scaling the 1-norm is at
    most 1/2, where the truncation error is below 1e-23, far under float64 rounding.
    """
    a = np.asarray(a, dtype=float)
    if a.size == 0:
        return a.copy()
    norm = np.abs(a).sum(axis=-2).max(axis=-1)
    squarings = int(max(0.0, np.ceil(np.log2(max(float(norm.max()), 1e-300) / 0.5))))
    a = a / 2.0**squarings
    eye = np.broadcast_to(np.eye(a.shape[-1]), a.shape)
    out = eye + a / 18.0
    for k in range(17, 0, -1):
        out = eye + (a @ out) / k
    for _ in range(squarings):
        out = out @ out
    return np.asarray(out)


def _utc(values: object) -> pd.Series:
    """Timestamps as a 0..n-1 indexed Series of datetime64[ns, UTC]."""
    ts = pd.Series(pd.to_datetime(values, utc=True)).reset_index(drop=True)
    return ts.astype("datetime64[ns, UTC]")


def _days(later: pd.Series, earlier: pd.Series) -> np.ndarray:
    return np.asarray((later - earlier).dt.total_seconds().to_numpy() / 86_400.0)


def _require_post_sale(truth: Truth) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if truth.customers is None or truth.health is None or truth.contracts is None:
        raise ValueError("this truth has no post-sale part: regenerate the data "
                         "with this version of the generator")
    return truth.customers, truth.health, truth.contracts


def _generator_matrix(customers: pd.DataFrame) -> np.ndarray:
    """Each customer's health generator Q, shape (n, 4, 4), from its ``rate_*`` columns."""
    k = len(HEALTH_STATES)
    q = np.zeros((len(customers), k, k))
    for i, a in enumerate(HEALTH_STATES):
        for j, b in enumerate(HEALTH_STATES):
            if i != j:
                q[:, i, j] = customers[f"rate_{a}_to_{b}"].to_numpy(dtype=float)
    q[:, np.arange(k), np.arange(k)] = -q.sum(axis=2)
    return q


def _health_at(health: pd.DataFrame, account_id: pd.Series, as_of: pd.Series) -> np.ndarray:
    """Index of each account's health state at as_of; -1 before its sale or never sold."""
    snaps = pd.DataFrame({"account_id": account_id.astype(str).to_numpy(),
                          "as_of": _utc(as_of).array, "_row": np.arange(len(as_of))})
    spells = health.assign(account_id=health["account_id"].astype(str),
                           start=_utc(health["start"]).array)
    merged = pd.merge_asof(snaps.sort_values("as_of", kind="stable"),
                           spells.sort_values("start", kind="stable"), left_on="as_of",
                           right_on="start", by="account_id", direction="backward")
    merged = merged.sort_values("_row")
    code = {s: i for i, s in enumerate(HEALTH_STATES)}
    return np.asarray(merged["state"].map(code).fillna(-1).to_numpy(dtype=np.int64))


def health_states(truth: Truth, snapshots: pd.DataFrame) -> np.ndarray:
    """The hidden health state (a name in HEALTH_STATES, or None before the sale) of each
    row of (account_id, as_of): for analysis and tests, never for features."""
    _, health, _ = _require_post_sale(truth)
    code = _health_at(health, snapshots["account_id"].reset_index(drop=True),
                      _utc(snapshots["as_of"]))
    names = np.array([*HEALTH_STATES, None], dtype=object)
    return np.asarray(names[np.where(code < 0, len(HEALTH_STATES), code)])


def _customer_rows(customers: pd.DataFrame, account_id: pd.Series) -> np.ndarray:
    """Row of each account in ``customers``; -1 for accounts that never bought."""
    index = pd.Index(customers["account_id"].astype(str))
    return np.asarray(index.get_indexer(account_id.astype(str).to_numpy()))


def expansion_truth(truth: Truth, snapshots: pd.DataFrame,
                    horizon_days: float = 90) -> np.ndarray:
    """P(an expansion deal is created in (as_of, as_of + horizon]) for rows of
    (account_id, as_of); NaN before the account's sale."""
    customers, health, _ = _require_post_sale(truth)
    account = snapshots["account_id"].reset_index(drop=True)
    as_of = _utc(snapshots["as_of"])
    state = _health_at(health, account, as_of)
    row = _customer_rows(customers, account)
    p = np.full(len(as_of), np.nan)
    ok = (state >= 0) & (row >= 0)
    if not ok.any():
        return p
    # One matrix per customer: every snapshot of it shares Q, L and H.
    used = np.unique(row[ok])
    c = customers.iloc[used]
    lam = np.stack([c[f"expansion_rate_{s}"].to_numpy(dtype=float) for s in HEALTH_STATES], 1)
    sub = _generator_matrix(c) - lam[:, :, None] * np.eye(len(HEALTH_STATES))[None]
    stay_quiet = expm(sub * float(horizon_days)).sum(axis=2)  # P(no arrival | start state)
    at = np.searchsorted(used, row[ok])
    p[ok] = 1.0 - stay_quiet[at, state[ok]]
    return np.clip(p, 0.0, 1.0)


def _next_renewals(truth: Truth, contracts: pd.DataFrame, account: pd.Series,
                   as_of: pd.Series) -> pd.DataFrame:
    """Per snapshot row, its next renewal: the earliest-due contract started by as_of whose
    renewal has not closed before as_of (rows without one are absent)."""
    closed = truth.deals.set_index(truth.deals["opportunity_id"].astype(str))["closed_at"]
    c = contracts.assign(
        account_id=contracts["account_id"].astype(str),
        renewal_closed_at=pd.to_datetime(
            contracts["renewal_opportunity_id"].astype(str).map(closed), utc=True),
    )
    snaps = pd.DataFrame({"account_id": account.astype(str).to_numpy(),
                          "as_of": _utc(as_of).array, "_row": np.arange(len(as_of))})
    m = snaps.merge(c, on="account_id", how="inner")
    started = pd.to_datetime(m["started_at"], utc=True) <= m["as_of"]
    pending = ~(m["renewal_closed_at"] < m["as_of"])  # NaT (not open yet) is pending
    m = m[started & pending]
    return m.sort_values(["_row", "due_at"], kind="stable").drop_duplicates("_row")


def next_renewals(truth: Truth, snapshots: pd.DataFrame) -> pd.DataFrame:
    """For rows of (account_id, as_of), the renewal ``renewal_truth`` is about: its
    ``due_at``, ``renewal_opportunity_id`` (null if it opens after the data's end) and
    whether it is ``won`` (from the truth, so also when it closes after the data's end);
    null where the account has no renewal ahead. Aligned with ``snapshots`` by position."""
    _, _, contracts = _require_post_sale(truth)
    nxt = _next_renewals(truth, contracts, snapshots["account_id"].reset_index(drop=True),
                         _utc(snapshots["as_of"]))
    won = truth.deals.set_index(truth.deals["opportunity_id"].astype(str))["won"]
    out = pd.DataFrame(index=pd.RangeIndex(len(snapshots)))
    out["due_at"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out.loc[nxt["_row"].to_numpy(), "due_at"] = _utc(nxt["due_at"]).to_numpy()
    out["renewal_opportunity_id"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out.loc[nxt["_row"].to_numpy(), "renewal_opportunity_id"] = (
        nxt["renewal_opportunity_id"].astype("string").to_numpy())
    out["won"] = out["renewal_opportunity_id"].map(won).astype("boolean")
    return out


def renewal_truth(truth: Truth, snapshots: pd.DataFrame) -> np.ndarray:
    """P(the account's next renewal closes won) for rows of (account_id, as_of); NaN where
    the account has no renewal ahead (not a customer yet, or its last renewal was lost)."""
    customers, health, contracts = _require_post_sale(truth)
    account = snapshots["account_id"].reset_index(drop=True)
    as_of = _utc(snapshots["as_of"])
    nxt = _next_renewals(truth, contracts, account, as_of)
    p = np.full(len(as_of), np.nan)
    created = pd.to_datetime(nxt["renewal_created_at"], utc=True)
    is_open = nxt["renewal_opportunity_id"].notna() & (created <= nxt["as_of"])
    opened = nxt[is_open.to_numpy()]
    if len(opened):
        p[opened["_row"].to_numpy()] = deal_truth(truth, pd.DataFrame({
            "opportunity_id": opened["renewal_opportunity_id"].to_numpy(),
            "as_of": opened["as_of"].to_numpy()}))
    ahead = nxt[~is_open.to_numpy()]
    if len(ahead):
        rows = ahead["_row"].to_numpy()
        state = _health_at(health, ahead["account_id"].reset_index(drop=True),
                           _utc(ahead["as_of"]))
        cust = _customer_rows(customers, ahead["account_id"].reset_index(drop=True))
        wait = np.maximum(_days(_utc(ahead["renewal_created_at"]), _utc(ahead["as_of"])), 0.0)
        q = _generator_matrix(customers.iloc[np.maximum(cust, 0)])
        w = np.stack([ahead[f"p_renew_{s}"].to_numpy(dtype=float) for s in HEALTH_STATES], 1)
        move = expm(q * wait[:, None, None])
        p[rows] = np.einsum("nj,nj->n", move[np.arange(len(rows)), np.maximum(state, 0)], w)
        p[rows[(state < 0) | (cust < 0)]] = np.nan
    return np.clip(p, 0.0, 1.0)


def truth_probabilities(truth: Truth, task: str, snapshots: pd.DataFrame,
                        horizon_days: float | None = None) -> np.ndarray:
    """The oracle's probability for each snapshot row of a task, through the task's hook
    (``features.tasks``); ``horizon_days`` defaults to the task's own horizon."""
    from features.tasks import task_spec

    oracle = task_spec(task).oracle_for(truth, None if horizon_days is None
                                        else int(horizon_days))
    if oracle is None:
        raise ValueError(f"task {task!r} has no oracle")
    return oracle(snapshots)
