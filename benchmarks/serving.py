"""Serving benchmark: leadscore against `mlflow models serve` on the same registered model.

One run, bounded in count and time, everything on 127.0.0.1:

1. generate a small CRM, train lead and deal models, register both in a temporary MLflow
   store and point `champion` at them;
2. start `leadscore serve` (both models loaded; once scoring small batches on the event
   loop, once always in the threadpool, which is what a plain `def` route costs) and
   `mlflow models serve` of the same lead model version;
3. send single-lead and 100-lead requests: sequential for latency (p50/p99), then
   `--concurrency` client threads for `--seconds` for requests per second;
4. time in process, on 1 and 100 leads, `Booster.predict` (num_threads=1) for the floor
   and each step of a request: validation, column tables, features, model, results.

leadscore requests carry raw lead rows and activities and get features, calibrated
probabilities and reasons back; mlflow requests carry the finished feature rows and get
probabilities only. Run: `.venv/bin/python -P benchmarks/serving.py` (about 4 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the `serving` package: look the project up from the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
API_KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} never answered 200")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    return [
        {c: _json_value(v) for c, v in zip(columns, row, strict=True)}
        for row in frame[columns].astype(object).itertuples(index=False, name=None)
    ]


def train_and_register(n_leads: int, uri: str) -> dict[str, Any]:
    """Train both models on a generated CRM and register them as champions."""
    import mlflow

    from features.sets import DEAL_V1, LEAD_V1
    from features.training_set import build_training_set
    from leadscore.generator import generate_crm
    from training.evaluate import stage_win_rates, won_stage_days_p75_from_history
    from training.fit import BoosterParams, fit_scoring_model
    from training.registry import ensure_experiment, log_scoring_model, set_alias, tracking
    from training.split import time_split

    tables = generate_crm(n_leads, seed=7, months=12).tables
    params = BoosterParams(num_boost_round=300, early_stopping_rounds=30)
    out: dict[str, Any] = {"tables": tables}
    with tracking(uri):
        exp = ensure_experiment("serving-benchmark", uri)
        for task, fs in (("lead_qualification", LEAD_V1), ("deal_close", DEAL_V1)):
            frame = build_training_set(tables, task)
            frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
            split = time_split(frame, fs.entity_key)
            metadata: dict[str, Any] = {}
            if task == "deal_close":
                metadata["stage_win_rates"] = stage_win_rates(split.train, fs.entity_key)
                metadata["won_stage_days_p75"] = won_stage_days_p75_from_history(
                    tables, split.validation_start
                )
            fitted = fit_scoring_model(task, fs, split.train, split.validation, params, seed=7,
                                       metadata=metadata)
            with mlflow.start_run(experiment_id=exp):
                version = log_scoring_model(fitted.model, split.validation, task)
            assert version is not None
            set_alias(task, version, "champion", uri)
            out[task] = fitted.model
            out[f"{task}_trees"] = fitted.model.boosters["__all__"].num_trees()
    return out


def lead_bodies(tables: Any, as_of: pd.Timestamp, n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Open leads at ``as_of`` as API records (lead row plus its own activities)."""
    from features.schema import ACTIVITIES, LEADS

    leads = tables.leads
    open_ = (
        (leads["created_at"] < as_of)
        & ~(leads["qualified_at"] <= as_of).fillna(False)
        & ~(leads["disqualified_at"] <= as_of).fillna(False)
    )
    chosen = leads.loc[open_].head(n)
    acts = tables.activities
    acts = acts.loc[acts["lead_id"].isin(set(chosen["lead_id"])) & (acts["occurred_at"] < as_of)]
    by_lead: dict[str, list[dict[str, Any]]] = {}
    for rec in _records(acts, ACTIVITIES.column_names):
        by_lead.setdefault(rec["lead_id"], []).append(rec)
    records = _records(chosen, LEADS.column_names)
    for rec in records:
        rec["activities"] = by_lead.get(rec["lead_id"], [])
    return records, [r["lead_id"] for r in records]


def mlflow_frames(tables: Any, ids: list[str], as_of: pd.Timestamp) -> list[dict[str, Any]]:
    """The same leads as finished feature rows, one dict per lead, as mlflow serve wants."""
    from features.build import build_features
    from features.sets import LEAD_V1

    snaps = pd.DataFrame({
        "lead_id": pd.array(ids, dtype="string"),
        "as_of": pd.DatetimeIndex([as_of] * len(ids)).astype("datetime64[ns, UTC]"),
    })
    X = build_features(tables, snaps, LEAD_V1)[LEAD_V1.names]
    rows = []
    for rec in X.astype(object).itertuples(index=False, name=None):
        row = {}
        for name, value in zip(LEAD_V1.names, rec, strict=True):
            v = _json_value(value)
            row[name] = v if isinstance(v, str) or v is None else float(v)
        rows.append(row)
    return rows


