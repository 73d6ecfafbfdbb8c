"""Training on Dask against training on one machine: time and test ROC AUC, same split.

    .venv/bin/python -P benchmarks/dask_train.py --data CRM100K --cache DIR
        [--task lead_qualification] [--workers 2] [--round-sample-rows 200000]

Builds the task's training set once (cached in ``--cache`` as ``_<task>.parquet``; the CRM
folder is only read), then fits and evaluates it twice on the same time split with the
defaults (``training.evaluate.fit_and_evaluate``, no strict backtest): on this machine
(LightGBM early-stopped on the validation period), and on a ``LocalCluster`` of
``--workers`` single-threaded worker processes (rounds chosen by a single-machine fit
early-stopped on a sample of whole entities, then ``lightgbm.dask`` on the whole training
period; ``training.dask_fit``). Prints seconds, rounds, test ROC AUC and log loss of each,
and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from features.tasks import task_spec
from training.evaluate import EvaluationConfig, fit_and_evaluate


def training_frame(data: Path, cache: Path, task: str) -> pd.DataFrame:
    path = cache / f"_{task}.parquet"
    if not path.exists():
        from features.training_set import build_training_set
        from training.data import read_tables

        t = time.perf_counter()
        tables, _ = read_tables(data)
        cache.mkdir(parents=True, exist_ok=True)
        build_training_set(tables, task).to_parquet(path)
        print(f"built {task} in {time.perf_counter() - t:.1f} s")
    frame = pd.read_parquet(path)
    frame = frame.loc[frame["label"].notna()].copy()
    frame["label"] = frame["label"].astype("int64")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--task", default="lead_qualification")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--round-sample-rows", type=int, default=200_000)
    args = parser.parse_args()

    from leadscore.cluster import dask_client
    from training.dask_fit import DaskBoosterFitter

    frame = training_frame(args.data, args.cache, args.task)
    fs = task_spec(args.task).feature_set
    config = EvaluationConfig(strict_backtest=False)
    print(f"{len(frame):,} labelled rows; load average {os.getloadavg()}")
    t = time.perf_counter()
    single = fit_and_evaluate(frame, args.task, fs, config)
    single_s = time.perf_counter() - t
    print(f"single machine: {single_s:.1f} s, {single.best_iterations} rounds, "
          f"test ROC AUC {single.metrics['test_roc_auc']:.4f}, "
          f"log loss {single.metrics['test_log_loss']:.4f}; load {os.getloadavg()}")
    t = time.perf_counter()
    with dask_client("local", n_workers=args.workers, threads_per_worker=1) as client:
        started = time.perf_counter() - t
        ev = fit_and_evaluate(frame, args.task, fs, config,
                              fit=DaskBoosterFitter(client, sample_rows=args.round_sample_rows))
    dask_s = time.perf_counter() - t
    print(f"dask ({args.workers} workers, cluster up in {started:.1f} s): {dask_s:.1f} s, "
          f"test ROC AUC {ev.metrics['test_roc_auc']:.4f}, "
          f"log loss {ev.metrics['test_log_loss']:.4f}; load {os.getloadavg()}")
    for key, choice in ev.rounds.items():
        print(f"  {key}: {choice.describe()}")
    print(f"rows train / validation / test: {len(ev.split.train):,} / "
          f"{len(ev.split.validation):,} / {len(ev.split.test):,}; AUC gap "
          f"{ev.metrics['test_roc_auc'] - single.metrics['test_roc_auc']:+.4f}")


if __name__ == "__main__":
    main()
