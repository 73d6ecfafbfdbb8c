"""The pipeline page served from the cached review: `leadscore serve` over a generated CRM.

    .venv/bin/python -P benchmarks/pipeline_page.py [--data DIR] [--leads 100000 --seed 7]
        [--tracking-uri URI] [--requests 300]

1. ``--data`` (default: a temporary folder) holds the CRM, generated there with
   ``leadscore generate --leads N --seed S`` when it has no tables.
2. Without ``--tracking-uri`` a deal model is trained on it into a temporary MLflow store
   and registered as ``champion``; with one, that store's champion is served.
3. ``leadscore serve`` starts in its own process on a free port of 127.0.0.1 with
   ``LEADSCORE_DATA_DIR`` set; the first review is built at startup (timed until
   ``/v1/pipeline`` answers). Then, one client on one kept-alive connection, ``--requests``
   requests each of ``GET /pipeline`` (signed in, the session cookie) and ``GET
   /v1/pipeline`` (the API key header), timed from the client: every one checks the
   folder's files and answers from the cached review. Then the modification time of
   ``opportunities.parquet`` is set to now (its content is not changed) and
   ``/v1/pipeline`` is asked again and again until the rebuilt review answers: the
   requests in between are answered from the cached one, timed while the rebuild runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

KEY = "benchmark-key-0d9e4c"


def _cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "leadscore.cli", *args], env=env, cwd=ROOT,
                   capture_output=True, text=True, check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _quantiles(ms: list[float]) -> str:
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return (f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, "
            f"max {ordered[-1]:.1f} ms over {len(ordered)} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tracking-uri")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    import httpx

    from serving.auth import hash_api_key

    work = Path(tempfile.mkdtemp(prefix="page-bench-"))
    data = args.data or work / "crm"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["MLFLOW_TRACKING_URI"] = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
    if not (data / "leads.parquet").exists():
        _cli("generate", "--out", str(data), "--leads", str(args.leads), "--seed",
             str(args.seed), env=env)
    if not args.tracking_uri:
        _cli("train", "--task", "deal_close", "--data", str(data), "--no-strict-backtest",
             "--out", str(work / "train"), env=env)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env.update(LEADSCORE_DATA_DIR=str(data), LEADSCORE_API_KEY_HASHES=hash_api_key(KEY),
               LEADSCORE_TASKS="deal_close", LEADSCORE_RELOAD_INTERVAL_S="0",
               LEADSCORE_LOG_LEVEL="warning")
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "leadscore.cli", "serve", "--port",
                               str(port)], env=env, cwd=ROOT)
    try:
        with httpx.Client(base_url=base, timeout=300, follow_redirects=True) as client:
            while True:
                try:
                    r = client.get("/v1/pipeline", headers={"X-API-Key": KEY})
                    if r.status_code == 200 and r.headers["x-review-data"] == "current":
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    raise SystemExit("the server stopped")
                time.sleep(0.2)
            first = time.perf_counter() - started
            review = r.json()
            print(f"server up with the first review in {first:.1f} s (imports, the model "
                  f"from the registry, reading the folder, the review); "
                  f"{review['at_risk']['open_deals']:,} open deals, as of {review['as_of']}")
            signed = client.post("/pipeline/sign-in", data={"api_key": KEY})
            assert signed.status_code == 200 and "Pipeline review" in signed.text
            for path, headers in (("/pipeline", {}), ("/v1/pipeline", {"X-API-Key": KEY})):
                if path == "/v1/pipeline":
                    client.cookies.clear()
                ms, size = [], 0
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = client.get(path, headers=headers)
                    ms.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200 and r.headers["x-review-data"] == "current"
                    size = len(r.content)
                print(f"GET {path} ({size / 1e6:.1f} MB): {_quantiles(ms)}")

            # A file of the folder changes: the review is rebuilt in a thread while the
            # cached one keeps answering; each answer is timed until the new one is in.
            touched = data / "opportunities.parquet"
            os.utime(touched)
            ms, stale, t0 = [], 0, time.perf_counter()
            while True:
                t = time.perf_counter()
                r = client.get("/v1/pipeline", headers={"X-API-Key": KEY})
                ms.append((time.perf_counter() - t) * 1000)
                if r.headers["x-review-data"] == "current":
                    break
                stale += 1
            print(f"after touching {touched.name}: rebuilt in {time.perf_counter() - t0:.1f} s, "
                  f"{stale} requests answered from the cached review meanwhile: "
                  f"{_quantiles(ms[:-1] or ms)}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; files in {work}")


if __name__ == "__main__":
    main()
