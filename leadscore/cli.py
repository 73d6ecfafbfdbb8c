"""The `leadscore` command line: thin wrappers over importable functions."""

from __future__ import annotations

from pathlib import Path

import typer

from features.mapping.load import PRESETS
from features.tasks import TASKS
from leadscore.pipeline_cmd import pipeline_app

TASK_HELP = "One of: " + ", ".join(TASKS) + "."
HORIZON_HELP = "Label horizon in days, for tasks with one (default: the task's; " + ", ".join(
    f"{t.name} {t.label.horizon_days}" for t in TASKS.values() if t.label.horizon_days
) + ")."

PRESET_NAMES = ", ".join(PRESETS)

app = typer.Typer(
    name="leadscore",
    help="Calibrated lead and deal scores from your CRM history.",
    no_args_is_help=True,
    add_completion=False,
)


app.add_typer(pipeline_app, name="pipeline")


@app.callback()
def main() -> None:
    """leadscore: generate, import, validate, build, train, promote, score, pipeline, serve,
    tracking-server."""


@app.command()
def validate(
    data: str = typer.Option(..., "--data", help="Folder with one CSV or Parquet file per table."),
    report: str = typer.Option(
        ..., "--report", help="Where to write every rejection as CSV (table,row,column,reason)."
    ),
) -> None:
    """Check a CRM folder against the data contract; exit 1 if any row was rejected.

    Exit codes: 0 every row valid, 1 some rows rejected (see the report), 2 a file or the
    folder cannot be read.
    """
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from features.loader import DataContractError, validate_folder

    console = Console()
    try:
        with console.status("validating", spinner="dots") as status:
            result = validate_folder(Path(data), Path(report), progress=status.update)
    except (DataContractError, OSError) as exc:  # OSError: the report cannot be written
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    counts = Table(title=f"validation of {data}")
    for name in ("table", "read", "valid", "rejected"):
        counts.add_column(name, justify="left" if name == "table" else "right")
    for rec in result.summary().to_dict("records"):
        cells = [str(rec["table"])] + [f"{rec[k]:,}" for k in ("read", "valid", "rejected")]
        counts.add_row(*cells, style="red" if rec["rejected"] else None)
    console.print(counts)
    for name, cols in result.missing_columns.items():
        console.print(f"note: {name} has no column(s) {', '.join(cols)}; read as empty")
    if result.ok:
        console.print(f"every row is valid; empty report written to {report}")
        raise typer.Exit(0)
    reasons = Table(title="top reasons")
    for name in ("table", "column", "reason", "count"):
        reasons.add_column(name, justify="right" if name == "count" else "left")
    for rec in result.top_reasons(10).to_dict("records"):
        reasons.add_row(*(str(rec[k]) for k in ("table", "column", "reason")), f"{rec['count']:,}")
    console.print(reasons)
    console.print(f"{len(result.rejections):,} problem(s) written to {report}")
    raise typer.Exit(1)


@app.command("import")
def import_export(
    mapping: Path = typer.Option(
        ..., "--mapping", help="The mapping YAML (names a preset: " + PRESET_NAMES + "), or a "
        "preset's name to use it as shipped."
    ),
    source: Path = typer.Option(..., "--source", help="Folder holding the export's files."),
    out: Path = typer.Option(..., "--out", help="Folder to write the contract's tables into."),
    report: Path = typer.Option(
        None, "--report",
        help="Where to write every rejected row as CSV: file,row,column,reason,table,field "
        "(file, row and column of the export; default OUT/rejections.csv).",
    ),
) -> None:
    """Turn a CRM export into the contract's tables with a mapping, and validate them.

    Writes the valid rows (one Parquet file per table), OUT/import_report.json (what was
    derived, values nothing mapped, rows skipped) and the rejections. Exit codes: 0 every
    row valid, 1 some rows rejected (see the report), 2 the mapping or the export cannot be
    used (each mapping problem names its key and line).
    """
    from leadscore.import_cmd import run_import_command
    from leadscore.memory import reuse_freed_memory

    reuse_freed_memory()  # a 1M-lead import: a tenth of its CPU time was page faults
    raise typer.Exit(run_import_command(mapping, source, out, report))


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default 8000)."),
    workers: int = typer.Option(None, help="Worker processes sharing one socket (default 1)."),
) -> None:
    """Serve the scoring API (keys from LEADSCORE_API_KEY_HASHES; see /docs) and the
    pipeline review of LEADSCORE_DATA_DIR at /pipeline (sign in with an API key)."""
    from review.web import create_app
    from serving.server import serve as run_server
    from serving.settings import get_serving_settings

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v}
    try:
        settings = get_serving_settings(**overrides)
    except ValueError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        run_server(settings, create_app)
    except FileNotFoundError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("tracking-server")
