"""Round trip through a CRM's export: do the models train to the same figures?

`python -P benchmarks/round_trip.py [--leads 20000] [--seed 7] [--work DIR]` generates one
synthetic CRM as the contract's tables and as the Salesforce and HubSpot exports of it
(`leadscore generate --format`), imports each export with its preset (`leadscore import
--mapping salesforce|hubspot`), trains `lead_qualification` and `deal_close` on the three
folders (`leadscore train --no-register`, MLflow in the work folder) and prints each test
ROC AUC beside the native one. The CLI is run as a user runs it, one process per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TASKS = ("lead_qualification", "deal_close")
FORMATS = ("salesforce", "hubspot")


def _cli(*args: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "leadscore.cli", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="round-trip-"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    common = ["--leads", str(args.leads), "--seed", str(args.seed)]
    folders = {"native": work / "native"}
    _cli("generate", "--out", str(folders["native"]), *common, env=env)
    for fmt in FORMATS:
        _cli("generate", "--out", str(work / f"{fmt}_export"), *common, "--format", fmt,
             env=env)
        folders[fmt] = work / f"{fmt}_import"
        _cli("import", "--mapping", fmt, "--source", str(work / f"{fmt}_export"),
             "--out", str(folders[fmt]), env=env)
    print(f"{args.leads:,} leads, seed {args.seed}, in {work}")
    print("| task | native | salesforce | hubspot | largest difference |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for task in TASKS:
        auc = {}
        for name, folder in folders.items():
            out = work / "runs" / f"{task}_{name}"
            _cli("train", "--task", task, "--data", str(folder), "--out", str(out),
                 "--no-register", env=env)
            metrics = json.loads((out / "metrics.json").read_text())
            auc[name] = float(metrics["test_roc_auc"])
        worst = max(abs(auc[f] - auc["native"]) for f in FORMATS)
        print(f"| {task} | {auc['native']:.4f} | {auc['salesforce']:.4f} | "
              f"{auc['hubspot']:.4f} | {worst:.4f} |", flush=True)


if __name__ == "__main__":
    main()
