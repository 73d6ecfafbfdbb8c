"""How a feature is declared, and how features are grouped into versioned sets.

A feature is declared once (name, entity, window, dtype, a description a rep can
read, and the direction in which it may move the score). Models record the name and
version of the feature set they were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Entity = Literal["lead", "deal", "account"]
FeatureDtype = Literal["float", "int", "bool", "category"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    entity: Entity
    dtype: FeatureDtype
    description: str
    """Rep-readable template, e.g. "{value:.0f} pricing-page visits in the last 7 days"."""
    window_days: int | None = None
    monotone: Literal[-1, 0, 1] = 0
    """+1: more never lowers the score; -1: more never raises it; 0: free."""
    levels: tuple[str, ...] = ()
    """A category's levels, where they are learned from the training data (an export's own
    columns, ``features.own``); empty for the declared sets, whose levels are fixed in
    ``features.sets.CATEGORY_LEVELS``."""
    to_date: bool = False
    """A count over the whole history up to t (an owner's closed deals, an account's lost
    deals): it grows as the CRM's history does, drifted or not, so monitoring reads its
    move as a trend, never an alert (``modeling.profile``)."""


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: int
    task: str
    entity_key: str
    features: tuple[FeatureSpec, ...]

    @property
    def base_name(self) -> str:
        """The declared set a derived one (``lead_v1+own``: the declared features plus an
        export's own columns) is built on; the set's own name otherwise."""
        return self.name.split("+", 1)[0]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def to_date(self) -> frozenset[str]:
        """The features counted over all history (``FeatureSpec.to_date``)."""
        return frozenset(f.name for f in self.features if f.to_date)

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.dtype == "category"]

    def spec(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)
