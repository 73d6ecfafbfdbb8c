"""modeling.treeshap gives LightGBM's pred_contrib, row for row, on boosters trained here."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pytest

from modeling import treeshap
from modeling.treeshap import TreeExplainer, Unsupported, explainer_or_none, parse

TOLERANCE = 1e-9


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns with NaN and exact zeros, and two categorical columns."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 14))
    X[rng.random(n) < 0.15, 0] = np.nan
    X[rng.random(n) < 0.30, 1] = 0.0
    X[:, 2] = rng.integers(0, 20, n)
    X[:, 3] = rng.integers(0, 5, n)
    X[rng.random(n) < 0.10, 3] = np.nan
    X[:, 4] = np.round(X[:, 4], 1)  # many ties: thresholds fall between repeated values
    logit = (np.nan_to_num(X[:, 0], nan=1.0) + X[:, 1] + (X[:, 2] % 4 == 1) - (X[:, 3] == 2)
             + 0.5 * X[:, 4] * X[:, 5] + 0.3 * X[:, 6:].sum(axis=1) + rng.normal(size=n))
    return X, (logit > 0.3).astype(int)


def _probe(X: np.ndarray) -> np.ndarray:
    """The training rows plus rows that reach every special case of a decision."""
    special = np.repeat(X[:1], 12, axis=0)
    special[:, 2] = [-1, np.nan, 25, 999, 3.7, -0.5, 1e12, -1e12, 0.0, 31, 32, 64]
    special[:, 3] = [np.nan, -3, 7, 1.0, 2.0, 0.0, np.nan, 4, 1e-40, -0.0, 2, 3]
    special[:, 0] = [np.nan, 0.0, 1e-40, -1e-40, np.inf, -np.inf, 5, -5, np.nan, 0, 1, 2]
    special[:, 1] = [0.0, np.nan, -0.0, 1e-36, 1e-30, np.nan, 0, 3, -3, 0, np.nan, 0.1]
    return np.vstack([X, special])


def _train(params: dict[str, object], rounds: int, n: int = 2000,
           zero_as_missing: bool = False) -> tuple[lgb.Booster, np.ndarray]:
    X, y = _data(n)
    base = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1,
            "zero_as_missing": zero_as_missing, "min_data_per_group": 5, "cat_smooth": 1.0,
            "max_cat_to_onehot": 4}
    ds = lgb.Dataset(X, y, categorical_feature=[2, 3], free_raw_data=False)
    return lgb.train({**base, **params}, ds, rounds), _probe(X)


def _check(booster: lgb.Booster, X: np.ndarray, **options: int) -> TreeExplainer:
    explainer = TreeExplainer.of(booster, **options)
    expected = booster.predict(X, pred_contrib=True, num_threads=1)
    # Few rows go without the tables; many in blocks, on one thread or several.
    for rows in (1, treeshap.TABLE_ROWS - 1, len(X)):
        for threads in (1, 0, 2):
            got = explainer.contributions(X[:rows], num_threads=threads)
            assert got.shape == expected[:rows].shape
            assert np.abs(got - expected[:rows]).max() <= TOLERANCE
    return explainer


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_deep_trees_with_categories_nan_and_zero_missing(zero_as_missing: bool) -> None:
    booster, X = _train({"num_leaves": 63, "max_depth": 12, "min_data_in_leaf": 3}, 30,
                        zero_as_missing=zero_as_missing)
    dump = booster.dump_model()
    kinds = {(n["decision_type"], n.get("missing_type")) for n in _splits(dump)}
    assert ("==", "None") in kinds or ("==", "NaN") in kinds  # categorical splits
    assert ("<=", "Zero" if zero_as_missing else "NaN") in kinds
    explainer = _check(booster, X)
    assert explainer.tables.max_path >= 8  # deep enough to have long paths


def test_leaves_without_tables_are_computed_per_row() -> None:
    booster, X = _train({"num_leaves": 63, "max_depth": 12, "min_data_in_leaf": 3}, 10)
    for most in (0, 3):
        explainer = _check(booster, X, max_table_features=most)
        tabled = explainer.tables.table_start >= 0
        assert not tabled[explainer.tables.path_len > most].any()
    budgeted = _check(booster, X, budget_bytes=4096)
    assert budgeted.tables.table.nbytes <= 4096


def test_values_at_thresholds() -> None:
    """Rows whose values are the splits' thresholds exactly (and their neighbours) go
    where LightGBM sends them."""
    booster, X = _train({"num_leaves": 31, "min_data_in_leaf": 3}, 20)
    rows = []
    for node in _splits(booster.dump_model()):
        if node["decision_type"] != "<=":
            continue
        t = float(node["threshold"])  # type: ignore[arg-type]
        for v in (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)):
            row = X[len(rows) % len(X)].copy()
            row[int(node["split_feature"])] = v  # type: ignore[call-overload]
            rows.append(row)
    assert len(rows) > 30
    _check(booster, np.array(rows))


def test_single_leaf_trees_and_bias() -> None:
    """Data no split fits (each side would need 200 of 300 rows) gives one-leaf trees:
    everything in the bias, which is LightGBM's."""
    X, y = _data(300)
    only = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1,
                      "min_data_in_leaf": 200}, lgb.Dataset(X, y), 3)
    assert {t["num_leaves"] for t in only.dump_model()["tree_info"]} == {1}
    explainer = _check(only, X)
    assert np.all(explainer.contributions(X[:3])[:, :-1] == 0.0)


def test_regression_and_weights() -> None:
    X, y = _data(800, seed=3)
    w = np.random.default_rng(2).uniform(0.1, 3.0, len(X))
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1,
                         "num_leaves": 15, "min_data_in_leaf": 5},
                        lgb.Dataset(X, y * 3.0 + X[:, 4], weight=w,
                                    categorical_feature=[2, 3]), 15)
    _check(booster, _probe(X))


def test_unsupported_boosters_fall_back(caplog: pytest.LogCaptureFixture) -> None:
    X, y = _data(600)
    multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                       "num_threads": 1}, lgb.Dataset(X, (y + (X[:, 4] > 0)).astype(int)), 3)
    with pytest.raises(Unsupported, match="multiclass"):
        parse(multi)
    linear = lgb.train({"objective": "binary", "linear_tree": True, "verbose": -1,
                        "num_threads": 1}, lgb.Dataset(np.nan_to_num(X[:, [0, 1, 4, 5]]), y),
                       3)
    with caplog.at_level(logging.INFO, logger="modeling.treeshap"):
        assert explainer_or_none(linear, "linear model") is None
    assert "linear model: explained with LightGBM's pred_contrib (linear trees)" in caplog.text


def test_wrong_width_is_refused() -> None:
    booster, X = _train({"num_leaves": 7}, 3)
    with pytest.raises(ValueError, match="14 columns"):
        TreeExplainer.of(booster).contributions(X[:, :5])


def test_weights_are_shapley_weights() -> None:
    w = treeshap.WEIGHTS
    for k in range(1, 12):
        # Over all subsets of the k - 1 other features the weights sum to one.
        from math import comb

        assert sum(comb(k - 1, s) * w[k, s] for s in range(k)) == pytest.approx(1.0, abs=1e-15)


def _splits(dump: dict[str, object]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    stack = [t["tree_structure"] for t in dump["tree_info"]]  # type: ignore[attr-defined]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            out.append(node)
            stack.extend([node["left_child"], node["right_child"]])
    return out
