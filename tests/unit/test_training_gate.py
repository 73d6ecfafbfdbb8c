"""The promotion gate: ROC AUC not worse by more than 0.002 and log loss strictly better."""

from __future__ import annotations

from training.registry import promotion_gate


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
