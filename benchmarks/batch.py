"""Batch scoring benchmark: `leadscore score` of every lead and every deal of a CRM, against
`leadscore build` of the same task on the same data, in one run.

For each CRM folder (a `leadscore generate` output) and each task (lead_qualification on
`leads.parquet`, deal_close on `opportunities.parquet`, the folder as `--data`):

- `leadscore build --task T` (end to end, its own process);
- `leadscore score --task T` with reasons and trend (the defaults), with `--no-trend`,
  and with `--no-reasons --no-trend`, each end to end in its own process: wall time,
  peak resident memory;
- the same scoring in process, phase by phase (read and validate the input, read the
  `--data` tables, open entities, features and scores, write), so rows a second after
  the tables are loaded can be read apart from loading them.

Cases of one task take turns (build, then the scoring cases), so load from other work on
the shared machine falls on each alike; `--repeat N` runs the round N times and reports
the median. Models come from `--tracking-uri` (champions of both tasks), else both are
trained on the first folder with `leadscore train` (`--rounds` at most, no strict
backtest) into a temporary MLflow store.

Run: `.venv/bin/python -P benchmarks/batch.py [FOLDER ...]` (default: a 100,000-lead CRM
generated with seed 7 into a temporary folder).
`--million FOLDER` then scores every open lead and deal of the 1M-lead CRM there (generated
with `--leads 1000000 --seed 7` when the folder has none) with reasons, end to end, and
states it against the first folder's time and the targets.
`--profile` prints the top of a cProfile of the in-process scoring, without and with
reasons, instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

TASK_INPUT = {"lead_qualification": "leads.parquet", "deal_close": "opportunities.parquet"}
SCORE_CASES: dict[str, list[str]] = {
    "reasons, trend": [],
    "reasons, no trend": ["--no-trend"],
    "no reasons, no trend": ["--no-reasons", "--no-trend"],
}
TIMEOUT_S = 1800


def _env(uri: str) -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = env["LEADSCORE_TRACKING_URI"] = uri
    env["PYTHONPATH"] = str(ROOT)
    return env


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str, float]:
    """Wall seconds, peak RSS (GB), standard output and CPU seconds (user + system) of one
    command in its own process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=ROOT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024**2, out.read(), usage.ru_utime + usage.ru_stime


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "leadscore.cli", *args]


def train(folder: Path, uri: str, rounds: int, work: Path) -> None:
    env = _env(uri)
    for task in TASK_INPUT:
        start = time.perf_counter()
        subprocess.run(
            _cli("train", "--task", task, "--data", str(folder), "--no-strict-backtest",
                 "--num-boost-round", str(rounds), "--out", str(work / f"train-{task}")),
            env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=TIMEOUT_S,
        )
        print(f"trained {task} on {folder} in {time.perf_counter() - start:.0f} s", flush=True)


def phases(task: str, folder: Path, out: Path, explain: bool, trend: bool) -> dict[str, Any]:
    """`score_file`'s steps one by one, timed (run in a child process)."""
    from serving.batch import (
        _open_mask,
        batch_as_of,
        checked_context,
        checked_rows,
        prepare_explainers,
        read_table_file,
        score_frame,
        write_table_file,
    )
    from serving.models import source_from_settings
    from serving.settings import get_scoring_settings

    settings = get_scoring_settings()
    times: dict[str, float] = {}
    t = time.perf_counter()
    model = source_from_settings(settings).load(task)
    if explain:
        prepare_explainers(model)
    booster = next(iter(model.model.boosters.values()))
    times["model"] = time.perf_counter() - t
    t = time.perf_counter()
    path = folder / TASK_INPUT[task]
    rows = checked_rows(read_table_file(path), task, str(path)).rows
    times["read + validate"] = time.perf_counter() - t
    t = time.perf_counter()
    context, _ = checked_context(folder)
    times["read --data"] = time.perf_counter() - t
    t = time.perf_counter()
    stamp, _ = batch_as_of(rows, task, context, None)
    keep = _open_mask(rows, task, stamp)
    open_rows = rows[keep].reset_index(drop=True)
    times["open entities"] = time.perf_counter() - t
    t = time.perf_counter()
    result = score_frame(model, open_rows, context, settings, stamp.to_pydatetime(), explain,
                         None, trend)
    times["score"] = time.perf_counter() - t
    t = time.perf_counter()
    write_table_file(result, out)
    times["write"] = time.perf_counter() - t
    return {"times": times, "rows": len(rows), "open": len(open_rows), "scored": len(result),
            "trees": booster.num_trees(),
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}


