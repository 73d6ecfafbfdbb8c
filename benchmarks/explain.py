"""Explanation benchmark: exact TreeSHAP implementations on the project's own models.

Steps, so that explainers not among the project's dependencies can be measured from
another virtualenv without installing them into the project's:

1. `prepare OUT --data DIR` (project virtualenv; the champions of `LEADSCORE_TRACKING_URI`
   or `MLFLOW_TRACKING_URI`): for each task, every open entity of the CRM in `DIR` as of
   the data's end becomes the float matrix the model scores (`ScoringModel.column_matrix`
   of the serving feature code); saved with each booster's model text, the topic
   membership of the reasons (`serving.explain.Explainer`) and LightGBM's `pred_contrib`
   of every row (the offset in the bias, as `ScoringModel.score_matrix` gives it).
2. `measure OUT [--rows N ...]` (any virtualenv with numpy and lightgbm; the project's
   own `modeling.treeshap` (numba), shap, fasttreeshap and woodelf-explainer are measured
   where importable): the time of each
   explainer on the first N rows, its largest absolute difference from LightGBM's
   `pred_contrib` on every row, and on how many rows the order of the reason topics
   (strongest first, top three each way) differs.
3. `jit` (project virtualenv): what the first explanation in a new process costs before
   any row, with numba's cache empty and then warm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

TASK_INPUT = {"lead_qualification": "leads.parquet", "deal_close": "opportunities.parquet"}


def prepare(out: Path, data: Path) -> None:
    from features.build import select_features
    from serving.batch import (
        _open_mask,
        batch_as_of,
        batch_tables,
        checked_context,
        read_table_file,
        validated_rows,
    )
    from serving.explain import explainer
    from serving.models import source_from_settings
    from serving.scoring import entity_features
    from serving.settings import get_scoring_settings

    settings = get_scoring_settings()
    out.mkdir(parents=True, exist_ok=True)
    context, _ = checked_context(data)
    for task, name in TASK_INPUT.items():
        model = source_from_settings(settings).load(task)
        rows = validated_rows(read_table_file(data / name), task, name)
        stamp, _ = batch_as_of(rows, task, context, None)
        rows = rows[_open_mask(rows, task, stamp)].reset_index(drop=True)
        key = model.model.feature_set.entity_key
        tables = batch_tables(rows, task, context)
        ids = [str(k) for k in rows[key].tolist()]
        entity = entity_features(tables, key, ids, stamp.to_pydatetime())
        matrix = model.model.column_matrix(select_features(entity, model.model.feature_set))
        routes = model.model._routes(matrix, None)
        # The reference is LightGBM's own pred_contrib (score_matrix explains with
        # modeling.treeshap), with the offset in the bias as score_matrix puts it.
        contrib = np.zeros((len(matrix), matrix.shape[1] + 1))
        for route, idx in routes.items():
            if route in model.model.boosters:  # else a rate model: the offset alone
                contrib[idx] = model.model.boosters[route].predict(matrix[idx],
                                                                   pred_contrib=True)
        model.model._add_offset(contrib, model.model._offset(matrix, None))
        folder = out / task
        folder.mkdir(exist_ok=True)
        np.save(folder / "matrix.npy", matrix)
        np.save(folder / "contributions.npy", contrib)
        np.save(folder / "offset.npy", model.model._offset(matrix, None))
        np.save(folder / "members.npy", explainer(model.model.feature_set)._members)
        boosters = {}
        for route, idx in routes.items():
            booster = model.model.boosters[route]
            (folder / f"booster-{route}.txt").write_text(booster.model_to_string())
            np.save(folder / f"rows-{route}.npy", idx)
            boosters[route] = booster.num_trees()
        (folder / "meta.json").write_text(json.dumps({"rows": len(matrix), "trees": boosters}))
        print(f"{task}: {len(matrix):,} open rows, trees {boosters}", flush=True)


def _order(contrib: np.ndarray, members: np.ndarray, k: int = 3) -> np.ndarray:
    """Per row, the top ``k`` topics up and down by summed contribution (-1: none)."""
    sums = contrib @ members
    up = np.argsort(-np.where(sums > 0, sums, 0), axis=1, kind="stable")[:, :k]
    down = np.argsort(np.where(sums < 0, sums, 0), axis=1, kind="stable")[:, :k]
    up = np.where(np.take_along_axis(sums, up, 1) > 0, up, -1)
    down = np.where(np.take_along_axis(sums, down, 1) < 0, down, -1)
    return np.concatenate([up, down], axis=1)


def explainers(booster: Any, threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each available exact TreeSHAP, as matrix -> (rows, features + 1) with the bias last."""
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "lightgbm pred_contrib, 1 thread":
            lambda m: booster.predict(m, pred_contrib=True, num_threads=1),
        "lightgbm pred_contrib, 2 threads":
            lambda m: booster.predict(m, pred_contrib=True, num_threads=2),
    }
    try:
        from modeling.treeshap import TreeExplainer, warm_up

        warm_up()  # compiled kernels loaded first: `jit` times them
        start = time.perf_counter()
        ours = TreeExplainer.of(booster)
        print(f"leadscore TreeSHAP tables for {booster.num_trees()} trees: "
              f"{time.perf_counter() - start:.2f} s to build, {ours.nbytes / 1e6:.1f} MB, "
              f"{len(ours.tables.path_len):,} leaves, mean path "
              f"{ours.tables.path_len.mean():.1f} features (most "
              f"{ours.tables.max_path}), {(ours.tables.table_start >= 0).mean():.0%} "
              "tabled", flush=True)
        out["leadscore TreeSHAP, 1 thread"] = lambda m: ours.contributions(m, num_threads=1)
        out["leadscore TreeSHAP, 2 threads"] = lambda m: ours.contributions(m, num_threads=2)
    except ImportError as exc:
        print(f"leadscore TreeSHAP: {type(exc).__name__}: {exc}", flush=True)
    try:
        import shap

        tree = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")

        def with_bias(values: Any, base: Any) -> np.ndarray:
            v = np.asarray(values)
            return np.column_stack([v, np.full(len(v), float(np.ravel(base)[0]))])

        out[f"shap {shap.__version__} TreeExplainer"] = (
            lambda m: with_bias(tree.shap_values(m, check_additivity=False), tree.expected_value))
    except Exception as exc:  # noqa: BLE001 - report whatever stops an optional explainer
        print(f"shap: {type(exc).__name__}: {exc}", flush=True)
    try:
        import fasttreeshap

        for algorithm in ("v1", "v2"):
            fast = fasttreeshap.TreeExplainer(booster, algorithm=algorithm, n_jobs=threads,
                                              feature_perturbation="tree_path_dependent")
            out[f"fasttreeshap {algorithm}"] = (
                lambda m, fast=fast: np.column_stack(
                    [np.asarray(fast.shap_values(m, check_additivity=False)),
                     np.full(len(m), float(np.ravel(fast.expected_value)[0]))]))
    except Exception as exc:  # noqa: BLE001
        print(f"fasttreeshap: {type(exc).__name__}: {exc}", flush=True)
    try:
        import pandas as pd
        from woodelf import WoodelfExplainer

        wood = WoodelfExplainer(booster)
        names = booster.feature_name()

        def woodelf(m: np.ndarray) -> np.ndarray:
            values = np.asarray(wood.shap_values(pd.DataFrame(m, columns=names)))
            return np.column_stack([values, np.full(len(m), float(np.ravel(
                wood.expected_value)[0]))])

        out["woodelf-explainer"] = woodelf
    except Exception as exc:  # noqa: BLE001
        print(f"woodelf: {type(exc).__name__}: {exc}", flush=True)
    return out


