"""How long a promotion takes to reach every API replica behind a tracking server on
PostgreSQL, and what the requests see meanwhile.

`python -P benchmarks/replica_switch.py [--replicas 2] [--poll 5] [--switches 8]`

- A database of its own on the machine's PostgreSQL (``LEADSCORE_TEST_POSTGRES_URL``,
  default ``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end, and
  ``leadscore tracking-server`` on it (its default two workers).
- Trains ``lead_qualification`` twice on a generated CRM (seed 5) through the server:
  versions 1 and 2.
- Starts ``--replicas`` ``leadscore serve`` processes polling ``champion`` every
  ``--poll`` seconds, and ``--threads`` clients sending requests to them in turn (a
  round-robin balancer), each pausing 5 ms between requests.
- ``--switches`` times: waits a random part of a poll (so promotions fall anywhere in the
  replicas' poll cycle), moves ``champion`` to the other version as ``leadscore promote``
  does, and times until each replica's ``/readyz`` names it.

Per switch: the seconds from the promotion to each replica serving the new version, the
requests answered from the promotion until the last replica switched, and the failed ones
(any answer but 200, or none). Bounded: the switches given, one poll plus 60 s each.

Before the replicas start: what a replica's load of a version costs over HTTP
(``modeling.registry.load_model_version``, which downloads the scoring model's folder,
beside a download of the whole logged model), median of five. ``--server-memory``: instead
of all that, the tracking server's processes and resident memory 8 s after it answers,
with MLflow's job runners off (the command's default) and on.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from tests.integration.replicas import (  # noqa: E402  (the project's root goes on the path first)
    Load,
    Process,
    admin_url,
    clean_env,
    free_port,
    postgres_unreachable,
    scratch_database,
    served_version,
    start,
    start_replica,
    start_tracking_server,
    stop_all,
    wait_healthy,
    wait_ready,
)

TASK = "lead_qualification"


def group_rss_mb(pgid: int) -> tuple[int, float]:
    """Processes in the group and their resident memory in all, MB."""
    out = subprocess.run(["ps", "-eo", "pgid=,rss="], capture_output=True, text=True,
                         check=True).stdout
    rss = [int(r) for g, r in (line.split() for line in out.splitlines()) if int(g) == pgid]
    return len(rss), sum(rss) / 1024


def server_memory() -> None:
    for jobs in ("false", "true"):
        with tempfile.TemporaryDirectory() as tmp, scratch_database(admin_url()) as store:
            port = free_port()
            env = clean_env(LEADSCORE_TRACKING_BACKEND_STORE_URI=store,
                            MLFLOW_SERVER_ENABLE_JOB_EXECUTION=jobs)
            process = start("tracking-server", ["tracking-server", "--port", str(port),
                                                "--artifacts-destination", f"{tmp}/art"],
                            env, Path(tmp))
            t0 = time.monotonic()
            try:
                wait_healthy(process, f"http://127.0.0.1:{port}")
                up = time.monotonic() - t0
                time.sleep(8)
                count, mb = group_rss_mb(process.popen.pid)
            finally:
                process.stop()
        print(f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION={jobs}: answered after {up:.1f} s; "
              f"{count} processes, {mb:,.0f} MB resident")


def load_costs(tracking_uri: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    from modeling.registry import load_model_version

    def median_s(call: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    source = MlflowClient(tracking_uri, tracking_uri).get_model_version_download_uri(TASK, "1")

    def whole() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp,
                                                tracking_uri=tracking_uri)

    load = median_s(lambda: load_model_version(TASK, tracking_uri=tracking_uri, version="1"))
    print(f"load_model_version over HTTP: {load:.2f} s; downloading the whole logged "
          f"model: {median_s(whole):.2f} s (medians of 5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--poll", type=float, default=5.0, help="replicas' poll, seconds")
    parser.add_argument("--switches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--leads", type=int, default=1500)
    parser.add_argument("--server-memory", action="store_true")
    args = parser.parse_args()

    from typer.testing import CliRunner

    from leadscore.cli import app
    from leadscore.generator import generate_crm, write_crm
    from modeling.registry import CHAMPION, resolve_alias
    from serving.auth import hash_api_key
    from tests.integration.test_api_fixtures import (
        API_KEY,
        AS_OF,
        auth,
        lead_request,
        open_leads,
    )

    def cli(*argv: str) -> None:
        result = CliRunner().invoke(app, list(argv))
        if result.exit_code != 0:
            raise SystemExit(f"leadscore {' '.join(argv)} failed:\n{result.output}")

    reason = postgres_unreachable(admin_url())
    if reason is not None:
        raise SystemExit(f"PostgreSQL is not reachable at {admin_url()}: {reason}")
    print(f"load average before: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
    if args.server_memory:
        server_memory()
        print(f"load average after: {os.getloadavg()[0]:.1f} (1 min)")
        return
    started: list[Process] = []
    with tempfile.TemporaryDirectory() as tmp, scratch_database(admin_url()) as store:
        work = Path(tmp)
        try:
            server, tracking_uri = start_tracking_server(store, work / "artifacts",
                                                         work / "logs", workers=2)
            started.append(server)
            crm = generate_crm(args.leads, seed=5, months=12)
            write_crm(crm, work / "crm")
            wait_healthy(server, tracking_uri)
            for name in [n for n in os.environ if n.startswith("LEADSCORE_")]:
                del os.environ[name]
            os.environ.update(MLFLOW_TRACKING_URI=tracking_uri,
                              LEADSCORE_TRAIN_NUM_THREADS="1")
            train = ["train", "--task", TASK, "--data", str(work / "crm"),
                     "--num-boost-round", "30"]
            cli(*train, "--force")
            cli(*train, "--seed", "8")
            if resolve_alias(TASK, CHAMPION, tracking_uri) != "1":
                cli("promote", "--task", TASK, "--version", "1")
            load_costs(tracking_uri)
            replicas = [start_replica(i, tracking_uri, hash_api_key(API_KEY), args.poll,
                                      work / "logs") for i in range(args.replicas)]
            started.extend(p for p, _ in replicas)
            for process, base in replicas:
                wait_ready(process, base, version="1")
            bases = [b for _, b in replicas]
            lead_id = open_leads(crm.tables, AS_OF)[0]
            load = Load(bases, lead_request(crm.tables, lead_id, AS_OF), auth(),
                        threads=args.threads, max_requests=10**7)
            load.start()
            time.sleep(2)
            rng = random.Random(0)
            rows = []
            version = "1"
            try:
                for n in range(1, args.switches + 1):
                    time.sleep(rng.uniform(0, args.poll))
                    version = "2" if version == "1" else "1"
                    before = len(load.all())
                    asked = time.monotonic()
                    cli("promote", "--task", TASK, "--version", version)
                    switched: dict[int, float] = {}
                    deadline = asked + args.poll + 60
                    while len(switched) < len(bases) and time.monotonic() < deadline:
                        for r, base in enumerate(bases):
                            if r not in switched and served_version(base) == version:
                                switched[r] = time.monotonic() - asked
                        time.sleep(0.02)
                    window = load.all()[before:]
                    failed = sum(1 for a in window if a.status != 200)
                    rows.append((n, version, [switched.get(r) for r in range(len(bases))],
                                 len(window), failed))
                    print(f"switch {n} to v{version}: "
                          + ", ".join("-" if s is None else f"{s:.2f} s"
                                      for s in rows[-1][2])
                          + f"; {len(window)} requests, {failed} failed", flush=True)
            finally:
                load.stop()
            answers = load.all()
        finally:
            stop_all(started)
    every = [s for _, _, per, _, _ in rows for s in per if s is not None]
    last = [max(s for s in per if s is not None) for _, _, per, _, _ in rows
            if all(s is not None for s in per)]
    print()
    print(f"| switch | to | {' | '.join(f'replica {r + 1} s' for r in range(args.replicas))}"
          " | requests meanwhile | failed |")
    print("| ---: | --- | " + " | ".join("---:" for _ in range(args.replicas)) + " | ---: | ---: |")
    for n, v, per, count, failed in rows:
        cells = " | ".join("-" if s is None else f"{s:.2f}" for s in per)
        print(f"| {n} | v{v} | {cells} | {count:,} | {failed} |")
    print()
    print(f"poll {args.poll:g} s, {args.replicas} replicas, {args.threads} clients: "
          f"promotion to every replica serving it: median {statistics.median(last):.2f} s, "
          f"max {max(last):.2f} s; one replica: min {min(every):.2f} s")
    print(f"requests in all: {len(answers):,}, failed: "
          f"{sum(1 for a in answers if a.status != 200)}")
    print(f"load average after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()