def _child(argv: list[str]) -> None:
    from leadscore.memory import reuse_freed_memory

    reuse_freed_memory()  # as `leadscore score` does
    task, folder, out, explain, trend, profile = argv
    if profile == "1":
        import cProfile
        import pstats

        prof = cProfile.Profile(time.process_time)
        prof.enable()
        result = phases(task, Path(folder), Path(out), explain == "1", trend == "1")
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        result = phases(task, Path(folder), Path(out), explain == "1", trend == "1")
    print(json.dumps(result), flush=True)


def in_process(task: str, folder: Path, out: Path, explain: bool, trend: bool,
               env: dict[str, str], profile: bool = False,
               ) -> tuple[float, float, dict[str, Any], float]:
    """Score one file in a fresh process as `leadscore score` does (model loaded from the
    registry, the same steps), timed from outside (wall, peak RSS) and step by step."""
    argv = [sys.executable, "-P", __file__, "--child", task, str(folder), str(out),
            "1" if explain else "0", "1" if trend else "0", "1" if profile else "0"]
    if profile:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                              cwd=ROOT)
        print(proc.stderr)
        return 0.0, 0.0, json.loads(proc.stdout.strip().splitlines()[-1]), 0.0
    wall, peak, stdout, cpu = _timed(argv, env)
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return wall, peak, result, cpu