def measure(out: Path, sizes: list[int], repeat: int) -> None:
    import lightgbm as lgb

    print("| task | trees | explainer | rows | ms | µs a row | max abs diff | "
          "rows whose reason order differs |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for task in TASK_INPUT:
        folder = out / task
        if not folder.exists():
            continue
        matrix = np.load(folder / "matrix.npy")
        members = np.load(folder / "members.npy")
        today = np.load(folder / "contributions.npy")
        offset = np.load(folder / "offset.npy")
        for booster_file in sorted(folder.glob("booster-*.txt")):
            route = booster_file.stem.removeprefix("booster-")
            booster = lgb.Booster(model_str=booster_file.read_text())
            idx = np.load(folder / f"rows-{route}.npy")
            m = np.ascontiguousarray(matrix[idx])
            reference = today[idx].copy()
            reference[:, -1] -= offset[idx]
            ref_order = _order(reference[:, :-1], members)
            for label, fn in explainers(booster, 2).items():
                # pred_contrib is the reference itself: checked on its first 1,000 rows.
                checked = 1000 if label.startswith("lightgbm") else len(m)
                try:
                    full = np.asarray(fn(m[:checked]), dtype=float)
                except Exception as exc:  # noqa: BLE001
                    print(f"| {task} | {booster.num_trees()} | {label} | failed: "
                          f"{type(exc).__name__}: {str(exc)[:120]} | | | | |", flush=True)
                    continue
                ref = reference[:checked]
                diff = float(np.max(np.abs(full - ref))) if full.shape == ref.shape \
                    else float("nan")
                moved = int((_order(full[:, :-1], members) != ref_order[:checked]).any(axis=1)
                            .sum()) if full.shape == ref.shape else -1
                for n in sizes:
                    rows = m[: min(n, len(m))] if n > 0 else m
                    fn(rows[:2])  # warm-up (JIT, caches)
                    best = float("inf")
                    # Every open row once: pred_contrib takes a minute or more over them.
                    for _ in range(repeat if len(rows) <= 5000 else 1):
                        t = time.perf_counter()
                        fn(rows)
                        best = min(best, time.perf_counter() - t)
                    print(f"| {task} | {booster.num_trees()} | {label} | {len(rows):,} | "
                          f"{best * 1e3:.2f} | {best * 1e6 / len(rows):.1f} | {diff:.2e} | "
                          f"{moved} of {len(full):,} |", flush=True)


JIT_PROBE = """
import time
t = time.perf_counter()
from modeling import treeshap
imported = time.perf_counter() - t
ready = treeshap.warm_up()
print(f"{imported:.2f} {ready:.2f}")
"""


def jit(repeat: int = 2) -> None:
    """The first explanation's fixed cost in a new process: importing the module and
    numba, then compiling the kernels (an empty cache) or loading them (a warm one)."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for run in range(1 + repeat):
            out = subprocess.run([sys.executable, "-c", JIT_PROBE], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            state = "empty cache (compiles)" if run == 0 else "warm cache (loads)"
            print(f"| {state} | {float(out[0]):.2f} | {float(out[1]):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, required=True)
    m = sub.add_parser("measure")
    m.add_argument("out", type=Path)
    m.add_argument("--rows", type=int, nargs="*", default=[1, 100, 0],
                   help="row counts to time (0: every open row)")
    m.add_argument("--repeat", type=int, default=5)
    sub.add_parser("jit")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.out, args.data)
    elif args.step == "jit":
        print("| numba cache | import s | kernels ready s |\n| --- | ---: | ---: |")
        jit()
    else:
        measure(args.out, args.rows, args.repeat)


if __name__ == "__main__":
    main()
