"""What the `train`, `evaluate` and `promote` commands do, with their console output.

The CLI (``leadscore/cli.py``) only parses flags and calls these functions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.tasks import task_spec
from modeling.registry import CHAMPION
from training.audit import AuditReport
from training.evaluate import WEAK_STAGE_AUC, Evaluation, weak_stages
from training.fit import BoosterFitter, fit_locally
from training.train import TrainResult, TrainSettings, train

TRAIN_STEPS = 10
"""Steps ``train`` reports through ``on_step`` (for the progress bar)."""

ROWS = (
    ("LightGBM", "test_"),
    ("logistic regression", "baseline_lr_test_"),
    ("CRM rate", "baseline_rate_test_"),
    ("CRM default stage %", "baseline_crm_default_test_"),
    ("oracle (ground truth)", "oracle_test_"),
)


def _f(v: float | None) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.4f}"


def metrics_table(task: str, metrics: dict[str, float], title: str | None = None,
                  period: str = "test", model_label: str = "LightGBM") -> Table:
    """The model's metrics on a period beside its baselines and the oracle."""
    table = Table(title=title or f"{task}: test period")
    for name in ("scorer", "ROC AUC", "PR AUC", "log loss", "Brier", "ECE"):
        table.add_column(name, justify="left" if name == "scorer" else "right")
    for label, test_prefix in ROWS:
        label = model_label if test_prefix == "test_" else label
        prefix = test_prefix.replace("test_", f"{period}_")
        if f"{prefix}roc_auc" not in metrics and f"{prefix}log_loss" not in metrics:
            continue
        table.add_row(
            label,
            *(_f(metrics.get(prefix + k)) for k in ("roc_auc", "pr_auc", "log_loss", "brier",
                                                    "ece")),
        )
    return table


def grades_table(ev: Evaluation) -> Table | None:
    """Per grade on the test period: its scores, rows, share and observed rate."""
    grading = ev.model.grading
    if grading is None or not ev.grades:
        return None
    where = "the cross-validated rows" if ev.static else "the test period"
    table = Table(title=f"{ev.task}: grades on {where}")
    for name in ("grade", "scores", "rows", "share", "observed rate"):
        table.add_column(name, justify="left" if name == "grade" else "right")
    bounds = grading.ranges()
    for r in ev.grades:
        rate = "–" if r.observed_rate is None else f"{r.observed_rate:.1%}"
        table.add_row(r.grade, bounds[r.grade], f"{r.count:,}", f"{r.share:.1%}", rate)
    return table


def run_train(settings: TrainSettings, console: Console | None = None,
              fit: BoosterFitter = fit_locally) -> TrainResult:
    """Train with a progress bar, then print metrics, the calibration and the gate's verdict
    (``fit``: where the boosters are fit, see :func:`training.train.train`)."""
    console = console or Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        job = bar.add_task(f"{settings.task}: loading", total=TRAIN_STEPS)
        state: dict[str, Any] = {"label": "loading"}

        def step(what: str) -> None:
            state["label"] = what
            bar.update(job, advance=1, description=f"{settings.task}: {what}")

        def iteration(i: int) -> None:
            if i % 25 == 0:
                bar.update(job, description=f"{settings.task}: boosting, round {i}")

        result = train(settings, on_step=step, on_iteration=iteration, fit=fit)
        bar.update(job, completed=TRAIN_STEPS, description=f"{settings.task}: done")
    print_result(result, console)
    return result


def strict_table(metrics: dict[str, float], rows: dict[str, int]) -> Table | str | None:
    """The strict backtest's figures beside the ordinary split's (None: not run; a line
    when it had nothing to leave out or too little left to fit)."""
    if "strict_train_rows_dropped" not in metrics:
        return None
    dropped = (int(metrics["strict_train_rows_dropped"]),
               int(metrics["strict_validation_rows_dropped"]))
    if not any(dropped):
        return ("strict backtest: every training and validation label was known at the test "
                "start; the figures above are already strict")
    left_out = (f"{dropped[0]:,} of {rows.get('train', 0):,} training and {dropped[1]:,} of "
                f"{rows.get('validation', 0):,} validation rows left out: their label was "
                "not known at the test start")
    if "strict_test_log_loss" not in metrics:
        return f"strict backtest: {left_out}; too little was left to fit a model"
    table = Table(title=f"strict backtest ({left_out})")
    for name in ("scorer", "ROC AUC", "strict", "log loss", "strict "):
        table.add_column(name, justify="left" if name == "scorer" else "right")
    for label, prefix in (("LightGBM", "test_"), ("CRM rate", "baseline_rate_test_"),
                          ("logistic regression", "baseline_lr_test_")):
        if f"strict_{prefix}log_loss" in metrics:
            table.add_row(label, _f(metrics.get(prefix + "roc_auc")),
                          _f(metrics[f"strict_{prefix}roc_auc"]),
                          _f(metrics.get(prefix + "log_loss")),
                          _f(metrics[f"strict_{prefix}log_loss"]))
    return table


