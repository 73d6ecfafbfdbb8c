"""The pipeline review of a generated CRM: `leadscore pipeline` end to end, and its steps.

    .venv/bin/python -P benchmarks/review.py [--data DIR] [--leads 100000 --seed 7]
        [--tracking-uri URI] [--runs 3] [--period month] [--target AMOUNT]

1. ``--data`` (default: a temporary folder) holds the CRM, generated there with
   ``leadscore generate --leads N --seed S`` when it has no tables; an existing folder is
   only read.
2. Without ``--tracking-uri`` a deal model is trained on it into a temporary MLflow store
   (``leadscore train --task deal_close --no-strict-backtest``) and registered as
   ``champion``; with one, that store's champion is used.
3. ``leadscore pipeline`` runs ``--runs`` times, each in a fresh process (imports,
   reading the tables, loading the model from the registry, the review, the three
   files), timed from outside; then one run in process, step by step.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadscore.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tracking-uri")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--period", default="month")
    parser.add_argument("--target", type=float, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="review-bench-"))
    data = args.data or work / "crm"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["MLFLOW_TRACKING_URI"] = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
    if not (data / "leads.parquet").exists():
        t = time.perf_counter()
        _cli("generate", "--out", str(data), "--leads", str(args.leads), "--seed",
             str(args.seed), env=env)
        print(f"generated {args.leads:,} leads (seed {args.seed}) in "
              f"{time.perf_counter() - t:.1f} s")
    if not args.tracking_uri:
        t = time.perf_counter()
        _cli("train", "--task", "deal_close", "--data", str(data), "--no-strict-backtest",
             "--out", str(work / "train"), env=env)
        print(f"trained the deal model in {time.perf_counter() - t:.1f} s")

    command = ["pipeline", "--data", str(data), "--out", str(work / "review"), "--period",
               args.period]
    if args.target:
        command += ["--target", str(args.target)]
    walls, cpus = [], []
    for i in range(args.runs):
        load = _load()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        out = _cli(*command, env=env)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        print(f"run {i + 1}: {walls[-1]:.1f} s wall, {cpus[-1]:.1f} s CPU "
              f"(load average before {load})")
    print(out.stdout)

    # In process, step by step (imports already paid).
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    import pandas as pd

    from features.loader import load_crm
    from review.at_risk import score_open_deals
    from review.backtest import attach_backtest, read_last_backtest
    from review.build import build_review, data_span
    from review.deals import deal_facts
    from review.files import load_deal_model, write_review
    from review.forecasting import attach_forecast
    from review.render import PAGE_DEALS, render_html
    from review.settings import get_review_settings

    steps: dict[str, float] = {}

    def timed(name: str, fn, *a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        result = fn(*a, **k)
        steps[name] = time.perf_counter() - t0
        return result

    settings = get_review_settings(review_period=args.period, review_target=args.target)
    tables = timed("read and validate the tables", load_crm, data).tables
    model = timed("load the deal model (registry)", load_deal_model, settings, None)
    review = timed("build_review (all of it)", build_review, tables, model, settings,
                   period=settings.period, target=settings.review_target)
    as_of = pd.Timestamp(review.as_of)
    assert data_span(tables)[1] == as_of
    facts = timed("  of which: the deals as of the date", deal_facts, tables, as_of)
    timed("  of which: scoring the open deals", score_open_deals, model, tables, facts,
          settings)
    saved = timed("the last backtest (MLflow)", read_last_backtest, None)
    timed("the forecast (time-to-close model, Monte Carlo)", attach_forecast, review, tables,
          model, None, saved, data)
    attach_backtest(review, saved, data)
    timed("render_html", render_html, review)
    timed("write the three files", write_review, review, work / "review-inproc", PAGE_DEALS)
    f = review.forecast
    print(f"forecast: {'computed' if f is not None else 'not computed'}"
          + (f", range from {f.spread_from} errors ({f.errors_used} periods)"  # type: ignore[attr-defined]
             if f is not None else "")
          + f"; last backtest: {'none' if review.backtest is None else review.backtest.run_id}")
    print(f"{review.at_risk.open_deals:,} open deals of {len(tables.opportunities):,}, "
          f"{len(tables.activities):,} activities")
    print("| step | s |\n| --- | ---: |")
    for name, s in steps.items():
        print(f"| {name} | {s:.2f} |")
    print(f"leadscore pipeline, fresh process: median {statistics.median(walls):.1f} s wall "
          f"(min {min(walls):.1f}), {statistics.median(cpus):.1f} s CPU, over {len(walls)} runs")
    print(f"files in {work}")


if __name__ == "__main__":
    main()
