"""The stage offset: learned rates as log-odds, same values from categories or strings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modeling.artifact import Offset
from training.fit import fit_offset

LEVELS = ["prospecting", "qualification", "proposal"]


def test_offset_is_the_smoothed_log_odds_of_each_stage() -> None:
    train = pd.DataFrame({
        "stage": pd.Categorical(["prospecting"] * 100 + ["proposal"] * 100, categories=LEVELS),
        "label": [1] * 10 + [0] * 90 + [1] * 70 + [0] * 30,
    })
    off = fit_offset(train, "stage", smoothing=0.0)
    assert off.logits["prospecting"] == pytest.approx(np.log(0.1 / 0.9))
    assert off.logits["proposal"] == pytest.approx(np.log(0.7 / 0.3))
    assert off.default == pytest.approx(np.log(0.4 / 0.6))  # 80 of 200 won
    shrunk = fit_offset(train, "stage", smoothing=100.0)
    assert off.logits["prospecting"] < shrunk.logits["prospecting"] < shrunk.default


def test_categories_and_strings_give_the_same_offsets() -> None:
    off = Offset("stage", {"prospecting": -2.0, "proposal": 0.5}, default=-0.7)
    X = pd.DataFrame({"stage": pd.Categorical(
        ["proposal", None, "qualification", "prospecting"], categories=LEVELS)})
    expected = np.array([0.5, -0.7, -0.7, -2.0])
    assert np.array_equal(off.apply(X), expected)
    assert np.array_equal(off.apply(X.assign(stage=X["stage"].astype(object))), expected)
    again = Offset.from_json(json.loads(json.dumps(off.to_json())))
    assert again == off
