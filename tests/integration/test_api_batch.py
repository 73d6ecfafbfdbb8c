"""`leadscore score`: batch scoring of CSV/Parquet gives the API's outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.schema import ACCOUNT_SIGNALS, empty_frame
from features.snapshots import data_end_of
from leadscore.cli import app
from tests.integration.test_api_accounts import (
    AccountModels,
    account_models,  # noqa: F401  (session fixture)
)
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    offline_features,
    open_deals,
    open_leads,
    trained,  # noqa: F401  (session fixture)
)

TABLE_NAMES = ("accounts", "leads", "opportunities", "opportunity_history", "activities",
               "lead_field_history")


@pytest.fixture(scope="module")
def crm_dir(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("crm")
    for name in TABLE_NAMES:
        trained.tables.get(name).to_parquet(out / f"{name}.parquet", index=False)
    trained.lead.model.save(out / "lead_model")  # type: ignore[attr-defined]
    trained.deal.model.save(out / "deal_model")  # type: ignore[attr-defined]
    return out


def test_score_leads_csv_matches_offline(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    leads = trained.tables.leads
    leads.to_csv(tmp_path / "leads.csv", index=False)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "score", "--task", "lead_qualification", "--input", str(tmp_path / "leads.csv"),
        "--output", str(out), "--data", str(crm_dir), "--as-of", AS_OF.isoformat(),
        "--model", str(crm_dir / "lead_model"),
    ])
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, dtype={"lead_id": str})
    expected_ids = set(open_leads(trained.tables, AS_OF))
    assert expected_ids <= set(scores["lead_id"])
    assert len(scores) < len(leads)  # closed and not-yet-created leads are skipped
    ids = scores["lead_id"].tolist()
    X = offline_features(trained.tables, "lead_qualification", ids, AS_OF)
    np.testing.assert_allclose(scores["probability"], trained.lead.model.predict_proba(X),
                               rtol=0, atol=1e-9)
    assert set(scores.columns) >= {"score", "grade", "reasons_up", "reasons_down",
                                   "model_version", "feature_set"}
    first = json.loads(scores["reasons_up"].iloc[0]) + json.loads(scores["reasons_down"].iloc[0])
    assert first and all(r["text"] for r in first)

    # The trend columns are the offline scores a week earlier, where the lead existed then.
    old = scores.dropna(subset=["trend_probability_7d_ago"])
    assert len(old) >= 5 and scores["trend_direction"].notna().any()
    week = AS_OF - pd.Timedelta(days=7)
    X7 = offline_features(trained.tables, "lead_qualification", old["lead_id"].tolist(), week)
    np.testing.assert_allclose(old["trend_probability_7d_ago"],
                               trained.lead.model.predict_proba(X7), rtol=0, atol=1e-9)
    created = leads.set_index(leads["lead_id"].astype(str))["created_at"]
    young = scores.loc[scores["lead_id"].map(created) >= week]
    assert young["trend_score_7d_ago"].isna().all()


def test_score_deals_parquet_has_risk(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    out = tmp_path / "deals.parquet"
    result = CliRunner().invoke(app, [
        "score", "--task", "deal_close", "--input", str(crm_dir / "opportunities.parquet"),
        "--output", str(out), "--data", str(crm_dir), "--as-of", AS_OF.isoformat(),
        "--model", str(crm_dir / "deal_model"),
    ])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert set(open_deals(trained.tables, AS_OF)) <= set(scores["opportunity_id"])
    assert set(scores["risk_level"]) <= {"low", "medium", "high"}
    flags = [f for text in scores["risk_flags"] for f in json.loads(text)]
    assert flags and all(f["reason"] and f["evidence"] for f in flags)
    with_amount = scores.dropna(subset=["expected_value"])
    assert (with_amount["expected_value"] >= 0).all()


def test_bad_rows_are_reported_with_row_and_field(crm_dir: Path, tmp_path: Path) -> None:
    bad = pd.DataFrame({"lead_id": ["L1", "L2"], "created_at": ["2024-01-01", "not a date"],
                        "employees": ["12", "lots"]})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = CliRunner().invoke(app, [
        "score", "--task", "lead_qualification", "--input", str(tmp_path / "bad.csv"),
        "--output", str(tmp_path / "o.csv"), "--model", str(crm_dir / "lead_model"),
        "--as-of", "2024-06-01T00:00:00Z",
    ])
    assert result.exit_code == 1, result.output  # the good row is scored, the bad reported
    assert "1 input row(s) rejected" in result.output
    scored = pd.read_csv(tmp_path / "o.csv", dtype={"lead_id": str})
    assert scored["lead_id"].tolist() == ["L1"]
    report = pd.read_csv(tmp_path / "o.report.csv")
    bad_row = report.loc[report["row"] == 1]
    assert set(bad_row["column"]) == {"created_at", "employees"}
    assert set(bad_row["outcome"]) == {"rejected"}


def test_every_input_row_is_scored_or_reported_with_its_reason(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    leads = trained.tables.leads
    doubled = pd.concat([leads, leads.iloc[[0]]], ignore_index=True)  # one id twice
    future = leads.iloc[[1]].assign(lead_id="L-LATE",
                                    created_at=AS_OF + pd.Timedelta(days=30))
    frame = pd.concat([doubled, future], ignore_index=True)
    frame.to_parquet(tmp_path / "leads.parquet", index=False)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, [
        "score", "--task", "lead_qualification", "--input", str(tmp_path / "leads.parquet"),
        "--output", str(out), "--data", str(crm_dir), "--as-of", AS_OF.isoformat(),
        "--model", str(crm_dir / "lead_model"), "--no-trend", "--no-reasons"])
    assert result.exit_code == 1, result.output  # the duplicate is rejected
    scored = pd.read_parquet(out)
    report = pd.read_csv(tmp_path / "scores.report.csv")
    assert len(scored) + report["row"].nunique() == len(frame)
    unscored = set(report.loc[report["outcome"] == "not scored", "id"].astype(str))
    assert not set(scored["lead_id"].astype(str)) & unscored
    dup = report.loc[report["outcome"] == "rejected"]
    assert dup["row"].tolist() == [len(leads)] and "duplicate of row 0" in dup["reason"].iat[0]
    late = report.loc[report["id"] == "L-LATE", "reason"].iat[0]
    assert "created after the scoring time" in late
    closed = report.loc[report["outcome"] == "not scored", "reason"]
    assert closed.str.contains("qualified_at|disqualified_at").any()


def test_deals_need_history(crm_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "score", "--task", "deal_close", "--input", str(crm_dir / "opportunities.parquet"),
        "--output", str(tmp_path / "o.csv"), "--model", str(crm_dir / "deal_model"),
    ])
    assert result.exit_code == 2 and "opportunity_history" in result.output


def test_score_leads_without_accounts_names_what_it_did_not_know(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    """A --data folder without accounts: the account features are not known, not zero,
    and each lead's warnings say which file would have given them."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("leads", "activities"):
        (data / f"{name}.parquet").write_bytes((crm_dir / f"{name}.parquet").read_bytes())
    trained.tables.leads.to_csv(tmp_path / "leads.csv", index=False)
    outs = []
    for folder in (data, crm_dir):
        out = tmp_path / f"scores-{folder.name}.csv"
        result = CliRunner().invoke(app, [
            "score", "--task", "lead_qualification", "--input", str(tmp_path / "leads.csv"),
            "--output", str(out), "--data", str(folder), "--as-of", AS_OF.isoformat(),
            "--model", str(crm_dir / "lead_model"),
        ])
        assert result.exit_code == 0, result.output
        outs.append(pd.read_csv(out, dtype={"lead_id": str}))
    bare, full = outs
    first = json.loads(bare["warnings"].iloc[0])
    assert first[0].startswith("not known without account ") and "in accounts.csv/.parquet: " \
        "contacts across the account, activity across the account" in first[0]
    assert not any("without" in w for ws in full["warnings"] for w in json.loads(ws))
    for reasons in bare["reasons_up"].tolist() + bare["reasons_down"].tolist():
        assert all("across the" not in r["text"] for r in json.loads(reasons))


