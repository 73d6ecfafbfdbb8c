"""The prediction tasks, each declared once: the table every layer reads.

A task says what is predicted, for which entity, from which snapshots, with which label
rule, feature set and baselines, where the generator's oracle for it lives, and which
HTTP route serves it. Training, the promotion gate, the model card, batch scoring, the
API (routes, readiness, ``/v1/models``) and the demo iterate over :data:`TASKS` instead
of comparing task names, so adding a task is one entry here, its snapshot rule and
feature set, and its serving endpoint.

Pieces that live in higher layers (the oracle in the generator's package, the request
and result schemas in ``serving``) are named by :class:`Ref`, resolved only by the layer
that uses them: this module imports nothing above ``features``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.declarations import FeatureSet
from features.schema import CRMTables
from features.sets import ACCOUNT_EXPANSION_V1, ACCOUNT_RENEWAL_V1, DEAL_V1, LEAD_V1
from features.snapshots import (
    EPISODE,
    RENEWAL_WINDOW_DAYS,
    deal_snapshots,
    expansion_snapshots,
    lead_snapshots,
    renewal_snapshots,
)


@dataclass(frozen=True)
class Ref:
    """``module:attribute``, imported when first asked for (like an entry point)."""

    target: str

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Snapshots:
    """When an entity is scored in training: ``take(tables, ...)`` gives (key, as_of, label)."""

    take: Callable[..., pd.DataFrame]
    """The snapshot function; it accepts ``every_days``, ``max_per_entity``, ``data_end``
    and, for labels with a horizon, ``horizon_days``."""
    max_per_entity: int
    every_days: int = 7
    description: str = ""


@dataclass(frozen=True)
class Label:
    """What the label means, and how far the time split keeps periods apart."""

    description: str
    """For the model card; ``{horizon_days}`` is filled in."""
    horizon_days: int | None = None
    """Days after the snapshot within which the event must happen (None: no horizon, the
    entity's own outcome, whenever it comes)."""
    gap: Literal["horizon"] | int = 0
    """Rows dropped before each period boundary: ``"horizon"`` (a label that looks
    ``horizon_days`` ahead would otherwise see into the next period) or a number of days."""
    censor_days: int = 0
    """Entities first seen this close to the data's end are left out of every period:
    only the quick ones among them have an outcome yet."""
    resolved_at: Callable[[pd.DataFrame, CRMTables], pd.Series] | None = None
    """When each snapshot's label became known, ``(snapshots, tables) -> times``: the
    strict backtest leaves out training rows not known by the test period's start. None:
    at the latest the horizon's end, for labels with one; else not declared."""

    def resolution_times(
        self, snapshots: pd.DataFrame, tables: CRMTables | None, horizon_days: int | None = None
    ) -> pd.Series | None:
        """When each snapshot's label was known (None: cannot tell from what is given)."""
        if self.resolved_at is not None:
            return None if tables is None else self.resolved_at(snapshots, tables)
        horizon = horizon_days or self.horizon_days
        if horizon is None:
            return None
        return snapshots["as_of"] + pd.Timedelta(days=horizon)

    def gap_days(self, horizon_days: int | None) -> int:
        if self.gap == "horizon":
            return int(horizon_days if horizon_days is not None else self.horizon_days or 0)
        return int(self.gap)


@dataclass(frozen=True)
class Baselines:
    """The rates a CRM uses today, fitted in the same run and reported beside the model."""

    rate_column: str
    """The column whose training-period rate is the CRM baseline (lead source, stage)."""
    rate_per_entity: bool = False
    """Count each entity once per level (deals are seen in a stage many times)."""
    crm_default: bool = False
    """Also report the CRM's default stage probabilities (10/20/40/60/80 %)."""
    rate_label: str = "CRM rate"


@dataclass(frozen=True)
class TaskSpec:
    """One prediction task, declared once."""

    name: str
    entity: str
    """What is scored, in words (``lead``, ``deal``)."""
    plural: str
    table: str
    """The contract table that holds one row per entity."""
    closed_by: tuple[str, ...]
    """Columns of that table whose value ends the entity's life: nothing left to predict."""
    feature_set: FeatureSet
    snapshots: Snapshots
    label: Label
    baselines: Baselines
    route: str
    """The HTTP route that scores it (several tasks of one entity may share a route)."""
    endpoint: Ref
    """The serving endpoint: request and result schemas and how results are built."""
    oracle: Ref | None = None
    """``(truth, snapshots, horizon_days) -> probabilities`` on generated data."""
    stage_column: str | None = None
    """A pipeline-stage feature: per-stage metrics, stage win rates, the stage offset."""
    booster: Mapping[str, Any] = field(default_factory=dict)
    """LightGBM settings (``training.fit.BoosterParams`` fields) the task needs over the
    defaults, applied before any small-data adjustment."""
    split_key: str | None = None
    """The snapshots' column the time split keeps together in one period (None: the
    entity). A customer account lives for years: one renewal, or one snapshot, is the
    unit, so every period holds old customers as well as new ones."""
    companions: tuple[str, ...] = ()
    """Models trained on the same split and logged in the same run (``time_to_close``:
    when a won deal closes, which the pipeline forecast reads beside P(won))."""

    def split_column(self, columns: Iterable[str]) -> str:
        """What the time split groups by in a frame with ``columns``: the split key when the
        frame has it (a training set built here), else the entity."""
        return self.split_key if self.split_key in set(columns) else self.entity_key

    @property
    def entity_key(self) -> str:
        return self.feature_set.entity_key

    def take_snapshots(
        self,
        tables: CRMTables,
        *,
        horizon_days: int | None = None,
        every_days: int | None = None,
        max_per_entity: int | None = None,
        data_end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """The task's snapshots with their labels (NA where the outcome is not known yet)."""
        kwargs: dict[str, Any] = {
            "every_days": every_days or self.snapshots.every_days,
            "max_per_entity": max_per_entity or self.snapshots.max_per_entity,
            "data_end": data_end,
        }
        if self.label.horizon_days is not None:
            kwargs["horizon_days"] = horizon_days or self.label.horizon_days
        return self.snapshots.take(tables, **kwargs)

    def oracle_for(
        self, truth: Any | None, horizon_days: int | None = None
    ) -> Callable[[pd.DataFrame], np.ndarray] | None:
        """The oracle's probabilities for rows of (key, as_of), or None without a truth."""
        if truth is None or self.oracle is None:
            return None
        hook = self.oracle.load()
        kwargs: dict[str, Any] = {}
        if self.label.horizon_days is not None:
            kwargs["horizon_days"] = horizon_days or self.label.horizon_days

        def oracle(snapshots: pd.DataFrame) -> np.ndarray:
            return np.asarray(hook(truth, snapshots, **kwargs), dtype=float)

        return oracle

    def describe_label(self, horizon_days: int | None = None) -> str:
        return self.label.description.format(
            horizon_days=horizon_days or self.label.horizon_days
        )


def deal_closed_at(snapshots: pd.DataFrame, tables: CRMTables) -> pd.Series:
    """A deal's label is known when it closes."""
    opps = tables.opportunities
    closed = pd.Series(opps["closed_at"].to_numpy(), index=opps["opportunity_id"].astype(str))
    return snapshots["opportunity_id"].astype(str).map(closed)


TRUTH = Ref("leadscore.truth:load_truth")
"""Reads the generator's hidden state beside a data folder (None for real data)."""

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="lead_qualification",
            entity="lead",
            plural="leads",
            table="leads",
            closed_by=("qualified_at", "disqualified_at"),
            feature_set=LEAD_V1,
            snapshots=Snapshots(
                lead_snapshots,
                max_per_entity=12,
                description="at lead creation, then weekly while the lead is open",
            ),
            label=Label(
                "P(the lead is qualified within {horizon_days} days)",
                horizon_days=30,
                gap="horizon",
            ),
            baselines=Baselines(rate_column="source", rate_label="lead source's rate"),
            route="/v1/leads/score",
            endpoint=Ref("serving.endpoints:LEADS"),
            oracle=Ref("leadscore.truth:lead_truth"),
        ),
        TaskSpec(
            name="deal_close",
            entity="deal",
            plural="deals",
            table="opportunities",
            closed_by=("closed_at",),
            feature_set=DEAL_V1,
            snapshots=Snapshots(
                deal_snapshots,
                max_per_entity=40,
                description="at each entry into an open stage, and weekly while open",
            ),
            label=Label(
                "P(the open deal ends closed_won), given what is known at the snapshot",
                censor_days=240,
                resolved_at=deal_closed_at,
            ),
            baselines=Baselines(
                rate_column="stage",
                rate_per_entity=True,
                crm_default=True,
                rate_label="stage win rate",
            ),
            route="/v1/deals/score",
            endpoint=Ref("serving.endpoints:DEALS"),
            oracle=Ref("leadscore.truth:deal_truth"),
            stage_column="stage",
            companions=("time_to_close",),
        ),
        TaskSpec(
            name="account_renewal",
            entity="customer account",
            plural="accounts",
            table="accounts",
            closed_by=(),
            feature_set=ACCOUNT_RENEWAL_V1,
            snapshots=Snapshots(
                renewal_snapshots,
                max_per_entity=26,
                description=f"weekly from {RENEWAL_WINDOW_DAYS} days before a renewal is due "
                "until it closes",
            ),
            label=Label("P(the account's next renewal closes won)", censor_days=180),
            baselines=Baselines(rate_column="segment", rate_label="segment's renewal rate"),
            route="/v1/accounts/score",
            endpoint=Ref("serving.endpoints:ACCOUNTS"),
            oracle=Ref("leadscore.truth:renewal_truth"),
            # A renewal's weekly snapshots are some 17 near-copies of one outcome, and its
            # odds add up many small signs (usage, the renewal deal, the owner): leaves of
            # 400 rows (about 25 renewals), three to a tree, learnt slowly. On the acceptance
            # data, seeds 7, 1 and 2: test ROC AUC 0.7625 / 0.7643 / 0.7628 and log loss
            # 0.4152 / 0.4151 / 0.4152, against 0.7628 / 0.7627 / 0.7631 and 0.4158 /
            # 0.4163 / 0.4158 with 7 leaves on half the features (logistic regression
            # 0.7579). Linear trees did worse earlier.
            booster={"num_leaves": 3, "min_data_in_leaf": 400, "feature_fraction": 0.8,
                     "learning_rate": 0.03},
            split_key=EPISODE,
        ),
        TaskSpec(
            name="account_expansion",
            entity="customer account",
            plural="accounts",
            table="accounts",
            closed_by=(),
            feature_set=ACCOUNT_EXPANSION_V1,
            snapshots=Snapshots(
                expansion_snapshots,
                max_per_entity=60,
                every_days=30,
                description="monthly while the account is a customer",
            ),
            # A gap of the whole horizon would leave no validation period in two years of
            # history; one snapshot interval keeps the validation labels mostly inside it.
            # Test rows still come after every row the model was fit or calibrated on.
            label=Label(
                "P(an expansion deal is created for the account within {horizon_days} days)",
                horizon_days=90,
                gap=30,
            ),
            baselines=Baselines(rate_column="segment", rate_label="segment's expansion rate"),
            route="/v1/accounts/score",
            endpoint=Ref("serving.endpoints:ACCOUNTS"),
            oracle=Ref("leadscore.truth:expansion_truth"),
            split_key=EPISODE,
        ),
    )
}


def task_spec(name: str) -> TaskSpec:
    """The declaration of a task, or a ValueError naming the ones there are."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def task_names(value: object, verb: str = "use", empty: bool = False) -> object:
    """A settings value of task names: comma-separated text (an environment variable) as
    a tuple, every name checked against :data:`TASKS` (none at all only if ``empty``);
    other values are left to the field's type."""
    if isinstance(value, str):
        value = tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, tuple | list):
        unknown = [t for t in value if t not in TASKS]
        if unknown or not (value or empty):
            raise ValueError(f"unknown tasks {unknown}; {verb} some of {', '.join(TASKS)}")
    return value
