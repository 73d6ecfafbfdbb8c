"""How long the validating loader takes, and how much memory, on a large generated CRM.

    python -P benchmarks/load.py --leads 1000000 --work /tmp/leadscore-bench

(``-P``: this folder holds scripts named like the project's packages, e.g. ``features``.)

Generates the CRM once per size into ``--work`` (Parquet, as ``leadscore generate``
writes it), copies it to CSV, then loads each format in a fresh process so that peak RSS
is the loader's own. ``--dirty`` also measures a copy where one activity in a thousand has
an unparseable timestamp and one in a thousand points at a missing account, to show the
cost of the slow paths (the per-chunk fallback parser and building the report lines).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TABLE_NAMES = ("accounts", "leads", "opportunities", "opportunity_history", "activities")


def prepare(n_leads: int, work: Path, seed: int = 7) -> Path:
    """Generate once; reuse the folder when it is already there."""
    from leadscore.generator import generate_crm, write_crm

    folder = work / f"crm_{n_leads}_parquet"
    if not (folder / "activities.parquet").exists():
        t0 = time.perf_counter()
        write_crm(generate_crm(n_leads, seed=seed), folder)
        print(f"generated {n_leads:,} leads in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def to_csv(src: Path, dst: Path, spoil: bool = False) -> Path:
    """Copy a Parquet folder to CSV; ``spoil`` breaks 0.1 % of activities twice over."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in TABLE_NAMES:
        out = dst / f"{name}.csv"
        if out.exists():
            continue
        tbl = pq.read_table(src / f"{name}.parquet")
        if spoil and name == "activities":
            n = tbl.num_rows
            rng = np.random.default_rng(0)
            bad_ts = np.zeros(n, dtype=bool)
            bad_ts[rng.choice(n, n // 1000, replace=False)] = True
            bad_fk = np.zeros(n, dtype=bool)
            bad_fk[rng.choice(n, n // 1000, replace=False)] = True
            ts = pc.strftime(pc.cast(tbl["occurred_at"], pa.timestamp("s", tz="UTC")),
                             format="%Y-%m-%dT%H:%M:%SZ")
            ts = pc.if_else(pa.array(bad_ts), pa.scalar("last tuesday"), ts)
            acct = pc.if_else(pa.array(bad_fk), pa.scalar("ACC-MISSING"), tbl["account_id"])
            tbl = tbl.set_column(tbl.schema.get_field_index("occurred_at"), "occurred_at", ts)
            tbl = tbl.set_column(tbl.schema.get_field_index("account_id"), "account_id", acct)
        pacsv.write_csv(tbl, out)
    return dst


def measure(folder: Path) -> dict[str, float]:
    """Load in this process and report wall time, peak RSS and counts."""
    from features.loader import load_crm

    t0 = time.perf_counter()
    result = load_crm(folder)
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    summary = result.summary()
    return {
        "seconds": round(seconds, 1),
        # Whole-process CPU (imports included): steadier than wall time on a shared machine.
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(peak_mb),
        "rows_read": int(summary["read"].sum()),
        "activities": int(summary.set_index("table").loc["activities", "read"]),
        "rejected_rows": int(summary["rejected"].sum()),
        "report_lines": len(result.rejections),
    }


def run_isolated(folder: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-P", __file__, "--measure", str(folder)],
        check=True, capture_output=True, text=True, timeout=900,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_work"))
    parser.add_argument("--dirty", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for n in args.leads:
        parquet = prepare(n, args.work)
        runs = {"parquet": parquet, "csv": to_csv(parquet, args.work / f"crm_{n}_csv")}
        if args.dirty:
            runs["csv, 0.1 % bad"] = to_csv(parquet, args.work / f"crm_{n}_csv_dirty", True)
        for label, folder in runs.items():
            print(f"{n:>9,} leads  {label:<16} {run_isolated(folder)}", flush=True)


if __name__ == "__main__":
    main()
