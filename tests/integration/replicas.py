"""Processes of a deployment past one machine, on this one: a PostgreSQL database of its
own, the MLflow tracking server on it (``leadscore tracking-server``), API replicas
(``leadscore serve``), and a bounded load spread over the replicas.

Shared by the replica test and ``benchmarks/replica_switch.py``. Every process binds
127.0.0.1 on a free port, runs in its own process group and is stopped with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL_ENV = "LEADSCORE_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
"""A database on the server to connect to while creating and dropping the test's own
(the development and CI machines' PostgreSQL: trust authentication on 127.0.0.1)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)


def postgres_unreachable(url: str) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or None when it answers."""
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        return " ".join(str(exc).split())
    return None


@contextmanager
def scratch_database(url: str, create: bool = True) -> Iterator[str]:
    """A database of a unique name on the server of ``url``, dropped afterwards with
    whatever is still connected to it; yields its URI. ``create=False``: not created
    here (``leadscore tracking-server`` creates a missing one), dropped all the same."""
    import psycopg2
    from psycopg2.extensions import parse_dsn

    name = f"leadscore_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(url, connect_timeout=5)
    admin.autocommit = True
    try:
        if create:
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        params = parse_dsn(url)
        user, host = params.get("user", "postgres"), params.get("host", "127.0.0.1")
        port = params.get("port", "5432")
        password = f":{params['password']}" if params.get("password") else ""
        yield f"postgresql://{user}{password}@{host}:{port}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the project's and MLflow's own settings (a developer's
    exported ``LEADSCORE_*`` must not reach the processes), plus ``extra``; the project
    first on the path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEADSCORE_", "MLFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


@dataclass
class Process:
    """A started command in its own process group, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_all([self])


def stop_all(processes: Sequence[Process]) -> None:
    """SIGTERM to every group at once, and SIGKILL to whatever of a group is left after
    15 s (a server's workers are in its group)."""
    for process in processes:
        with suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes:
        with suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(timeout=10)
        process.log.close()


def start(name: str, args: Sequence[str], env: dict[str, str], logs: Path) -> Process:
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{name}.log"
    log = path.open("wb")
    popen = subprocess.Popen([sys.executable, "-m", "leadscore.cli", *args], env=env,
                             cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    return Process(name, popen, path, log)


def wait_until(process: Process, url: str, ready: Any, timeout_s: float) -> Any:
    """Poll ``url`` until ``ready(response)`` is true; fails when the process dies or the
    time runs out, with the end of its log."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.alive():
            raise AssertionError(f"{process.name} exited {process.popen.returncode}:\n"
                                 f"{process.output()}")
        try:
            r = httpx.get(url, timeout=2)
            if ready(r):
                return r
            last = f"{r.status_code} {r.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise AssertionError(f"{process.name} not ready after {timeout_s:.0f} s ({last}):\n"
                         f"{process.output()}")


def start_tracking_server(store_uri: str, artifacts: Path, logs: Path,
                          workers: int = 1) -> tuple[Process, str]:
    """``leadscore tracking-server`` on the database, and its URL (not answering yet: see
    :func:`wait_healthy`)."""
    port = free_port()
    env = clean_env(LEADSCORE_TRACKING_BACKEND_STORE_URI=store_uri)
    process = start("tracking-server",
                    ["tracking-server", "--port", str(port), "--workers", str(workers),
                     "--artifacts-destination", str(artifacts)], env, logs)
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: Process, url: str, timeout_s: float = 90) -> None:
    wait_until(process, f"{url}/health", lambda r: r.status_code == 200, timeout_s)


def start_replica(index: int, tracking_uri: str, key_hash: str, poll_s: float, logs: Path,
                  tasks: str = "lead_qualification") -> tuple[Process, str]:
    """``leadscore serve`` following ``champion`` on the tracking server (not ready yet:
    see :func:`wait_ready`)."""
    port = free_port()
    env = clean_env(MLFLOW_TRACKING_URI=tracking_uri, LEADSCORE_TASKS=tasks,
                    LEADSCORE_RELOAD_INTERVAL_S=str(poll_s),
                    LEADSCORE_API_KEY_HASHES=key_hash, LEADSCORE_LOG_LEVEL="warning")
    process = start(f"replica-{index}", ["serve", "--port", str(port)], env, logs)
    return process, f"http://127.0.0.1:{port}"


def served_version(base: str, task: str = "lead_qualification") -> str | None:
    """The version ``/readyz`` says the replica serves for ``task``."""
    state = httpx.get(f"{base}/readyz", timeout=5).json()["tasks"][task]
    return state["version"] if state["loaded"] else None


def wait_ready(process: Process, base: str, version: str, timeout_s: float = 90) -> None:
    def serving(r: httpx.Response) -> bool:
        return bool(r.status_code == 200 and
                    r.json()["tasks"]["lead_qualification"]["version"] == version)
    wait_until(process, f"{base}/readyz", serving, timeout_s)


@dataclass(frozen=True)
class Answer:
    replica: int
    status: int
    """HTTP status; 0 when no answer came (connection refused or reset, timeout)."""
    version: str
    at: float
    """``time.monotonic()`` when the answer came."""


@dataclass
class Load:
    """``threads`` clients, each on its own keep-alive connection to every replica, each
    sending its requests to the replicas in turn (as a round-robin balancer would), until
    stopped or ``max_requests`` in all."""

    bases: list[str]
    body: dict[str, Any]
    headers: dict[str, str]
    threads: int = 4
    max_requests: int = 2000
    pause_s: float = 0.005
    answers: list[list[Answer]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.answers = [[] for _ in range(self.threads)]
        per_thread = self.max_requests // self.threads
        for slot in range(self.threads):
            worker = threading.Thread(target=self._run, args=(slot, per_thread), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _run(self, slot: int, limit: int) -> None:
        clients = [httpx.Client(base_url=b, headers=self.headers, timeout=10)
                   for b in self.bases]
        try:
            for n in range(limit):
                if self._stop.is_set():
                    return
                replica = (slot + n) % len(self.bases)
                try:
                    r = clients[replica].post("/v1/leads/score", json=self.body)
                    version = (r.json()["results"][0]["model"]["version"]
                               if r.status_code == 200 else "")
                    status = r.status_code
                except (httpx.HTTPError, ValueError, KeyError, IndexError):
                    status, version = 0, ""
                self.answers[slot].append(Answer(replica, status, version, time.monotonic()))
                time.sleep(self.pause_s)
        finally:
            for client in clients:
                client.close()

    def all(self) -> list[Answer]:
        return [a for per in self.answers for a in list(per)]

    def count(self, replica: int, version: str) -> int:
        return sum(1 for a in self.all() if a.replica == replica and a.version == version)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
