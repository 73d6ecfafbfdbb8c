"""Baselines fitted in the same run as the model, on the same rows.

A model is only worth shipping if it beats what a team already has: a logistic
regression on the same features, and the rate a CRM uses today (the source's
conversion rate for leads; for deals, the CRM's default stage probabilities and the
empirical per-stage win rates of the training period).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from features.declarations import FeatureSet
from features.schema import CRM_DEFAULT_STAGE_PROBABILITY


def _as_float(X: pd.DataFrame) -> np.ndarray:
    """Numeric, nullable-integer and boolean columns as float with NaN for missing."""
    return np.column_stack(
        [pd.to_numeric(X[c], errors="coerce").astype("float64").to_numpy() for c in X.columns]
    )


def _as_text(X: pd.DataFrame) -> np.ndarray:
    """Category columns as strings, missing as its own level."""
    return np.column_stack(
        [X[c].astype("object").where(X[c].notna(), "(missing)").astype(str).to_numpy()
         for c in X.columns]
    )


def make_lr_pipeline(feature_set: FeatureSet, C: float = 1.0) -> Pipeline:
    """Logistic regression on the same features: impute + scale numbers, one-hot categories."""
    numeric = [n for n in feature_set.names if n not in feature_set.categorical]
    cats = feature_set.categorical
    transformers: list[tuple[str, object, list[str]]] = []
    if numeric:
        transformers.append(
            (
                "numeric",
                make_pipeline(
                    FunctionTransformer(_as_float),
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    FunctionTransformer(_signed_log),
                    StandardScaler(),
                ),
                numeric,
            )
        )
    if cats:
        transformers.append(
            (
                "categorical",
                make_pipeline(
                    FunctionTransformer(_as_text),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False
                    ),
                ),
                cats,
            )
        )
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers)),
            ("lr", LogisticRegression(C=C, solver="newton-cholesky", max_iter=200)),
        ]
    )


def _signed_log(X: np.ndarray) -> np.ndarray:
    """sign(x)·log1p(|x|): tames counts and amounts with long tails for a linear model."""
    out: np.ndarray = np.sign(X) * np.log1p(np.abs(X))
    return out


@dataclass(frozen=True)
class RateTable:
    """P(label) per value of one column, learned on training rows (smoothed to the prior)."""

    column: str
    rates: dict[str, float]
    prior: float

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        keys = frame[self.column].astype("object")
        out = keys.map(self.rates).astype("float64").fillna(self.prior)
        return out.to_numpy()


def fit_rate_table(
    train: pd.DataFrame, column: str, label: str = "label", smoothing: float = 20.0,
    entity_key: str | None = None,
) -> RateTable:
    """Observed label rate per value, shrunk towards the overall rate by ``smoothing`` rows.

    With ``entity_key``, each (entity, value) pair counts once, so an entity with many
    snapshots does not weigh more than one with few (a deal's win rate per stage).
    """
    frame = train[[column, label] + ([entity_key] if entity_key else [])].copy()
    frame[column] = frame[column].astype("object")
    if entity_key:
        frame = frame.drop_duplicates([entity_key, column])
    frame = frame.dropna(subset=[column])
    y = frame[label].astype(float)
    prior = float(train[label].astype(float).mean())
    grouped = y.groupby(frame[column]).agg(["sum", "count"])
    rates = ((grouped["sum"] + smoothing * prior) / (grouped["count"] + smoothing)).to_dict()
    return RateTable(column=column, rates={str(k): float(v) for k, v in rates.items()},
                     prior=prior)


def crm_default_table(prior: float) -> RateTable:
    """The CRM's default stage probabilities (10/20/40/60/80 %)."""
    return RateTable(column="stage", rates=dict(CRM_DEFAULT_STAGE_PROBABILITY), prior=prior)
