"""Cold start: what a task with few outcomes trains, and the rate model it registers.

A booster needs outcomes of both kinds to learn from: with fewer than
:data:`MIN_OUTCOMES` positive or negative outcomes in the training period, its trees
fit noise and its early stopping and calibration rest on a handful of entities. Below
that floor ``train`` registers a *rate model*: the CRM's own rate (the task's rate
column: a deal's stage, a lead's source, an account's segment), each value's rate
Beta-smoothed toward the overall rate, with its interval, and the reason a rep reads
("deals in proposal win 45 % of the time"). Between the floor and
:data:`REGULARISED_OUTCOMES`, LightGBM starts from those rates (an offset) and is
regularised toward them (few leaves, heavy L2 and path smoothing, slow learning); it is
fit beside the booster as configured and the rate model, and the validation period's
log loss chooses among the three (``training.evaluate.fit_for_outcomes``).

The rate model is a :class:`~modeling.artifact.ScoringModel` without boosters, so
serving loads and explains it as it does any model, without scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import beta

from features.declarations import FeatureSet
from modeling.artifact import ALL, Offset, ScoringModel
from modeling.calibrator import Calibrator
from training.fit import BoosterParams

MIN_OUTCOMES = 40
"""Fewest positive and fewest negative outcomes (entities) in the training period a
booster is fit on; below, the rate model."""
REGULARISED_OUTCOMES = 300
"""Below this many outcomes of the rarer kind, the booster starts from the rates and is
regularised toward them (:func:`regularised_params`)."""
PRIOR_STRENGTH = 20.0
"""The Beta prior's weight, in entities: a value seen on few entities keeps close to the
overall rate (the same shrinkage as the CRM-rate baseline's, ``fit_rate_table``)."""
INTERVAL = 0.9
"""The rates' credible interval."""

Regime = Literal["rate_model", "regularised", "booster"]

_PHRASES: dict[str, str] = {
    "lead_qualification": "leads from {value} qualify {rate} of the time",
    "deal_close": "deals in {value} win {rate} of the time",
    "account_renewal": "{value} accounts renew {rate} of the time",
    "account_expansion": "{value} accounts expand {rate} of the time",
}
"""How a rate reads, per task; another task reads "{rate} of ... with {column} {value}"."""


@dataclass(frozen=True)
class Outcomes:
    """How many entities of the training period had a positive and a negative outcome."""

    positive: int
    negative: int

    @property
    def fewest(self) -> int:
        return min(self.positive, self.negative)

    @property
    def regime(self) -> Regime:
        if self.fewest < MIN_OUTCOMES:
            return "rate_model"
        if self.fewest < REGULARISED_OUTCOMES:
            return "regularised"
        return "booster"

    def needed(self) -> tuple[int, int]:
        """More positive and negative outcomes LightGBM needs (0: enough)."""
        return max(0, MIN_OUTCOMES - self.positive), max(0, MIN_OUTCOMES - self.negative)


def count_outcomes(train: pd.DataFrame, entity_key: str, label: str = "label") -> Outcomes:
    """Entities with a positive row, and entities with none (each entity counts once,
    however many snapshots it has)."""
    if train.empty:
        return Outcomes(0, 0)
    positive = train[label].astype(bool).groupby(train[entity_key], observed=True).any()
    n_pos = int(positive.sum())
    return Outcomes(positive=n_pos, negative=int(len(positive) - n_pos))


def regularised_params(params: BoosterParams, train_rows: int) -> BoosterParams:
    """Settings for a few hundred outcomes on top of the rates' offset: each only
    regularises more than ``params`` (the small-data settings, as ``train`` uses them).
    At most five leaves of at least 20 rows, L2 of 15 and path smoothing of 30 pull every
    leaf toward zero, that is toward the rates; early stopping keeps a tree only where
    the validation period says it improves on them."""
    del train_rows  # the leaf size is the configured one, at least 20 rows
    return replace(
        params,
        learning_rate=min(params.learning_rate, 0.02),
        num_leaves=min(params.num_leaves, 5),
        min_data_in_leaf=max(params.min_data_in_leaf, 20),
        feature_fraction=min(params.feature_fraction, 0.5),
        lambda_l2=max(params.lambda_l2, 15.0),
        extra={**params.extra, "path_smooth": max(float(params.extra.get("path_smooth", 0)),
                                                  30.0)},
    )


@dataclass(frozen=True)
class Rate:
    """One value's Beta-smoothed rate and its interval, on ``entities`` entities."""

    value: str
    rate: float
    low: float
    high: float
    entities: int
    positive: int


def _logit(p: float) -> float:
    p = float(np.clip(p, 1e-4, 1 - 1e-4))
    return float(np.log(p / (1 - p)))


def rates_of(train: pd.DataFrame, column: str, entity_key: str,
             label: str = "label") -> tuple[float, list[Rate]]:
    """The overall rate (of the snapshot rows) and each value's posterior under a Beta
    prior of :data:`PRIOR_STRENGTH` entities at the overall rate: mean and
    :data:`INTERVAL` interval.

    Each (entity, value) pair counts once, with its rows' mean label, so a lead seen in
    twelve weekly snapshots weighs no more against the prior than one seen once; for a
    deal's stage, that is each deal's outcome in the stage.
    """
    frame = train[[entity_key, column, label]].copy()
    frame[column] = frame[column].astype("object")
    prior = float(np.clip(train[label].astype(float).mean(), 1e-4, 1 - 1e-4))
    a0, b0 = PRIOR_STRENGTH * prior, PRIOR_STRENGTH * (1 - prior)
    frame = frame.dropna(subset=[column])
    pairs = frame.groupby([column, entity_key], observed=True, sort=True)[label].mean()
    grouped = pairs.astype(float).groupby(level=0, sort=True).agg(["sum", "count"])
    tail = (1 - INTERVAL) / 2
    out = []
    for value, row in grouped.iterrows():
        a, b = a0 + row["sum"], b0 + row["count"] - row["sum"]
        out.append(Rate(value=str(value), rate=float(a / (a + b)),
                        low=float(beta.ppf(tail, a, b)), high=float(beta.ppf(1 - tail, a, b)),
                        entities=int(row["count"]), positive=int(round(row["sum"]))))
    return prior, out


def _percent(p: float) -> str:
    return f"{100 * p:.0f} %"


def rate_phrase(task: str, column: str, rate: Rate) -> str:
    """The reason a rep reads for one value's rate, with its interval."""
    value = rate.value.replace("_", " ")
    template = _PHRASES.get(task, "{rate} of outcomes with " + column + " {value}")
    text = template.format(value=value, rate=_percent(rate.rate))
    return (f"{text} ({_percent(rate.low)}-{_percent(rate.high)}, "
            f"from {rate.entities:,} in training)")


def fit_rate_model(
    task: str,
    feature_set: FeatureSet,
    train: pd.DataFrame,
    column: str,
    metadata: dict[str, Any] | None = None,
    label: str = "label",
) -> ScoringModel:
    """The rate model: each value of ``column`` scored at its Beta-smoothed training
    rate (a value training never saw, or a missing one, at the overall rate).

    ``column`` must be a categorical feature of ``feature_set`` so that serving reads it
    from the feature matrix as it reads a stage offset.
    """
    if column not in feature_set.categorical:
        raise ValueError(f"the rate column {column!r} is not a category feature of "
                         f"{feature_set.name}")
    prior, rates = rates_of(train, column, feature_set.entity_key, label)
    offset = Offset(column=column, logits={r.value: _logit(r.rate) for r in rates},
                    default=_logit(prior))
    levels = {c: [str(v) for v in train[c].cat.categories]
              for c in feature_set.categorical
              if isinstance(train[c].dtype, pd.CategoricalDtype)}
    missing = [c for c in feature_set.categorical if c not in levels]
    if missing:
        raise ValueError(f"category features {missing} are not categorical in the frame")
    info = {
        "column": column,
        "prior": prior,
        "prior_strength": PRIOR_STRENGTH,
        "interval": INTERVAL,
        "rates": {r.value: {"rate": r.rate, "low": r.low, "high": r.high,
                            "entities": r.entities, "positive": r.positive} for r in rates},
        "reasons": {r.value: rate_phrase(task, column, r) for r in rates},
    }
    return ScoringModel(
        task=task,
        feature_set=feature_set,
        boosters={},
        calibrators={ALL: Calibrator("none")},
        metadata={**(metadata or {}), "model_kind": "rate", "rate_model": info},
        offset=offset,
        levels=levels,
    )
