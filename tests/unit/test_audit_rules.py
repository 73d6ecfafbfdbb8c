"""Each rule of the leakage audit on a crafted frame: a planted leak is flagged with its
evidence, and columns known before the outcome are not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from training.audit import (
    AFTER_OUTCOME_TIME,
    CHANGED_AFTER_OUTCOME,
    CLOSE_TIME,
    ONE_OUTCOME,
    PROBE,
    UNEVEN_FILL,
    AuditData,
    AuditSettings,
    after_outcome_time_findings,
    audit_settings,
    changed_after_outcome_findings,
    close_time_findings,
    one_outcome_findings,
    probe_auc,
    probe_findings,
    run_audit,
    uneven_fill_findings,
)

N = 600
SETTINGS = AuditSettings()


@pytest.fixture()
def frame() -> pd.DataFrame:
    """Entities with a label driven partly by ``honest`` and a weaker ``weak``, both known
    at the snapshot, a category and a column with ordinary gaps."""
    rng = np.random.default_rng(3)
    honest = rng.normal(size=N)
    weak = rng.normal(size=N)
    label = (honest + 0.3 * weak + rng.normal(scale=1.2, size=N) > 0.3).astype("int64")
    start = pd.Timestamp("2025-01-01", tz="UTC")
    gappy = np.where(rng.random(N) < 0.3, np.nan, rng.normal(size=N))
    return pd.DataFrame({
        "deal_id": [f"D{i}" for i in range(N)],
        "as_of": start + pd.to_timedelta(rng.integers(0, 300, N), unit="D"),
        "label": label,
        "honest": honest,
        "weak": weak,
        "segment": pd.Categorical(rng.choice(["a", "b", "c"], N)),
        "gappy": gappy,
    })


def _columns(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(c for c in frame.columns if c not in ("deal_id", "as_of", "label"))


def test_no_rule_flags_columns_known_beforehand(frame: pd.DataFrame) -> None:
    cycle = pd.Series(np.random.default_rng(1).integers(5, 200, N), index=frame.index)
    event = frame["as_of"] + pd.to_timedelta(cycle, unit="D")
    data = AuditData(frame, "deal_id", _columns(frame), event_at=event,
                     timestamps=pd.DataFrame({"created": frame["as_of"]}),
                     changes=pd.DataFrame({"deal_id": frame["deal_id"],
                                           "changed_at": frame["as_of"], "field": "honest"}))
    report = run_audit(data, "deal_close")
    assert report.findings == [] and report.skipped == {}
    assert report.excluded == {}
    assert max(report.probe, key=report.probe.__getitem__) == "honest"
    assert 0.6 < report.probe["honest"] < SETTINGS.probe_auc


def test_probe_flags_the_label_with_noise(frame: pd.DataFrame) -> None:
    noise = np.random.default_rng(5).normal(scale=0.2, size=N)
    frame["leak"] = frame["label"] + noise
    findings, aucs = probe_findings(frame, _columns(frame), "deal_id", SETTINGS)
    assert aucs["leak"] > 0.95
    assert {(f.column, f.rule) for f in findings} == {("leak", PROBE)}
    rules = sorted(sorted(f.evidence) for f in findings)
    # Both ways: above the threshold, and far above the next best column.
    assert rules == [["auc", "margin", "next_best_auc"], ["auc", "threshold"]]
    assert "AUC" in findings[0].reason


def test_probe_flags_one_column_far_above_the_rest(frame: pd.DataFrame) -> None:
    """Below the threshold, but 0.15 above every other column; one honest column of 0.72
    beside weak ones is not (below the margin's floor)."""
    rng = np.random.default_rng(8)
    frame = frame.drop(columns=["honest"])
    frame["loud"] = np.where(rng.random(N) < 0.86, frame["label"], 1 - frame["label"])
    findings, aucs = probe_findings(frame, _columns(frame), "deal_id", SETTINGS)
    assert SETTINGS.probe_margin_floor < aucs["loud"] < SETTINGS.probe_auc
    assert [(f.column, set(f.evidence)) for f in findings] == [
        ("loud", {"auc", "next_best_auc", "margin"})]


def test_probe_reads_a_column_that_is_not_monotone_and_is_out_of_fold() -> None:
    """A middle band that converts is found (bins, not ranks), and a unique id per row is
    worth nothing (its rate is learned on other folds)."""
    rng = np.random.default_rng(2)
    x = rng.uniform(size=2000)
    y = ((x > 0.4) & (x < 0.6)).astype(float)
    folds = rng.integers(0, 5, 2000)
    assert probe_auc(pd.Series(x), y, folds, SETTINGS) > 0.95
    ids = pd.Series([f"row{i}" for i in range(2000)])
    assert probe_auc(ids, y, folds, SETTINGS) < 0.56


def test_one_outcome_flags_a_field_filled_in_only_for_won_deals(frame: pd.DataFrame) -> None:
    frame["won_reason"] = np.where(frame["label"] == 1, "price", None)
    frame["loss_reason"] = pd.Series(np.where(frame["label"] == 0, 3.0, np.nan))
    findings = one_outcome_findings(frame, _columns(frame), SETTINGS)
    assert [(f.column, f.rule) for f in findings] == [("won_reason", ONE_OUTCOME),
                                                     ("loss_reason", ONE_OUTCOME)]
    assert findings[0].evidence == {"present_positive": 1.0, "present_negative": 0.0}
    assert "filled in for 100% of positive" in findings[0].reason


def test_changed_after_outcome_flags_fields_edited_after_it() -> None:
    closed = pd.Series(pd.Timestamp("2025-06-01", tz="UTC"),
                       index=[f"D{i}" for i in range(100)])
    before = pd.DataFrame({"deal_id": closed.index, "field": "amount",
                           "changed_at": pd.Timestamp("2025-05-01", tz="UTC")})
    after = pd.DataFrame({"deal_id": closed.index[:20], "field": "industry",
                          "changed_at": pd.Timestamp("2025-06-02", tz="UTC")})
    few = pd.DataFrame({"deal_id": closed.index[:3], "field": "amount",
                        "changed_at": pd.Timestamp("2025-07-01", tz="UTC")})
    findings = changed_after_outcome_findings(pd.concat([before, after, few]), closed,
                                              "deal_id", SETTINGS)
    assert [(f.column, f.rule) for f in findings] == [("industry", CHANGED_AFTER_OUTCOME)]
    assert findings[0].evidence["share"] == 0.2
    # A change at the very time of the outcome (the stage moving to closed) is not after it.
    at = after.assign(changed_at=pd.Timestamp("2025-06-01", tz="UTC"))
    assert changed_after_outcome_findings(at, closed, "deal_id", SETTINGS) == []


def test_after_outcome_time_flags_a_timestamp_set_at_the_outcome(frame: pd.DataFrame) -> None:
    event = frame["as_of"] + pd.Timedelta(days=30)
    stamps = pd.DataFrame({
        "last_modified": event,
        "first_call": frame["as_of"] + pd.Timedelta(days=2),
        "mostly_before": np.where(np.arange(N) < N * 0.4, event + pd.Timedelta(days=1),
                                  event - pd.Timedelta(days=1)),
    })
    stamps["mostly_before"] = pd.to_datetime(stamps["mostly_before"], utc=True)
    findings = after_outcome_time_findings(stamps, event, SETTINGS)
    assert [(f.column, f.rule) for f in findings] == [("last_modified", AFTER_OUTCOME_TIME)]
    assert findings[0].evidence == {"share_at_or_after": 1.0, "rows": float(N)}


def test_close_time_flags_a_days_to_close_column(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(4)
    cycle = pd.Series(rng.integers(3, 150, N).astype(float), index=frame.index)
    frame["days_to_close"] = cycle + rng.normal(scale=5, size=N)
    frame["half_known"] = cycle * 0.5 + rng.normal(scale=60, size=N)
    findings = close_time_findings(frame, _columns(frame), cycle, SETTINGS)
    assert [(f.column, f.rule) for f in findings] == [("days_to_close", CLOSE_TIME)]
    assert findings[0].evidence["spearman"] > 0.9


def test_close_time_reads_each_entity_once_at_its_first_snapshot(frame: pd.DataFrame) -> None:
    """A deal's age grows with every weekly snapshot, so it tracks the cycle over all rows;
    at the first snapshot it is 0 for every deal and says nothing."""
    rows = []
    rng = np.random.default_rng(6)
    for i in range(200):
        cycle = int(rng.integers(10, 200))
        for age in range(0, cycle, 7):
            rows.append({"deal_id": f"D{i}", "age": float(age), "cycle": cycle,
                         "as_of": pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=age),
                         "label": int(rng.random() < 0.4)})
    snaps = pd.DataFrame(rows)
    event = snaps["as_of"] - pd.to_timedelta(snaps["age"], unit="D") + pd.to_timedelta(
        snaps["cycle"], unit="D")
    report = run_audit(AuditData(snaps, "deal_id", ("age",), event_at=event), "deal_close")
    assert [f for f in report.findings if f.rule == CLOSE_TIME] == []


def test_report_excludes_flagged_features_but_keeps_the_allowed(frame: pd.DataFrame) -> None:
    frame["leak"] = frame["label"].astype(float)
    frame["won_only"] = np.where(frame["label"] == 1, 1.0, np.nan)
    event = frame["as_of"] + pd.Timedelta(days=10)
    stamps = pd.DataFrame({"deals.closed_on": event})
    report = run_audit(AuditData(frame, "deal_id", _columns(frame), event_at=event,
                                 timestamps=stamps), "deal_close", allowed=("won_only",))
    assert set(report.flagged) == {"leak", "won_only", "deals.closed_on"}
    assert list(report.excluded) == ["leak"]
    assert "AUC" in report.excluded["leak"]
    assert list(report.kept) == ["won_only"]
    body = json.loads(report.dumps())
    assert body["excluded"] == report.excluded and body["allowed"] == report.kept
    assert {f["rule"] for f in body["findings"]} == {PROBE, ONE_OUTCOME, AFTER_OUTCOME_TIME}
    assert body["skipped"] == {CHANGED_AFTER_OUTCOME: "no field history"}


def test_rules_without_outcome_times_are_skipped_and_said(frame: pd.DataFrame) -> None:
    report = run_audit(AuditData(frame, "deal_id", _columns(frame)), "deal_close")
    assert set(report.skipped) == {CHANGED_AFTER_OUTCOME, AFTER_OUTCOME_TIME, CLOSE_TIME}


def test_thresholds_are_settings(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_AUDIT_PROBE_AUC", "0.6")
    settings = audit_settings()
    assert settings.probe_auc == 0.6
    findings, _ = probe_findings(frame, _columns(frame), "deal_id", settings)
    assert "honest" in {f.column for f in findings}
    with pytest.raises(ValueError):
        audit_settings(probe_auc=0.4)


def test_the_columns_left_out_are_part_of_the_runs_fingerprint(frame: pd.DataFrame) -> None:
    """Thresholds may come from the environment, so the same rows and flags can leave out
    other columns: that is another model, not an unchanged retrain."""
    from pathlib import Path

    from training.train import fingerprint, train_settings

    settings = train_settings(task="deal_close", data=Path("unused"))
    assert fingerprint(frame, settings) != fingerprint(frame, settings, ("honest",))
    assert fingerprint(frame, settings, ("a", "b")) == fingerprint(frame, settings, ("b", "a"))


def _filled(frame: pd.DataFrame, positive: float, negative: float, seed: int = 5) -> np.ndarray:
    """A column present for about ``positive`` of the positive rows and ``negative`` of the
    negative ones."""
    rng = np.random.default_rng(seed)
    share = np.where(frame["label"] == 1, positive, negative)
    return np.where(rng.random(len(frame)) < share, rng.normal(size=len(frame)), np.nan)


def test_uneven_fill_flags_a_current_value_filled_in_while_leads_are_worked(
    frame: pd.DataFrame,
) -> None:
    frame = frame.assign(rating=_filled(frame, 0.7, 0.3), visits=_filled(frame, 1.0, 1.0),
                         rare=_filled(frame, 0.02, 0.01))
    findings = uneven_fill_findings(frame, ("rating", "visits", "rare"), SETTINGS)
    assert [(f.column, f.rule) for f in findings] == [("rating", UNEVEN_FILL)]
    (rating,) = findings
    assert rating.evidence["present_positive"] == pytest.approx(0.7, abs=0.07)
    assert rating.evidence["present_negative"] == pytest.approx(0.3, abs=0.07)
    assert "times as often" in rating.reason and "export's day" in rating.reason
    # The same column read as of each snapshot (not a current value) is not this rule's.
    data = AuditData(frame, "deal_id", (*_columns(frame),), current=("visits",))
    assert UNEVEN_FILL not in {f.rule for f in run_audit(data, "deal_close").findings}
    data = AuditData(frame, "deal_id", (*_columns(frame),), current=("rating", "visits"))
    report = run_audit(data, "deal_close")
    assert "rating" in report.excluded and "visits" not in report.flagged


def test_uneven_fill_needs_both_the_ratio_and_the_gap(frame: pd.DataFrame) -> None:
    near = frame.assign(form=_filled(frame, 0.9, 0.7), thin=_filled(frame, 0.1, 0.03))
    assert uneven_fill_findings(near, ("form", "thin"), SETTINGS) == []
    strict = audit_settings(current_fill_ratio=1.2, current_fill_gap=0.05)
    assert {f.column for f in uneven_fill_findings(near, ("form", "thin"), strict)} == {
        "form", "thin"}