Call = Callable[[httpx.Client], None]


def interleaved_latency(cases: dict[str, tuple[str, Call]], n: int,
                        rounds: int = 10) -> dict[str, dict[str, float]]:
    """Sequential requests, the cases taking turns in blocks so that a shared, busy
    machine slows them alike; p50 and p99 in ms per case."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    clients = {name: httpx.Client(base_url=base, timeout=30) for name, (base, _) in cases.items()}
    try:
        for name, (_, call) in cases.items():
            for _ in range(10):
                call(clients[name])
        block = max(1, n // rounds)
        for _ in range(rounds):
            for name, (_, call) in cases.items():
                for _ in range(block):
                    start = time.perf_counter()
                    call(clients[name])
                    times[name].append((time.perf_counter() - start) * 1000)
    finally:
        for c in clients.values():
            c.close()
    out = {}
    for name, ts in times.items():
        q = np.percentile(ts, [50, 99])
        out[name] = {"p50_ms": float(q[0]), "p99_ms": float(q[1])}
    return out


def interleaved_throughput(cases: dict[str, tuple[str, Call]], threads: int, seconds: float,
                           rounds: int = 5) -> dict[str, float]:
    """Requests per second with ``threads`` closed-loop clients, the cases taking turns
    in windows of ``seconds / rounds``."""
    done = {name: 0 for name in cases}
    spent = {name: 0.0 for name in cases}
    for _ in range(rounds):
        for name, (base, call) in cases.items():
            counts = [0] * threads
            stop = time.monotonic() + seconds / rounds

            def run(i: int, base: str = base, call: Call = call, stop: float = stop,
                    counts: list[int] = counts) -> None:
                with httpx.Client(base_url=base, timeout=30) as http:
                    while time.monotonic() < stop:
                        call(http)
                        counts[i] += 1

            pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
            started = time.monotonic()
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            spent[name] += time.monotonic() - started
            done[name] += sum(counts)
    return {name: done[name] / spent[name] for name in cases}


def in_process(model: Any, body: dict[str, Any], as_of: pd.Timestamp,
               reps: int = 200) -> dict[str, float]:
    """Medians (µs) of each step of one request for ``body``'s leads, without HTTP."""
    from features.build import build_features, feature_columns
    from features.columns import ColumnTable, epoch_ns
    from features.sets import LEAD_V1
    from serving.endpoints import LEADS, Ask
    from serving.models import LoadedModel
    from serving.requests import lead_tables
    from serving.results import Grading, lead_results
    from serving.schemas import LeadBatch
    from serving.scoring import score_tables
    from serving.settings import ScoringSettings

    loaded = LoadedModel(task="lead_qualification", model=model, name="bench", version="1")
    batch = LeadBatch.model_validate(body)
    tables = lead_tables(batch)
    ids = [lead.lead_id for lead in batch.leads]
    keys = np.empty(len(ids), dtype=object)
    keys[:] = ids
    snaps = ColumnTable({"lead_id": keys,
                         "as_of": np.full(len(ids), epoch_ns(as_of), dtype=np.int64)}, len(ids))
    columns = feature_columns(tables, snaps, LEAD_V1)
    booster = model.boosters["__all__"]
    matrix = model.column_matrix(columns)
    stamp = as_of.to_pydatetime()
    scored = score_tables(loaded, tables, ids, stamp, explain=True)
    rows = f"{len(ids)} row" + ("s" if len(ids) > 1 else "")

    settings = ScoringSettings()

    def whole(ask: Any) -> Callable[[], None]:
        def run() -> None:
            b = LeadBatch.model_validate(body)
            LEADS.respond(b, [loaded], lead_tables(b), ids, stamp, ask, settings)
        return run

    out = {}
    for label, fn in (
        (f"Booster.predict, {rows}", lambda: booster.predict(matrix, num_threads=1)),
        (f"Booster.predict pred_contrib, {rows}",
         lambda: booster.predict(matrix, num_threads=1, pred_contrib=True)),
        ("validate body", lambda: LeadBatch.model_validate(body)),
        ("request -> column tables", lambda: lead_tables(batch)),
        ("feature_columns", lambda: feature_columns(tables, snaps, LEAD_V1)),
        ("(build_features: the same, typed as a DataFrame)",
         lambda: build_features(tables, snaps, LEAD_V1)),
        ("column_matrix + score_matrix, with contributions",
         lambda: model.score_matrix(model.column_matrix(columns), True)),
        ("results with reasons", lambda: lead_results(loaded, scored, Grading())),
        ("whole request without HTTP, trend off", whole(Ask(trend=False))),
        ("whole request without HTTP (trend on, the default)", whole(Ask())),
        ("whole request without HTTP, what-if on", whole(Ask(what_if=True))),
    ):
        for _ in range(max(2, reps // 10)):
            fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e6)
        out[label] = statistics.median(ts)
    return out


class Server:
    """A server process in its own session (so stopping it stops its workers too)."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            _wait(ready)
        except TimeoutError:
            self.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise TimeoutError(f"{argv[0]} did not become ready:\n{tail}") from None

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=5000, help="size of the generated CRM")
    ap.add_argument("--requests", type=int, default=300, help="sequential requests per case")
    ap.add_argument("--seconds", type=float, default=5.0, help="throughput window per case")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads")
    ap.add_argument("--workers", type=int, default=1, help="leadscore worker processes")
    ap.add_argument("--skip-mlflow", action="store_true")
    args = ap.parse_args(argv)

    from serving.auth import hash_api_key

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        t0 = time.perf_counter()
        trained = train_and_register(args.leads, uri)
        print(f"trained and registered in {time.perf_counter() - t0:.1f}s "
              f"(lead trees {trained['lead_qualification_trees']}, "
              f"deal trees {trained['deal_close_trees']})", flush=True)
        tables = trained["tables"]
        as_of = pd.Timestamp(tables.leads["created_at"].max()) - pd.Timedelta(days=30)
        records, ids = lead_bodies(tables, as_of, 100)
        single = {"leads": records[:1]}
        batch = {"leads": records[:100]}
        frames = mlflow_frames(tables, ids, as_of)
        ml_single = {"dataframe_records": frames[:1]}
        ml_batch = {"dataframe_records": frames[:100]}
        headers = {"X-API-Key": API_KEY}
        results: dict[str, dict[str, float]] = {}

        def ours(body: dict[str, Any], path: str = "/v1/leads/score") -> Call:
            def call(http: httpx.Client) -> None:
                r = http.post(path, json=body, headers=headers)
                assert r.status_code == 200, r.text[:300]
            return call

        def theirs(body: dict[str, Any]) -> Call:
            def call(http: httpx.Client) -> None:
                r = http.post("/invocations", json=body)
                assert r.status_code == 200, r.text[:300]
            return call

        env = {
            "LEADSCORE_TRACKING_URI": uri,
            "LEADSCORE_API_KEY_HASHES": hash_api_key(API_KEY),
            "LEADSCORE_RELOAD_INTERVAL_S": "0",
            "LEADSCORE_LOG_LEVEL": "warning",
            # Only the two models registered here: /readyz waits for every served task.
            "LEADSCORE_TASKS": "lead_qualification,deal_close",
        }
        servers: dict[str, tuple[Server, str]] = {}
        try:
            # All servers run at once and the cases take turns, so that load from other
            # work on the machine falls on every case alike.
            for name, extra in (("leadscore", {}),
                                ("threadpool", {"LEADSCORE_INLINE_MAX_ROWS": "0"})):
                port = _free_port()
                base = f"http://127.0.0.1:{port}"
                servers[name] = (
                    Server([str(BIN / "leadscore"), "serve", "--port", str(port),
                            "--workers", str(args.workers)], {**env, **extra},
                           f"{base}/readyz", Path(tmp) / f"{name}.log"),
                    base,
                )
            if not args.skip_mlflow:
                port = _free_port()
                base = f"http://127.0.0.1:{port}"
                servers["mlflow"] = (
                    Server(
                        [str(BIN / "mlflow"), "models", "serve", "-m",
                         "models:/lead_qualification@champion", "--env-manager", "local",
                         "-h", "127.0.0.1", "-p", str(port)],
                        # mlflow execs `uvicorn` by name: the virtualenv's bin goes on PATH.
                        {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
                         "PATH": f"{BIN}:{os.environ.get('PATH', '')}"},
                        f"{base}/ping", Path(tmp) / "mlflow.log",
                    ),
                    base,
                )
            single_cases: dict[str, tuple[str, Call]] = {
                "leadscore, 1 lead": (servers["leadscore"][1], ours(single)),
                "leadscore (threadpool), 1 lead": (servers["threadpool"][1], ours(single)),
                # What a result cost before it carried its trend (7 and 28 days earlier).
                "leadscore, 1 lead, trend off": (
                    servers["leadscore"][1], ours(single, "/v1/leads/score?trend=false")
                ),
                # What asking for next steps costs: the request scored once more per step.
                "leadscore, 1 lead, what-if on": (
                    servers["leadscore"][1], ours(single, "/v1/leads/score?what_if=true")
                ),
            }
            batch_cases: dict[str, tuple[str, Call]] = {
                "leadscore, 100 leads": (servers["leadscore"][1], ours(batch)),
                # What mlflow's answer holds: probabilities, no reasons.
                "leadscore, 100 leads, reasons off": (
                    servers["leadscore"][1], ours(batch, "/v1/leads/score?explain=false")
                ),
            }
            if "mlflow" in servers:
                single_cases["mlflow models serve, 1 lead"] = (servers["mlflow"][1],
                                                               theirs(ml_single))
                batch_cases["mlflow models serve, 100 leads"] = (servers["mlflow"][1],
                                                                 theirs(ml_batch))
            for cases, n in ((single_cases, args.requests), (batch_cases, args.requests // 5)):
                lat = interleaved_latency(cases, n)
                rps = interleaved_throughput(cases, args.concurrency, args.seconds)
                for name in cases:
                    results[name] = {**lat[name], "rps": rps[name]}
                    print(name, results[name], flush=True)
            pid = servers["leadscore"][0].proc.pid
            rss = _rss_mb(pid)
            if args.workers > 1:
                kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                      text=True).stdout.split()
                rss += sum(_rss_mb(int(k)) for k in kids)
            results["leadscore, 1 lead"]["rss_mb"] = rss
        finally:
            for server, _ in servers.values():
                server.stop()

        floor = in_process(trained["lead_qualification"], single, as_of)
        print(json.dumps(floor, indent=1))
        floor100 = in_process(trained["lead_qualification"], batch, as_of, reps=20)
        print(json.dumps(floor100, indent=1))

    print("\n| case | p50 ms | p99 ms | requests/s |")
    print("| --- | ---: | ---: | ---: |")
    for case, r in results.items():
        print(f"| {case} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} |")
    ours_rps = results["leadscore, 1 lead"]["rps"]
    if "mlflow models serve, 1 lead" in results:
        ratio = ours_rps / results["mlflow models serve, 1 lead"]["rps"]
        print(f"\nsingle-lead throughput, leadscore / mlflow models serve: {ratio:.1f}x")
        ratio100 = (results["leadscore, 100 leads"]["rps"]
                    / results["mlflow models serve, 100 leads"]["rps"])
        print(f"100-lead throughput, leadscore / mlflow models serve: {ratio100:.1f}x")
        ratio100_off = (results["leadscore, 100 leads, reasons off"]["rps"]
                        / results["mlflow models serve, 100 leads"]["rps"])
        print(f"100-lead throughput without reasons, leadscore / mlflow: {ratio100_off:.1f}x")
    inline = results["leadscore, 1 lead"]
    off = results["leadscore, 1 lead, trend off"]
    print(f"single lead with its trend / without: p50 {inline['p50_ms'] / off['p50_ms']:.2f}x, "
          f"throughput {inline['rps'] / off['rps']:.2f}x")
    asked = results["leadscore, 1 lead, what-if on"]
    print(f"single lead with what-if / without: p50 {asked['p50_ms'] / inline['p50_ms']:.2f}x, "
          f"throughput {asked['rps'] / inline['rps']:.2f}x")
    pool = results["leadscore (threadpool), 1 lead"]
    print(f"event loop vs threadpool, single lead: p50 {inline['p50_ms']:.2f} vs "
          f"{pool['p50_ms']:.2f} ms, {inline['rps']:.0f} vs {pool['rps']:.0f} req/s")
    print(f"leadscore server RSS with both models loaded: {inline['rss_mb']:.0f} MB")
    print("\n| in process | 1 lead, median µs | 100 leads, median µs |")
    print("| --- | ---: | ---: |")
    for (k, v), v100 in zip(floor.items(), floor100.values(), strict=True):
        print(f"| {k} | {v:,.0f} | {v100:,.0f} |")


if __name__ == "__main__":
    main()