def local_path(uri: str) -> str:
    """A ``file:`` URI as a path, relative to the current folder when under it; any other
    URI as it is."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    path = Path(unquote(parsed.path))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def report_place(result: TrainResult) -> str:
    """Where a run's report is: the ``--out`` folder, else the run's artifacts in MLflow."""
    run = f"MLflow run {result.run_id}"
    if result.report_dir is not None:
        return f"{result.report_dir} (also logged to {run})"
    if result.report_uri is None:
        return f"the artifacts of {run}"
    return f"{local_path(result.report_uri)} (the artifacts of {run})"


def findings_table(audit: AuditReport) -> Table:
    """The leakage audit's findings: column, rule, evidence, reason and what became of it."""
    table = Table(title=f"{audit.task}: leakage audit of the training period "
                  f"({audit.rows:,} rows, {audit.entities:,} entities)")
    for name in ("column", "rule", "evidence", "reason", "model"):
        table.add_column(name)
    excluded = audit.excluded
    for f in audit.findings:
        evidence = ", ".join(f"{k} {v:g}" for k, v in f.evidence.items())
        verdict = ("left out" if f.column in excluded
                   else "kept (--allow-column)" if f.column in audit.allowed else "not a feature")
        table.add_row(f.column, f.rule, evidence, f.reason, verdict)
    return table


def print_audit(audit: AuditReport, console: Console, training: bool = True) -> None:
    """The findings, or a line saying there are none, then what was not checked and the
    strongest columns on their own."""
    if audit.findings:
        console.print(findings_table(audit))
    else:
        console.print(f"{audit.task}: leakage audit of the training period "
                      f"({audit.rows:,} rows): no column flagged")
    for rule, why in audit.skipped.items():
        console.print(f"  {rule} not checked: {why}")
    strongest = sorted(audit.probe.items(), key=lambda kv: -kv[1])[:3]
    if strongest:
        console.print("  strongest on their own (out-of-fold AUC): "
                      + ", ".join(f"{c} {auc:.3f}" for c, auc in strongest))
    if not training:
        return
    for column in audit.excluded:
        rules = ", ".join(dict.fromkeys(f.rule for f in audit.findings if f.column == column))
        console.print(f"[yellow]left out:[/yellow] {column} ({rules}, reasons above); "
                      f"--allow-column {column} keeps it")
    for column, reason in audit.kept.items():
        console.print(f"[yellow]kept by --allow-column, a leak risk:[/yellow] {column}: {reason}")
    for column in audit.allowed:
        if column not in audit.flagged:
            console.print(f"note: --allow-column {column}: the audit did not flag it")


def print_own(own: dict[str, Any] | None, console: Console) -> None:
    """The export's own columns the model reads, those left out, and the leak risks."""
    if not own:
        return
    used, risks = own.get("used") or [], own.get("leak_risks") or []
    left = own.get("left_out") or {}
    console.print(f"the export's own columns: {len(used)} read as features"
                  + (f", {len(left)} left out" if left else ""), soft_wrap=True)
    by_reason: dict[str, list[str]] = {}
    for name, why in left.items():
        by_reason.setdefault(why.split(" (")[0].split(":")[0], []).append(name)
    for why, names in by_reason.items():
        console.print(f"  left out, {why}: {', '.join(names)}", soft_wrap=True, highlight=False)
    if risks:
        console.print(f"  [yellow]leak risk[/yellow] (only the export's value exists, read by "
                      f"allow_current_values): {', '.join(risks)}", soft_wrap=True)


