"""`leadscore monitor` on drifted and undrifted CRMs: does it flag the one and stay quiet on
the other?

    .venv/bin/python -P benchmarks/monitor.py [--leads 5000] [--seeds 1,2,3,4,5]
        [--tasks lead_qualification,deal_close] [--work DIR]

Per seed: ``generate --leads N --seed S`` and the same with ``--drift`` (the last quarter of
the months shifts: source mix, engagement, a slower pipeline); the models are trained on
the undrifted CRM as it stood when the drift starts (``crm_as_of``: what a model trained
then could have seen), in a store of their own; then ``monitor --since <drift start>`` runs
on both full CRMs. An exit code of 1 on the undrifted CRM is a false alarm; on the drifted
one, a detection. Prints one line per seed and CRM and the rates.

    .venv/bin/python -P benchmarks/monitor.py --overhead --work DIR

``--overhead``: what the serving window adds to a request: ``Monitor.observe`` of one
lead's and of 256 leads' scored rows against ``score_tables`` of the same request (reasons
and trend, as the route's defaults; the first seed's lead model in DIR), and a PSI read of
a full 10,000-row window of the CRM's open leads.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd


def write_tables(tables: object, out: Path) -> None:
    from features.schema import TABLES

    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        frame = getattr(tables, name, None)
        if isinstance(frame, pd.DataFrame):
            frame.to_parquet(out / f"{name}.parquet", index=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--tasks", default="lead_qualification,deal_close")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--tables", action="store_true",
                        help="also print monitor's own tables for every CRM")
    args = parser.parse_args()
    if args.overhead:
        return overhead(args.work, int(args.seeds.split(",")[0]))

    from features.snapshots import crm_as_of
    from leadscore.generator import generate_crm, write_crm
    from leadscore.synth.config import GeneratorConfig
    from modeling.registry import resolve_alias
    from training.monitor import exit_code, monitor_settings, run_monitor
    from training.train import train, train_settings

    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = tuple(args.tasks.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="leadscore-monitor-bench-"))
    print(f"work folder {work}; load average {os.getloadavg()[0]:.2f}")
    outcomes: dict[str, list[int]] = {"undrifted": [], "drifted": []}
    by_task: dict[tuple[str, str], list[bool]] = {}
    for seed in seeds:
        t0 = time.perf_counter()
        folders = {}
        for kind, drift in (("undrifted", False), ("drifted", True)):
            folders[kind] = work / f"s{seed}-{kind}"
            if not (folders[kind] / "leads.parquet").exists():
                write_crm(generate_crm(args.leads, seed=seed, drift=drift), folders[kind])
        cfg = GeneratorConfig(args.leads, seed=seed, drift=True)
        assert cfg.drift_start_day is not None
        start = cfg.start_ts + pd.Timedelta(days=cfg.drift_start_day)
        cut = work / f"s{seed}-cut"
        if not (cut / "leads.parquet").exists():
            from training.data import read_tables

            write_tables(crm_as_of(read_tables(folders["undrifted"])[0], start), cut)
        uri = f"sqlite:///{work / f's{seed}-mlflow.db'}"
        for task in tasks:
            result = train(train_settings(task=task, data=cut, tracking_uri=uri,
                                          num_threads=2))
            champion = resolve_alias(task, tracking_uri=uri)
            if result.version is not None and champion != result.version:
                # A store kept from an earlier run keeps its champion when the new version
                # does not beat it: the run then monitors that one. Use a fresh --work to
                # measure the code as it is.
                print(f"note: seed {seed} {task}: monitoring champion version {champion}, not "
                      f"version {result.version} just trained (the gate kept the champion)")
        trained = time.perf_counter() - t0
        for kind, folder in folders.items():
            t1 = time.perf_counter()
            reports = run_monitor(monitor_settings(data=folder, since=start.to_pydatetime(),
                                                   tasks=tasks, tracking_uri=uri))
            code = exit_code(reports)
            if args.tables:
                from rich.console import Console

                from training.monitor import print_reports

                print(f"--- seed {seed}, {kind}: leadscore monitor --data {folder} --since "
                      f"{start.date()}")
                print_reports(reports, Console(width=100))
            outcomes[kind].append(code)
            parts = []
            for r in reports:
                worst = next((f for f in r.features if not f.trending), None)
                trend = next((f for f in r.features if f.trending), None)
                c = r.calibration
                by_task.setdefault((r.task, kind), []).append(r.alert)
                parts.append(
                    f"{r.task}: {r.status} score PSI "
                    f"{'n/a' if r.score is None else f'{r.score.psi:.3f}'}, worst "
                    f"{'n/a' if worst is None else f'{worst.name} {worst.psi:.3f}'}"
                    f"{'' if worst is None else f' (no-drift {worst.expected:.3f})'} (trending "
                    f"{'none' if trend is None else f'{trend.name} {trend.psi:.2f}'}), ECE "
                    f"{'n/a' if c is None or c.status == 'too few outcomes' else f'{c.ece:.3f}'}"
                    f" ({0 if c is None else c.outcomes} outcomes)")
            print(f"seed {seed} {kind:9s} exit {code}  " + "; ".join(parts)
                  + f"  [{time.perf_counter() - t1:.0f} s monitor, {trained:.0f} s build+train]",
                  flush=True)
    false_alarms = sum(c == 1 for c in outcomes["undrifted"])
    detected = sum(c == 1 for c in outcomes["drifted"])
    print(f"false alarms: {false_alarms}/{len(seeds)} undrifted CRMs; detected: "
          f"{detected}/{len(seeds)} drifted CRMs; load average {os.getloadavg()[0]:.2f}")
    for task in tasks:
        quiet, loud = by_task.get((task, "undrifted"), []), by_task.get((task, "drifted"), [])
        print(f"  {task}: false alarms {sum(quiet)}/{len(quiet)}, detected "
              f"{sum(loud)}/{len(loud)}")
    return 0


def _best(work: object, repeat: int) -> float:
    """Best of 5 means over ``repeat`` calls, in microseconds."""
    import timeit

    return min(timeit.repeat(work, number=repeat, repeat=5)) / repeat * 1e6  # type: ignore[arg-type]


def overhead(work: Path, seed: int) -> int:
    from serving.endpoints import LEADS
    from serving.models import RegistrySource
    from serving.monitoring import Monitor
    from serving.schemas import LeadBatch
    from serving.scoring import TREND_DAYS, score_tables
    from training.data import read_tables

    source = RegistrySource(tracking_uri=f"sqlite:///{work / f's{seed}-mlflow.db'}")
    loaded = source.load("lead_qualification")
    now = datetime.now(UTC)
    smoke = LEADS.smoke(now).leads[0]
    print(f"load average {os.getloadavg()[0]:.2f}")
    for n in (1, 256):
        # What a request of n leads reaches scoring with: its contract tables, as columns.
        batch = LeadBatch(leads=[smoke.model_copy(update={"lead_id": f"L{i}"})
                                 for i in range(n)])
        tables, ids = LEADS.tables(batch), [f"L{i}" for i in range(n)]
        watch = Monitor(10_000, 16 * 2**20, 200, 0.1, 0.25)
        rows = score_tables(loaded, tables, ids, now, explain=True, trend_days=TREND_DAYS)
        score_us = _best(functools.partial(score_tables, loaded, tables, ids, now,
                                           explain=True, trend_days=TREND_DAYS), 20)
        observe_us = _best(functools.partial(watch.observe, loaded, rows), 200)
        print(f"{n:>4} leads: score_tables {score_us:,.0f} us, observe {observe_us:,.1f} us "
              f"({observe_us / score_us:.1%} of scoring)")
    # A full window of real rows: the CRM's open leads at its end, scored.
    crm, _ = read_tables(work / f"s{seed}-undrifted")
    leads = crm.leads
    as_of = leads["created_at"].max()
    open_ = leads.loc[leads["qualified_at"].isna() & leads["disqualified_at"].isna()
                      & (leads["created_at"] < as_of - pd.Timedelta(days=2)), "lead_id"]
    ids = open_.astype(str).tolist()[:500]
    tables = crm
    monitor = Monitor(10_000, 16 * 2**20, 200, 0.1, 0.25)
    scored = score_tables(loaded, tables, ids, as_of, explain=False)
    for _ in range(10_000 // len(ids) + 1):
        monitor.observe(loaded, scored)
    window = monitor.window(loaded)
    assert window is not None

    def read() -> None:
        monitor._cache.clear()
        monitor.drift("lead_qualification", loaded)

    print(f"PSI of a {window.size:,}-row window, {len(window.names)} features: "
          f"{_best(read, 3) / 1000:,.1f} ms (computed on read, cached until the window "
          "changes)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