def _data_end(trained: Trained) -> pd.Timestamp:  # noqa: F811
    """The newest event of the tables in crm_dir (it holds no account_signals)."""
    tables = dataclasses.replace(trained.tables, account_signals=empty_frame(ACCOUNT_SIGNALS))
    return data_end_of(tables)


def test_score_without_as_of_scores_as_of_the_datas_end(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    """No --as-of: the file is scored just after the newest event in it and --data, as the
    offline model scores it then, not as of today (which would read the months since the
    export as silence)."""
    leads = trained.tables.leads
    leads.to_csv(tmp_path / "leads.csv", index=False)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "score", "--task", "lead_qualification", "--input", str(tmp_path / "leads.csv"),
        "--output", str(out), "--data", str(crm_dir), "--model", str(crm_dir / "lead_model"),
    ])
    assert result.exit_code == 0, result.output
    end = _data_end(trained)
    as_of = end + pd.Timedelta(minutes=1)
    assert end < pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=300)  # an old export
    assert f"as of {as_of:%Y-%m-%d %H:%M:%S} UTC: just after the newest event in the data " \
        f"({end:%Y-%m-%d %H:%M:%S} UTC)" in result.output
    assert "warning: scoring as of" not in result.output
    scores = pd.read_csv(out, dtype={"lead_id": str})
    assert set(open_leads(trained.tables, as_of)) <= set(scores["lead_id"])
    ids = scores["lead_id"].tolist()
    X = offline_features(trained.tables, "lead_qualification", ids, as_of)
    np.testing.assert_allclose(scores["probability"], trained.lead.model.predict_proba(X),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize(("days_past", "setting", "warned"), [
    (40, None, True), (20, None, False), (40, "60", False),
])
def test_an_as_of_far_past_the_data_warns(
    trained: Trained, crm_dir: Path, tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, days_past: int, setting: str | None, warned: bool,
) -> None:
    if setting is not None:
        monkeypatch.setenv("LEADSCORE_STALE_DATA_DAYS", setting)
    end = _data_end(trained)
    as_of = end + pd.Timedelta(days=days_past)
    result = CliRunner().invoke(app, [
        "score", "--task", "deal_close", "--input", str(crm_dir / "opportunities.parquet"),
        "--output", str(tmp_path / "deals.csv"), "--data", str(crm_dir),
        "--as-of", as_of.isoformat(), "--model", str(crm_dir / "deal_model"),
    ])
    assert result.exit_code == 0, result.output
    assert f"as of {as_of:%Y-%m-%d %H:%M:%S} UTC (--as-of)" in result.output
    line = f"warning: scoring as of {as_of:%Y-%m-%d}, {days_past} days after the newest event"
    assert (line in result.output) == warned, result.output


def test_the_shipped_sample_is_scored_as_of_its_end(
    crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    """The sample ends 2025-12-31: scored without --as-of, its deals are scored then, not
    as of today (when every one of them would read as stalled for months)."""
    sample = Path(__file__).resolve().parents[2] / "data" / "sample"
    out = tmp_path / "deals.csv"
    result = CliRunner().invoke(app, [
        "score", "--task", "deal_close", "--input", str(sample / "opportunities.parquet"),
        "--output", str(out), "--data", str(sample), "--model", str(crm_dir / "deal_model"),
        "--no-reasons",
    ])
    assert result.exit_code == 0, result.output
    assert "as of 2025-12-31 23:52:43 UTC: just after the newest event in the data " \
        "(2025-12-31 23:51:43 UTC)" in result.output
    scores = pd.read_csv(out)
    assert len(scores) > 0
    quiet = [f["evidence"] for text in scores["risk_flags"] for f in json.loads(text)
             if f["flag"] in ("stalled", "no_activity")]
    days = [e.get("days_in_stage", e.get("days_since_last_activity")) for e in quiet]
    assert days and max(days) < 300  # as of today: 330 days and more


def test_blocks_score_as_one_pass(
    trained: Trained, crm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Features are computed once for the whole file and sliced per block: small blocks
    (trend rows included) give exactly the one-block answer."""
    import serving.batch

    outputs = []
    for rows in (100_000, 7):
        monkeypatch.setattr(serving.batch, "CHUNK_ROWS", rows)
        out = tmp_path / f"deals_{rows}.csv"
        result = CliRunner().invoke(app, [
            "score", "--task", "deal_close", "--input", str(crm_dir / "opportunities.parquet"),
            "--output", str(out), "--data", str(crm_dir), "--as-of", AS_OF.isoformat(),
            "--model", str(crm_dir / "deal_model"),
        ])
        assert result.exit_code == 0, result.output
        outputs.append(pd.read_csv(out))
    assert len(outputs[1]) > 7 * 3 and outputs[1]["trend_score_28d_ago"].notna().any()
    pd.testing.assert_frame_equal(outputs[0], outputs[1])


JSON_COLUMNS = ("reasons_up", "reasons_down", "warnings", "risk_flags")


def _same(batch: Any, served: Any, where: str) -> None:
    """Equal values, numbers to 1e-9 (NaN and None alike)."""
    if isinstance(served, dict):
        assert isinstance(batch, dict) and batch.keys() == served.keys(), where
        for k, v in served.items():
            _same(batch[k], v, f"{where}.{k}")
    elif isinstance(served, list):
        assert isinstance(batch, list) and len(batch) == len(served), where
        for i, (b, s) in enumerate(zip(batch, served, strict=True)):
            _same(b, s, f"{where}[{i}]")
    elif served is None or (isinstance(served, float) and served != served):
        assert batch is None or batch != batch, where
    elif isinstance(served, bool | str):
        assert batch == served, where
    elif isinstance(served, int | float):
        assert batch == pytest.approx(served, rel=0, abs=1e-9), where
    else:
        raise AssertionError(f"{where}: {served!r}")


@pytest.mark.parametrize("task", ["lead_qualification", "deal_close"])
def test_batch_rows_are_the_apis_results(
    trained: Trained, crm_dir: Path, tmp_path: Path, task: str  # noqa: F811
) -> None:
    """Every column of a batch row is the API's answer for the same entity and time:
    probability, score, grade, percentile, trend, risk, reasons (numbers to 1e-9) and
    warnings; only the model's version is named differently (a saved folder, not the
    registry)."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.batch import _flatten_dict
    from serving.deps import get_now
    from tests.integration.test_api_fixtures import auth, deal_request, lead_request, settings

    lead = task == "lead_qualification"
    key, source, folder = (("lead_id", "leads.parquet", "lead_model") if lead
                           else ("opportunity_id", "opportunities.parquet", "deal_model"))
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, [
        "score", "--task", task, "--input", str(crm_dir / source), "--output", str(out),
        "--data", str(crm_dir), "--as-of", AS_OF.isoformat(), "--model",
        str(crm_dir / folder)])
    assert result.exit_code == 0, result.output
    batch = pd.read_parquet(out).set_index(key)
    ids = (open_leads if lead else open_deals)(trained.tables, AS_OF)[:12]
    # Without the staleness warning: the API warns per request that the fixture's events
    # are old; the batch warns of that once, for the file.
    api = create_app(settings(stale_data_days=0), models=[trained.lead, trained.deal])

    async def fixed_now() -> Any:
        return AS_OF.to_pydatetime()

    api.dependency_overrides[get_now] = fixed_now
    make, route = (lead_request, "/v1/leads/score") if lead else (deal_request,
                                                                  "/v1/deals/score")
    with TestClient(api) as client:
        for entity_id in ids:
            r = client.post(route, json=make(trained.tables, entity_id, AS_OF),
                            headers=auth())
            assert r.status_code == 200, r.text
            (served,) = r.json()["results"]
            flat = _flatten_dict(served)
            row = batch.loc[str(entity_id)].to_dict()
            del flat[key], flat["model_version"], row["model_version"]
            assert set(row) == set(flat), (set(row) ^ set(flat))
            for column, value in flat.items():
                mine = row[column]
                if column in JSON_COLUMNS:
                    mine, value = json.loads(mine), json.loads(value)
                elif isinstance(mine, np.generic):
                    mine = mine.item()
                _same(mine, value, f"{entity_id}.{column}")
            assert json.loads(row["reasons_up"]) or json.loads(row["reasons_down"])


def test_bad_rows_of_data_are_reported_left_out_and_fail_the_run(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    """--data is checked as `validate` checks each table: an unknown stage in a deal's
    history and an activity dated after now are listed with their file, row, column and
    reason, left out of the features, and the run exits 1; every open deal is still
    scored."""
    data = tmp_path / "data"
    data.mkdir()
    for name in TABLE_NAMES:
        (data / f"{name}.parquet").write_bytes((crm_dir / f"{name}.parquet").read_bytes())
    hist = pd.read_parquet(data / "opportunity_history.parquet")
    deal = open_deals(trained.tables, AS_OF)[0]
    bad_stage = int(np.flatnonzero(hist["opportunity_id"].astype(str) == deal)[-1])
    hist["stage"] = hist["stage"].astype(object)
    hist.loc[bad_stage, "stage"] = "verbal_yes"
    hist.to_parquet(data / "opportunity_history.parquet", index=False)
    acts = pd.read_parquet(data / "activities.parquet")
    acts.loc[3, "occurred_at"] = pd.Timestamp("2199-01-01", tz="UTC")
    acts.to_parquet(data / "activities.parquet", index=False)
    out = tmp_path / "deals.csv"
    result = CliRunner().invoke(app, [
        "score", "--task", "deal_close", "--input", str(data / "opportunities.parquet"),
        "--output", str(out), "--data", str(data), "--as-of", AS_OF.isoformat(),
        "--model", str(crm_dir / "deal_model"),
    ])
    assert result.exit_code == 1, result.output
    assert "2 row(s) of --data rejected" in " ".join(result.output.split())
    report = pd.read_csv(tmp_path / "deals.csv.data-report.csv")
    assert list(report.columns) == ["file", "row", "column", "reason"]
    lines = {(Path(f).name, r, c) for f, r, c in report[["file", "row", "column"]].itertuples(
        index=False)}
    assert lines == {("opportunity_history.parquet", bad_stage, "stage"),
                     ("activities.parquet", 3, "occurred_at")}
    assert report["reason"].str.contains("verbal_yes").any()
    scores = pd.read_csv(out, dtype={"opportunity_id": str})
    assert set(open_deals(trained.tables, AS_OF)) <= set(scores["opportunity_id"])


def _copy_tables(crm_dir: Path, data: Path, names: tuple[str, ...] = TABLE_NAMES) -> None:
    data.mkdir()
    for name in names:
        (data / f"{name}.parquet").write_bytes((crm_dir / f"{name}.parquet").read_bytes())


def _append(data: Path, name: str, rows: list[dict[str, Any]]) -> list[int]:
    """Append ``rows`` (other columns copied from the table's first row) to a --data table;
    their 0-based rows in the file."""
    frame = pd.read_parquet(data / f"{name}.parquet")
    extra = pd.DataFrame([{**frame.iloc[0].to_dict(), **row} for row in rows])
    pd.concat([frame, extra.astype(frame.dtypes.to_dict())],
              ignore_index=True).to_parquet(data / f"{name}.parquet", index=False)
    return list(range(len(frame), len(frame) + len(rows)))


def _score_deals(trained: Trained, crm_dir: Path, data: Path, out: Path,  # noqa: F811
                 ) -> tuple[Any, pd.DataFrame, Path]:
    deals = trained.tables.opportunities
    wanted = deals.loc[deals["opportunity_id"].astype(str).isin(open_deals(trained.tables,
                                                                            AS_OF))]
    source = out.with_name(out.stem + "-input.parquet")
    wanted.to_parquet(source, index=False)
    result = CliRunner().invoke(app, [
        "score", "--task", "deal_close", "--input", str(source), "--output", str(out),
        "--data", str(data), "--as-of", AS_OF.isoformat(),
        "--model", str(crm_dir / "deal_model"), "--no-trend"])
    return result, wanted, source


def test_broken_references_between_data_tables_are_reported_and_left_out(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    """--data's references are checked as `validate` checks them: a deal of an account no
    table holds, the history and activities of that rejected deal, history of a deal no
    table holds, and an activity of a lead no table holds are each listed with the
    loader's reason, left out of the features (every score is the clean folder's), and
    the run exits 1, counting a row with two broken references once; the input's rows are
    all scored or reported."""
    clean, data = tmp_path / "clean", tmp_path / "data"
    _copy_tables(crm_dir, clean)
    _copy_tables(crm_dir, data)
    deal = open_deals(trained.tables, AS_OF)[0]
    (new_deal,) = _append(data, "opportunities", [
        {"opportunity_id": "O-NEW", "account_id": "A-GONE", "lead_id": None,
         "closed_at": None, "is_won": None}])
    hist = pd.read_parquet(data / "opportunity_history.parquet")
    at = hist.loc[hist["opportunity_id"].astype(str) == deal].iloc[-1]
    new_hist, lost_hist = _append(data, "opportunity_history", [
        {"opportunity_id": "O-NEW", "changed_at": at["changed_at"]},
        {"opportunity_id": "O-LOST", "changed_at": at["changed_at"]}])
    acts = pd.read_parquet(data / "activities.parquet")
    of_deal = acts.loc[acts["opportunity_id"].astype(str) == deal].iloc[0]
    new_act, ghost_act = _append(data, "activities", [
        {"activity_id": "ACT-NEW", "opportunity_id": "O-NEW",
         "account_id": of_deal["account_id"], "lead_id": None,
         "occurred_at": of_deal["occurred_at"]},
        {"activity_id": "ACT-GHOST", "opportunity_id": deal, "account_id": "A-GONE",
         "lead_id": "L-GHOST", "occurred_at": AS_OF - pd.Timedelta(days=2),
         "type": "meeting", "direction": "inbound"}])

    result, wanted, _ = _score_deals(trained, crm_dir, data, tmp_path / "deals.csv")
    assert result.exit_code == 1, result.output
    assert "5 row(s) of --data rejected" in " ".join(result.output.split())
    report = pd.read_csv(tmp_path / "deals.csv.data-report.csv")
    lines = {(Path(f).name, r, c, reason) for f, r, c, reason in report.itertuples(index=False)}
    assert lines == {
        ("opportunities.parquet", new_deal, "account_id",
         "orphan foreign key: no accounts.account_id 'A-GONE'"),
        ("opportunity_history.parquet", new_hist, "opportunity_id",
         "orphan foreign key: opportunities.opportunity_id 'O-NEW' was rejected"),
        ("opportunity_history.parquet", lost_hist, "opportunity_id",
         "orphan foreign key: no opportunities.opportunity_id 'O-LOST'"),
        ("activities.parquet", new_act, "opportunity_id",
         "orphan foreign key: opportunities.opportunity_id 'O-NEW' was rejected"),
        ("activities.parquet", ghost_act, "lead_id",
         "orphan foreign key: no leads.lead_id 'L-GHOST'"),
        ("activities.parquet", ghost_act, "account_id",
         "orphan foreign key: no accounts.account_id 'A-GONE'"),
    }
    scores = pd.read_csv(tmp_path / "deals.csv", dtype={"opportunity_id": str})
    input_report = pd.read_csv(tmp_path / "deals.report.csv")
    assert len(scores) + input_report["row"].nunique() == len(wanted)

    expected, _, _ = _score_deals(trained, crm_dir, clean, tmp_path / "clean.csv")
    assert expected.exit_code == 0, expected.output
    pd.testing.assert_frame_equal(scores, pd.read_csv(tmp_path / "clean.csv",
                                                      dtype={"opportunity_id": str}))


def test_references_to_tables_the_data_folder_lacks_are_not_broken(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    """A --data folder of history and activities only: their deals, leads and accounts are
    in no table of the folder (the input holds only the open deals), which does not make
    them broken references: nothing is reported and every open deal is scored."""
    data = tmp_path / "data"
    _copy_tables(crm_dir, data, ("opportunity_history", "activities"))
    result, wanted, _ = _score_deals(trained, crm_dir, data, tmp_path / "deals.csv")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "deals.csv.data-report.csv").empty
    scores = pd.read_csv(tmp_path / "deals.csv")
    assert len(scores) + pd.read_csv(tmp_path / "deals.report.csv")["row"].nunique() \
        == len(wanted)
    closed = set(trained.tables.opportunities["opportunity_id"].astype(str)) - set(
        wanted["opportunity_id"].astype(str))
    hist = pd.read_parquet(data / "opportunity_history.parquet")
    assert hist["opportunity_id"].astype(str).isin(closed).any()  # not held, not reported


def test_the_input_files_rows_count_as_their_tables_rows(
    trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    """A lead that only the input file holds has its --data activities read, not
    reported; one whose input row is rejected takes its activities with it, as a rejected
    lead of the folder would."""
    data = tmp_path / "data"
    _copy_tables(crm_dir, data)
    leads = trained.tables.leads
    lead = leads.loc[leads["lead_id"].astype(str) == open_leads(trained.tables, AS_OF)[0]]
    frame = pd.concat([leads, lead.assign(lead_id="L-INPUT"),
                       lead.assign(lead_id="L-BAD", employees=-5)], ignore_index=True)
    frame.to_csv(tmp_path / "leads.csv", index=False)
    acts = pd.read_parquet(data / "activities.parquet")
    first = acts.iloc[0]
    kept, gone = _append(data, "activities", [
        {"activity_id": "ACT-INPUT", "lead_id": "L-INPUT", "opportunity_id": None,
         "account_id": lead["account_id"].iat[0], "occurred_at": first["occurred_at"]},
        {"activity_id": "ACT-BAD", "lead_id": "L-BAD", "opportunity_id": None,
         "account_id": lead["account_id"].iat[0], "occurred_at": first["occurred_at"]}])
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "score", "--task", "lead_qualification", "--input", str(tmp_path / "leads.csv"),
        "--output", str(out), "--data", str(data), "--as-of", AS_OF.isoformat(),
        "--model", str(crm_dir / "lead_model"), "--no-trend", "--no-reasons"])
    assert result.exit_code == 1, result.output  # L-BAD's row, and its activity
    report = pd.read_csv(tmp_path / "scores.csv.data-report.csv")
    assert [(Path(f).name, r, c, why) for f, r, c, why in report.itertuples(index=False)] == [
        ("activities.parquet", gone, "lead_id",
         "orphan foreign key: leads.lead_id 'L-BAD' was rejected")]
    scores = pd.read_csv(out, dtype={"lead_id": str})
    assert "L-INPUT" in set(scores["lead_id"]) and kept != gone
    rejected = pd.read_csv(tmp_path / "scores.report.csv")
    assert len(scores) + rejected["row"].nunique() == len(frame)
    assert rejected.loc[rejected["outcome"] == "rejected", "row"].tolist() == [len(frame) - 1]


def test_accounts_the_task_does_not_apply_to_are_reported(
    account_models: AccountModels, tmp_path: Path  # noqa: F811
) -> None:
    """Renewal scores the accounts with a renewal due; every other open account is in the
    report as not scored, with why: output rows plus report rows are the input's rows."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("accounts", "leads", "opportunities", "opportunity_history", "activities",
                 "account_signals"):
        account_models.tables.get(name).to_parquet(data / f"{name}.parquet", index=False)
    model = account_models.models["account_renewal"]
    model.model.save(tmp_path / "renewal")  # type: ignore[attr-defined]
    out = tmp_path / "renewals.csv"
    result = CliRunner().invoke(app, [
        "score", "--task", "account_renewal", "--input", str(data / "accounts.parquet"),
        "--output", str(out), "--data", str(data), "--as-of", account_models.as_of.isoformat(),
        "--model", str(tmp_path / "renewal"), "--no-trend", "--no-reasons"])
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, dtype={"account_id": str})
    report = pd.read_csv(tmp_path / "renewals.report.csv", dtype={"id": str})
    accounts = account_models.tables.accounts
    assert 0 < len(scores) < len(accounts)
    assert len(scores) + report["row"].nunique() == len(accounts)
    assert not set(scores["account_id"]) & set(report["id"])
    due = report.loc[report["reason"].str.contains("does not apply")]
    assert len(due) and set(due["outcome"]) == {"not scored"}
    assert due["reason"].str.contains("account_renewal does not apply").all()
