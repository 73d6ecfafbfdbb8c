"""`leadscore monitor`: how far a CRM export has moved from what the served model was judged
on, and how well the model did where outcomes have arrived since.

For each task, the champion (or another alias) is loaded from the registry with its
reference profile; the export's snapshots after ``--since`` are built with the training
feature code (``build_training_set``, the very rows training reads) and scored by the
model. Then:

- drift: PSI of the 0-100 score and of every feature against the profile
  (``modeling.profile``), each ok / warn (>= 0.1) / alert (>= 0.25) above the PSI that
  sampling alone gives at the recent period's and the reference's numbers of entities
  (``modeling.profile.expected_psi``);
- where outcomes are known (labelled snapshots after both ``--since`` and the model's
  training period): ECE, ROC AUC, and observed against predicted rate per grade.

Exit codes (``leadscore monitor``): 1 when a task is in alert (PSI of the score or of any
feature at or past ``psi_alert``, or ECE past ``ece_alert`` on at least
``min_outcomes`` outcomes); a warn alone is printed and exits 0; 2 when a task cannot be
monitored (no model, unreadable data). Fewer than ``min_rows`` snapshots since ``--since``:
"too few rows", no PSI, exit 0. Each task's figures are logged to MLflow as a run in the
task's experiment (the one training logs to), tagged ``leadscore.kind=monitor``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from features.tasks import TASKS, task_names, task_spec
from modeling.profile import (
    ALERT_PSI,
    WARN_PSI,
    Drift,
    ReferenceProfile,
    profile_drift,
    worst_status,
)

NO_PROFILE = "no reference profile"
TOO_FEW_ROWS = "too few rows"
ECE_ALERT = 0.05
"""ECE past which the recent outcomes say the model is miscalibrated: the size of the
calibration error training reports on its own test period, and above the noise of ECE on
a few thousand outcomes (benchmarks/README.md)."""
KIND_TAG = "leadscore.kind"


class MonitorSettings(BaseSettings):
    """What `leadscore monitor` reads from its options and ``LEADSCORE_MONITOR_*``."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_MONITOR_", extra="forbid")

    data: Path
    """The CRM export (a folder of tables, as `leadscore train` reads)."""
    tasks: Annotated[tuple[str, ...], NoDecode] = ()
    """Tasks to monitor (comma-separated); empty: every task with a model under the alias."""
    since: datetime | None = None
    """Snapshots after this time are the recent period; None: after the model's reference
    period (its test period) ends."""
    alias: str = "champion"
    tracking_uri: str | None = None
    experiment: str | None = None
    """MLflow experiment of the runs; None: the task's (where training logs)."""
    log: bool = True
    psi_warn: float = Field(WARN_PSI, gt=0.0)
    psi_alert: float = Field(ALERT_PSI, gt=0.0)
    ece_alert: float = Field(ECE_ALERT, gt=0.0, lt=1.0)
    min_rows: int = Field(200, ge=1)
    """Fewest snapshots in the recent period for a PSI."""
    min_outcomes: int = Field(200, ge=1)
    """Fewest labelled snapshots (with both outcomes) for calibration and ROC AUC."""

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks(cls, value: Any) -> Any:
        return task_names(value, "use", empty=True)

    @model_validator(mode="after")
    def _psi_order(self) -> MonitorSettings:
        if self.psi_warn >= self.psi_alert:
            raise ValueError("psi_warn must be below psi_alert")
        return self


def monitor_settings(**values: Any) -> MonitorSettings:
    """Build the settings from the environment, with explicit values (options) on top."""
    return MonitorSettings(**{k: v for k, v in values.items() if v is not None})


@dataclass(frozen=True)
class GradeRow:
    grade: str
    rows: int
    predicted: float
    observed: float


@dataclass(frozen=True)
class Calibration:
    """The model on the recent period's known outcomes."""

    outcomes: int
    positives: int
    predicted: float
    observed: float
    ece: float
    roc_auc: float
    grades: list[GradeRow]
    status: str
    """ok, alert (ECE past the threshold), or "too few outcomes"."""


@dataclass
class TaskReport:
    task: str
    version: str
    since: str
    rows: int
    status: str
    """ok / warn / alert, or :data:`NO_PROFILE` / :data:`TOO_FEW_ROWS` (no PSI)."""
    score: Drift | None = None
    features: list[Drift] = field(default_factory=list)
    calibration: Calibration | None = None
    run_id: str | None = None

    @property
    def alert(self) -> bool:
        return self.status == "alert" or (self.calibration is not None
                                           and self.calibration.status == "alert")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["alert"] = self.alert
        return out


