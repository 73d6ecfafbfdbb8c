"""Grades learned at training: on the validation period, saved with the model, judged on test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.sets import LEAD_V1
from modeling.artifact import GRADING_FILE, ScoringModel
from modeling.grading import GRADES
from training.card import model_card
from training.evaluate import Evaluation, EvaluationConfig, fit_and_evaluate
from training.grades import fit_grading

from .conftest import QUICK


@pytest.fixture(scope="module")
def lead_eval(lead_frame: pd.DataFrame) -> Evaluation:
    return fit_and_evaluate(lead_frame, "lead_qualification", LEAD_V1,
                            EvaluationConfig(params=QUICK, seed=3))


def test_cutoffs_are_learned_on_the_validation_period(lead_eval: Evaluation) -> None:
    grading = lead_eval.model.grading
    assert grading is not None and grading.learned
    validation = lead_eval.split.validation
    assert grading.rows == len(validation)
    again = fit_grading(lead_eval.model.predict_proba(validation))
    assert again == grading
    assert "validation period" in grading.source
    # About a tenth of the validation rows are A, and the grades fill up in order.
    grades = grading.grades(lead_eval.model.predict_proba(validation))
    shares = [float((grades == g).mean()) for g in GRADES]
    assert 0.04 < shares[0] < 0.2 and all(s > 0 for s in shares)


def test_test_period_table_counts_every_row_and_separates(lead_eval: Evaluation) -> None:
    table = lead_eval.grades
    test = lead_eval.split.test
    assert [r.grade for r in table] == list(GRADES)
    assert sum(r.count for r in table) == len(test)
    m = lead_eval.metrics
    for r in table:
        assert m[f"test_grade_{r.grade.lower()}_count"] == r.count
    rates = [r.observed_rate for r in table]
    assert rates[0] is not None and rates[-1] is not None and rates[0] > 2 * rates[-1]
    assert lead_eval.params["grade_cutoff_a"] == lead_eval.model.grading.a  # type: ignore[union-attr]
    assert lead_eval.params["grade_share_a"] == 0.1


def test_the_card_shows_each_grade_with_its_count_and_rate(lead_eval: Evaluation) -> None:
    card = model_card(lead_eval)
    assert "## Grades" in card
    grading = lead_eval.model.grading
    assert grading is not None
    for r in lead_eval.grades:
        rate = "–" if r.observed_rate is None else f"{r.observed_rate:.1%}"
        line = f"| {r.grade} | {grading.ranges()[r.grade]} | {r.count:,} | {r.share:.1%} | {rate} |"
        assert line in card, line
    assert "learned for A = top 10%, B the next 20%, C the next 30%" in card
    for warning in lead_eval.warnings:
        assert f"- {warning}" in card


def test_configured_shares_change_the_cutoffs(lead_frame: pd.DataFrame,
                                              lead_eval: Evaluation) -> None:
    wide = fit_and_evaluate(lead_frame, "lead_qualification", LEAD_V1,
                            EvaluationConfig(params=QUICK, seed=3, grade_shares=(0.3, 0.3, 0.2)))
    assert wide.model.grading is not None and lead_eval.model.grading is not None
    assert wide.model.grading.a < lead_eval.model.grading.a
    assert wide.grades[0].count > lead_eval.grades[0].count


def test_grading_is_saved_with_a_checksum(lead_eval: Evaluation, tmp_path: Path) -> None:
    model = lead_eval.model
    model.save(tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())
    assert spec["grading"] == GRADING_FILE and GRADING_FILE in spec["sha256"]
    loaded = ScoringModel.load(tmp_path / "m")
    assert loaded.grading == model.grading
    assert loaded.grading is not None and model.grading is not None
    assert loaded.grading.percentile(0.2) == model.grading.percentile(0.2)

    stored = json.loads((tmp_path / "m" / GRADING_FILE).read_text())
    stored["cutoffs"] = [99, 98, 97]
    (tmp_path / "m" / GRADING_FILE).write_text(json.dumps(stored, indent=2, sort_keys=True))
    with pytest.raises(ValueError, match="grading.json: checksum mismatch"):
        ScoringModel.load(tmp_path / "m")


def test_a_model_saved_before_grades_were_learned_still_loads(
    lead_eval: Evaluation, tmp_path: Path
) -> None:
    """What an older save wrote: no grading file and no mention of one in model.json."""
    folder = tmp_path / "old"
    lead_eval.model.save(folder)
    (folder / GRADING_FILE).unlink()
    spec = json.loads((folder / "model.json").read_text())
    del spec["grading"]
    del spec["sha256"][GRADING_FILE]
    (folder / "model.json").write_text(json.dumps(spec, indent=2, sort_keys=True))
    old = ScoringModel.load(folder)
    assert old.grading is None
    X = lead_eval.split.test[LEAD_V1.names]
    np.testing.assert_array_equal(old.predict_proba(X), lead_eval.model.predict_proba(X))
