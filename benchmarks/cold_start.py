"""Cold start: the learning curve of what ``train`` fits against the rate model.

    .venv/bin/python -P benchmarks/cold_start.py [--leads 12000 --seed 7 --data DIR]

One generated CRM's lead_qualification snapshots are split by time once; from the
training period, subsamples of 50, 100, 200, 500, 1,000 and 5,000 leads (outcomes) are
drawn (and a validation period in proportion, at least 20 leads), and each is fit three
ways: what ``train`` registers (``training.evaluate.fit_for_outcomes``: the rate model
below 40 outcomes of a kind, a booster from the rates regularised toward them below 300,
else the booster), the booster as it was before cold start (no offset, small-data
settings), and the rate model alone (the lead source's Beta-smoothed rate). All are
scored on the same later test period: ROC AUC, log loss, ECE. Each size is drawn with
three seeds; the table gives the means, and the worst of the three differences in log
loss against the rate model.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

SIZES = (50, 100, 200, 500, 1000, 5000)
TASK = "lead_qualification"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    from features.sets import LEAD_V1
    from features.tasks import task_spec
    from training.cold_start import count_outcomes, fit_rate_model
    from training.evaluate import EvaluationConfig, fit_for_outcomes, split_periods
    from training.fit import BoosterParams
    from training.metrics import binary_metrics

    data = args.data or Path(f"/tmp/leadscore-cold-start-{args.leads}-{args.seed}")
    t0 = time.perf_counter()
    cache = data / f"_{TASK}.parquet"
    if not cache.exists():
        from features.training_set import build_training_set
        from leadscore.generator import generate_crm

        data.mkdir(parents=True, exist_ok=True)
        tables = generate_crm(args.leads, seed=args.seed).tables
        build_training_set(tables, TASK).to_parquet(cache)
    frame = pd.read_parquet(cache)
    frame = frame.loc[frame["label"].notna()].copy()
    frame["label"] = frame["label"].astype("int64")
    frame = frame.sort_values(["as_of", "lead_id"], kind="mergesort").reset_index(drop=True)
    print(f"training set: {len(frame):,} snapshots in {time.perf_counter() - t0:.0f} s")

    config = EvaluationConfig(params=BoosterParams(num_threads=2), strict_backtest=False)
    split = split_periods(frame, TASK, config)
    test, y = split.test, split.test["label"].to_numpy(dtype=int)
    pool_train = split.train["lead_id"].drop_duplicates()
    pool_val = split.validation["lead_id"].drop_duplicates()
    print(f"pool: {len(pool_train):,} training leads, {len(pool_val):,} validation leads; "
          f"test: {len(test):,} snapshots of {test['lead_id'].nunique():,} leads "
          f"from {split.test_start:%Y-%m-%d}")
    spec = task_spec(TASK)
    small = replace(config.params, **spec.booster).for_small_data()
    no_cold = replace(config, cold_start=False)
    rows = []
    for n in SIZES:
        if n > len(pool_train):
            print(f"{n}: more than the pool holds; skipped")
            continue
        for draw in range(args.draws):
            rng = np.random.default_rng(1000 * n + draw)
            keep = rng.choice(pool_train.to_numpy(), n, replace=False)
            n_val = min(len(pool_val), max(20, round(n * config.validation_fraction
                                                     / (1 - config.validation_fraction
                                                        - config.test_fraction))))
            keep_val = rng.choice(pool_val.to_numpy(), n_val, replace=False)
            train = split.train.loc[split.train["lead_id"].isin(keep)]
            val = split.validation.loc[split.validation["lead_id"].isin(keep_val)]
            if train["label"].nunique() < 2 or val["label"].nunique() < 2:
                print(f"{n} draw {draw}: one class in a period; skipped")
                continue
            t = time.perf_counter()
            fitted, regime, outcomes, _, _ = fit_for_outcomes(
                TASK, LEAD_V1, train, val, config, small, None, None)
            plain, *_ = fit_for_outcomes(TASK, LEAD_V1, train, val, no_cold, small, None, None)
            rate = fit_rate_model(TASK, LEAD_V1, train, spec.baselines.rate_column)
            m = binary_metrics(y, fitted.model.predict_proba(test))
            b = binary_metrics(y, plain.model.predict_proba(test))
            r = binary_metrics(y, rate.predict_proba(test))
            assert outcomes == count_outcomes(train, "lead_id")
            rows.append({"leads": n, "draw": draw, "positive": outcomes.positive,
                         "regime": regime, "auc": m["roc_auc"], "log_loss": m["log_loss"],
                         "ece": m["ece"], "plain_auc": b["roc_auc"],
                         "plain_log_loss": b["log_loss"], "rate_auc": r["roc_auc"],
                         "rate_log_loss": r["log_loss"], "rate_ece": r["ece"],
                         "seconds": time.perf_counter() - t})
            print(f"{n} draw {draw}: {regime}, {outcomes.positive} positive; log loss "
                  f"{m['log_loss']:.4f} (plain booster {b['log_loss']:.4f}, rate "
                  f"{r['log_loss']:.4f}); AUC {m['roc_auc']:.3f} / {b['roc_auc']:.3f} / "
                  f"{r['roc_auc']:.3f}", flush=True)
    out = pd.DataFrame(rows)
    out["diff"] = out["log_loss"] - out["rate_log_loss"]
    out["plain_diff"] = out["plain_log_loss"] - out["rate_log_loss"]
    summary = out.groupby("leads").agg(
        positive=("positive", "mean"), regime=("regime", lambda s: "/".join(sorted(set(s)))),
        auc=("auc", "mean"), plain_auc=("plain_auc", "mean"), rate_auc=("rate_auc", "mean"),
        log_loss=("log_loss", "mean"), plain_log_loss=("plain_log_loss", "mean"),
        rate_log_loss=("rate_log_loss", "mean"), worst_diff=("diff", "max"),
        plain_worst_diff=("plain_diff", "max"), ece=("ece", "mean"))
    print()
    print("| training leads | positive (mean) | registered | ROC AUC: registered / plain "
          "booster / rate | log loss: registered / plain booster / rate | worst log loss "
          "minus the rate's: registered / plain | ECE registered |")
    print("| ---: | ---: | --- | --- | --- | --- | ---: |")
    for n, s in summary.iterrows():
        print(f"| {n:,} | {s['positive']:.0f} | {s['regime']} | {s['auc']:.3f} / "
              f"{s['plain_auc']:.3f} / {s['rate_auc']:.3f} | {s['log_loss']:.4f} / "
              f"{s['plain_log_loss']:.4f} / {s['rate_log_loss']:.4f} | "
              f"{s['worst_diff']:+.4f} / {s['plain_worst_diff']:+.4f} | {s['ece']:.3f} |")
    worse = out.loc[out["diff"] > 1e-4]
    print(f"\ndraws where the registered model's log loss is above the rate model's: "
          f"{len(worse)} of {len(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
