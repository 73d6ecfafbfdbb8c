"""Generation time and peak memory at 100k, 300k and 1M leads.

Each size runs in its own process (peak RSS is per process) and writes to a temporary
folder that is removed afterwards. Usage: python benchmarks/generate.py [sizes...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
from leadscore.generator import generate_crm, write_crm
n, out = int(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
crm = generate_crm(n, seed=7)
t1 = time.perf_counter()
write_crm(crm, out)
t2 = time.perf_counter()
rows = {k: v.num_rows for k, v in crm.arrow.items()}
print(json.dumps({"leads": n, "simulate_s": t1 - t0, "write_s": t2 - t1, "total_s": t2 - t0,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "rows": rows}))
"""


def run(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(Path(tmp) / "crm")],
                             check=True, capture_output=True, text=True, timeout=900)
        size = sum(p.stat().st_size for p in (Path(tmp) / "crm").rglob("*") if p.is_file())
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    result["disk_mb"] = size / 1e6
    return result


def main() -> None:
    sizes = [int(s) for s in sys.argv[1:]] or [100_000, 300_000, 1_000_000]
    print(f"{'leads':>9} {'simulate s':>10} {'write s':>8} {'total s':>8} {'peak GB':>8} "
          f"{'disk MB':>8} {'activities':>11}")
    for n in sizes:
        r = run(n)
        rows = r["rows"]
        assert isinstance(rows, dict)
        print(f"{n:>9,} {r['simulate_s']:>10.1f} {r['write_s']:>8.1f} {r['total_s']:>8.1f} "
              f"{r['peak_rss_gb']:>8.2f} {r['disk_mb']:>8.0f} {rows['activities']:>11,}")


if __name__ == "__main__":
    main()
