"""Fit a booster on a Dask cluster with ``lightgbm.dask``, its rounds chosen first on a sample.

``DaskLGBMClassifier`` has no early stopping, so the number of rounds is chosen before
the distributed fit: a single-machine LightGBM fit, early-stopped on validation log loss
as :func:`training.fit.fit_booster` does, on a sample of whole entities of the training
period (and of the validation period), and its best iteration is the distributed fit's
``n_estimators``. The distributed fit then reads the whole training period, split into
Dask partitions; the booster it returns is a plain ``lightgbm.Booster``
(``to_local().booster_``), the same kind of artifact a single-machine fit gives, so
calibration, evaluation, registry and serving treat it as they treat any other.

Needs the ``[dask]`` extra; the workers need LightGBM and pandas only (no project code).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.declarations import FeatureSet
from modeling.artifact import Offset
from training.fit import (
    BoosterFit,
    BoosterParams,
    features_frame,
    fit_booster,
    monotone_constraints,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from distributed import Client

ROUND_SAMPLE_ROWS = 200_000
"""Most training (and validation) rows the single-machine fit that chooses the rounds reads."""
PARTITIONS_PER_WORKER = 2
"""Dask partitions of the training period per worker."""
TIME_OUT_MINUTES = 30
"""How long LightGBM's workers wait on each other's sockets (``time_out``)."""
_LABEL, _INIT = "__label__", "__init_score__"


@dataclass(frozen=True)
class RoundChoice:
    """How a distributed fit's rounds were chosen: on a sample, by early stopping."""

    rounds: int
    """The sample fit's best iteration: the distributed fit's ``n_estimators``."""
    sample_train_rows: int
    train_rows: int
    sample_validation_rows: int
    validation_rows: int
    early_stopping_rounds: int
    workers: int
    partitions: int

    def describe(self) -> str:
        """One line for the run's output and the model card."""
        def share(part: int, whole: int) -> str:
            return "all" if part == whole else f"a sample of whole entities, {part:,} of"

        return (f"{self.rounds} rounds, chosen by a single-machine LightGBM fit early-stopped "
                f"on validation log loss ({self.early_stopping_rounds} rounds' patience) on "
                f"{share(self.sample_train_rows, self.train_rows)} {self.train_rows:,} "
                f"training rows and {share(self.sample_validation_rows, self.validation_rows)}"
                f" {self.validation_rows:,} validation rows; then fit with lightgbm.dask on "
                f"{self.workers} worker(s), {self.partitions} partitions of the whole "
                "training period (it has no early stopping)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def entity_sample(frame: pd.DataFrame, entity_key: str, max_rows: int, seed: int) -> pd.DataFrame:
    """At most about ``max_rows`` of ``frame``'s rows, all the rows of randomly drawn
    entities (an entity's snapshots stay together, as the split keeps them), in
    ``frame``'s order; ``frame`` itself when it holds no more."""
    if len(frame) <= max_rows:
        return frame
    counts = frame.groupby(entity_key, observed=True, sort=True).size()
    order = np.random.default_rng(seed).permutation(len(counts))
    taken = np.cumsum(counts.to_numpy()[order]) <= max_rows
    chosen = counts.index[order[taken]]
    return frame.loc[frame[entity_key].isin(chosen)]


def worker_count(client: Client) -> int:
    """Workers the scheduler knows of now."""
    return max(1, len(client.scheduler_info().get("workers", {})))


def fit_dask_booster(
    client: Client,
    train: pd.DataFrame,
    feature_set: FeatureSet,
    params: BoosterParams,
    seed: int,
    rounds: int,
    label: str = "label",
    offset: Offset | None = None,
    partitions: int | None = None,
) -> Any:
    """``rounds`` boosting rounds on the whole of ``train`` with ``DaskLGBMClassifier``,
    returned as a plain ``lightgbm.Booster``. No ``local_listen_port`` is given, so
    LightGBM picks a free port per worker (several workers may share a host)."""
    from lightgbm.dask import DaskLGBMClassifier

    lgb_params = params.lgb_params(seed, monotone_constraints(feature_set))
    lgb_params.pop("num_threads", None)  # lightgbm.dask uses each worker's threads
    lgb_params.pop("metric", None)  # no validation set to report on
    frame = features_frame(train, feature_set).copy()
    frame[_LABEL] = train[label].to_numpy(dtype=float)
    if offset is not None:
        frame[_INIT] = offset.apply(train)
    parts = placed_partitions(client, frame.reset_index(drop=True), partitions)
    model = DaskLGBMClassifier(client=client, n_estimators=rounds,
                               time_out=TIME_OUT_MINUTES, **lgb_params)
    with warnings.catch_warnings():  # it says it ignores the thread count it sets itself
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(parts[feature_set.names], parts[_LABEL],
                  init_score=parts[_INIT] if offset is not None else None,
                  categorical_feature=feature_set.categorical or "auto")
    return model.to_local().booster_


def placed_partitions(client: Client, frame: pd.DataFrame,
                      partitions: int | None = None) -> Any:
    """``frame`` as a Dask DataFrame of consecutive row blocks, block ``i`` held by worker
    ``i`` modulo the workers (in address order). LightGBM's data-parallel fit depends on
    which rows each worker holds (its bagging and bin sample are drawn from them), so a
    fixed placement makes the fit repeat on the same cluster; left to the scheduler, the
    blocks land where it pleases and the model differs from run to run."""
    import dask
    import dask.dataframe as dd

    workers = sorted(client.scheduler_info()["workers"])
    n = max(1, min(partitions or PARTITIONS_PER_WORKER * len(workers), len(frame)))
    bounds = np.linspace(0, len(frame), n + 1).astype(int)
    futures = [client.scatter(frame.iloc[lo:hi], workers=[workers[i % len(workers)]])
               for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
    return dd.from_delayed([dask.delayed(f) for f in futures], meta=frame.iloc[:0],
                           verify_meta=False)


class DaskBoosterFitter:
    """A booster fitter (see :data:`training.fit.BoosterFitter`) that fits on a Dask
    cluster: rounds chosen on a sample by a single-machine fit, then the distributed fit."""

    def __init__(self, client: Client, sample_rows: int = ROUND_SAMPLE_ROWS,
                 partitions: int | None = None) -> None:
        self.client = client
        self.sample_rows = sample_rows
        self.partitions = partitions

    def __call__(
        self,
        train: pd.DataFrame,
        validation: pd.DataFrame,
        feature_set: FeatureSet,
        params: BoosterParams,
        seed: int,
        label: str = "label",
        on_iteration: Callable[[int], None] | None = None,
        offset: Offset | None = None,
    ) -> BoosterFit:
        key = feature_set.entity_key
        train_sample = entity_sample(train, key, self.sample_rows, seed)
        validation_sample = entity_sample(validation, key, self.sample_rows, seed)
        probe = fit_booster(train_sample, validation_sample, feature_set, params, seed, label,
                            on_iteration, offset)
        rounds = int(probe.best_iteration or probe.current_iteration())
        workers = worker_count(self.client)
        partitions = self.partitions or PARTITIONS_PER_WORKER * workers
        booster = fit_dask_booster(self.client, train, feature_set, params, seed, rounds,
                                   label, offset, partitions)
        choice = RoundChoice(
            rounds=rounds, sample_train_rows=len(train_sample), train_rows=len(train),
            sample_validation_rows=len(validation_sample), validation_rows=len(validation),
            early_stopping_rounds=params.early_stopping_rounds, workers=workers,
            partitions=partitions,
        )
        return BoosterFit(booster=booster, best_iteration=rounds, rounds=choice)
