"""`leadscore build` whole and by partitions: wall time and peak memory of every process.

Each case runs ``leadscore build`` in a fresh process and samples, every 0.2 s, the
resident size of that process and of all its children (the pool's or the Dask cluster's
workers) summed: the peak of that sum is the build's memory on the machine. The load
average is read before each case. With ``--check``, every case's file is compared with
the first case's (``pandas.testing.assert_frame_equal``), a few columns at a time.

Usage:
    python benchmarks/partitions.py --data CRM1M --task lead_qualification \\
        --case 1 --case 8 --case 16:2 --case 16:2:local [--check] [--out DIR]

A case is PARTITIONS[:WORKERS[:CLUSTER]]; partitions 1 is today's single pass.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

CLI = "from leadscore.cli import app; app()"


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_case(data: Path, task: str, case: str, out: Path, timeout: float) -> dict[str, object]:
    parts, _, rest = case.partition(":")
    workers, _, cluster = rest.partition(":")
    args = [sys.executable, "-c", CLI, "build", "--task", task, "--data", str(data),
            "--out", str(out), "--partitions", parts]
    if workers:
        args += ["--workers", workers]
    if cluster:
        args += ["--cluster", cluster]
    load = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_rss(watched))
        if time.perf_counter() - start > timeout:
            proc.kill()
            raise TimeoutError(f"case {case} ran past {timeout} s")
        time.sleep(0.2)
    wall = time.perf_counter() - start
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"case {case} failed:\n{output}")
    first = output.strip().splitlines()[0] if output.strip() else ""
    return {"case": case, "partitions": int(parts), "workers": int(workers or 1),
            "cluster": cluster or None, "wall_s": round(wall, 1),
            "peak_gb": round(peak / 1e9, 2), "load_avg_1m": round(load[0], 2),
            "summary": first}


def same_rows(a: Path, b: Path) -> bool:
    """Whether two training-set files hold the same frame, compared by column groups."""
    import pandas as pd
    import pyarrow.parquet as pq

    names = pq.read_schema(a).names
    if names != pq.read_schema(b).names:
        return False
    for i in range(0, len(names), 8):
        cols = names[i:i + 8]
        pd.testing.assert_frame_equal(pd.read_parquet(b, columns=cols),
                                      pd.read_parquet(a, columns=cols))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--task", default="lead_qualification")
    parser.add_argument("--case", action="append", required=True)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=3600)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=opts.out) as tmp:
        files = []
        for case in opts.case:
            out = Path(tmp) / f"{opts.task}-{case.replace(':', '-')}.parquet"
            result = run_case(opts.data, opts.task, case, out, opts.timeout)
            if opts.check and files:
                result["same_as_first"] = same_rows(files[0], out)
            files.append(out)
            print(json.dumps(result), flush=True)
            if not opts.check and len(files) > 1:
                out.unlink()


if __name__ == "__main__":
    main()
