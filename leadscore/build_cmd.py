"""`leadscore build`: a CRM folder in, a task's training set out as Parquet."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from features.loader import load_crm
from features.partitions import build_by_partitions, temporary_work_dir
from features.tasks import task_spec
from features.training_set import TrainingSetSummary, build_training_set, summarize

Step = Callable[[str], None]

PARTITION_STEPS = 3
"""How many times a build by partitions calls ``on_step`` (progress bars)."""


@dataclass(frozen=True)
class BuildReport:
    """What ``build_training_file`` wrote, for the command line's summary."""

    out: Path
    summary: TrainingSetSummary
    rejected_rows: int


@contextmanager
def partition_executor(workers: int = 1, cluster: str | None = None) -> Iterator[Executor | None]:
    """Where a build's partitions run: on the Dask cluster ``cluster`` (``local`` or
    ``tcp://HOST:PORT``, ``workers`` worker processes for ``local``), else in a pool of
    ``workers`` processes, else (one worker) here, one after the other (None)."""
    if cluster is not None:
        from leadscore.cluster import dask_client

        with dask_client(cluster, n_workers=workers if cluster == "local" else None,
                         threads_per_worker=1) as client:
            yield client.get_executor()
        return
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def build_training_file(
    data_dir: Path,
    task: str,
    out: Path,
    *,
    horizon_days: int | None = None,
    every_days: int | None = None,
    max_per_entity: int | None = None,
    partitions: int = 1,
    workers: int = 1,
    cluster: str | None = None,
    work_dir: Path | None = None,
    on_step: Step | None = None,
) -> BuildReport:
    """Load and validate a CRM folder, build a task's training set and write it as Parquet.

    Rows the loader rejects are left out (and counted); run ``leadscore validate`` for the
    row-by-row report. With ``partitions`` > 1 the build runs by partitions of whole
    accounts (``features.partitions``) on ``workers`` processes or a Dask ``cluster``, with
    the partitions' files under ``work_dir`` (default: a temporary folder beside ``out``);
    the file holds the same rows.
    """
    step = on_step or (lambda _: None)
    fs = task_spec(task).feature_set
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if partitions > 1:
        with partition_executor(workers, cluster) as executor, \
                temporary_work_dir(work_dir or out.parent) as tmp:
            built = build_by_partitions(
                data_dir, task, partitions=partitions, work_dir=Path(tmp), executor=executor,
                horizon_days=horizon_days, every_days=every_days,
                max_per_entity=max_per_entity, on_step=step)
            summary = built.write_parquet(out, fs)
        return BuildReport(out=out, summary=summary, rejected_rows=built.rejected_rows)
    loaded = load_crm(Path(data_dir))
    step("loaded")
    frame = build_training_set(
        loaded.tables,
        task,
        horizon_days=horizon_days,
        every_days=every_days,
        max_per_entity=max_per_entity,
        feature_set=fs,
        on_step=step,
    )
    frame.to_parquet(out, index=False)
    return BuildReport(
        out=out,
        summary=summarize(frame, fs),
        rejected_rows=int(loaded.rejections[["table", "row"]].drop_duplicates().shape[0]),
    )
