"""Grade cut-offs learned from a score distribution, percentiles, and the per-grade table."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from modeling.grading import Grading, fixed_grading, to_scores
from training.grades import (
    check_shares,
    fit_grading,
    grade_metrics,
    grade_table,
    grade_warnings,
)
from training.train import train_settings


def _scores(*pairs: tuple[int, int]) -> np.ndarray:
    """Probabilities whose 0-100 scores are ``score`` repeated ``count`` times."""
    return np.concatenate([np.full(count, score / 100.0) for score, count in pairs])


def test_cutoffs_of_a_uniform_distribution_are_its_deciles() -> None:
    # Scores 0..99, ten rows each: the top 10 % is 90-99, the next 20 % 70-89, then 40-69.
    p = _scores(*((s, 10) for s in range(100)))
    g = fit_grading(p)
    assert g.cutoffs == (90, 70, 40)
    assert g.learned and g.shares == (0.1, 0.2, 0.3) and g.rows == 1000
    counts = {letter: int((g.grades(p) == letter).sum()) for letter in "ABCD"}
    assert counts == {"A": 100, "B": 200, "C": 300, "D": 400}


def test_cutoffs_follow_the_configured_shares() -> None:
    p = _scores(*((s, 10) for s in range(100)))
    assert fit_grading(p, (0.05, 0.15, 0.5)).cutoffs == (95, 80, 30)


def test_a_low_base_rate_still_fills_every_grade() -> None:
    # What the fixed 75/50/25 cut-offs got wrong: every score under 25 was D.
    rng = np.random.default_rng(0)
    p = rng.beta(1.2, 6.0, size=5000)  # mean ~0.17, like a 19 % qualification rate
    assert (fixed_grading().grades(p) == "D").mean() > 0.7
    g = fit_grading(p)
    shares = [float((g.grades(p) == letter).mean()) for letter in "ABCD"]
    np.testing.assert_allclose(shares, [0.1, 0.2, 0.3, 0.4], atol=0.02)


def test_a_crowded_score_goes_to_the_grade_it_fits_best() -> None:
    # 25 % of the rows share score 80: A can hold the top 5 % (score 90) or the top 30 %
    # (down to 80); 5 % is nearer its 10 %, so A stays small and B takes the crowded score.
    p = _scores((90, 50), (80, 250), (50, 300), (20, 400))
    g = fit_grading(p)
    assert g.cutoffs == (90, 80, 50)
    assert [int((g.grades(p) == x).sum()) for x in "ABCD"] == [50, 250, 300, 400]


def test_too_few_distinct_scores_leave_grades_empty_and_are_reported() -> None:
    p = _scores((40, 600), (10, 400))
    g = fit_grading(p)
    assert 100 >= g.a > g.b > g.c > 0
    table = grade_table(g, p, np.r_[np.ones(300), np.zeros(700)])
    assert sum(r.count for r in table) == 1000
    empty = [r.grade for r in table if r.count == 0]
    assert len(empty) == 2
    said = grade_warnings(table)
    assert [f"grade {e} holds none of the test period's rows" for e in empty] == said[:2]


def test_grade_table_counts_and_observed_rates() -> None:
    g = Grading(60, 40, 20, shares=(0.1, 0.2, 0.3))
    p = np.array([0.9, 0.7, 0.5, 0.45, 0.3, 0.1, 0.05, 0.0])
    y = np.array([1, 1, 1, 0, 0, 1, 0, 0])
    table = grade_table(g, p, y)
    assert [(r.grade, r.count, r.observed_rate) for r in table] == [
        ("A", 2, 1.0), ("B", 2, 0.5), ("C", 1, 0.0), ("D", 3, 1 / 3)
    ]
    assert table[0].share == 0.25 and table[0].mean_probability == pytest.approx(0.8)
    (said,) = grade_warnings(table)
    assert "does not fall strictly from A to D" in said and "C 0.0%, D 33.3%" in said
    metrics = grade_metrics(table)
    assert metrics["test_grade_a_count"] == 2 and metrics["test_grade_d_rate"] == 1 / 3
    falling = grade_table(g, np.array([0.9, 0.5, 0.5, 0.3, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1]),
                          np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 1]))
    assert [r.observed_rate for r in falling] == [1.0, 0.5, 1 / 3, 0.25]
    assert grade_warnings(falling) == []


def test_an_empty_grade_has_a_count_and_no_rate() -> None:
    g = Grading(60, 40, 20)
    table = grade_table(g, np.array([0.9, 0.1]), np.array([1, 0]))
    metrics = grade_metrics(table)
    assert metrics["test_grade_b_count"] == 0 and "test_grade_b_rate" not in metrics
    assert table[1].observed_rate is None and table[1].mean_probability is None


def test_percentile_reads_the_reference() -> None:
    p = np.linspace(0.0, 1.0, 10_001)
    g = fit_grading(p)
    assert g.percentile(-1.0) == 0.0 and g.percentile(2.0) == 100.0
    assert g.percentile(0.5) == pytest.approx(50.0, abs=0.1)
    assert g.percentile(0.25) == pytest.approx(25.0, abs=0.1)
    # A score shared by many reference rows sits in the middle of them.
    tied = fit_grading(_scores((10, 500), (30, 300), (60, 200)))
    assert tied.percentile(0.30) == pytest.approx(65.0, abs=0.1)
    assert fixed_grading().percentile(0.5) is None


def test_percentiles_of_an_array_are_each_ones_percentile() -> None:
    """A batch's percentiles, read at once, are exactly those read one at a time, ties at
    the reference's own values included."""
    tied = fit_grading(_scores((10, 500), (30, 300), (60, 200)))
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.random(500), [0.1, 0.3, 0.6, -1.0, 2.0], tied.reference[:50]])
    assert tied.percentiles(p) == [tied.percentile(float(v)) for v in p]
    assert fixed_grading().percentiles(p[:3]) == [None] * 3


