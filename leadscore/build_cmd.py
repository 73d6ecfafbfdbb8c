"""`leadscore build`: a CRM folder in, a task's training set out as Parquet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from features.loader import load_crm
from features.tasks import task_spec
from features.training_set import TrainingSetSummary, build_training_set, summarize

Step = Callable[[str], None]


@dataclass(frozen=True)
class BuildReport:
    """What ``build_training_file`` wrote, for the command line's summary."""

    out: Path
    summary: TrainingSetSummary
    rejected_rows: int


def build_training_file(
    data_dir: Path,
    task: str,
    out: Path,
    *,
    horizon_days: int | None = None,
    every_days: int | None = None,
    max_per_entity: int | None = None,
    on_step: Step | None = None,
) -> BuildReport:
    """Load and validate a CRM folder, build a task's training set and write it as Parquet.

    Rows the loader rejects are left out (and counted); run ``leadscore validate`` for the
    row-by-row report.
    """
    step = on_step or (lambda _: None)
    loaded = load_crm(Path(data_dir))
    step("loaded")
    fs = task_spec(task).feature_set
    frame = build_training_set(
        loaded.tables,
        task,
        horizon_days=horizon_days,
        every_days=every_days,
        max_per_entity=max_per_entity,
        feature_set=fs,
        on_step=step,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return BuildReport(
        out=out,
        summary=summarize(frame, fs),
        rejected_rows=int(loaded.rejections[["table", "row"]].drop_duplicates().shape[0]),
    )
