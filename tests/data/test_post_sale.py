"""Life after the sale: health, signals, renewals and expansions, and their exact truth.

Plausibility: renewal win rate 85-92 % (gross revenue retention of 85-92 % is typical for
B2B SaaS); expansion deals about as many as before the health chain existed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.schema import ACTIVITY_TYPES, DIRECTIONS
from leadscore.generator import SIGNAL_COLUMNS, SIGNALS, generate_crm, write_crm
from leadscore.synth import health as health_chain
from leadscore.synth.health import HEALTH_STATES, CustomerConstants, simulate_health
from leadscore.synth.sampling import emit
from leadscore.truth import (
    TRUTH_DIR,
    deal_truth,
    expansion_truth,
    expm,
    health_states,
    load_truth,
    next_renewals,
    renewal_truth,
    truth_from_arrow,
    truth_probabilities,
)
from tests.data.calibration import calibration_gap

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def crm():  # type: ignore[no-untyped-def]
    # Three years, so that many contracts come up for renewal (some twice).
    return generate_crm(40_000, seed=4, months=36)


@pytest.fixture(scope="module")
def truth(crm):  # type: ignore[no-untyped-def]
    return truth_from_arrow(crm.truth)


@pytest.fixture(scope="module")
def signals(crm) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return crm.arrow["account_signals"].to_pandas()


@pytest.fixture(scope="module")
def opportunities(crm) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return crm.tables.opportunities


def _state_at(truth, account_id: pd.Series, when: pd.Series) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Index into HEALTH_STATES of each account's hidden health at ``when``."""
    as_of = pd.Series(pd.to_datetime(when, utc=True)).to_numpy()
    names = health_states(truth, pd.DataFrame({"account_id": account_id.to_numpy(),
                                               "as_of": as_of}))
    return np.array([HEALTH_STATES.index(n) for n in names])


# ---- the account_signals table ------------------------------------------------------------


