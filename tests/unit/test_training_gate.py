"""The promotion gate: against the champion, the CRM's own rate and logistic regression,
log loss strictly better and ROC AUC not worse by more than 0.002."""

from __future__ import annotations

import math

from training.registry import forced, promotion_gate

RATE = "the stage win rate"


def test_first_model_becomes_champion() -> None:
    assert promotion_gate({"roc_auc": 0.6, "log_loss": 0.7}, None).promote


def test_better_model_is_promoted() -> None:
    d = promotion_gate({"roc_auc": 0.81, "log_loss": 0.40}, {"roc_auc": 0.80, "log_loss": 0.41})
    assert d.promote and "beats" in d.reason


def test_slightly_lower_auc_with_better_log_loss_is_promoted() -> None:
    d = promotion_gate({"roc_auc": 0.7985, "log_loss": 0.40}, {"roc_auc": 0.80, "log_loss": 0.41})
    assert d.promote


def test_auc_drop_beyond_tolerance_blocks() -> None:
    d = promotion_gate({"roc_auc": 0.797, "log_loss": 0.30}, {"roc_auc": 0.80, "log_loss": 0.41})
    assert not d.promote and "ROC AUC" in d.reason


def test_equal_log_loss_blocks() -> None:
    d = promotion_gate({"roc_auc": 0.85, "log_loss": 0.41}, {"roc_auc": 0.80, "log_loss": 0.41})
    assert not d.promote and "log loss not better" in d.reason


def test_a_candidate_that_loses_to_the_crm_rate_is_not_promoted_and_says_so() -> None:
    # The demo's case: better than nothing (no champion) but worse than the stage rates.
    d = promotion_gate(
        {"roc_auc": 0.703, "log_loss": 0.609}, None,
        baselines={RATE: {"roc_auc": 0.726, "log_loss": 0.593},
                   "logistic regression": {"roc_auc": 0.690, "log_loss": 0.650}},
    )
    assert not d.promote
    assert [c.against for c in d.lost] == [RATE]
    assert "lost to the stage win rate" in d.reason
    assert "0.6090 vs 0.5930" in d.reason and "0.7030 vs 0.7260" in d.reason
    assert "logistic regression" not in d.reason  # only what it lost is named


def test_beating_the_champion_is_not_enough() -> None:
    d = promotion_gate(
        {"roc_auc": 0.80, "log_loss": 0.50}, {"roc_auc": 0.78, "log_loss": 0.52},
        baselines={RATE: {"roc_auc": 0.75, "log_loss": 0.55},
                   "logistic regression": {"roc_auc": 0.81, "log_loss": 0.49}},
        champion_name="the champion (version 3)",
    )
    assert not d.promote
    assert [c.against for c in d.lost] == ["logistic regression"]
    assert d.reason.startswith("lost to logistic regression: log loss not better and ROC AUC")


def test_every_comparison_must_be_won() -> None:
    d = promotion_gate(
        {"roc_auc": 0.80, "log_loss": 0.50}, {"roc_auc": 0.78, "log_loss": 0.52},
        baselines={RATE: {"roc_auc": 0.75, "log_loss": 0.55},
                   "logistic regression": {"roc_auc": 0.79, "log_loss": 0.51}},
    )
    assert d.promote and len(d.comparisons) == 3 and not d.lost


def test_a_baseline_without_figures_is_left_out() -> None:
    d = promotion_gate({"roc_auc": 0.7, "log_loss": 0.6}, None,
                       baselines={RATE: {"roc_auc": math.nan, "log_loss": 0.5}})
    assert d.promote and d.comparisons == ()


def test_force_promotes_a_loser_and_says_what_it_lost() -> None:
    lost = promotion_gate({"roc_auc": 0.70, "log_loss": 0.61}, None,
                          baselines={RATE: {"roc_auc": 0.72, "log_loss": 0.59}})
    d = forced(lost)
    assert d.promote and d.forced
    assert d.reason.startswith("promoted by --force although it lost to the stage win rate")
    won = promotion_gate({"roc_auc": 0.8, "log_loss": 0.5}, None)
    assert forced(won) == won and not forced(won).forced
