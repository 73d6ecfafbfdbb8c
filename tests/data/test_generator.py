"""The synthetic CRM: deterministic, plausible as a B2B funnel, and its truth calibrated.

Plausibility ranges, with where they come from (public B2B benchmarks, rounded wide):
- lead -> sales-qualified rate 10-30 %: MQL-to-SQL conversion is commonly reported at
  13-26 % across B2B industries.
- new-business win rate 15-35 % of opportunities: B2B SaaS win rates are usually quoted
  at 20-30 %.
- renewal win rate 75-97 %: gross revenue retention of 85-92 % is typical.
- median sales cycle of won new-business deals 30-120 days: mid-market B2B cycles are
  reported at one to four months.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.schema import OPEN_STAGES, TABLES
from leadscore.funnel import funnel_summary
from leadscore.generator import (
    deal_win_probabilities,
    generate_crm,
    write_crm,
)
from leadscore.truth import load_truth, truth_from_arrow, truth_probabilities
from tests.data.calibration import calibration_gap

N = 20_000


@pytest.fixture(scope="module")
def crm():  # type: ignore[no-untyped-def]
    return generate_crm(N, seed=11)


@pytest.fixture(scope="module")
def tables(crm):  # type: ignore[no-untyped-def]
    return crm.tables


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_crm(generate_crm(2_000, seed=5), a)
    write_crm(generate_crm(2_000, seed=5), b)
    write_crm(generate_crm(2_000, seed=6), c)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_a_crm_too_small_for_any_deal_still_generates() -> None:
    crm = generate_crm(1, seed=1)
    assert crm.arrow["opportunities"].num_rows == 0
    assert len(crm.tables.leads) == 1


def test_tables_follow_the_contract_and_hide_the_truth(crm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Every required table and the optional ones it simulates (no deal field edits).
    written = [n for n in TABLES if n != "opportunity_field_history"]
    assert list(crm.arrow) == written
    for name in written:
        assert crm.arrow[name].column_names == TABLES[name].column_names
    write_crm(crm, tmp_path)
    top = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert top == sorted(f"{n}.parquet" for n in written)
    assert load_truth(tmp_path) is not None
    hidden = {"z", "quality", "troubled", "t_hot", "t_dead", "adoption", "appetite", "state"}
    for name in written:
        assert hidden.isdisjoint(pd.read_parquet(tmp_path / f"{name}.parquet").columns)


def test_funnel_is_plausible(tables) -> None:  # type: ignore[no-untyped-def]
    f = funnel_summary(tables)
    assert 0.10 <= f.qualification_rate <= 0.30
    # Renewals open at proposal: the funnel of new business narrows stage by stage.
    opps = tables.opportunities
    new_ids = opps.loc[opps["product"].isin(["starter", "professional", "enterprise"]),
                       "opportunity_id"]
    hist = tables.opportunity_history
    new_biz_tables = dataclasses.replace(
        tables, opportunities=opps[opps["opportunity_id"].isin(new_ids)],
        opportunity_history=hist[hist["opportunity_id"].isin(new_ids)])
    reached = [funnel_summary(new_biz_tables).reached[s] for s in OPEN_STAGES]
    assert all(later < earlier for earlier, later in zip(reached, reached[1:], strict=False))
    closed = opps[opps["closed_at"].notna()]
    won = closed["is_won"].astype(bool)
    # New business from a lead; the installed base's imported contracts were won before.
    new_biz = closed["product"].isin(["starter", "professional", "enterprise"]) & closed[
        "lead_id"].notna()
    assert 0.15 <= won[new_biz].mean() <= 0.35
    assert 0.75 <= won[closed["product"] == "renewal"].mean() <= 0.97
    cycle = (closed["closed_at"] - closed["created_at"]).dt.days[won & new_biz]
    assert 30 <= cycle.median() <= 120


def test_crm_has_the_mess_real_crms_have(tables) -> None:  # type: ignore[no-untyped-def]
    leads, hist = tables.leads, tables.opportunity_history
    assert 0.05 < leads["industry"].isna().mean() < 0.4
    assert 0.05 < (leads["seniority"] == "unknown").mean() < 0.3
    assert 0.2 < leads["budget_confirmed"].notna().mean() < 0.6  # BANT for some leads only
    h = hist.sort_values(["opportunity_id", "changed_at"])
    prev_close = h.groupby("opportunity_id")["close_date"].shift()
    assert (h["close_date"] > prev_close).sum() > 0.05 * h["opportunity_id"].nunique()
    prev_amount = h.groupby("opportunity_id")["amount"].shift()
    assert (h["amount"] < 0.95 * prev_amount).sum() > 0
    order = {s: i for i, s in enumerate(OPEN_STAGES)}
    idx = h["stage"].map(order)
    assert (idx < idx.groupby(h["opportunity_id"]).shift()).sum() > 0  # moves back a stage
    assert (tables.opportunities["lead_id"].isna()).sum() > 0  # renewals and expansions


def test_lead_truth_is_calibrated(crm, tables) -> None:  # type: ignore[no-untyped-def]
    leads, end = tables.leads, crm.config.end_ts
    stop = leads[["qualified_at", "disqualified_at"]].min(axis=1).fillna(end)
    rows = []
    for k in range(0, 12, 3):
        as_of = leads["created_at"] + pd.Timedelta(days=7 * k)
        ok = (as_of < stop) & (as_of + pd.Timedelta(days=30) <= end)
        rows.append(pd.DataFrame({"lead_id": leads["lead_id"][ok], "as_of": as_of[ok],
                                  "q": leads["qualified_at"][ok]}))
    snaps = pd.concat(rows, ignore_index=True)
    y = ((snaps["q"] > snaps["as_of"]) & (snaps["q"] <= snaps["as_of"] + pd.Timedelta(days=30)))
    p = truth_probabilities(truth_from_arrow(crm.truth), "lead_qualification", snaps, 30)
    assert np.all((p >= 0) & (p <= 1))
    # 10 bins, each within 4 standard errors (a 1-in-1,500 miss per bin by chance).
    assert calibration_gap(p, y.to_numpy()) < 4.0


def test_deal_truth_is_calibrated(tables, crm) -> None:  # type: ignore[no-untyped-def]
    hist = tables.opportunity_history.merge(
        tables.opportunities[["opportunity_id", "closed_at", "is_won"]], on="opportunity_id")
    entries = hist[hist["stage"].isin(OPEN_STAGES) & hist["closed_at"].notna()]
    snaps = pd.DataFrame({"opportunity_id": entries["opportunity_id"],
                          "as_of": entries["changed_at"] + pd.Timedelta(seconds=1)})
    p = truth_probabilities(truth_from_arrow(crm.truth), "deal_close", snaps)
    y = entries["is_won"].astype(bool).to_numpy()
    assert not np.isnan(p).any()
    assert calibration_gap(p, y) < 4.0


def test_win_probability_rises_with_stage_and_quality() -> None:
    p = deal_win_probabilities(np.array([-1.0, 0.0, 1.0]))
    healthy = p[:, :, 0]
    assert np.all(np.diff(healthy, axis=1) > 0)  # later stage, likelier win
    assert np.all(np.diff(healthy, axis=0) > 0)  # better deal, likelier win
    assert np.all(p[:, :, 1] < p[:, :, 0])  # troubled deals win less


def test_bant_and_firmographics_become_known_after_creation(crm, tables) -> None:  # type: ignore[no-untyped-def]
    """Most BANT answers are recorded during qualification, not at creation; enrichment
    fills in head counts and industries later; every change ends at the row's value."""
    leads = tables.leads.set_index("lead_id")
    hist = tables.lead_field_history
    assert {"budget_confirmed", "timeline_days", "employees", "industry"} <= set(hist["field"])
    created = leads.loc[hist["lead_id"], "created_at"].to_numpy()
    assert (hist["changed_at"].to_numpy() >= created).all()
    assert (hist["changed_at"] < crm.config.end_ts).all()
    bant = hist.loc[hist["field"] == "budget_confirmed"]
    answered = leads["budget_confirmed"].notna()
    assert 0.5 < len(bant) / answered.sum() < 0.95  # most answers came after creation
    assert bant["old_value"].isna().all()
    last = hist.drop_duplicates(["lead_id", "field"], keep="last")
    for field in ("budget_confirmed", "employees", "industry"):
        rows = last.loc[last["field"] == field]
        now = leads.loc[rows["lead_id"], field].astype("string").str.lower()
        assert (now.to_numpy() == rows["new_value"].to_numpy()).all()
    # A qualified lead was asked by its qualification at the latest.
    qualified = bant.merge(leads["qualified_at"], left_on="lead_id", right_index=True)
    assert (qualified["changed_at"] <= qualified["qualified_at"].fillna(crm.config.end_ts)).all()


def test_early_snapshots_see_fewer_bant_answers_than_the_latest_row_holds(tables) -> None:  # type: ignore[no-untyped-def]
    """Read as of t, BANT answers are mostly unknown when a lead is new; read from the
    latest row (no field history) they would be known, and would tell the outcome."""
    from dataclasses import replace

    from features.schema import LEAD_FIELD_HISTORY, empty_frame
    from features.training_set import build_training_set

    blind = replace(tables, lead_field_history=empty_frame(LEAD_FIELD_HISTORY))
    known = {}
    for name, crm in (("as_of", tables), ("latest", blind)):
        frame = build_training_set(crm, "lead_qualification")
        new = frame.loc[frame["lead_age_days"] < 1]
        known[name] = new["budget_confirmed"].notna().mean()
    assert known["as_of"] < 0.5 * known["latest"]
