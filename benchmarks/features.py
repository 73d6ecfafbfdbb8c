"""Training-set build time and peak memory at 100k, 300k and 1M leads.

For each size: generate the CRM (seed 7) into a temporary folder in one process, then in a
fresh process load it with the validating loader and build both training sets
(``lead_qualification`` and ``deal_close``), timing each step. Memory: the resident size
once the tables are loaded, and the peak resident size during each build (the peak is reset
after loading, so the loader's own peak is not counted). Each child has a timeout, so a run
is bounded.

Usage: python benchmarks/features.py [sizes...]   (default 100000 300000 1000000)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

GENERATE = """
import sys
from pathlib import Path
from leadscore.generator import generate_crm, write_crm
write_crm(generate_crm(int(sys.argv[1]), seed=7), Path(sys.argv[2]))
"""

BUILD = """
import json, sys, time
from pathlib import Path
from features.training_set import build_training_set
from features.loader import load_crm
from leadscore.memory import reuse_freed_memory
import os
if os.environ.get("BENCH_NO_MALLOPT") != "1":
    reuse_freed_memory()  # as `leadscore build` and `leadscore train` do

def status_gb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1e6
    return float("nan")

def reset_peak():
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

t0 = time.perf_counter()
tables = load_crm(Path(sys.argv[1])).tables
t1 = time.perf_counter()
result = {"load_s": t1 - t0, "load_peak_gb": status_gb("VmHWM"),
          "rss_after_load_gb": status_gb("VmRSS"),
          "rows": {n: len(tables.get(n)) for n in ("leads", "opportunities", "activities")}}
for task in ("lead_qualification", "deal_close"):
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    frame = build_training_set(tables, task)
    result[task + "_s"] = time.perf_counter() - start
    result[task + "_cpu_s"] = time.process_time() - cpu
    result[task + "_rows"] = len(frame)
    result[task + "_peak_gb"] = status_gb("VmHWM")
    del frame
print(json.dumps(result))
"""


def run(n: int, timeout: int = 900) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(Path(tmp) / "crm")
        subprocess.run(
            [sys.executable, "-c", GENERATE, str(n), folder], check=True, timeout=timeout
        )
        out = subprocess.run(
            [sys.executable, "-c", BUILD, folder],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    result["leads"] = n
    return result


def cpu_s(r: dict[str, object]) -> float:
    """CPU seconds of both builds: steadier than wall time on a shared machine."""
    return float(str(r["lead_qualification_cpu_s"])) + float(str(r["deal_close_cpu_s"]))


def main() -> None:
    sizes = [int(s) for s in sys.argv[1:]] or [100_000, 300_000, 1_000_000]
    header = (
        f"{'leads':>9} {'activities':>11} {'load s':>7} {'lead s':>7} {'lead rows':>10} "
        f"{'deal s':>7} {'deal rows':>9} {'build s':>8} {'build cpu s':>11} {'RSS GB':>7} "
        f"{'lead peak':>9} {'deal peak':>9}"
    )
    print(header, flush=True)
    results = []
    for n in sizes:
        r = run(n)
        results.append(r)
        rows = r["rows"]
        assert isinstance(rows, dict)
        lead_s, deal_s = float(str(r["lead_qualification_s"])), float(str(r["deal_close_s"]))
        print(
            f"{n:>9,} {rows['activities']:>11,} {r['load_s']:>7.1f} {lead_s:>7.1f} "
            f"{r['lead_qualification_rows']:>10,} {deal_s:>7.1f} {r['deal_close_rows']:>9,} "
            f"{lead_s + deal_s:>8.1f} {cpu_s(r):>11.1f} {r['rss_after_load_gb']:>7.2f} "
            f"{r['lead_qualification_peak_gb']:>9.2f} {r['deal_close_peak_gb']:>9.2f}",
            flush=True,
        )
    if len(results) > 1:
        first, last = results[0], results[-1]

        def build_s(r: dict[str, object]) -> float:
            return float(str(r["lead_qualification_s"])) + float(str(r["deal_close_s"]))

        size_ratio = int(str(last["leads"])) / int(str(first["leads"]))
        print(
            f"for {size_ratio:.0f}x the leads: wall time {build_s(last) / build_s(first):.1f}x, "
            f"CPU time {cpu_s(last) / cpu_s(first):.1f}x"
        )


if __name__ == "__main__":
    main()
