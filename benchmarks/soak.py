"""Soak: a served model under steady load while the champion changes every minute, and once
to a damaged version.

`python -P benchmarks/soak.py [--minutes 10] [--connections 16] [--leads 3000]`

- Trains the lead and deal models on a generated CRM (seed 7) and registers them as
  champions in a temporary MLflow store (as `benchmarks/serving.py` does), then logs the
  lead model twice more (versions 2 and 3) and once more with its booster file cut in half
  inside the store (the damaged version).
- Starts `leadscore serve` on 127.0.0.1 polling the registry every `--poll` seconds.
- `--connections` client threads, each on its own keep-alive connection, post lead
  requests for `--minutes` minutes: nine in ten score one lead, one in ten twenty leads,
  every one with reasons.
- Every minute `leadscore promote` makes another version champion, as a user would; at
  minute `--damaged-at` it promotes the damaged version, and the next minute a good one.
- Per minute: requests, failed requests (any answer but 200, or no answer), p50 and p99 of
  the latency, the model versions that answered, and the server's resident memory at the
  minute's end; then `/readyz` after the damaged promotion.

Bounded in time (the minutes given) and in connections; the server binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from benchmarks.serving import (  # noqa: E402  (the project's root goes on the path first)
    API_KEY,
    BIN,
    Server,
    _free_port,
    _rss_mb,
    lead_bodies,
    train_and_register,
)

TASK = "lead_qualification"


def log_versions(model: Any, example: pd.DataFrame, uri: str, store: Path,
                 good: int) -> tuple[list[str], str]:
    """``good`` more versions of ``model``, then one whose booster file is cut in half in
    the store; their version numbers."""
    import mlflow

    from training.registry import ensure_experiment, log_scoring_model, tracking

    versions = []
    with tracking(uri):
        exp = ensure_experiment("soak", uri)
        for _ in range(good + 1):
            with mlflow.start_run(experiment_id=exp):
                version = log_scoring_model(model, example, TASK)
            assert version is not None
            versions.append(version)
    boosters = sorted(store.rglob("booster_*.txt"), key=lambda p: p.stat().st_mtime_ns)
    newest = boosters[-1]  # the last logged model's booster is the newest file in the store
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    return versions[:-1], versions[-1]


class Load:
    """Closed-loop clients; every request's end time, latency, outcome and version."""

    def __init__(self, base: str, bodies: list[dict[str, Any]], connections: int,
                 until: float) -> None:
        self.rows: list[tuple[float, float, bool, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(base, bodies, i, until))
                        for i in range(connections)]

    def run(self, base: str, bodies: list[dict[str, Any]], seed: int, until: float) -> None:
        rng = np.random.default_rng(seed)
        headers = {"X-API-Key": API_KEY}
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < until:
                body = bodies[1] if rng.random() < 0.1 else bodies[0]
                start = time.perf_counter()
                ok, version = False, ""
                try:
                    r = http.post("/v1/leads/score", json=body, headers=headers)
                    ok = r.status_code == 200
                    if ok:
                        version = str(r.json()["results"][0]["model"]["version"])
                except httpx.HTTPError:
                    pass
                took = (time.perf_counter() - start) * 1000
                with self.lock:
                    self.rows.append((time.monotonic(), took, ok, version))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join()


