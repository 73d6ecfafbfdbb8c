"""Reasons a rep can read, from LightGBM's per-feature contributions.

Each feature's declared description is a template with ``{value}``. Missing values, yes/no
answers and category codes are put into words here, so a reason never reads "nan", "True"
or "meeting_demo".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.declarations import FeatureSpec

_PLACEHOLDER = re.compile(r"\{value[^}]*\}")
TOP_K = 3


@dataclass(frozen=True)
class Factor:
    """One feature's push on one score."""

    feature: str
    value: float | int | str | bool | None
    contribution: float
    text: str


def plain_value(value: Any) -> float | int | str | bool | None:
    """A JSON-able Python value: numpy scalars unwrapped, NaN/NA/NaT as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _words(value: str) -> str:
    return value.replace("_", " ")


def describe(spec: FeatureSpec, value: Any) -> str:
    """The feature's sentence for this value, with missing values and categories in words."""
    value = plain_value(value)
    template = spec.description
    if value is None:
        # Templates are phrased around a value ("{value} days since..."); without one the
        # feature's own name reads better than the template with a hole in it.
        return f"{_words(spec.name)}: not known"
    if isinstance(value, bool):
        text_value: Any = "yes" if value else "no"
    elif isinstance(value, str):
        text_value = _words(value)
    else:
        text_value = value
    if isinstance(text_value, str):
        return _PLACEHOLDER.sub(lambda _: text_value, template)
    try:
        return template.format(value=text_value)
    except (ValueError, TypeError, KeyError, IndexError):
        return _PLACEHOLDER.sub(lambda _: str(text_value), template)


def top_factors(
    contributions: np.ndarray,
    values: list[Any],
    specs: list[FeatureSpec],
    k: int = TOP_K,
) -> tuple[list[Factor], list[Factor]]:
    """Up to ``k`` features raising and ``k`` lowering one row's score, strongest first.

    ``contributions`` holds one row of ``pred_contrib`` without the bias term, aligned
    with ``values`` and ``specs``. Features contributing exactly zero are not reasons.
    """
    order = np.argsort(contributions, kind="stable")
    up_idx = [i for i in order[::-1][:k] if contributions[i] > 0]
    down_idx = [i for i in order[:k] if contributions[i] < 0]

    def factor(i: int) -> Factor:
        return Factor(
            feature=specs[i].name,
            value=plain_value(values[i]),
            contribution=float(contributions[i]),
            text=describe(specs[i], values[i]),
        )

    return [factor(i) for i in up_idx], [factor(i) for i in down_idx]
