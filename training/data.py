"""Training inputs: a folder of CRM tables (built into snapshots) or a prebuilt training set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.declarations import FeatureSet
from features.own import Derived, read_own
from features.schema import CRMTables
from features.tasks import TRUTH, task_spec

Step = Callable[[str], None]


def _noop(_: str) -> None:
    return None


@dataclass(frozen=True)
class TrainingInputs:
    frame: pd.DataFrame
    """Labelled snapshots: entity key, as_of, label (0/1), features."""
    feature_set: FeatureSet
    tables: CRMTables | None
    oracle: Callable[[pd.DataFrame], np.ndarray] | None
    """The true probability of rows of (key, as_of) when the folder holds the generator's
    hidden state (``_truth/``), else None."""
    unlabelled_rows: int
    rejected_rows: int
    own: Derived | None = None
    """The export's own columns (``features.own``): which are features, which were left
    out and why; None when the folder has none for the task's entity."""


def current_columns(inputs: TrainingInputs) -> tuple[str, ...]:
    """The feature columns read with only their value on the export's day: the export's
    own columns opted in by ``allow_current_values`` (the leakage audit's ``uneven_fill``
    looks at these)."""
    return () if inputs.own is None else inputs.own.leak_risks


def read_tables(data_dir: Path) -> tuple[CRMTables, int]:
    """The validated tables of a folder, and how many rows validation rejected.

    Uses the project's loader (which reports every rejected row); rows it rejects
    are not trained on.
    """
    from features.loader import load_crm

    result = load_crm(Path(data_dir))
    return result.tables, len(result.rejections)


def load_training_inputs(
    data: Path,
    task: str,
    horizon_days: int | None = None,
    feature_set: FeatureSet | None = None,
    on_step: Step | None = None,
) -> TrainingInputs:
    """Labelled snapshots for ``task`` from a data folder or a training-set Parquet file.

    Unlabelled snapshots (too recent to know their outcome) are counted and left out.
    """
    spec = task_spec(task)
    step = on_step or _noop
    fs = feature_set or spec.feature_set
    data = Path(data)
    tables: CRMTables | None = None
    truth = None
    rejected = 0
    own: Derived | None = None
    if data.is_file():
        frame = pd.read_parquet(data)
        step("read training set")
    else:
        tables, rejected = read_tables(data)  # validated: rejected rows are not trained on
        step("loaded tables")
        from features.training_set import build_training_set, build_training_set_with_own

        own_features = read_own(data)
        if own_features.of_key(fs.entity_key) and feature_set is None:
            frame, own = build_training_set_with_own(tables, task, own_features,
                                                     horizon_days=horizon_days)
            fs = own.feature_set
        else:
            frame = build_training_set(tables, task, horizon_days=horizon_days,
                                       feature_set=fs)
        step("built snapshots and features")
        truth = TRUTH.load()(data)
    missing = [c for c in (fs.entity_key, "as_of", "label", *fs.names) if c not in frame.columns]
    if missing:
        raise ValueError(f"training set lacks columns {missing}")
    labelled = frame["label"].notna()
    out = frame.loc[labelled].copy()
    out["label"] = out["label"].astype("int64")
    out = out.sort_values(["as_of", fs.entity_key], kind="mergesort").reset_index(drop=True)
    return TrainingInputs(
        frame=out,
        feature_set=fs,
        tables=tables,
        oracle=spec.oracle_for(truth, horizon_days),
        unlabelled_rows=int((~labelled).sum()),
        rejected_rows=rejected,
        own=own,
    )