def tracking_server(
    backend_store_uri: str = typer.Option(
        None, help="Runs and registry database (default postgresql://postgres@127.0.0.1:5432/"
                   "leadscore; LEADSCORE_TRACKING_BACKEND_STORE_URI)."),
    artifacts_destination: str = typer.Option(
        None, help="Folder or URI for the models' files (default models/server-artifacts; "
                   "LEADSCORE_TRACKING_ARTIFACTS_DESTINATION)."),
    host: str = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default 5000)."),
    workers: int = typer.Option(None, help="Server worker processes (default 2)."),
    allowed_hosts: str = typer.Option(
        None, help="Comma-separated Host headers to accept besides 127.0.0.1:PORT and "
                   "localhost:PORT, e.g. mlflow.internal:5000."),
) -> None:
    """Run an MLflow tracking server on PostgreSQL for several machines and API replicas:
    creates the database if missing, runs `mlflow db upgrade`, then `mlflow server`.
    Point training and serving at it with MLFLOW_TRACKING_URI=http://HOST:PORT."""
    import subprocess

    from sqlalchemy.exc import SQLAlchemyError

    from leadscore.tracking_server import get_tracking_server_settings, run
    from modeling.registry import redact

    try:
        settings = get_tracking_server_settings(
            backend_store_uri=backend_store_uri, artifacts_destination=artifacts_destination,
            host=host, port=port, workers=workers, allowed_hosts=allowed_hosts)
    except ValueError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        run(settings, echo=typer.echo)
    except (SQLAlchemyError, ImportError) as exc:
        typer.echo(f"cannot start: {redact(f'{type(exc).__name__}: {exc}')} (is PostgreSQL "
                   "running, and the [server] extra installed?)", err=True)
        raise typer.Exit(2) from None
    except subprocess.CalledProcessError as exc:
        typer.echo("cannot start: mlflow db upgrade failed (its output is above)", err=True)
        raise typer.Exit(2) from exc