def print_result(result: TrainResult, console: Console) -> None:
    if result.audit is not None:
        print_audit(result.audit, console)
    ev = result.evaluation
    if ev is None:
        where = f" as [bold]{result.alias}[/bold]" if result.alias else ""
        forced = ("; promoted by --force" if result.decision is not None
                  and result.decision.forced else "")
        console.print(
            f"unchanged data, settings and code (fingerprint {(result.fingerprint or '')[:12]}): "
            f"version {result.version} kept{where}{forced}; nothing new registered"
        )
        if result.run_id is not None:
            console.print(f"its report (plots, model card): {report_place(result)}",
                          soft_wrap=True)
        if result.withheld:
            console.print(f"[yellow]not served:[/yellow] {result.withheld}")
        return
    print_own(ev.model.metadata.get("own_features"), console)
    static = ev.static
    if static:
        why = ev.params.get("static_reason") or "--static"
        console.print(
            f"[yellow]static mode ({why}):[/yellow] grouped {ev.params.get('folds')}-fold "
            f"cross-validation, each {task_spec(ev.task).entity} in one fold. [bold]These "
            "figures are not a backtest[/bold]: no fold is later than another (MLflow: "
            "evaluation=static_cv)", soft_wrap=True)
    console.print(metrics_table(
        ev.task, ev.metrics,
        title=f"{ev.task}: cross-validated, not a backtest" if static else None,
        model_label="rate model" if ev.model.is_rate_model else "LightGBM"))
    if ev.regime_note:
        colour = "yellow" if ev.regime == "rate_model" else "cyan"
        console.print(f"[{colour}]{ev.regime_note}[/{colour}]", soft_wrap=True)
    m = ev.metrics
    calibration = ev.model.metadata.get("calibration") or {}
    methods = ", ".join(
        method if key == "__all__" else f"{key}: {method}"
        for key, method in calibration.items()
    ) if isinstance(calibration, dict) else str(calibration)
    rows = ev.model.metadata.get("rows") or {}
    counts = " / ".join(f"{rows.get(k, 0):,}" for k in ("train", "validation", "test"))
    console.print(
        f"lift in the top decile {_f(m.get('test_lift_top_decile'))}; "
        f"calibration: {methods or 'none'}; rows train / validation / test: {counts}"
    )
    if ev.rounds:
        cluster = (ev.model.metadata.get("training") or {}).get("cluster")
        console.print(f"trained on the Dask cluster {cluster}: lightgbm.dask has no early "
                      "stopping, so the rounds were chosen first on a sampled validation",
                      soft_wrap=True, highlight=False)
        for key, choice in ev.rounds.items():
            name = "" if key == "__all__" else f"{key}: "
            console.print(f"  {name}{choice.describe()}", soft_wrap=True, highlight=False)
    if ev.params.get("small_data") and not ev.model.is_rate_model:
        console.print(
            f"small data ({ev.params['train_entities']:,} {task_spec(ev.task).plural} to train "
            "on): smaller, smoother trees (BoosterParams.for_small_data)"
        )
    if "test_roc_auc_oracle_ratio" in m:
        console.print(f"ROC AUC is {m['test_roc_auc_oracle_ratio']:.3f} of the oracle's")
    grades = grades_table(ev)
    if grades is not None:
        console.print(grades)
    for warning in ev.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    strict = strict_table(m, rows)
    if strict is not None:
        console.print(strict)
    for stage, auc in ({} if ev.model.is_rate_model else weak_stages(m)).items():
        console.print(
            f"[yellow]warning:[/yellow] inside {stage} the model ranks {task_spec(ev.task).plural}"
            f" little better than chance (test ROC AUC {auc:.3f}, below {WEAK_STAGE_AUC})"
        )
    entities = ev.split.test[ev.feature_set.entity_key].nunique()
    if entities < 500:
        where = "the cross-validation scores" if static else "the test period holds"
        console.print(
            f"[yellow]note:[/yellow] {where} only {entities:,} "
            f"{task_spec(ev.task).plural}; these metrics are noisy "
            "(a few hundredths of AUC either way). Train on more history for a firm comparison."
        )
    console.print(f"report (plots, model card): {report_place(result)}", soft_wrap=True)
    if result.version is None:
        console.print(f"run {result.run_id} logged; not registered")
        return
    verdict = result.alias or ("champion" if result.decision and result.decision.promote
                               else "challenger")
    reason = result.decision.reason if result.decision else ""
    console.print(
        f"registered {ev.task} version {result.version} as [bold]{verdict}[/bold]: {reason}"
    )
    if result.decision is not None and result.decision.forced:
        console.print("[yellow]forced:[/yellow] the gate said no; --force promoted it anyway "
                      f"(MLflow tag promotion_forced=true on run {result.run_id})")
    if result.withheld:
        console.print(f"[yellow]not served:[/yellow] {result.withheld}")


