"""Cold start's counts, regimes and rates, the static mode's folds and what an empty or
untimed period is reported as, on frames of a few rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.cold_start import (
    MIN_OUTCOMES,
    PRIOR_STRENGTH,
    REGULARISED_OUTCOMES,
    Outcomes,
    count_outcomes,
    rate_phrase,
    rates_of,
    regularised_params,
)
from training.evaluate import EvaluationConfig, check_periods, time_split_problem
from training.fit import BoosterParams
from training.split import TimeSplit, grouped_folds
from training.train import TrainSettings, static_reason


def test_regimes_at_the_floor_and_above() -> None:
    assert Outcomes(MIN_OUTCOMES - 1, 500).regime == "rate_model"
    assert Outcomes(500, MIN_OUTCOMES - 1).regime == "rate_model"
    assert Outcomes(MIN_OUTCOMES, MIN_OUTCOMES).regime == "regularised"
    assert Outcomes(REGULARISED_OUTCOMES - 1, 900).regime == "regularised"
    assert Outcomes(REGULARISED_OUTCOMES, REGULARISED_OUTCOMES).regime == "booster"
    assert Outcomes(15, 39).needed() == (25, 1)
    assert Outcomes(50, 60).needed() == (0, 0)


def test_outcomes_count_each_entity_once() -> None:
    frame = pd.DataFrame({"id": ["a", "a", "b", "b", "c"], "label": [0, 1, 0, 0, 1]})
    assert count_outcomes(frame, "id") == Outcomes(positive=2, negative=1)
    assert count_outcomes(frame.iloc[:0], "id") == Outcomes(0, 0)


def test_rates_are_beta_smoothed_with_an_interval() -> None:
    # 10 deals seen in proposal (8 won), 10 in prospecting (2 won); the first deal twice.
    frame = pd.DataFrame({
        "id": [f"d{i}" for i in range(20)] + ["d0"],
        "stage": ["proposal"] * 10 + ["prospecting"] * 10 + ["proposal"],
        "label": [1] * 8 + [0] * 2 + [1] * 2 + [0] * 8 + [1],
    })
    prior, rates = rates_of(frame, "stage", "id")
    assert prior == pytest.approx(11 / 21)
    by = {r.value: r for r in rates}
    a, b = PRIOR_STRENGTH * prior + 8, PRIOR_STRENGTH * (1 - prior) + 2
    assert by["proposal"].rate == pytest.approx(a / (a + b))
    assert by["proposal"].entities == 10 and by["proposal"].positive == 8
    for r in rates:
        assert r.low < r.rate < r.high
    # Shrunk toward the prior, never past it.
    assert prior < by["proposal"].rate < 0.8
    assert 0.2 < by["prospecting"].rate < prior
    text = rate_phrase("deal_close", "stage", by["proposal"])
    assert text.startswith(f"deals in proposal win {100 * by['proposal'].rate:.0f} % of the time")


def test_regularised_settings_only_regularise_more() -> None:
    base = BoosterParams()
    reg = regularised_params(base, train_rows=2000)
    assert reg.num_leaves <= 5 < base.num_leaves
    assert reg.lambda_l2 > base.lambda_l2 and reg.learning_rate <= base.learning_rate
    assert reg.extra["path_smooth"] >= 30
    assert regularised_params(BoosterParams(num_leaves=3), 2000).num_leaves == 3


def test_folds_keep_each_entity_in_one_fold() -> None:
    groups = pd.Series(["a", "b", "c", "d", "e", "f", "a", "b", "a"])
    fold = grouped_folds(groups, 3, seed=1)
    per_group = pd.Series(fold).groupby(groups).nunique()
    assert (per_group == 1).all()
    assert sorted(pd.Series(fold).groupby(groups).first().value_counts()) == [2, 2, 2]
    with pytest.raises(ValueError, match="too few entities"):
        grouped_folds(groups, 7, seed=1)


def _frame(times: list[str], labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"lead_id": [f"L{i}" for i in range(len(times))],
                         "as_of": pd.to_datetime(times, utc=True), "label": labels})


def test_an_empty_period_is_named_as_empty_with_the_gap_that_emptied_it() -> None:
    train = _frame(["2025-01-01", "2025-01-02"], [0, 1])
    split = TimeSplit(train=train, validation=train.iloc[:0], test=train,
                      validation_start=pd.Timestamp("2025-02-01", tz="UTC"),
                      test_start=pd.Timestamp("2025-03-01", tz="UTC"))
    with pytest.raises(ValueError) as err:
        check_periods(split, "lead_qualification", EvaluationConfig(gap_days=30))
    message = str(err.value)
    assert message.startswith("the validation period has no rows: the 30-day gap outran a "
                              "28-day window")
    assert "--gap-days" in message and "single class" not in message
    one_class = TimeSplit(train=train, validation=train.assign(label=0), test=train,
                          validation_start=split.validation_start, test_start=split.test_start)
    with pytest.raises(ValueError, match="validation period has 2 rows, all negative"):
        check_periods(one_class, "lead_qualification", EvaluationConfig(gap_days=0))


def test_times_on_too_few_days_cannot_carry_a_time_split(tmp_path: Path) -> None:
    same_day = _frame(["2025-01-01T01:00", "2025-01-01T05:00", "2025-01-01T09:00"], [0, 1, 0])
    assert "fall on 1 day(s)" in str(time_split_problem(same_day, "lead_qualification"))
    spread = _frame(["2025-01-01", "2025-02-01", "2025-03-01"], [0, 1, 0])
    assert time_split_problem(spread, "lead_qualification") is None

    settings = TrainSettings(task="lead_qualification", data=tmp_path)
    assert static_reason(settings, spread) is None
    assert static_reason(settings.model_copy(update={"static": True}), spread) == "--static"
    note = ("leads.created_at: not in the export; made from the order of Lead Number, 1D apart "
            "from 2020-01-01: an order, not a calendar")
    (tmp_path / "import_report.json").write_text(json.dumps({"derived": [note]}))
    reason = static_reason(settings, spread)
    assert reason is not None and "creation times from an order" in reason
    other = TrainSettings(task="deal_close", data=tmp_path)
    deals = spread.assign(opportunity_id=spread["lead_id"])
    assert static_reason(other, deals) is None  # the note is about leads, not deals


def test_grouped_folds_are_seeded() -> None:
    groups = pd.Series([f"g{i}" for i in range(30)])
    assert np.array_equal(grouped_folds(groups, 5, 3), grouped_folds(groups, 5, 3))
    assert not np.array_equal(grouped_folds(groups, 5, 3), grouped_folds(groups, 5, 4))