def promote(version: str, uri: str) -> str:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LEADSCORE_TRACKING_URI": uri}
    done = subprocess.run([str(BIN / "leadscore"), "promote", "--task", TASK, "--version",
                           version], env=env, capture_output=True, text=True, timeout=120)
    return (done.stdout + done.stderr).strip().splitlines()[-1] if done.returncode == 0 \
        else f"promote failed ({done.returncode}): {done.stderr.strip()[-300:]}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--leads", type=int, default=3000, help="size of the generated CRM")
    ap.add_argument("--damaged-at", type=int, default=5,
                    help="the minute whose promotion is the damaged version")
    ap.add_argument("--poll", type=float, default=5.0, help="registry poll interval, s")
    args = ap.parse_args(argv)

    from features.build import build_features
    from features.sets import LEAD_V1
    from serving.auth import hash_api_key

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        uri = f"sqlite:///{store}/mlflow.db"
        os.chdir(store)  # the store's default artifact folder lands here
        trained = train_and_register(args.leads, uri)
        tables = trained["tables"]
        as_of = pd.Timestamp(tables.leads["created_at"].max()) - pd.Timedelta(days=30)
        records, ids = lead_bodies(tables, as_of, 20)
        bodies = [{"leads": records[:1]}, {"leads": records[:20]}]
        snaps = pd.DataFrame({"lead_id": pd.array(ids[:5], dtype="string"),
                              "as_of": pd.DatetimeIndex([as_of] * 5).astype(
                                  "datetime64[ns, UTC]")})
        example = build_features(tables, snaps, LEAD_V1)
        good, damaged = log_versions(trained[TASK], example, uri, store, good=2)
        cycle = ["1", *good]
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "LEADSCORE_TRACKING_URI": uri,
            "MLFLOW_TRACKING_URI": uri,
            "LEADSCORE_API_KEY_HASHES": hash_api_key(API_KEY),
            "LEADSCORE_RELOAD_INTERVAL_S": str(args.poll),
            "LEADSCORE_LOG_LEVEL": "warning",
            "LEADSCORE_TASKS": "lead_qualification,deal_close",
        }
        server = Server([str(BIN / "leadscore"), "serve", "--port", str(port)], env,
                        f"{base}/readyz", store / "server.log")
        try:
            pid = server.proc.pid
            rss_start = _rss_mb(pid)
            started = time.monotonic()
            load = Load(base, bodies, args.connections, started + args.minutes * 60)
            load.start()
            minute_rss: list[float] = []
            promotions: list[str] = []
            ready_after_damage: dict[str, Any] = {}
            for minute in range(1, args.minutes + 1):
                time.sleep(max(0.0, started + minute * 60 - time.monotonic()))
                minute_rss.append(_rss_mb(pid))
                if minute == args.minutes:
                    break
                version = damaged if minute == args.damaged_at else cycle[minute % len(cycle)]
                promotions.append(f"minute {minute}: v{version}: {promote(version, uri)}")
                if minute == args.damaged_at:
                    time.sleep(args.poll * 2 + 1)
                    ready_after_damage = httpx.get(f"{base}/readyz", timeout=10).json()
            load.join()
            rss_end = _rss_mb(pid)
        finally:
            server.stop()
        log = (store / "server.log").read_text(errors="replace")

    rows = load.rows
    t = np.array([r[0] for r in rows]) - started
    took = np.array([r[1] for r in rows])
    ok = np.array([r[2] for r in rows])
    print(f"{len(rows):,} requests, {int((~ok).sum())} failed, over {args.minutes} minutes "
          f"at {args.connections} connections; RSS {rss_start:.0f} MB at the start, "
          f"{rss_end:.0f} MB at the end")
    print("\n| minute | requests | failed | p50 ms | p99 ms | versions answering | RSS MB |")
    print("| ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for m in range(args.minutes):
        sel = (t >= m * 60) & (t < (m + 1) * 60)
        if not sel.any():
            continue
        q = np.percentile(took[sel], [50, 99])
        seen = Counter(rows[i][3] for i in np.flatnonzero(sel) if rows[i][2])
        versions = ", ".join(f"v{v} {n:,}" for v, n in sorted(seen.items()))
        print(f"| {m + 1} | {int(sel.sum()):,} | {int((~ok[sel]).sum())} | {q[0]:.1f} | "
              f"{q[1]:.1f} | {versions} | {minute_rss[m]:.0f} |")
    print("\npromotions:")
    for line in promotions:
        print(f"  {line}")
    lead = ready_after_damage.get("tasks", {}).get(TASK, {})
    print(f"/readyz {args.poll * 2 + 1:.0f} s after the damaged v{damaged} was promoted: "
          f"ready {ready_after_damage.get('ready')!r}, serving v{lead.get('version')}, "
          f"failed_version {lead.get('failed_version')!r}, last_error "
          f"{lead.get('last_error')!r}")
    errors = [line for line in log.splitlines() if "Traceback" in line]
    print(f"server log: {len(log.splitlines())} lines, {len(errors)} tracebacks")


if __name__ == "__main__":
    main()
