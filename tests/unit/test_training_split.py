"""The time split: periods in time order, no entity in two periods, censoring of recent entities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.split import strict_backtest, time_split


def _frame(seed: int, n_entities: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for i in range(n_entities):
        first = start + pd.Timedelta(days=float(rng.uniform(0, 400)))
        for k in range(int(rng.integers(1, 8))):
            rows.append({"lead_id": f"L{i}", "as_of": first + pd.Timedelta(days=7 * k),
                         "label": int(rng.random() < 0.3)})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gap", [0, 30])
def test_no_test_row_before_a_training_row(seed: int, gap: int) -> None:
    s = time_split(_frame(seed), "lead_id", gap_days=gap)
    assert s.train["as_of"].max() < s.validation["as_of"].min()
    assert s.validation["as_of"].max() < s.test["as_of"].min()
    assert s.train["as_of"].max() < s.test["as_of"].min()
    if gap:
        assert s.train["as_of"].max() < s.validation_start - pd.Timedelta(days=gap)


@pytest.mark.parametrize("seed", [0, 1])
def test_no_entity_in_two_periods(seed: int) -> None:
    s = time_split(_frame(seed), "lead_id")
    ids = [set(p["lead_id"]) for p in (s.train, s.validation, s.test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    # Test entities keep every snapshot: none was first seen before the test period.
    full = _frame(seed)
    test_ids = ids[2]
    assert len(s.test) == full["lead_id"].isin(test_ids).sum()


def test_fractions_are_shares_of_entities() -> None:
    s = time_split(_frame(0, 1000), "lead_id", validation_fraction=0.2, test_fraction=0.25)
    n_test = s.test["lead_id"].nunique()
    assert 0.2 < n_test / 1000 < 0.3


def test_censoring_drops_entities_first_seen_near_the_end() -> None:
    f = _frame(3)
    end = f["as_of"].max()
    s = time_split(f, "lead_id", censor_days=60)
    first = f.groupby("lead_id")["as_of"].min()
    recent = set(first[first >= end - pd.Timedelta(days=60)].index)
    assert recent
    for part in (s.train, s.validation, s.test):
        assert not recent & set(part["lead_id"])


def test_rejects_impossible_fractions() -> None:
    with pytest.raises(ValueError):
        time_split(_frame(0), "lead_id", validation_fraction=0.6, test_fraction=0.5)


def test_strict_backtest_drops_exactly_the_rows_resolved_after_the_test_start() -> None:
    # Six deals, two per period; in training and validation one closes before the test
    # starts and one after (or never is known), each seen twice.
    day = pd.Timestamp("2024-01-01", tz="UTC")
    firsts = {"D1": 0, "D2": 10, "D3": 100, "D4": 110, "D5": 200, "D6": 210}
    rows = [{"opportunity_id": d, "as_of": day + pd.Timedelta(days=f + 5 * k), "label": k % 2}
            for d, f in firsts.items() for k in range(2)]
    frame = pd.DataFrame(rows)
    split = time_split(frame, "opportunity_id", validation_fraction=1 / 3, test_fraction=1 / 3)
    assert split.test_start == day + pd.Timedelta(days=200)
    closed = {"D1": 150, "D2": 250, "D3": 199, "D4": None, "D5": 300, "D6": 220}
    resolved = frame["opportunity_id"].map(
        {d: (day + pd.Timedelta(days=c)) if c is not None else pd.NaT for d, c in closed.items()}
    )
    strict = strict_backtest(split, resolved)
    assert set(strict.train["opportunity_id"]) == {"D1"}  # D2 closed after the test start
    assert set(strict.validation["opportunity_id"]) == {"D3"}  # D4's close is not known
    assert len(strict.train) == 2 and len(strict.validation) == 2
    pd.testing.assert_frame_equal(strict.test, split.test)  # test rows are not touched
    assert strict.test_start == split.test_start


def test_strict_backtest_of_a_horizon_label_drops_rows_whose_horizon_reaches_the_test() -> None:
    from features.tasks import task_spec

    frame = _frame(3)
    split = time_split(frame, "lead_id", gap_days=0)
    resolved = task_spec("account_expansion").label.resolution_times(frame, None)
    assert resolved is not None
    strict = strict_backtest(split, resolved)
    horizon = pd.Timedelta(days=90)
    kept = pd.concat([strict.train, strict.validation])
    assert (kept["as_of"] + horizon < split.test_start).all()
    dropped = pd.concat([split.train, split.validation]).drop(kept.index)
    assert len(dropped) and (dropped["as_of"] + horizon >= split.test_start).all()
