"""A task's training set: its snapshots with their labels and features, and a summary.

Snapshots come from the task's declaration (``features.tasks``), features from
``features.build``; nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.build import (
    ENTITY_FEATURES,
    DealOwners,
    Step,
    build_features,
    entity_columns,
    features_frame,
    select_features,
)
from features.declarations import FeatureSet
from features.own import NONE as NO_OWN
from features.own import Derived, OwnFeatures, derive_feature_set
from features.schema import CRMTables
from features.tasks import task_spec


def build_training_set(
    tables: CRMTables,
    task: str,
    *,
    horizon_days: int | None = None,
    every_days: int | None = None,
    max_per_entity: int | None = None,
    data_end: pd.Timestamp | None = None,
    feature_set: FeatureSet | None = None,
    on_step: Step | None = None,
    own: OwnFeatures | None = None,
    owners: DealOwners | None = None,
) -> pd.DataFrame:
    """Snapshots of a task with their labels and features: entity key, as_of, label, the
    task's split key if it has one, then the features. ``own``: the folder's own columns
    (``features.own``), for a feature set derived with them (a model trained on them).
    ``owners``: the deal owners' record of the whole CRM when ``tables`` are one partition
    of it (``features.partitions``)."""
    spec = task_spec(task)
    fs = feature_set or spec.feature_set
    if fs.task != task:
        raise ValueError(f"feature set {fs.name} is for {fs.task}, not {task}")
    step = on_step or (lambda _: None)
    snaps = spec.take_snapshots(
        tables,
        horizon_days=horizon_days,
        every_days=every_days,
        max_per_entity=max_per_entity,
        data_end=data_end,
    )
    step("snapshots")
    out = build_features(tables, snaps, fs, on_step=step, own=own or NO_OWN, owners=owners)
    return _with_label(out, snaps, spec.split_key)


def _with_label(out: pd.DataFrame, snaps: pd.DataFrame, split_key: str | None) -> pd.DataFrame:
    out.insert(2, "label", snaps["label"])
    if split_key is not None:
        out.insert(3, split_key, snaps[split_key])
    return out


def build_training_set_with_own(
    tables: CRMTables,
    task: str,
    own: OwnFeatures,
    *,
    horizon_days: int | None = None,
    feature_set: FeatureSet | None = None,
    on_step: Step | None = None,
) -> tuple[pd.DataFrame, Derived]:
    """:func:`build_training_set` with an export's own columns (``features.own``): the
    feature set derived from the task's over these snapshots (levels learned from them,
    features missing almost everywhere left out), and the training set in it."""
    spec = task_spec(task)
    fs = feature_set or spec.feature_set
    step = on_step or (lambda _: None)
    snaps = spec.take_snapshots(tables, horizon_days=horizon_days)
    step("snapshots")
    columns = entity_columns(tables, snaps, fs.entity_key, on_step=step, own=own)
    derived = derive_feature_set(fs, own, columns)
    out = features_frame(select_features(columns, derived.feature_set), snaps,
                         derived.feature_set)
    return _with_label(out, snaps, spec.split_key), derived


def build_steps(task: str) -> int:
    """How many times ``build_training_set`` calls ``on_step`` for a task (progress bars)."""
    return 1 + ENTITY_FEATURES[task_spec(task).entity_key].steps


@dataclass(frozen=True)
class TrainingSetSummary:
    """Rows, labels and missing values of a training set, for a report."""

    rows: int
    entities: int
    labelled: int
    unlabelled: int
    label_rate: float
    missing: dict[str, int]


def summarize(training_set: pd.DataFrame, feature_set: FeatureSet) -> TrainingSetSummary:
    """Rows, labelled rows, label rate and missing values per feature, for a report."""
    label = training_set["label"]
    labelled = int(label.notna().sum())
    rate = float(label.dropna().astype(bool).mean()) if labelled else float("nan")
    return TrainingSetSummary(
        rows=len(training_set),
        entities=int(training_set[feature_set.entity_key].nunique()),
        labelled=labelled,
        unlabelled=len(training_set) - labelled,
        label_rate=rate,
        missing={name: int(training_set[name].isna().sum()) for name in feature_set.names},
    )
