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
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
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
    args = parser.parse_args()

    from features.snapshots import crm_as_of
    from leadscore.generator import generate_crm, write_crm
    from leadscore.synth.config import GeneratorConfig
    from training.monitor import exit_code, monitor_settings, run_monitor
    from training.train import train, train_settings

    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = tuple(args.tasks.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="leadscore-monitor-bench-"))
    print(f"work folder {work}; load average {os.getloadavg()[0]:.2f}")
    outcomes: dict[str, list[int]] = {"undrifted": [], "drifted": []}
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
            train(train_settings(task=task, data=cut, tracking_uri=uri, num_threads=2))
        trained = time.perf_counter() - t0
        for kind, folder in folders.items():
            t1 = time.perf_counter()
            reports = run_monitor(monitor_settings(data=folder, since=start.to_pydatetime(),
                                                   tasks=tasks, tracking_uri=uri))
            code = exit_code(reports)
            outcomes[kind].append(code)
            parts = []
            for r in reports:
                worst = r.features[0] if r.features else None
                c = r.calibration
                parts.append(
                    f"{r.task}: {r.status} score PSI "
                    f"{'n/a' if r.score is None else f'{r.score.psi:.3f}'}, worst "
                    f"{'n/a' if worst is None else f'{worst.name} {worst.psi:.3f}'}, ECE "
                    f"{'n/a' if c is None or c.status == 'too few outcomes' else f'{c.ece:.3f}'}"
                    f" ({0 if c is None else c.outcomes} outcomes)")
            print(f"seed {seed} {kind:9s} exit {code}  " + "; ".join(parts)
                  + f"  [{time.perf_counter() - t1:.0f} s monitor, {trained:.0f} s build+train]",
                  flush=True)
    false_alarms = sum(c == 1 for c in outcomes["undrifted"])
    detected = sum(c == 1 for c in outcomes["drifted"])
    print(f"false alarms: {false_alarms}/{len(seeds)} undrifted CRMs; detected: "
          f"{detected}/{len(seeds)} drifted CRMs; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