def default_folder(work: Path) -> Path:
    folder = work / "gen100k"
    subprocess.run(_cli("generate", "--out", str(folder), "--leads", "100000", "--seed", "7"),
                   env=_env(""), check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   timeout=TIMEOUT_S)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store with champions of both tasks (else trained here)")
    parser.add_argument("--rounds", type=int, default=300, help="most boosting rounds (training)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tasks", nargs="*", default=list(TASK_INPUT))
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the scoring of the first folder, with and without "
                        "reasons, instead of timing")
    parser.add_argument("--million", type=Path, default=None, metavar="FOLDER",
                        help="also score every open lead and deal of this 1M-lead CRM with "
                        "reasons, end to end (generated there with --leads 1000000 --seed 7 "
                        "when missing), against the same on the first folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadscore-batch-") as tmp:
        work = Path(tmp)
        folders = args.folders or [default_folder(work)]
        uri = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
        if args.tracking_uri is None:
            train(folders[0], uri, args.rounds, work)
        env = _env(uri)
        if args.profile:
            for task in args.tasks:
                for explain in (False, True):
                    print(f"## {task}, {'reasons' if explain else 'no reasons'}, trend",
                          flush=True)
                    in_process(task, folders[0], work / "out.parquet", explain, True, env,
                               profile=True)
            return
        print("| CRM | task | case | rows | open | trees | wall s | CPU s | open rows/s | "
              "peak GB | vs build (wall) | vs build (CPU) | load s | score s | "
              "scored rows/s after load |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: | ---: | ---: | ---: |")
        first_walls: dict[str, float] = {}
        for folder in folders:
            for task in args.tasks:
                walls: dict[str, list[float]] = {}
                peaks: dict[str, list[float]] = {}
                cpus: dict[str, list[float]] = {}
                inner: dict[str, list[dict[str, Any]]] = {}
                for _ in range(args.repeat):
                    wall, peak, _, cpu = _timed(_cli(
                        "build", "--task", task, "--data", str(folder),
                        "--out", str(work / "build.parquet")), env)
                    walls.setdefault("build", []).append(wall)
                    cpus.setdefault("build", []).append(cpu)
                    peaks.setdefault("build", []).append(peak)
                    for case, flags in SCORE_CASES.items():
                        wall, peak, result, cpu = in_process(
                            task, folder, work / "scored.parquet", "--no-reasons" not in flags,
                            "--no-trend" not in flags, env)
                        walls.setdefault(case, []).append(wall)
                        cpus.setdefault(case, []).append(cpu)
                        peaks.setdefault(case, []).append(peak)
                        inner.setdefault(case, []).append(result)
                build = statistics.median(walls["build"])
                build_cpu = statistics.median(cpus["build"])
                print(f"| {folder.name} | {task} | `leadscore build` | | | | {build:.1f} | "
                      f"{build_cpu:.1f} | | {statistics.median(peaks['build']):.2f} | 1.00 | "
                      "1.00 | | | |", flush=True)
                for case in SCORE_CASES:
                    wall = statistics.median(walls[case])
                    cpu = statistics.median(cpus[case])
                    runs = inner[case]
                    first = runs[0]
                    load = statistics.median(_load(r["times"]) for r in runs)
                    score = statistics.median(r["times"]["score"] for r in runs)
                    print(
                        f"| {folder.name} | {task} | {case} | {first['rows']:,} | "
                        f"{first['open']:,} | {first['trees']} | {wall:.1f} | {cpu:.1f} | "
                        f"{first['open'] / wall:,.0f} | {statistics.median(peaks[case]):.2f} | "
                        f"{wall / build:.2f} | {cpu / build_cpu:.2f} | {load:.1f} | {score:.2f} | "
                        f"{first['scored'] / score:,.0f} |", flush=True)
                detail = {case: {k: round(statistics.median(r["times"][k] for r in inner[case]), 2)
                                 for k in inner[case][0]["times"]} for case in SCORE_CASES}
                print(f"<!-- {folder.name} {task} phases: {json.dumps(detail)} -->", flush=True)
                if folder == folders[0]:
                    first_walls[task] = statistics.median(walls["reasons, trend"])
        if args.million is not None:
            million(args.million, args.tasks, work, env, first_walls)


def _load(times: dict[str, float]) -> float:
    """Everything before the scoring: the model (and its TreeSHAP tables), the file and
    its checks, the --data tables, the open entities."""
    return (times["model"] + times["read + validate"] + times["read --data"]
            + times["open entities"])


def million(folder: Path, tasks: list[str], work: Path, env: dict[str, str],
            small: dict[str, float]) -> None:
    """Every open lead and deal of the 1M CRM scored with reasons and trend (the
    defaults), end to end in its own process each, against the first folder's."""
    if not (folder / "leads.parquet").exists():
        start = time.perf_counter()
        subprocess.run(_cli("generate", "--out", str(folder), "--leads", "1000000", "--seed",
                            "7"), env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       timeout=TIMEOUT_S)
        print(f"generated {folder} in {time.perf_counter() - start:.0f} s", flush=True)
    total = peak = 0.0
    for task in tasks:
        wall, gb, result, cpu = in_process(task, folder, work / "scored.parquet", True, True,
                                           env)
        total += wall
        peak = max(peak, gb)
        t = result["times"]
        load = _load(t)
        print(f"| {folder.name} | {task} | reasons, trend | {result['rows']:,} | "
              f"{result['open']:,} | {result['trees']} | {wall:.1f} | {cpu:.1f} | "
              f"{result['open'] / wall:,.0f} | {gb:.2f} | | | {load:.1f} | {t['score']:.2f} | "
              f"{result['scored'] / t['score']:,.0f} |", flush=True)
    base = sum(small.get(task, float("nan")) for task in tasks)
    print(f"1M CRM, every open lead and deal with reasons, end to end: {total:.1f} s "
          f"(target < 90), peak {peak:.2f} GB (target < 8), {total / base:.1f}x the first "
          f"folder's {base:.1f} s (target <= 12x)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