def _clean(value: Any) -> Any:
    """JSON-ready: non-finite floats as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def calibration_on(y: np.ndarray, p: np.ndarray, grades: np.ndarray, settings: MonitorSettings,
                   ) -> Calibration:
    """ECE, ROC AUC and observed vs predicted per grade of known outcomes."""
    from training.metrics import binary_metrics

    n, positives = len(y), int(y.sum())
    if n < settings.min_outcomes or positives in (0, n):
        return Calibration(n, positives, float(p.mean()) if n else math.nan,
                           float(y.mean()) if n else math.nan, math.nan, math.nan, [],
                           "too few outcomes")
    m = binary_metrics(y, p)
    rows = [GradeRow(g, int(mask.sum()), float(p[mask].mean()), float(y[mask].mean()))
            for g in ("A", "B", "C", "D") if (mask := grades == g).any()]
    status = "alert" if m["ece"] > settings.ece_alert else "ok"
    return Calibration(n, positives, float(p.mean()), float(y.mean()), m["ece"],
                       m["roc_auc"], rows, status)


def censored(frame: pd.DataFrame, rows: pd.DataFrame, key: str, days: int) -> np.ndarray:
    """Rows of entities first seen within ``days`` of the data's end: training leaves them
    out of every period (only the quick closers among them have an outcome yet, and
    losses close faster than wins), so their outcomes would bias the calibration."""
    if days <= 0 or rows.empty:
        return np.zeros(len(rows), dtype=bool)
    first = frame.groupby(key, sort=False)["as_of"].min()
    cut = frame["as_of"].max() - pd.Timedelta(days=days)
    return (rows[key].map(first) > cut).to_numpy()


def recent_rows(frame: pd.DataFrame, since: pd.Timestamp) -> pd.DataFrame:
    return frame.loc[frame["as_of"] > since].reset_index(drop=True)


def monitor_task(task: str, tables: Any, settings: MonitorSettings,
                 own: Any = None) -> TaskReport:
    """One task's drift and recent calibration (not logged). ``own``: the folder's own
    columns (``features.own``): a model trained on them has them in its feature set and
    its profile, and they are built as training built them."""
    from features.training_set import build_training_set
    from modeling.registry import load_model_version

    model, info = load_model_version(task, settings.alias, settings.tracking_uri)
    profile: ReferenceProfile | None = info.profile
    stored = model.metadata.get("horizon_days")
    horizon = int(stored) if stored else task_spec(task).label.horizon_days
    since = _since(settings.since, profile, model.metadata)
    frame = build_training_set(tables, task, horizon_days=horizon, feature_set=model.feature_set,
                               own=own)
    rows = recent_rows(frame, since)
    p = model.predict_proba(rows) if len(rows) else np.zeros(0)
    report = TaskReport(task=task, version=info.version, since=since.isoformat(),
                        rows=len(rows), status="ok")
    if profile is None:
        report.status = NO_PROFILE
    elif len(rows) < settings.min_rows:
        report.status = TOO_FEW_ROWS
    else:
        key = model.feature_set.entity_key
        report.score, report.features = profile_drift(
            profile, rows, p, settings.psi_warn, settings.psi_alert,
            entities=int(rows[key].nunique()) if key in rows.columns else None,
            to_date=model.feature_set.to_date)
        report.status = worst_status(report.score, report.features)
    labelled = rows["label"].notna().to_numpy()
    trained_to = model.metadata.get("trained_to")
    if trained_to is not None:
        labelled &= (rows["as_of"] > pd.Timestamp(trained_to)).to_numpy()
    labelled &= ~censored(frame, rows, model.feature_set.entity_key,
                          int(model.metadata.get("deal_censor_days") or 0))
    y = rows.loc[labelled, "label"].to_numpy(dtype=int)
    grading = model.grading
    grades = (grading.grades(p[labelled]) if grading is not None
              else np.full(len(y), "?", dtype=object))
    report.calibration = calibration_on(y, p[labelled], np.asarray(grades), settings)
    return report


def _since(given: datetime | None, profile: ReferenceProfile | None,
           metadata: dict[str, Any]) -> pd.Timestamp:
    """``--since``, else the end of the model's reference period, else of its test period."""
    if given is not None:
        ts = pd.Timestamp(given)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    end = (profile.period.get("to") if profile is not None else None) or metadata.get("test_to")
    if end is None:
        raise ValueError("the model records no test period: give --since")
    return pd.Timestamp(end)