def run_promote(task: str, version: str, tracking_uri: str | None = None,
                console: Console | None = None) -> None:
    """Move ``champion`` to a version by hand (the old champion becomes challenger)."""
    from training.registry import promote

    console = console or Console()
    previous = promote(task, version, tracking_uri)
    was = f" (was version {previous}, now challenger)" if previous and previous != version else ""
    console.print(f"{task}: champion -> version {version}{was}")


def run_evaluate(
    task: str,
    data: Path,
    alias: str | None = CHAMPION,
    version: str | None = None,
    tracking_uri: str | None = None,
    all_rows: bool = False,
    console: Console | None = None,
) -> dict[str, float]:
    """Score a registered version on a data folder's test period (or every labelled row)."""
    from modeling.registry import load_model_version
    from training.data import load_training_inputs
    from training.metrics import binary_metrics
    from training.split import time_split

    console = console or Console()
    spec = task_spec(task)
    model, info = load_model_version(task, alias, tracking_uri, version=version)
    stored_horizon = model.metadata.get("horizon_days")
    horizon = int(stored_horizon) if stored_horizon else spec.label.horizon_days
    with console.status(f"{task}: loading {data}"):
        inputs = load_training_inputs(data, task, horizon, feature_set=model.feature_set)
    rows = inputs.frame
    if not all_rows:
        rows = time_split(
            rows,
            spec.split_column(rows.columns),
            gap_days=spec.label.gap_days(horizon),
            censor_days=int(model.metadata.get("deal_censor_days", 0) or 0),
        ).test
        # Only rows after everything the model was fit or calibrated on are out of sample.
        trained_to = model.metadata.get("trained_to")
        if trained_to is not None:
            rows = rows.loc[rows["as_of"] > pd.Timestamp(trained_to)]
        if rows.empty or rows["label"].nunique() < 2:
            raise ValueError(
                f"no labelled rows of both classes after the model's training period "
                f"(trained to {trained_to}); use --all-rows to score in-sample rows"
            )
    prefix = "all" if all_rows else "test"
    y = rows["label"].to_numpy(dtype=int)
    metrics = {f"{prefix}_{k}": v for k, v in binary_metrics(y, model.predict_proba(rows)).items()}
    if inputs.oracle is not None:
        oracle = inputs.oracle(rows[[model.feature_set.entity_key, "as_of"]])
        metrics.update({f"oracle_{prefix}_{k}": v for k, v in binary_metrics(y, oracle).items()})
    where = "every labelled row" if all_rows else "the test period"
    console.print(metrics_table(task, metrics,
                                f"{task} version {info.version} on {where} of {data} "
                                f"({len(rows):,} rows)", period=prefix))
    return metrics


def run_audit(
    data: Path,
    tasks: list[str],
    out: Path | None = None,
    horizon_days: int | None = None,
    console: Console | None = None,
    static: bool = False,
) -> list[AuditReport]:
    """The leakage audit of each task's training period, printed and (with ``out``)
    written as JSON; findings are reported, not an error. The training period is the one
    ``train`` would use: static mode's (``static``, or data whose times cannot carry a time
    split, as ``train`` decides), else the time split's."""
    import json
    from dataclasses import replace

    from training.audit import audit_settings, audit_task
    from training.data import current_columns, load_training_inputs
    from training.evaluate import STATIC_CV, EvaluationConfig
    from training.train import static_reason, train_settings

    console = console or Console()
    settings = audit_settings()
    reports = []
    for task in tasks:
        with console.status(f"{task}: building the training set of {data}"):
            inputs = load_training_inputs(data, task, horizon_days)
            config = EvaluationConfig(horizon_days=horizon_days)
            why = static_reason(train_settings(data=data, task=task, static=static),
                                inputs.frame)
            if why is not None:
                config = replace(config, evaluation=STATIC_CV)
            report = audit_task(inputs.frame, task, inputs.feature_set, config,
                                tables=inputs.tables, settings=settings,
                                current=current_columns(inputs))
        if why is not None:
            console.print(f"static mode ({why}): the audit reads the training rows of "
                          "train's static mode, not a time split's", soft_wrap=True,
                          highlight=False)
        print_audit(report, console, training=False)
        reports.append(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        body = {"data": str(data), "tasks": [r.to_json() for r in reports]}
        out.write_text(json.dumps(body, indent=2, default=str))
        console.print(f"audit written to {out}")
    return reports