def test_signals_table_has_the_contract_columns_and_types(crm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_crm(crm, tmp_path)
    schema = pq.read_schema(tmp_path / "account_signals.parquet")
    assert tuple(schema.names) == SIGNAL_COLUMNS
    assert schema.field("signal_id").type == pa.string()
    assert schema.field("account_id").type == pa.string()
    assert schema.field("observed_at").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("signal").type == pa.string()
    assert schema.field("value").type == pa.float64()
    assert schema.field("detail").type == pa.string()
    hidden = {"adoption", "appetite", "state", "health", "quality"}
    assert hidden.isdisjoint(schema.names)


def test_signals_follow_their_ranges(crm, signals, truth) -> None:  # type: ignore[no-untyped-def]
    s = signals
    assert s["signal_id"].is_unique
    assert s["signal_id"].str.fullmatch(r"S\d{7,}").all()
    assert set(s["signal"]) == set(SIGNALS)
    assert s["observed_at"].is_monotonic_increasing
    assert (s["observed_at"] < crm.config.end_ts).all()
    assert s["account_id"].isin(truth.customers["account_id"]).all()
    v = s["value"]
    assert (v == np.round(v)).all()  # every signal is a count or a score
    by = {name: v[s["signal"] == name] for name in SIGNALS}
    assert (by["active_users"] >= 0).all() and (by["logins"] >= 0).all()
    assert by["ticket_opened"].between(1, 4).all()
    assert by["nps"].between(0, 10).all()
    assert by["csat"].between(1, 5).all()
    has_detail = s["detail"].notna()
    assert has_detail[s["signal"].isin(["ticket_opened", "csat"])].all()
    assert not has_detail[~s["signal"].isin(["ticket_opened", "csat"])].any()


def test_usage_is_weekly_from_the_sale_until_churn(signals, truth) -> None:  # type: ignore[no-untyped-def]
    usage = signals[signals["signal"] == "active_users"]
    sale = truth.customers.set_index("account_id")["sale_at"]
    first = usage.groupby("account_id")["observed_at"].min()
    gap_to_sale = (first - sale.reindex(first.index)) / DAY
    # The installed base bought before the CRM's first day: its usage shows from then on.
    since_start = sale.reindex(first.index) >= first.min() - 7 * DAY
    assert np.allclose(gap_to_sale[since_start], 7.0, atol=1e-4)
    assert (gap_to_sale[~since_start] > 7.0).all()
    steps = usage.groupby("account_id")["observed_at"].diff().dropna() / DAY
    assert np.allclose(steps, 7.0, atol=1e-4)
    churned = truth.health[truth.health["state"] == "churned"].set_index("account_id")["start"]
    last = usage.groupby("account_id")["observed_at"].max()
    both = churned.index.intersection(last.index)
    assert len(both) > 10
    assert (last[both] < churned[both]).all()


def test_usage_and_surveys_fall_when_at_risk(signals, truth) -> None:  # type: ignore[no-untyped-def]
    state = _state_at(truth, signals["account_id"], signals["observed_at"])
    s = signals.assign(state=np.asarray(HEALTH_STATES)[state])
    per_user = s[s["signal"] == "active_users"].groupby("state")["value"].mean()
    assert per_user["at_risk"] < per_user["healthy"]
    nps = s[s["signal"] == "nps"].groupby("state")["value"].mean()
    assert nps["at_risk"] < nps["healthy"] - 1.5
    severity = s[s["signal"] == "ticket_opened"].groupby("state")["value"].mean()
    assert severity["at_risk"] > severity["healthy"]


# ---- post-sale activities -------------------------------------------------------------------


def test_post_sale_activities_come_from_customers_and_thin_out_at_risk(crm, truth) -> None:  # type: ignore[no-untyped-def]
    acts = crm.arrow["activities"].to_pandas()
    assert set(acts["type"]) <= set(ACTIVITY_TYPES)
    assert set(acts["direction"]) <= set(DIRECTIONS)
    post = acts[acts["lead_id"].isna() & acts["opportunity_id"].isna()]
    assert len(post) > 1000
    sale = truth.customers.set_index("account_id")["sale_at"]
    assert post["account_id"].isin(sale.index).all()
    assert (post["occurred_at"] >= sale.reindex(post["account_id"]).to_numpy()).all()
    # Activities per customer-day in each state, and contacts touched per spell.
    h = truth.health.sort_values(["account_id", "start"])
    nxt = h.groupby("account_id")["start"].shift(-1).fillna(crm.config.end_ts)
    exposure = ((nxt - h["start"]) / DAY).groupby(h["state"]).sum()
    state = np.asarray(HEALTH_STATES)[_state_at(truth, post["account_id"], post["occurred_at"])]
    rate = pd.Series(state).value_counts() / exposure
    assert rate["onboarding"] > rate["healthy"] > rate["at_risk"] > rate["churned"]
    inbound = post.assign(state=state).groupby("state")["direction"].apply(
        lambda d: (d == "inbound").mean())
    assert inbound["churned"] == 0.0
    contacts = post.assign(state=state).groupby(["account_id", "state"])["contact_id"].nunique()
    per_state = contacts.groupby(level="state").mean()
    assert per_state["at_risk"] < per_state["healthy"]


# ---- renewals and expansions ------------------------------------------------------------------


def test_every_contract_gets_a_renewal_some_weeks_before_it_is_due(  # type: ignore[no-untyped-def]
        crm, truth, opportunities) -> None:
    c = truth.contracts
    end = crm.config.end_ts
    opened = c["renewal_created_at"] < end
    assert c.loc[opened, "renewal_opportunity_id"].notna().all()
    assert c.loc[~opened, "renewal_opportunity_id"].isna().all()
    assert np.allclose((c["due_at"] - c["started_at"]) / DAY, 365.0, atol=1e-4)
    lead = (c["due_at"] - c["renewal_created_at"]) / DAY
    assert lead.between(15.0, 35.0).all()
    opps = opportunities.set_index("opportunity_id")
    ren = opps.loc[c.loc[opened, "renewal_opportunity_id"]]
    assert (ren["product"] == "renewal").all()
    assert (ren["account_id"].to_numpy() == c.loc[opened, "account_id"].to_numpy()).all()
    won = opps.loc[c["won_opportunity_id"]]
    assert won["is_won"].astype(bool).all()
    assert (won["closed_at"].to_numpy() == c["started_at"].to_numpy()).all()
    assert (opportunities["product"] == "renewal").sum() == opened.sum()


def test_renewal_win_rate_is_plausible_and_churned_accounts_mostly_lose(  # type: ignore[no-untyped-def]
        truth, opportunities) -> None:
    closed = opportunities[opportunities["closed_at"].notna()]
    renewals = closed[closed["product"] == "renewal"]
    assert len(renewals) > 500
    assert 0.70 <= renewals["is_won"].astype(bool).mean() <= 0.85
    c = truth.contracts[truth.contracts["renewal_opportunity_id"].notna()]
    state = _state_at(truth, c["account_id"], c["renewal_created_at"])
    won = truth.deals.set_index("opportunity_id").loc[c["renewal_opportunity_id"], "won"]
    won = won.to_numpy(dtype=bool)
    churned = state == HEALTH_STATES.index("churned")
    assert churned.sum() >= 10 and churned.mean() < 0.15
    healthy = state == HEALTH_STATES.index("healthy")
    assert won[churned].mean() < won[healthy].mean() - 0.3
    # What the chain says, free of the few churned renewals' sampling noise.
    assert c["p_renew_churned"].mean() < 0.4  # mostly lost
    assert c["p_renew_healthy"].mean() > 0.85


def test_expansions_arrive_mostly_when_healthy_and_never_once_churned(  # type: ignore[no-untyped-def]
        crm, truth, opportunities) -> None:
    exp = opportunities[opportunities["product"] == "expansion"]
    assert len(exp) > 200
    assert exp["lead_id"].isna().all()
    sale = truth.customers.set_index("account_id")["sale_at"]
    assert (exp["created_at"] >= sale.reindex(exp["account_id"]).to_numpy()).all()
    state = np.asarray(HEALTH_STATES)[_state_at(truth, exp["account_id"], exp["created_at"])]
    h = truth.health.sort_values(["account_id", "start"])
    nxt = h.groupby("account_id")["start"].shift(-1).fillna(crm.config.end_ts)
    exposure = ((nxt - h["start"]) / DAY).groupby(h["state"]).sum()
    rate = pd.Series(state).value_counts().reindex(HEALTH_STATES, fill_value=0) / exposure
    assert rate["churned"] == 0
    assert rate["healthy"] > 3 * rate["at_risk"]
    assert rate["healthy"] > rate["onboarding"]


# ---- the truth --------------------------------------------------------------------------------


def _bought_once(truth, opportunities: pd.DataFrame) -> pd.Series:  # type: ignore[no-untyped-def]
    """Contracts of accounts with one new-business win: their contracts follow one another,
    so while a contract's renewal is pending it is the account's next renewal."""
    new_business = opportunities.loc[opportunities["lead_id"].notna(), "opportunity_id"]
    first = truth.contracts["won_opportunity_id"].isin(new_business)
    return first.groupby(truth.contracts["account_id"]).transform("sum") == 1


def _one_snapshot_per_renewal(  # type: ignore[no-untyped-def]
        crm, truth, opportunities, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """At most one snapshot per renewal, so rows are independent: a time drawn between 120
    days before the due date and 30 days after it, kept while the contract has started and
    the renewal is still open (what a snapshot may know; drawing the time up to the close
    itself would peek at the outcome, since lost deals close sooner). The label is whether
    the renewal was won, from the truth: renewals closing after the data's end count too."""
    deals = truth.deals.set_index("opportunity_id")
    c = truth.contracts[truth.contracts["renewal_opportunity_id"].notna()
                        & _bought_once(truth, opportunities)]
    close = pd.Series(pd.to_datetime(deals.loc[c["renewal_opportunity_id"], "closed_at"]
                                     .to_numpy(), utc=True), index=c.index)
    as_of = c["due_at"] - 120 * DAY + 150 * DAY * rng.random(len(c))
    keep = (as_of >= c["started_at"]) & (as_of < close) & (as_of < crm.config.end_ts)
    c, as_of = c[keep], as_of[keep]
    snaps = pd.DataFrame({"account_id": c["account_id"], "as_of": as_of}).reset_index(drop=True)
    return snaps, deals.loc[c["renewal_opportunity_id"], "won"].to_numpy(dtype=float)


def test_renewal_truth_is_calibrated(crm, truth, opportunities) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    p, y = [], []
    for _ in range(3):  # three independent draws of one snapshot per renewal
        snaps, won = _one_snapshot_per_renewal(crm, truth, opportunities, rng)
        assert len(snaps) > 500
        p.append(truth_probabilities(truth, "account_renewal", snaps))
        y.append(won)
        assert not np.isnan(p[-1]).any()
    for pi, yi in zip(p, y, strict=True):
        assert calibration_gap(pi, yi, bins=8) < 4.0
    assert abs(np.concatenate(p).mean() - np.concatenate(y).mean()) < 0.02


def test_expansion_truth_is_calibrated(crm, truth, opportunities) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    end = crm.config.end_ts
    cu = truth.customers[truth.customers["sale_at"] < end - 90 * DAY]
    exp = opportunities.loc[opportunities["product"] == "expansion", ["account_id", "created_at"]]
    # The CRM records expansions from its first day on, the installed base's too.
    since = np.maximum(cu["sale_at"], crm.config.start_ts)
    ps, ys = [], []
    for _ in range(4):  # one random month-ahead window per customer, four times
        as_of = since + (end - 90 * DAY - since) * rng.random(len(cu))
        snaps = pd.DataFrame({"account_id": cu["account_id"], "as_of": as_of})
        snaps = snaps.reset_index(drop=True)
        m = snaps.reset_index().merge(exp, on="account_id", how="left")
        hit = (m["created_at"] > m["as_of"]) & (m["created_at"] <= m["as_of"] + 90 * DAY)
        y = hit.groupby(m["index"]).any().reindex(range(len(snaps)), fill_value=False)
        ps.append(truth_probabilities(truth, "account_expansion", snaps, horizon_days=90))
        ys.append(y.to_numpy(dtype=float))
    p, y = np.concatenate(ps), np.concatenate(ys)
    assert not np.isnan(p).any() and np.all((p >= 0) & (p <= 1))
    assert calibration_gap(p, y, bins=8) < 4.0


def test_renewal_truth_is_the_deal_truth_once_the_renewal_is_open(  # type: ignore[no-untyped-def]
        crm, truth, opportunities) -> None:
    c = truth.contracts[_bought_once(truth, opportunities)
                        & truth.contracts["renewal_opportunity_id"].notna()]
    assert len(c) > 300
    deals = truth.deals.set_index("opportunity_id")
    close = pd.Series(pd.to_datetime(deals.loc[c["renewal_opportunity_id"], "closed_at"]
                                     .to_numpy(), utc=True))
    created = pd.Series(pd.to_datetime(c["renewal_created_at"], utc=True).to_numpy())
    for frac in (0.0, 0.3, 0.9):
        as_of = created + (close - created) * frac
        snaps = pd.DataFrame({"account_id": c["account_id"].to_numpy(), "as_of": as_of})
        p = renewal_truth(truth, snaps)
        q = deal_truth(truth, pd.DataFrame({"opportunity_id": c["renewal_opportunity_id"]
                                            .to_numpy(), "as_of": as_of}))
        assert np.array_equal(p, q)
        nxt = next_renewals(truth, snaps)
        assert (nxt["renewal_opportunity_id"].to_numpy()
                == c["renewal_opportunity_id"].to_numpy()).all()
    # A second before it opens: the mixture over the start regime at today's health.
    before = pd.DataFrame({"account_id": c["account_id"].to_numpy(),
                           "as_of": created - pd.Timedelta(seconds=1)})
    p = renewal_truth(truth, before)
    state = _state_at(truth, before["account_id"], before["as_of"])
    w = c[[f"p_renew_{s}" for s in HEALTH_STATES]].to_numpy()[np.arange(len(c)), state]
    assert np.allclose(p, w, atol=1e-4)


def test_truth_is_nan_where_there_is_no_renewal_or_customer(truth) -> None:  # type: ignore[no-untyped-def]
    cu = truth.customers.head(50)
    before = pd.DataFrame({"account_id": cu["account_id"], "as_of": cu["sale_at"] - DAY})
    assert np.isnan(renewal_truth(truth, before)).all()
    assert np.isnan(expansion_truth(truth, before)).all()
    never = pd.DataFrame({"account_id": ["no such account"], "as_of": [cu["sale_at"].iloc[0]]})
    assert np.isnan(renewal_truth(truth, never)).all()
    assert np.isnan(expansion_truth(truth, never)).all()


def test_expm_matches_scipy() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(3)
    a = rng.normal(0.0, 1.0, (20, 4, 4)) * rng.uniform(0.01, 30.0, (20, 1, 1))
    want = np.stack([scipy_linalg.expm(m) for m in a])
    assert np.allclose(expm(a), want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def _constants(n: int, adoption: float, appetite: float) -> CustomerConstants:
    return CustomerConstants(fit=np.full(n, 0.3), size=np.full(n, 0.5), tier=np.full(n, 1.0),
                             adoption=np.full(n, adoption), appetite=np.full(n, appetite))


@pytest.mark.parametrize("adoption", [-1.5, 0.0, 1.0])
def test_health_distribution_is_the_matrix_exponential(adoption: float) -> None:
    """Simulate many copies of one customer's chain; the state after t days must follow
    expm(Q t) (this is what the renewal truth integrates)."""
    n, t = 40_000, 200.0
    c = _constants(n, adoption, 0.0)
    q = health_chain.health_generator(c)
    path = simulate_health(np.random.default_rng(5), np.zeros(n), q, t + 1.0)
    seen = np.bincount(path.state_at(np.arange(n), np.full(n, t)), minlength=4) / n
    want = expm(q[:1] * t)[0, 0]
    se = np.sqrt(np.maximum(want * (1 - want), 1e-6) / n)
    assert np.all(np.abs(seen - want) < 4 * se)


def test_expansion_probability_matches_simulation() -> None:
    """Health paths plus Poisson arrivals at the state's rate: P(no arrival in H days) must
    be the row sum of expm((Q - L) H) (what the expansion truth uses)."""
    n, h = 40_000, 90.0
    c = _constants(n, 0.2, 1.5)
    q = health_chain.health_generator(c)
    lam = health_chain.expansion_rates(c)
    path = simulate_health(np.random.default_rng(6), np.zeros(n), q, h)
    spell, _, _ = emit(np.random.default_rng(7), path.start, path.end,
                       lam[path.customer, path.state][:, None])
    seen = np.isin(np.arange(n), path.customer[spell]).mean()
    want = 1.0 - expm((q[:1] - lam[:1, :, None] * np.eye(4)) * h)[0, 0].sum()
    assert 0.1 < want < 0.9
    assert abs(seen - want) < 4 * np.sqrt(want * (1 - want) / n)


def test_load_truth_reads_folders_written_before_post_sale(crm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_crm(crm, tmp_path)
    full = load_truth(tmp_path)
    assert full is not None and full.contracts is not None and full.health is not None
    for name in ("customers", "health", "contracts"):
        (tmp_path / TRUTH_DIR / f"{name}.parquet").unlink()
    old = load_truth(tmp_path)
    assert old is not None
    assert old.customers is None and old.health is None and old.contracts is None
    snaps = pd.DataFrame({"account_id": ["ACC0000001"], "as_of": [crm.config.end_ts]})
    with pytest.raises(ValueError, match="post-sale"):
        truth_probabilities(old, "account_renewal", snaps)


def test_pre_sale_tables_do_not_depend_on_the_post_sale_model(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Post-sale draws come from their own generator: changing how customers behave leaves
    leads, accounts and new-business deals as they were."""
    a = generate_crm(4_000, seed=9)
    monkeypatch.setattr(health_chain, "EXPANSION_BASE_RATE", 3 * health_chain.EXPANSION_BASE_RATE)
    b = generate_crm(4_000, seed=9)
    assert a.arrow["leads"].equals(b.arrow["leads"])
    n_lead_accounts = round(4_000 / 2.5)  # the installed base's accounts follow the leads'
    assert a.arrow["accounts"].slice(0, n_lead_accounts).equals(
        b.arrow["accounts"].slice(0, n_lead_accounts))
    assert a.truth["leads"].equals(b.truth["leads"])
    oa, ob = (x.arrow["opportunities"].to_pandas() for x in (a, b))
    assert len(oa) != len(ob)
    nb_a, nb_b = (o[o["lead_id"].notna()].reset_index(drop=True) for o in (oa, ob))
    pd.testing.assert_frame_equal(nb_a, nb_b)
    ha, hb = (x.arrow["opportunity_history"].to_pandas() for x in (a, b))
    ha, hb = (h[h["opportunity_id"].isin(nb_a["opportunity_id"])].reset_index(drop=True)
              for h in (ha, hb))
    pd.testing.assert_frame_equal(ha, hb)
    la, lb = (x.arrow["activities"].to_pandas() for x in (a, b))
    la, lb = (x[x["opportunity_id"].isin(nb_a["opportunity_id"]) | x["lead_id"].notna()
                & x["opportunity_id"].isna()].drop(columns="activity_id").reset_index(drop=True)
              for x in (la, lb))
    pd.testing.assert_frame_equal(la, lb)


def test_the_installed_base_holds_its_current_contract_as_an_imported_won_deal(  # type: ignore[no-untyped-def]
        crm, truth, opportunities) -> None:
    start = crm.config.start_ts
    history = crm.arrow["opportunity_history"].to_pandas()
    imported = opportunities[opportunities["created_at"] < start]
    assert len(imported) > 0.5 * crm.config.installed
    assert imported["lead_id"].isna().all()
    assert imported["product"].isin(["starter", "professional", "enterprise"]).all()
    assert (imported["closed_at"] == imported["created_at"]).all()
    assert imported["is_won"].astype(bool).all()
    rows = history[history["opportunity_id"].isin(imported["opportunity_id"])]
    assert len(rows) == len(imported) and (rows["stage"] == "closed_won").all()
    # Bought before: no lead, no deal snapshot (closed at creation), a customer since then.
    leads = crm.arrow["leads"].to_pandas()
    assert not imported["account_id"].isin(leads["account_id"]).any()
    sale = truth.customers.set_index("account_id")["sale_at"]
    assert (sale.loc[imported["account_id"]].to_numpy()
            <= imported["created_at"].to_numpy()).all()
    # Its renewal opens inside the CRM's span, and nothing else of it comes before.
    c = truth.contracts[truth.contracts["won_opportunity_id"].isin(imported["opportunity_id"])]
    assert (c["renewal_created_at"] >= start).all()
    later = opportunities[opportunities["account_id"].isin(imported["account_id"])
                          & ~opportunities["opportunity_id"].isin(imported["opportunity_id"])]
    assert len(later) and (later["created_at"] >= start).all()
    for name in ("activities", "account_signals"):
        table = crm.arrow[name].to_pandas()
        column = "occurred_at" if name == "activities" else "observed_at"
        assert (table[column] >= start).all()


def test_the_installed_base_leaves_leads_and_new_business_alone() -> None:
    a = generate_crm(3_000, seed=5, installed_base=0)
    b = generate_crm(3_000, seed=5, installed_base=200)
    assert a.arrow["leads"].equals(b.arrow["leads"])
    oa, ob = (x.arrow["opportunities"].to_pandas() for x in (a, b))
    nb_a, nb_b = (o[o["lead_id"].notna()].reset_index(drop=True) for o in (oa, ob))
    pd.testing.assert_frame_equal(nb_a, nb_b)
    assert a.truth["customers"].num_rows < b.truth["customers"].num_rows
    assert (oa["created_at"] >= a.config.start_ts).all()
    with pytest.raises(ValueError, match="installed_base"):
        generate_crm(100, installed_base=-1)


def test_licensed_seats_are_reported_monthly_and_bound_usage(signals) -> None:  # type: ignore[no-untyped-def]
    seats = signals[signals["signal"] == "licensed_seats"]
    assert len(seats) > 0 and (seats["value"] >= 3).all()
    steps = seats.groupby("account_id")["observed_at"].diff().dropna() / DAY
    assert np.allclose(steps, 30.0, atol=1e-4)
    assert (seats.groupby("account_id")["value"].nunique() == 1).all()
