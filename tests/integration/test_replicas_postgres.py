"""Past one machine: `train`, `promote` and two `serve` replicas share an MLflow tracking
server on PostgreSQL, and a promotion reaches both replicas under load without a failed
request.

Runs against the machine's PostgreSQL (``LEADSCORE_TEST_POSTGRES_URL``, by default
``postgresql://postgres@127.0.0.1:5432/postgres``) in a database of its own, dropped
afterwards. Skipped, saying why, only when PostgreSQL does not answer; CI (``.ci/run``)
starts it and sets ``LEADSCORE_REQUIRE_POSTGRES=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.generator import generate_crm, write_crm
from modeling.registry import CHAMPION, resolve_alias
from serving.auth import hash_api_key
from tests.integration.replicas import (
    Load,
    Process,
    admin_url,
    postgres_unreachable,
    scratch_database,
    served_version,
    start_replica,
    start_tracking_server,
    stop_all,
    wait_healthy,
    wait_ready,
)
from tests.integration.test_api_fixtures import API_KEY, AS_OF, auth, lead_request, open_leads

POLL_S = 1.0
"""The replicas' registry poll (``LEADSCORE_RELOAD_INTERVAL_S``)."""
LOAD_SLACK_S = 15.0
"""Beyond one poll: downloading the new version from the server, loading it and scoring
its probe, on a shared 2-core machine (about a second when it is quiet)."""
TASK = "lead_qualification"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    url = admin_url()
    reason = postgres_unreachable(url)
    if reason is not None:
        why = f"PostgreSQL is not reachable at {url}: {reason}"
        if os.environ.get("LEADSCORE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{why}, and LEADSCORE_REQUIRE_POSTGRES=1 asks for the test")
        pytest.skip(why)
    with scratch_database(url, create=False) as uri:  # the tracking server creates it
        yield uri


@pytest.fixture()
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    stop_all(started)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return " ".join(result.output.split())


def test_replicas_follow_a_promotion_through_the_tracking_server_without_a_failed_request(
    database: str, processes: list[Process], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    logs = tmp_path / "logs"
    server, tracking_uri = start_tracking_server(database, tmp_path / "artifacts", logs)
    processes.append(server)
    crm = generate_crm(1500, seed=5, months=12)  # while the server starts
    write_crm(crm, tmp_path / "crm")
    wait_healthy(server, tracking_uri)
    assert "created the database" in server.output()
    # The replicas start before any model is registered, as a fleet may, and take up the
    # champion at a poll once there is one.
    replicas = [start_replica(i, tracking_uri, hash_api_key(API_KEY), POLL_S, logs)
                for i in range(2)]
    processes.extend(process for process, _ in replicas)

    # Train and promote as a user would, with nothing but the server's address.
    for name in [n for n in os.environ if n.startswith("LEADSCORE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("LEADSCORE_TRAIN_MIN_DATA_IN_LEAF", "20")
    monkeypatch.setenv("LEADSCORE_TRAIN_NUM_THREADS", "1")
    train = ["train", "--task", TASK, "--data", str(tmp_path / "crm"),
             "--num-boost-round", "30"]
    assert f"registered {TASK} version 1" in _cli(*train, "--force")
    assert f"registered {TASK} version 2" in _cli(*train, "--seed", "8")
    if resolve_alias(TASK, CHAMPION, tracking_uri) != "1":  # the gate took version 2
        _cli("promote", "--task", TASK, "--version", "1")
    assert resolve_alias(TASK, CHAMPION, tracking_uri) == "1"
    # Every model file lives in the server's artifact destination, none beside the test.
    assert list((tmp_path / "artifacts").rglob("booster*.txt"))

    for process, base in replicas:
        wait_ready(process, base, version="1")
    bases = [base for _, base in replicas]

    lead_id = open_leads(crm.tables, AS_OF)[0]
    load = Load(bases, lead_request(crm.tables, lead_id, AS_OF), auth(), threads=4,
                max_requests=2000)
    load.start()
    try:
        deadline = time.monotonic() + 30
        while not all(load.count(r, "1") >= 10 for r in range(2)):
            assert time.monotonic() < deadline, "the replicas did not answer the load"
            time.sleep(0.02)
        asked = time.monotonic()
        assert "champion -> version 2" in _cli("promote", "--task", TASK, "--version", "2")
        switched: dict[int, float] = {}
        deadline = asked + POLL_S + LOAD_SLACK_S
        while len(switched) < 2 and time.monotonic() < deadline:
            for r, base in enumerate(bases):
                if r not in switched and served_version(base) == "2":
                    switched[r] = time.monotonic() - asked
            time.sleep(0.02)
        assert len(switched) == 2, (
            f"replicas {sorted(set(range(2)) - set(switched))} still serve version 1 "
            f"{POLL_S + LOAD_SLACK_S:.0f} s after the promotion")
        deadline = time.monotonic() + 30
        while not all(load.count(r, "2") >= 20 for r in range(2)):
            assert time.monotonic() < deadline, "version 2 did not answer the load"
            time.sleep(0.02)
    finally:
        load.stop()

    answers = load.all()
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    for per_thread in load.answers:  # on each replica, version 1 until it swapped, then 2
        for r in range(2):
            versions = [a.version for a in per_thread if a.replica == r]
            first_new = versions.index("2")
            assert set(versions[:first_new]) == {"1"} and set(versions[first_new:]) == {"2"}
    for base in bases:
        models = httpx.get(f"{base}/v1/models", headers=auth(), timeout=5).json()["models"]
        assert [(m["task"], m["version"], m["alias"]) for m in models] == [(TASK, "2", CHAMPION)]
    print(f"\nswitch after promote: {', '.join(f'{s:.2f} s' for s in switched.values())}; "
          f"{len(answers)} requests, {len(failed)} failed")

