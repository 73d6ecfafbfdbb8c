"""The pipeline review end to end on a small generated CRM: every open deal scored exactly
as the API scores it, ranked by money at risk, and `leadscore pipeline` writing the page,
the JSON and the CSV, with clear errors on bad input."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

from features.schema import TABLES
from leadscore.cli import app as cli
from review.build import ReviewInputError, build_review
from review.files import at_risk_frame
from review.render import render_html
from review.schemas import Review
from tests.data.crm_builder import write_folder
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    app_at,
    auth,
    deal_request,
    settings,
    trained,  # noqa: F401  (session fixture)
)


@pytest.fixture(scope="module")
def review(trained: Trained) -> Review:  # noqa: F811
    return build_review(trained.tables, trained.deal, settings(), as_of=AS_OF, target=250_000)


@pytest.fixture()
def client(trained: Trained) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(app_at([trained.lead, trained.deal])) as c:
        yield c


def _open(trained: Trained) -> set[str]:  # noqa: F811
    opps = trained.tables.opportunities
    is_open = (opps["created_at"] <= AS_OF) & ~(opps["closed_at"] <= AS_OF).fillna(False)
    return set(opps.loc[is_open, "opportunity_id"].astype(str))


def test_every_open_deal_is_ranked_by_money_at_risk(review: Review, trained: Trained) -> None:  # noqa: F811
    deals = review.at_risk.deals
    assert {d.opportunity_id for d in deals} == _open(trained)
    assert [d.rank for d in deals] == list(range(1, len(deals) + 1))
    rates = trained.deal.model.metadata["stage_win_rates"]
    for d in deals:
        expected = (d.amount or 0.0) * max(0.0, rates[d.result.stage] - d.result.probability)
        assert d.money_at_risk == pytest.approx(expected, abs=0.01)
        assert d.stage_win_rate == rates[d.result.stage]
    risk = [d.money_at_risk for d in deals]
    assert risk == sorted(risk, reverse=True) and risk[0] > 0
    assert review.at_risk.money_at_risk == pytest.approx(sum(risk), abs=0.05)
    assert review.at_risk.owners == sorted({d.owner_id for d in deals})


def test_each_deal_is_scored_as_the_api_scores_it(
    review: Review, trained: Trained, client: TestClient  # noqa: F811
) -> None:
    for d in review.at_risk.deals[:3] + review.at_risk.deals[-2:]:
        body = deal_request(trained.tables, d.opportunity_id, AS_OF)
        r = client.post("/v1/deals/score", json=body, headers=auth())
        assert r.status_code == 200, r.text
        served = r.json()["results"][0]
        mine = d.result.model_dump(mode="json")
        assert mine["probability"] == pytest.approx(served["probability"], abs=1e-9)
        for field in ("score", "grade", "percentile", "stage", "risk", "reasons", "trend",
                      "expected_value", "warnings"):
            assert mine[field] == served[field], field


def test_the_funnel_and_the_changes_cover_the_periods(review: Review) -> None:
    assert [p.label for p in review.periods] == ["2024-07", "2024-08", "2024-09", "2024-10"]
    assert [p.complete for p in review.periods] == [True, True, True, False]
    assert len(review.overall) == 4
    f = review.overall[-2]
    assert f.won + f.lost > 0 and f.win_rate == pytest.approx(f.won / (f.won + f.lost))
    assert review.overall[-1].open_deals == review.at_risk.open_deals
    dims = {b.dimension: b for b in review.breakdowns}
    assert list(dims) == ["owner", "industry", "size", "source", "product"]
    # Each breakdown splits the same deals: its groups' counts add up to the overall.
    for b in dims.values():
        assert sum(g.periods[-2].won for g in b.groups) == f.won
        assert sum(g.periods[-1].open_deals for g in b.groups) == review.overall[-1].open_deals
    assert review.coverage is not None and review.coverage.target == 250_000
    assert review.changes.until == AS_OF.to_pydatetime()
    assert Review.model_validate_json(review.model_dump_json()) == review


def test_the_page_is_self_contained_and_lists_the_top_deals(review: Review) -> None:
    html = render_html(review, page_deals=10)
    assert "forecast: not computed" in html
    # Nothing fetched: the only URL is the SVG namespace.
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert "<link" not in html and " src=" not in html
    rows = re.findall(r'<tr data-owner="([^"]+)">\s*<td class="n" data-value="(\d+)">', html)
    assert [int(rank) for _, rank in rows] == list(range(1, 11))
    assert [o for o, _ in rows] == [d.owner_id for d in review.at_risk.deals[:10]]
    assert '<label for="owner-filter">' in html and html.count('<th scope="col"') > 20
    # By default: every deal with money at risk, and none of those doing better than their stage.
    listed = re.findall(r'<tr data-owner="[^"]+">', render_html(review))
    assert len(listed) == sum(d.money_at_risk > 0 for d in review.at_risk.deals) > 10
    assert len(listed) < review.at_risk.open_deals
    csv = at_risk_frame(review)
    assert csv["opportunity_id"].tolist() == [d.opportunity_id for d in review.at_risk.deals]


def test_nothing_after_the_date_is_read(review: Review, trained: Trained) -> None:  # noqa: F811
    """The review as of a date is the same when every row after the date is gone."""
    t = trained.tables
    opps = t.opportunities.loc[t.opportunities["created_at"] <= AS_OF].copy()
    later = ~(opps["closed_at"] <= AS_OF).fillna(False)
    opps.loc[later, "closed_at"] = pd.NaT
    opps.loc[later, "is_won"] = pd.NA
    hist = t.opportunity_history
    acts = t.activities
    leads = t.leads.loc[t.leads["created_at"] <= AS_OF].copy()
    for c in ("qualified_at", "disqualified_at"):
        leads.loc[~(leads[c] <= AS_OF).fillna(False), c] = pd.NaT
    leads.loc[~leads["opportunity_id"].isin(opps["opportunity_id"]), "opportunity_id"] = pd.NA
    cut = dataclasses.replace(
        t, opportunities=opps, leads=leads,
        opportunity_history=hist.loc[hist["changed_at"] <= AS_OF],
        activities=acts.loc[acts["occurred_at"] <= AS_OF],
        account_signals=t.account_signals.loc[t.account_signals["observed_at"] <= AS_OF],
        accounts=t.accounts.loc[t.accounts["created_at"] <= AS_OF])
    again = build_review(cut, trained.deal, settings(), as_of=AS_OF, target=250_000)
    assert again.model_dump(exclude={"data_end"}) == review.model_dump(exclude={"data_end"})


def test_the_forecast_section_shows_the_forecast_once_it_is_computed(review: Review) -> None:
    class Forecast(BaseModel):
        period: str
        p50: float

    html = render_html(review.model_copy(update={"forecast": Forecast(period="2024-10",
                                                                       p50=123456.0)}))
    assert "forecast: not computed" not in html and "123456.0" in html
    assert json.loads(review.model_copy(update={"forecast": Forecast(
        period="2024-10", p50=1.0)}).model_dump_json())["forecast"] == {"period": "2024-10",
                                                                        "p50": 1.0}


def test_bad_requests_say_what_to_change(trained: Trained) -> None:  # noqa: F811
    s = settings()
    with pytest.raises(ReviewInputError, match="unknown period 'week'"):
        build_review(trained.tables, trained.deal, s, as_of=AS_OF, period="week")
    with pytest.raises(ReviewInputError, match="outside the data"):
        build_review(trained.tables, trained.deal, s, as_of=pd.Timestamp("2030-01-01T00:00:00Z"))
    opps = trained.tables.opportunities
    closed = opps.loc[opps["closed_at"].notna()]
    hist = trained.tables.opportunity_history
    only_closed = dataclasses.replace(
        trained.tables, opportunities=closed,
        opportunity_history=hist.loc[hist["opportunity_id"].isin(closed["opportunity_id"])])
    with pytest.raises(ReviewInputError, match="no deal is open"):
        build_review(only_closed, trained.deal, s, as_of=closed["closed_at"].max())


@pytest.fixture(scope="module")
def crm_dir(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("crm")
    return write_folder({name: trained.tables.get(name) for name in TABLES}, folder, "parquet")


@pytest.fixture(scope="module")
def model_dir(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    path = tmp_path_factory.mktemp("model") / "deal"
    trained.deal.model.save(path)  # type: ignore[attr-defined]
    return path


def test_the_command_writes_the_page_json_and_csv(
    crm_dir: Path, model_dir: Path, tmp_path: Path, review: Review
) -> None:
    out = tmp_path / "review"
    result = CliRunner().invoke(cli, [
        "pipeline", "--data", str(crm_dir), "--as-of", AS_OF.isoformat(), "--model",
        str(model_dir), "--out", str(out), "--target", "250000"])
    assert result.exit_code == 0, result.output
    assert "pipeline review as of 2024-10-01 12:00 UTC, month 2024-10" in result.output
    assert "forecast: not computed" in result.output
    assert {p.name for p in out.iterdir()} == {"review.html", "review.json", "at_risk.csv"}
    csv = pd.read_csv(out / "at_risk.csv")
    top = [d.opportunity_id for d in review.at_risk.deals]
    assert csv["opportunity_id"].tolist() == top
    assert f"1. {top[0]} " in result.output
    written = json.loads((out / "review.json").read_text())
    assert written["at_risk"]["open_deals"] == review.at_risk.open_deals
    assert written["forecast"] is None
    assert written["backtest"] is None and "backtest: none has run yet" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--period", "week"], "--period: unknown period 'week': use month or quarter"),
    (["--as-of", "2031-01-01"], "is outside the data, which runs from"),
    (["--as-of", "someday"], "--as-of: 'someday' is not a date or time"),
    (["--target", "-5"], "--target: Input should be greater than 0"),
])
def test_the_command_refuses_bad_input(
    crm_dir: Path, model_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["pipeline", "--data", str(crm_dir), "--model",
                                      str(model_dir), "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "r").exists()


def test_the_forecast_section_is_the_forecast_of_the_served_model(
    review: Review, trained: Trained  # noqa: F811
) -> None:
    """With a time-to-close model, the review carries the forecast package's figures for
    the period and the next, and the page and the summary show them."""
    from features.snapshots import crm_as_of
    from features.training_set import build_training_set
    from forecast.core import forecast
    from review.files import forecast_line
    from review.forecasting import ForecastSection, forecast_section
    from training.time_to_close import (
        TimeToCloseParams,
        fit_time_to_close,
        split_won,
        won_rows,
    )

    past = crm_as_of(trained.tables, AS_OF)
    frame = build_training_set(past, "deal_close", data_end=AS_OF, every_days=14)
    quick = TimeToCloseParams(num_boost_round=40, early_stopping_rounds=10,
                              min_data_in_leaf=20, num_threads=1)
    ttc = fit_time_to_close(*split_won(won_rows(frame, past, AS_OF), 0.2), "hazard", quick)
    section = forecast_section(trained.tables, AS_OF, "month", trained.deal, ttc)
    expected = forecast(trained.tables, AS_OF, "month", trained.deal.model, ttc).to_json()
    assert section.current == expected["current"] and section.next == expected["next"]
    b = section.next["bookings"]
    assert b["p10"] <= b["p50"] <= b["p90"] and b["p90"] > b["p10"]

    with_forecast = review.model_copy(update={"forecast": section})
    html = render_html(with_forecast)
    assert "Forecast of bookings, with its range" in html and "forecast: not computed" not in html
    assert section.next["period"] in html
    line = forecast_line(with_forecast)
    assert section.current["period"] in line and "P50" in line
    assert forecast_line(review) == "forecast: not computed"
    assert isinstance(with_forecast.forecast, ForecastSection)


def _saved_backtest(data: Path) -> dict[str, object]:
    """A ``backtest.json`` as ``last_backtest`` returns it: two scored months, one warm-up."""
    def period(label: str, origin: str, end: str, actual: float, model: tuple[float, ...],
               crm: tuple[float, ...]) -> dict[str, object]:
        return {"period": label, "origin": origin, "end": end, "actual": actual,
                "expected": model[1], "independent_cv": 0.05,
                "ranges": {"model": dict(zip(("p10", "p50", "p90"), model, strict=True)),
                           "crm_default": dict(zip(("p10", "p50", "p90"), crm, strict=True))}}
    return {
        "period_kind": "month", "ran_at": "2024-10-01T09:30:00+00:00", "data": str(data),
        "run_id": "abc123",
        "metrics": {"wape_model": 0.1, "wape_crm_default": 0.5, "bias_model": -0.02,
                    "bias_crm_default": -0.5, "wape_reduction_vs_crm_default": 0.8},
        "warmup_periods": [period("2024-07", "2024-07-01T00:00:00+00:00",
                                  "2024-08-01T00:00:00+00:00", 90.0, (80, 100, 120),
                                  (40, 50, 60))],
        "periods": [
            period("2024-08", "2024-08-01T00:00:00+00:00", "2024-09-01T00:00:00+00:00",
                   100.0, (90, 110, 130), (40, 50, 60)),
            period("2024-09", "2024-09-01T00:00:00+00:00", "2024-10-01T00:00:00+00:00",
                   200.0, (150, 180, 190), (90, 100, 110)),
        ],
    }


def test_the_page_says_when_no_backtest_has_run_and_how_to_run_one(review: Review) -> None:
    from review.files import backtest_line

    assert review.backtest is None
    html = " ".join(render_html(review).split())
    assert "No backtest has run yet" in html
    assert "<dt>Last backtest</dt> <dd>–<small>none has run" in html
    assert "leadscore pipeline backtest --data DIR --periods 6" in html
    assert backtest_line(review) == ("backtest: none has run yet (leadscore pipeline backtest "
                                     "--data DIR --periods 6)")


def test_the_page_shows_the_last_backtest(review: Review, crm_dir: Path) -> None:
    from review.backtest import backtest_section
    from review.files import backtest_line
    from review.forecasting import backtest_errors

    saved = _saved_backtest(crm_dir)
    section = backtest_section(saved, crm_dir)
    assert section is not None and section.same_data is True
    assert (section.first_period, section.last_period, section.periods) == (
        "2024-08", "2024-09", 2)
    held = {s.method: s.held for s in section.methods}
    assert held == {"model": 1, "crm_default": 0}  # 100 in [90, 130]; 200 above 190
    html = " ".join(render_html(review.model_copy(update={"backtest": section})).split())
    assert "No backtest has run yet" not in html
    assert "Ran 2024-10-01 09:30 UTC over 2 months, 2024-08 to 2024-09" in html
    assert "Ours missed what closed by 80% less than the CRM-default weighted pipeline" in html
    assert "10.0%" in html and "1 of 2" in html and "50.0%" in html
    assert ("<dt>Last backtest</dt> <dd>10.0%<small>average miss of the P50 over 2 months "
            "(WAPE); inside P10-P90 in 1 of 2</small>") in html
    line = backtest_line(review.model_copy(update={"backtest": section}))
    assert line == ("last backtest, 2 months 2024-08 to 2024-09 (ran 2024-10-01 09:30 UTC): "
                    "ours WAPE 10.0%, CRM-default weighted pipeline (10/20/40/60/80 %) WAPE "
                    "50.0%; ours inside P10-P90 in 1 of 2")
    # The forecast's range rests on its errors only for the same folder and period kind.
    errors = backtest_errors(saved, "month", crm_dir)
    assert errors is not None and [e.period for e in errors] == ["2024-07", "2024-08",
                                                                 "2024-09"]
    assert backtest_errors(saved, "quarter", crm_dir) is None
    assert backtest_errors(saved, "month", crm_dir / "other") is None
    other = backtest_section(saved, crm_dir / "other")
    assert other is not None and other.same_data is False
    html = " ".join(render_html(review.model_copy(update={"backtest": other})).split())
    assert "That backtest was of another data folder" in html