@app.command()
def score(
    task: str = typer.Option(..., help=TASK_HELP),
    input: str = typer.Option(..., "--input", help="CSV or Parquet of leads or deals."),
    output: str = typer.Option(..., "--output", help="Where to write results (.csv/.parquet)."),
    data: str = typer.Option(
        None, help="Folder of the other contract tables (activities, opportunity_history...)."
    ),
    as_of: str = typer.Option(
        None, help="Score as of this UTC time (default: just after the newest event in the "
        "input and --data, not now: an export scored as of today would read every day since "
        "as silence). More than LEADSCORE_STALE_DATA_DAYS (30) days past that event warns."
    ),
    model: str = typer.Option(
        None, help="models:/<task>@<alias>, models:/<task>/<version> or a saved model folder."
    ),
    reasons: bool = typer.Option(True, help="Compute reasons (pred_contrib)."),
    trend: bool = typer.Option(
        True, help="Also score each row 7 and 28 days earlier (trend_* columns)."
    ),
    what_if: bool = typer.Option(
        False, "--what-if", help="List up to three actions that would raise each score "
        "(a what_if column of JSON); re-scores the file once per action."
    ),
    export: str = typer.Option(
        None, "--export", help="salesforce or hubspot: also write the CRM's import file "
        "(keyed by its record ids, fields from the mapping's export: section) beside "
        "--output, for one upload."
    ),
    mapping: Path = typer.Option(
        None, "--mapping", help="The mapping whose export: section names the CRM fields "
        "(default: the --export CRM's preset)."
    ),
) -> None:
    """Score a file of leads or deals with the champion model, as the API would.

    Scores are as of the data's end unless --as-of says otherwise; the time used is printed.
    With --export, the results also go to the CRM's own import format (Salesforce Data
    Loader, HubSpot import), one file for the scored object.
    """
    from pathlib import Path

    import pandas as pd
    from rich.console import Console
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from leadscore.memory import reuse_freed_memory
    from serving.batch import BatchInputError, score_file
    from serving.models import source_for_uri
    from serving.settings import get_scoring_settings
    from serving.staleness import as_of_line

    reuse_freed_memory()
    target = None
    if mapping is not None and export is None:
        typer.echo("--mapping names the export: section for --export; give --export too",
                   err=True)
        raise typer.Exit(2)
    if export is not None:
        from leadscore.write_back_cmd import export_mapping

        target = export_mapping(task, export, mapping)  # before scoring: fail fast
    settings = get_scoring_settings()
    try:
        loaded = source_for_uri(task, model, settings.tracking_uri).load(task) if model else None
    except (ValueError, LookupError, OSError) as exc:
        typer.echo(f"cannot load the model: {exc}", err=True)
        raise typer.Exit(2) from exc
    stamp = pd.Timestamp(as_of).to_pydatetime() if as_of else None
    try:
        # On a terminal only (stderr): a log or a pipe gets the summary lines alone.
        console = Console(stderr=True)
        with Progress(TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
                      TimeElapsedColumn(), console=console, transient=True,
                      disable=not console.is_terminal) as bar:
            job = bar.add_task("scoring", total=None)
            report = score_file(
                task, Path(input), Path(output), settings, data_dir=Path(data) if data else None,
                as_of=stamp, explain=reasons, model=loaded,
                progress=lambda n: bar.advance(job, n), trend=trend,
                what_if=what_if,
            )
    except (BatchInputError, LookupError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(as_of_line(report.as_of, report.data_end, report.as_of_default))
    unscored = (f", {report.not_applicable:,} the task does not apply to"
                if report.not_applicable else "")
    typer.echo(
        f"scored {report.scored:,} ({report.skipped:,} closed or not yet created skipped"
        f"{unscored}) with {task} version {report.model_version} -> {report.output}"
    )
    if report.report is not None:
        typer.echo(f"{report.read:,} rows read: {report.scored:,} scored, "
                   f"{report.not_applicable:,} not applicable, {report.skipped:,} not scored, "
                   f"{report.rejected:,} rejected; every row not scored, and why: "
                   f"{report.report}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if report.rejected:
        typer.echo(f"error: {report.rejected:,} input row(s) rejected (see {report.report}); "
                   "the others were scored", err=True)
    if report.data_rejected:
        typer.echo(f"error: {report.data_rejected:,} row(s) of --data rejected and left out "
                   f"of the features (see {report.data_report}); the rest was read",
                   err=True)
    failed = bool(report.rejected or report.data_rejected)
    if export is not None and target is not None:
        from leadscore.write_back_cmd import run_write_back

        code = run_write_back(task, Path(output), export, *target, report.as_of)
        raise typer.Exit(code or (1 if failed else 0))
    if failed:
        raise typer.Exit(1)


@pipeline_app.callback()
def pipeline(
    ctx: typer.Context,
    data: Path = typer.Option(
        None, "--data", help="Folder with one CSV or Parquet file per table."),
    as_of: str = typer.Option(
        None, "--as-of", help="Review as of this UTC time (default: the data's latest event)."),
    period: str = typer.Option(None, help="month or quarter (default: month)."),
    target: float = typer.Option(
        None, help="The period's bookings target, for the pipeline coverage."),
    out: Path = typer.Option(
        Path("review"), "--out", help="Folder for review.html, review.json and at_risk.csv."),
    model: str = typer.Option(
        None, help="models:/deal_close@<alias>, models:/deal_close/<version> or a saved "
        "model folder (default: the registry's champion)."),
) -> None:
    """The pipeline review as of a date: review.html, review.json and at_risk.csv.

    review.html is one self-contained page; at_risk.csv lists every open deal, most at risk first.

    Exit codes: 0 written; 2 bad input (the error says what to change).
    """
    if ctx.invoked_subcommand is not None:
        return
    import pandas as pd
    from pydantic import ValidationError
    from rich.progress import Progress

    from features.loader import DataContractError
    from review.build import ReviewInputError
    from review.files import run_review, summary_lines
    from review.settings import get_review_settings

    if data is None:
        typer.echo("error: --data is required (the CRM folder to review)", err=True)
        raise typer.Exit(2)
    options = {"review_period": "--period", "review_target": "--target"}
    try:
        settings = get_review_settings(review_period=period, review_target=target)
    except ValidationError as exc:
        for e in exc.errors():
            name = options.get(str(e["loc"][0]), str(e["loc"][0])) if e["loc"] else ""
            typer.echo(f"error: {name}: {e['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None
    try:
        stamp = pd.Timestamp(as_of) if as_of else None
    except ValueError:
        typer.echo(f"error: --as-of: {as_of!r} is not a date or time", err=True)
        raise typer.Exit(2) from None
    try:
        with Progress(transient=True) as bar:
            job = bar.add_task("scoring open deals", total=None)
            run = run_review(data, out, settings, as_of=stamp, model_uri=model,
                             progress=lambda n: bar.advance(job, n))
    except (DataContractError, ReviewInputError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (LookupError, OSError) as exc:
        typer.echo(f"error: cannot load the deal model: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in summary_lines(run.review):
        typer.echo(line)
    if run.rejected_rows:
        typer.echo(f"note: {run.rejected_rows:,} invalid rows were left out; run "
                   "`leadscore validate` for the report", err=True)
    took = sum(run.seconds.values())
    typer.echo(f"wrote {', '.join(str(p) for p in run.paths.values())} in {took:.1f} s")


@app.command()
def generate(
    out: Path = typer.Option(..., help="Folder to write the tables into (created if needed)."),
    leads: int = typer.Option(5000, min=1, help="Number of leads to simulate."),
    seed: int = typer.Option(0, help="Random seed: same seed, same bytes."),
    start: str = typer.Option("2024-01-01", help="First day of the simulated history (UTC)."),
    months: int = typer.Option(24, min=1, help="Length of the history in months."),
    installed_base: int = typer.Option(
        None, min=0, help="Customers who bought before the first day, renewing in it "
        "(default: 6 per 100 leads; 0 for none)."
    ),
    format: str = typer.Option(
        "contract", "--format",
        help="contract: the contract's tables as Parquet, with _truth/; salesforce or "
        "hubspot: the CRM's own export files (CSV, history included), to import with "
        "`leadscore import --mapping salesforce|hubspot`.",
    ),
    drift: bool = typer.Option(
        False, "--drift", help="The last quarter of the months shifts: more outbound and "
        "paid leads, fewer activities, a slower pipeline (for `leadscore monitor`).",
    ),
) -> None:
    """Simulate a B2B CRM with known ground truth (tables + _truth/), or as a CRM export."""
    from leadscore.generate_cmd import FORMATS, run_generate

    if format not in FORMATS:
        typer.echo(f"unknown format {format!r}; use one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    run_generate(out=out, n_leads=leads, seed=seed, start=start, months=months,
                 installed_base=installed_base, fmt=format, drift=drift)


@app.command()
def build(
    task: str = typer.Option(..., help=TASK_HELP),
    data: Path = typer.Option(..., "--data", help="Folder with one CSV or Parquet file per table."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write the training set to."),
    horizon_days: int = typer.Option(None, min=1, help=HORIZON_HELP),
    every_days: int = typer.Option(
        None, min=1, help="Days between snapshots of an open entity (default: the task's, 7)."
    ),
    partitions: int = typer.Option(
        1, "--partitions", min=1, help="Build by this many partitions of whole accounts, "
        "one at a time in memory (1: the whole folder at once). The rows are the same; "
        "the tables must be Parquet."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes building partitions at once (with "
        "--cluster local: the cluster's worker processes)."
    ),
    cluster: str = typer.Option(
        None, "--cluster", help="Build the partitions on a Dask cluster: 'local' (worker "
        "processes on this machine) or a scheduler's tcp://HOST:PORT, whose workers must "
        "read and write --work-dir. Needs the [dask] extra."
    ),
    work_dir: Path = typer.Option(
        None, "--work-dir", help="Folder for the partitions' tables and outputs, removed "
        "after (default: a temporary folder beside --out)."
    ),
) -> None:
    """Build a point-in-time training set: one row per snapshot, label, declared features."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from features.loader import DataContractError
    from features.training_set import build_steps
    from leadscore.build_cmd import PARTITION_STEPS, build_training_file
    from leadscore.cluster import ClusterError, check_address
    from leadscore.memory import reuse_freed_memory

    reuse_freed_memory()
    if task not in TASKS:
        typer.echo(f"unknown task {task!r}; use one of {', '.join(TASKS)}", err=True)
        raise typer.Exit(2)
    if (workers > 1 or cluster is not None) and partitions == 1:
        typer.echo("--workers and --cluster build partitions: give --partitions N (N > 1)",
                   err=True)
        raise typer.Exit(2)
    console = Console()
    try:
        if cluster is not None:
            check_address(cluster)
        with Progress(console=console, transient=True) as bar:
            steps = PARTITION_STEPS if partitions > 1 else build_steps(task) + 1
            job = bar.add_task(f"building {task}", total=steps)

            def advance(what: str) -> None:
                bar.update(job, advance=1, description=f"{task}: {what}")

            report = build_training_file(
                data, task, out, horizon_days=horizon_days, every_days=every_days,
                partitions=partitions, workers=workers, cluster=cluster, work_dir=work_dir,
                on_step=advance,
            )
    except (DataContractError, OSError, ClusterError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    s = report.summary
    console.print(
        f"{s.rows:,} snapshots of {s.entities:,} entities -> {report.out}\n"
        f"labelled {s.labelled:,} (label rate {s.label_rate:.1%}), "
        f"unlabelled (too recent to know) {s.unlabelled:,}"
    )
    if report.rejected_rows:
        console.print(
            f"note: {report.rejected_rows:,} invalid rows were left out; "
            "run `leadscore validate` for the report"
        )
    table = Table(title="missing values per feature (features with none are not listed)")
    table.add_column("feature")
    table.add_column("missing", justify="right")
    table.add_column("share", justify="right")
    for name, n in s.missing.items():
        if n:
            table.add_row(name, f"{n:,}", f"{n / max(s.rows, 1):.1%}")
    console.print(table)


@app.command()
def train(
    task: str = typer.Option(..., help=TASK_HELP),
    data: Path = typer.Option(
        ..., "--data", help="Folder of the contract's tables, or a training-set Parquet file."
    ),
    horizon_days: int = typer.Option(None, min=1, help=HORIZON_HELP),
    seed: int = typer.Option(7, help="Seed: same data and seed, same metrics."),
    deal_model: str = typer.Option(
        None, help="deal_close: 'single' (stage as a feature) or 'per_stage' boosters."
    ),
    out: Path = typer.Option(None, help="Folder for plots, model card and metrics."),
    experiment: str = typer.Option(None, help="MLflow experiment (default: the task)."),
    register: bool = typer.Option(True, help="Register the model and apply the gate."),
    num_boost_round: int = typer.Option(None, min=1, help="Most boosting rounds."),
    deal_censor_days: int = typer.Option(
        None, min=0, help="deal_close: leave out deals first seen this many days before the "
        "data's end (their outcome is not known yet; default 240)."
    ),
    grade_shares: str = typer.Option(
        None, help="Shares of grades A, B and C among the validation period's scores, D the "
        "rest (default 0.1,0.2,0.3: A the top 10 %, B the next 20 %, C the next 30 %)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Make this version champion even if the gate says no "
        "(recorded on the run as promotion_forced=true)."
    ),
    strict_backtest: bool = typer.Option(
        True, help="Also fit on labels known at the test start only, and report its figures."
    ),
    allow_column: list[str] = typer.Option(
        None, "--allow-column", help="Keep a feature column the leakage audit flagged "
        "(repeatable; the run and the model card name it as a leak risk)."
    ),
    static: bool = typer.Option(
        False, "--static", help="Grouped k-fold cross-validation instead of a time split, "
        "for an export without history or real timestamps (chosen anyway when the import "
        "made the times from an order, or the snapshots fall on fewer than 3 days). The "
        "figures are then not a backtest, and the run, the card and MLflow say so."
    ),
    folds: int = typer.Option(None, min=3, max=20, help="Folds of --static (default 5)."),
    gap_days: int = typer.Option(
        None, "--gap-days", min=0, help="Days of rows dropped before each period boundary "
        "so labels do not reach into the next period (default: the task's label horizon)."
    ),
    validation_fraction: float = typer.Option(
        None, min=0.01, max=0.49, help="Share of the entities, by first snapshot, in the "
        "validation window (default 0.15)."
    ),
    test_fraction: float = typer.Option(
        None, min=0.01, max=0.49, help="Share of the entities, latest first, in the test "
        "window (default 0.2)."
    ),
    cold_start: bool = typer.Option(
        True, help="With fewer than 40 positive or negative training outcomes register the "
        "CRM's rate as a rate model; below a few hundred, start LightGBM from the rates."
    ),
    cluster: str = typer.Option(
        None, "--cluster", help="Fit with lightgbm.dask on a Dask cluster: 'local' (worker "
        "processes on this machine) or a scheduler's tcp://HOST:PORT. It has no early "
        "stopping, so the rounds are chosen first by a single-machine fit early-stopped on "
        "a sample (--round-sample-rows); the run and the model card say so. Needs the "
        "[dask] extra."
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Worker processes of --cluster local (default: one "
        "per core)."
    ),
    round_sample_rows: int = typer.Option(
        None, "--round-sample-rows", min=1, help="With --cluster: most training (and "
        "validation) rows, whole entities, of the fit that chooses the rounds (default "
        "200000)."
    ),
) -> None:
    """Train, evaluate against baselines, log to MLflow, register and gate a model.

    The leakage audit runs on the training period first (as `leadscore audit` does); the
    feature columns it flags are left out of the model, each with its reason printed,
    unless kept with --allow-column. Tracking: MLFLOW_TRACKING_URI, else
    sqlite:///models/mlflow.db.
    """
    from pydantic import ValidationError

    from leadscore.cluster import ClusterError, check_address
    from leadscore.memory import reuse_freed_memory
    from training.commands import run_train
    from training.train import train_settings

    reuse_freed_memory()

    try:
        settings = train_settings(
            task=task, data=data, horizon_days=horizon_days, seed=seed, deal_model=deal_model,
            out_dir=out, experiment=experiment, register_model=register,
            num_boost_round=num_boost_round, deal_censor_days=deal_censor_days,
            grade_shares=grade_shares,
            force=force, strict_backtest=strict_backtest,
            allow_columns=tuple(allow_column) if allow_column else None,
            static=static, folds=folds, gap_days=gap_days,
            validation_fraction=validation_fraction, test_fraction=test_fraction,
            cold_start=cold_start, cluster=cluster, workers=workers,
            round_sample_rows=round_sample_rows,
        )
        if settings.cluster is not None:
            check_address(settings.cluster)
    except (ValidationError, ClusterError) as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        if settings.cluster is None:
            run_train(settings)
        else:
            from leadscore.cluster import dask_client
            from training.dask_fit import DaskBoosterFitter

            with dask_client(settings.cluster, n_workers=settings.workers) as client:
                run_train(settings, fit=DaskBoosterFitter(
                    client, sample_rows=settings.round_sample_rows))
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def audit(
    data: Path = typer.Option(
        ..., "--data", help="Folder of the contract's tables, or a training-set Parquet file."
    ),
    task: list[str] = typer.Option(
        None, "--task", help=TASK_HELP + " Repeatable; default: every task (a training-set "
        "file: give its task)."
    ),
    out: Path = typer.Option(None, "--out", help="Write the findings as JSON to this file."),
    horizon_days: int = typer.Option(None, min=1, help=HORIZON_HELP),
    static: bool = typer.Option(
        False, "--static", help="Audit every labelled row, as train --static does (data "
        "whose times are an order, not a calendar, is static by itself)."),
) -> None:
    """Look for leaks in each task's training period, as `train` does before fitting.

    Rules: a single-feature AUC probe per feature column (implausibly strong, or far above
    the rest), fields filled in only for one outcome, values known only on the export's
    day that are filled in far more often for one outcome, values changed after the
    outcome (field history), timestamps at or after the outcome, and measures that track the
    cycle's length. Thresholds: LEADSCORE_AUDIT_* variables (see the README). Exit codes:
    0 the audit ran (findings are reported, not an error), 1 the training set cannot be
    built or split, 2 the data cannot be read.
    """
    from features.loader import DataContractError
    from training.commands import run_audit

    tasks = list(task) if task else list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        typer.echo(f"unknown task(s) {unknown}; use one of {', '.join(TASKS)}", err=True)
        raise typer.Exit(2)
    if data.is_file() and len(tasks) != 1:
        typer.echo("a training-set file holds one task: give it with --task", err=True)
        raise typer.Exit(2)
    try:
        run_audit(data, tasks, out=out, horizon_days=horizon_days, static=static)
    except (DataContractError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def evaluate(
    task: str = typer.Option(..., help=TASK_HELP),
    data: Path = typer.Option(..., "--data", help="Folder of tables or a training-set Parquet."),
    alias: str = typer.Option("champion", help="Registry alias to evaluate."),
    version: str = typer.Option(None, help="A version number instead of the alias."),
    all_rows: bool = typer.Option(False, help="Score every labelled row, not the test period."),
) -> None:
    """Score a registered model version on a data folder and print its metrics."""
    from training.commands import run_evaluate

    try:
        run_evaluate(task, data, alias=alias, version=version, all_rows=all_rows)
    except (LookupError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def monitor(
    data: Path = typer.Option(..., "--data", help="The CRM export: a folder of tables."),
    since: str = typer.Option(
        None, "--since", help="Snapshots after this date are the recent period (default: "
        "after the model's reference period, its test period, ends)."),
    task: list[str] = typer.Option(
        None, "--task", help="A task to monitor (repeatable; default: every task with a "
        "champion)."),
    alias: str = typer.Option("champion", help="Registry alias of the models."),
    log: bool = typer.Option(True, help="Log each task's figures to MLflow."),
) -> None:
    """Drift (PSI of the score and every feature) of a CRM export against the served
    models' reference profiles, and their calibration where outcomes have arrived.

    Exit codes: 0 nothing past the alert thresholds (a warn, PSI >= 0.1, is printed
    only), 1 an alert (PSI >= 0.25 on the score or any feature, or ECE above 0.05 on
    the recent outcomes), 2 the models or the data cannot be read.
    """
    from rich.console import Console

    from training.monitor import exit_code, monitor_settings, print_reports, run_monitor

    try:
        settings = monitor_settings(data=data, since=since, tasks=tuple(task or ()),
                                    alias=alias, log=log)
        reports = run_monitor(settings)
    except (LookupError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    print_reports(reports, Console())
    raise typer.Exit(exit_code(reports))


@app.command()
def promote(
    task: str = typer.Option(..., help=TASK_HELP),
    version: str = typer.Option(..., help="The registered version to make champion."),
) -> None:
    """Make a version the champion by hand (the previous champion becomes challenger)."""
    from mlflow.exceptions import MlflowException

    from training.commands import run_promote

    try:
        run_promote(task, version)
    except MlflowException as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def demo(
    data: Path = typer.Option(Path("data/sample"), help="Sample folder (generated if absent)."),
) -> None:
    """Load or generate the sample, validate it, train and register a model per task."""
    from leadscore.demo import run_demo

    run_demo(data)


if __name__ == "__main__":
    app()