def test_few_reference_rows_are_reported() -> None:
    few = fit_grading(np.linspace(0.1, 0.9, 71))
    table = grade_table(few, np.array([0.9, 0.5, 0.3, 0.1]), np.array([1, 1, 0, 0]))
    said = grade_warnings(table, grading=few)
    assert said[0].startswith("the grade cut-offs were learned on only 71 rows of the valid")
    assert said[1:] == grade_warnings(table)
    many = fit_grading(np.linspace(0.1, 0.9, 500))
    assert grade_warnings(table, grading=many) == grade_warnings(table)


def test_ranges_name_each_grades_scores() -> None:
    assert Grading(42, 30, 18).ranges() == {"A": ">= 42", "B": "30-41", "C": "18-29",
                                            "D": "< 18"}
    assert Grading(100, 99, 91).ranges()["B"] == "99"


def test_grades_of_an_array_match_one_at_a_time() -> None:
    g = Grading(42, 30, 18)
    p = np.linspace(0, 1, 1001)
    assert g.grades(p).tolist() == [g.grade(int(s)) for s in to_scores(p)]


def test_grading_round_trips_through_json() -> None:
    g = fit_grading(np.linspace(0.01, 0.6, 777), (0.15, 0.25, 0.3))
    back = Grading.from_json(g.to_json())
    assert back == g
    assert back.percentile(0.3) == g.percentile(0.3)
    assert "learned for A = top 15%, B the next 25%, C the next 30%" in back.describe()
    assert "777 rows" in back.describe()
    legacy = fixed_grading((80, 60, 30))
    assert Grading.from_json(legacy.to_json()) == legacy and not legacy.learned
    assert "no percentile" in legacy.describe()


def test_bad_cutoffs_and_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="decreasing"):
        Grading(50, 60, 10)
    for bad in ((0.5, 0.3, 0.3), (0.0, 0.2, 0.3), (0.1, 0.2)):
        with pytest.raises(ValueError, match="three numbers above 0"):
            check_shares(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no reference"):
        fit_grading(np.array([np.nan]))


def test_training_settings_take_grade_shares() -> None:
    settings = train_settings(task="lead_qualification", data="data/sample",
                              grade_shares="0.2, 0.3, 0.3")
    assert settings.grade_shares == (0.2, 0.3, 0.3)
    assert settings.evaluation_config().grade_shares == (0.2, 0.3, 0.3)
    assert train_settings(task="deal_close", data="x").grade_shares == (0.1, 0.2, 0.3)
    with pytest.raises(ValidationError, match="less than 1"):
        train_settings(task="deal_close", data="x", grade_shares="0.5,0.4,0.3")