def log_report(report: TaskReport, settings: MonitorSettings) -> str:
    """The report as an MLflow run in the task's experiment; its id."""
    import mlflow

    from training.registry import ensure_experiment, tracking

    experiment_id = ensure_experiment(settings.experiment or report.task, settings.tracking_uri)
    with tracking(settings.tracking_uri), mlflow.start_run(
            experiment_id=experiment_id, run_name=f"monitor {report.task}") as run:
        mlflow.set_tags({KIND_TAG: "monitor", "task": report.task,
                         "model_version": report.version, "status": report.status,
                         "alert": str(report.alert).lower()})
        mlflow.log_params({"data": str(settings.data), "since": report.since,
                           "alias": settings.alias, "rows": report.rows,
                           "psi_warn": settings.psi_warn, "psi_alert": settings.psi_alert,
                           "ece_alert": settings.ece_alert})
        metrics: dict[str, float] = {"rows": float(report.rows)}
        if report.score is not None:
            metrics["score_psi"] = report.score.psi
            metrics["max_feature_psi"] = max((f.psi for f in report.features), default=0.0)
            metrics.update({f"psi_{f.name}": f.psi for f in report.features})
        c = report.calibration
        if c is not None:
            metrics.update({"outcomes": float(c.outcomes), "recent_ece": c.ece,
                            "recent_roc_auc": c.roc_auc, "recent_observed_rate": c.observed,
                            "recent_predicted_rate": c.predicted})
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.log_dict(_clean(report.to_json()), "monitor.json")
        return str(run.info.run_id)


def champion_tasks(settings: MonitorSettings) -> list[str]:
    """The tasks asked for, else every task with a model under the alias."""
    from modeling.registry import resolve_alias

    if settings.tasks:
        return list(settings.tasks)
    return [t for t in TASKS if resolve_alias(t, settings.alias, settings.tracking_uri)]


def run_monitor(settings: MonitorSettings) -> list[TaskReport]:
    """Every task's report, logged when ``settings.log``."""
    from features.own import read_own
    from training.data import read_tables

    tasks = champion_tasks(settings)
    if not tasks:
        raise LookupError(f"no task has a model under the alias {settings.alias!r}")
    tables, _ = read_tables(settings.data)
    own = read_own(settings.data)
    out = []
    for task in tasks:
        report = monitor_task(task, tables, settings, own)
        if settings.log:
            report.run_id = log_report(report, settings)
        out.append(report)
    return out


def exit_code(reports: list[TaskReport]) -> int:
    return 1 if any(r.alert for r in reports) else 0


STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red"}


def _psi(d: Drift) -> str:
    return "n/a" if not math.isfinite(d.psi) else f"{d.psi:.3f}"


def _expected(d: Drift) -> str:
    return f"{d.expected:.3f}"


def print_reports(reports: list[TaskReport], console: Any, top: int = 8) -> None:
    """Per task: the score's and the worst features' PSI, then the recent calibration."""
    from rich.table import Table

    for r in reports:
        title = (f"{r.task} version {r.version}: {r.rows:,} snapshots after {r.since[:10]} "
                 f"- {r.status.upper()}")
        if r.score is None:
            console.print(f"[bold]{title}[/bold]")
        else:
            table = Table(title=title, title_justify="left",
                          caption="no drift: the PSI sampling alone gives at these sizes; "
                          "warn and alert are read above it", caption_justify="left")
            for name, justify in (("", "left"), ("PSI", "right"), ("no drift", "right"),
                                  ("status", "left")):
                table.add_column(name, justify=justify)  # type: ignore[arg-type]
            table.add_row("score (0-100)", _psi(r.score), _expected(r.score), r.score.status,
                          style=STYLE[r.score.status])
            for f in r.features[:top]:
                table.add_row(f.name, _psi(f), _expected(f),
                              f.status + (" (trends)" if f.trending else ""),
                              style=STYLE[f.status])
            rest = r.features[top:]
            if rest:
                worse = sum(f.status != "ok" for f in rest)
                table.add_row(f"... {len(rest)} more features", "", "", f"{worse} not ok")
            console.print(table)
        c = r.calibration
        if c is None:
            continue
        if c.status == "too few outcomes":
            console.print(f"  outcomes since: {c.outcomes:,} ({c.positives:,} positive): too "
                          "few for calibration")
            continue
        cal = Table(title=f"  {c.outcomes:,} outcomes known since: ECE {c.ece:.3f} "
                          f"({c.status}), ROC AUC {c.roc_auc:.3f}", title_justify="left")
        for name in ("grade", "rows", "predicted", "observed"):
            cal.add_column(name, justify="left" if name == "grade" else "right")
        for g in c.grades:
            cal.add_row(g.grade, f"{g.rows:,}", f"{g.predicted:.1%}", f"{g.observed:.1%}")
        cal.add_row("all", f"{c.outcomes:,}", f"{c.predicted:.1%}", f"{c.observed:.1%}",
                    style="bold")
        console.print(cal)
    alerts = [r.task for r in reports if r.alert]
    console.print(f"[bold red]alert: {', '.join(alerts)}[/bold red]" if alerts
                  else "[green]no alert[/green]")
