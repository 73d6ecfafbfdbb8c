"""PSI and binning on known values, the reference profile's file, and the serving window's
bounds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.build import category_dtype
from features.sets import DEAL_V1, LEAD_V1
from modeling.profile import (
    ReferenceProfile,
    build_profile,
    category_bins,
    expected_psi,
    feature_drift,
    load_profile,
    number_bins,
    profile_drift,
    psi,
    status_of,
)
from serving.models import LoadedModel
from serving.monitoring import NO_PROFILE, TOO_FEW_ROWS, Monitor, ScoreWindow


def test_psi_known_values() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([10, 30, 60], [20, 60, 120]) == pytest.approx(0.0)  # counts or shares alike
    # an empty bin is floored at 1e-4, not infinite
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(
        -0.1 * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4))
    assert math.isnan(psi([1, 1], [0, 0]))
    with pytest.raises(ValueError):
        psi([1, 1], [1, 1, 1])


def test_status_thresholds() -> None:
    assert [status_of(v) for v in (0.0, 0.099, 0.1, 0.2499, 0.25, 3.0)] == [
        "ok", "ok", "warn", "warn", "alert", "alert"]


def test_number_bins_deciles_and_missing() -> None:
    values = np.r_[np.arange(1.0, 101.0), [np.nan] * 25]
    bins = number_bins("x", values)
    assert bins.edges == (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
    assert bins.shares[:-1] == pytest.approx([10 / 125] * 10)
    assert bins.shares[-1] == pytest.approx(25 / 125)  # the missing bin
    # a value on an edge falls in the bin that edge closes; beyond the ends, the end bins
    counts = bins.counts([-5.0, 10.0, 10.5, 1e9, np.nan])
    assert counts.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1]


def test_number_bins_of_few_values_get_a_bin_each() -> None:
    bins = number_bins("flag", np.r_[np.zeros(70), np.ones(30)])
    assert bins.edges == (0.0, 1.0)
    assert bins.shares == pytest.approx((0.7, 0.3, 0.0, 0.0))
    assert bins.labels == ["(-inf, 0]", "(0, 1]", "(1, inf)", "missing"]


def test_category_bins_other_and_missing() -> None:
    bins = category_bins("source", ["web", "web", "event", None, "web"])
    assert bins.levels == ("web", "event")
    assert bins.shares == pytest.approx((0.6, 0.2, 0.0, 0.2))
    assert bins.counts(["event", "partner", None, np.nan, "web"]).tolist() == [1, 1, 1, 2]
    # codes into another level order count the same as their names
    levels = ["partner", "event", "web"]
    assert bins.code_counts(np.array([1, 0, -1, 2]), levels).tolist() == [1, 1, 1, 1]
    assert bins.code_counts(np.array([1.0, np.nan]), levels).tolist() == [0, 1, 0, 1]


def _frame(n: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "as_of": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        "x": rng.normal(shift, 1.0, n),
        "source": pd.Categorical(rng.choice(["web", "event"], n, p=[0.7 - shift / 4,
                                                                    0.3 + shift / 4])),
    })


def test_profile_round_trip_and_drift(tmp_path: Path) -> None:
    ref = _frame(4000)
    profile = build_profile(ref, ["x", "source"], np.linspace(0, 1, len(ref)))
    profile.save(tmp_path)
    again = load_profile(tmp_path)
    assert again == profile
    assert again is not None and again.period["from"].startswith("2024-01-01")
    assert load_profile(tmp_path / "nothing") is None
    same, same_features = profile_drift(profile, _frame(4000, seed=1),
                                        np.linspace(0, 1, 4000))
    assert same.psi < 0.01 and all(f.status == "ok" for f in same_features)
    score, features = profile_drift(profile, _frame(4000, shift=1.0, seed=2),
                                    np.linspace(0.3, 1, 4000))
    assert score.status == "alert"
    assert [f.name for f in features] == ["x", "source"]  # the worst first
    assert features[0].status == "alert" and features[0].psi > features[1].psi > 0.1


def test_profile_refuses_a_bad_file() -> None:
    data = build_profile(_frame(10), ["x"], np.zeros(10)).to_json()
    data["features"][0]["shares"] = [1.0]
    with pytest.raises(ValueError, match="shares"):
        ReferenceProfile.from_json(data)


def _columns(n: int, rng: np.random.Generator, source: str = "inbound_web_form") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in LEAD_V1.features:
        if spec.dtype == "category":
            levels = list(category_dtype(spec.name).categories)
            code = levels.index(source) if spec.name == "source" else 0
            out[spec.name] = np.full(n, code, dtype=np.int16)
        else:
            out[spec.name] = rng.poisson(3.0, n).astype(float)
    return out


class _Scored:
    def __init__(self, columns: dict[str, Any], p: np.ndarray,
                 ids: list[str] | None = None) -> None:
        self.columns, self.probabilities = columns, p
        self.ids = ids if ids is not None else [f"L{next(_IDS)}" for _ in range(len(p))]


_IDS = iter(range(10**9))


def test_window_keeps_the_newest_rows_within_its_bounds() -> None:
    window = ScoreWindow(LEAD_V1, "1", capacity=5)
    rng = np.random.default_rng(0)
    for start in (0, 3, 6):
        cols = _columns(3, rng)
        cols["employees"] = np.arange(start, start + 3, dtype=float)
        window.add(cols, np.array([0.1, np.nan, 0.3]))  # NaN: not scored, not kept
    features, scores, seen = window.snapshot()
    assert seen == 6 and window.size == 5 and len(scores) == 5
    j = window.names.index("employees")
    assert sorted(features[:, j].tolist()) == [2.0, 3.0, 5.0, 6.0, 8.0]  # 0 fell out
    big = _columns(50, rng)
    big["employees"] = np.arange(50, dtype=float)
    window.add(big, np.full(50, 0.5))
    assert sorted(window.snapshot()[0][:, j].tolist()) == [45.0, 46.0, 47.0, 48.0, 49.0]
    # the byte bound caps the rows: 58 features, the score and the id's hash a row
    monitor = Monitor(window_rows=10_000, window_bytes=60 * 8 * 100, min_rows=10,
                      warn=0.1, alert=0.25)
    assert monitor.capacity(LEAD_V1) == 100
    assert Monitor(10_000, 16 * 2**20, 10, 0.1, 0.25).capacity(LEAD_V1) == 10_000


def _loaded(version: str, profile: ReferenceProfile | None) -> LoadedModel:
    class _Model:
        feature_set = LEAD_V1

    return LoadedModel(task="lead_qualification", model=_Model(),  # type: ignore[arg-type]
                       name="lead_qualification", version=version, profile=profile)


def test_monitor_statuses_and_a_new_window_per_version() -> None:
    rng = np.random.default_rng(1)
    ref = _columns(2000, rng)
    frame = pd.DataFrame({n: (pd.Categorical.from_codes(ref[n], dtype=category_dtype(n))
                              if n in LEAD_V1.categorical else ref[n]) for n in LEAD_V1.names})
    p = rng.uniform(0, 1, 2000)
    profile = build_profile(frame, LEAD_V1.names, p)
    monitor = Monitor(window_rows=1000, window_bytes=2**24, min_rows=100, warn=0.1, alert=0.25)
    v1 = _loaded("1", profile)
    assert monitor.drift("lead_qualification", None).status == "no model"
    monitor.observe(v1, _Scored(_columns(50, rng), rng.uniform(0, 1, 50)))  # type: ignore[arg-type]
    assert monitor.drift("lead_qualification", v1).status == TOO_FEW_ROWS
    monitor.observe(v1, _Scored(_columns(500, rng), rng.uniform(0, 1, 500)))  # type: ignore[arg-type]
    quiet = monitor.drift("lead_qualification", v1)
    assert quiet.status == "ok" and quiet.window_rows == 550 and quiet.score is not None
    assert monitor.drift("lead_qualification", v1) is quiet  # unchanged window: cached
    v2 = _loaded("2", profile)
    monitor.observe(v2, _Scored(_columns(300, rng, source="event"),  # type: ignore[arg-type]
                                rng.uniform(0.5, 1, 300)))
    loud = monitor.drift("lead_qualification", v2)
    assert loud.window_rows == 300 and loud.status == "alert"
    assert loud.features[0].name == "source" and loud.features[0].status == "alert"
    assert loud.score is not None and loud.score.status == "alert"
    assert monitor.drift("lead_qualification", _loaded("2", None)).status == NO_PROFILE


def test_expected_psi_and_thresholds_above_it() -> None:
    # (k - 1) (1/n + 1/m), k the bins the reference holds rows in
    assert expected_psi([0.25] * 4 + [0.0], 100, 400) == pytest.approx(3 * (0.01 + 0.0025))
    assert expected_psi([0.5, 0.5], 100, 0) == pytest.approx(0.01)  # reference taken as exact
    assert expected_psi([1.0, 0.0], 100, 100) == 0.0 and expected_psi([0.5, 0.5], 0, 9) == 0.0
    assert [status_of(v, expected=0.05) for v in (0.149, 0.151, 0.299, 0.301)] == [
        "ok", "warn", "warn", "alert"]


def test_no_drift_psi_is_near_its_expectation_and_reads_ok() -> None:
    """Windows of 100 rows drawn from the reference's own distribution: their mean PSI is
    the expectation the status allows for (within sampling error), so where the bare
    thresholds warn on a third of them, few warn and none alerts."""
    rng = np.random.default_rng(4)
    bins = number_bins("x", rng.normal(size=1000))
    values = [bins.psi(bins.counts(rng.normal(size=100))) for _ in range(400)]
    expected = expected_psi(bins.shares, 100, bins.rows)
    assert np.mean(values) == pytest.approx(expected, rel=0.15)
    assert np.mean([status_of(v) != "ok" for v in values]) > 0.3
    read = [feature_drift(bins, v, expected=expected).status for v in values]
    assert read.count("warn") < 0.1 * len(read) and "alert" not in read
    # a real move of a standard deviation still alerts at that size
    moved = bins.psi(bins.counts(rng.normal(1.0, 1.0, size=100)))
    assert feature_drift(bins, moved, expected=expected).status == "alert"


def test_snapshots_of_one_entity_count_once() -> None:
    """Ten snapshots each of 30 leads: the noise is that of 30 samples, in the profile's
    drift and in the serving window alike."""
    rng = np.random.default_rng(2)
    ref = _frame(2000, seed=3)
    profile = build_profile(ref.assign(lead_id=[f"R{i // 4}" for i in range(2000)]),
                            ["x", "source"], rng.uniform(0, 1, 2000), entity_key="lead_id")
    assert profile.entities == 500 and profile.size(profile.score) == 500
    once = _frame(30, seed=5)
    repeated = once.loc[once.index.repeat(10)].reset_index(drop=True)
    score, features = profile_drift(profile, repeated, rng.uniform(0, 1, 300), entities=30)
    x = next(f for f in features if f.name == "x")
    assert x.expected == pytest.approx(expected_psi(profile.features["x"].shares, 30, 500))
    assert score.expected == pytest.approx(expected_psi(profile.score.shares, 30, 500))
    window = ScoreWindow(LEAD_V1, "1", capacity=400)
    cols = _columns(300, rng)
    window.add(cols, rng.uniform(0, 1, 300), [f"L{i % 30}" for i in range(300)])
    assert window.entities() == 30
    window.add(_columns(5, rng), np.array([0.1, np.nan, 0.2, 0.3, 0.4]),
               ["L0", "NEW1", "NEW2", "L1", "NEW3"])
    assert window.entities() == 32  # NEW1 was not scored: not kept


def test_a_count_over_all_history_stops_at_warn() -> None:
    bins = number_bins("account_lost_deals", np.r_[np.zeros(80), np.ones(20)])
    moved = bins.psi(bins.counts(np.r_[np.zeros(40), np.ones(30), np.full(30, 3.0)]))
    assert feature_drift(bins, moved).status == "alert"
    declared = feature_drift(bins, moved, to_date=True)
    assert declared.status == "warn" and declared.trending
    assert {"account_lost_deals", "owner_closed_deals"} <= DEAL_V1.to_date
    assert "days_since_created" not in DEAL_V1.to_date
