"""`leadscore train`: one command from CRM data to a registered, gated model.

Build (or read) the training set, fit and evaluate (:mod:`training.evaluate`), write
plots and a model card, log everything to MLflow, register the model, and move the
``champion`` alias only when the new version beats the current champion on the same
test rows.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.build import own_names
from features.mapping.timing import read_current_values
from features.own import Derived
from features.schema import CRMTables
from features.tasks import TASKS, task_spec
from modeling.artifact import ALL
from modeling.grading import DEFAULT_SHARES
from modeling.profile import ReferenceProfile, build_profile
from modeling.registry import CHALLENGER, CHAMPION, load_model_version, resolve_alias
from training import plots
from training.audit import AuditReport, audit_settings, audit_task
from training.card import model_card
from training.dask_fit import ROUND_SAMPLE_ROWS
from training.data import current_columns, load_training_inputs
from training.evaluate import (
    STATIC_CV,
    DealModel,
    Evaluation,
    EvaluationConfig,
    fit_and_evaluate,
    time_split_problem,
)
from training.fit import BoosterFitter, BoosterParams, fit_locally
from training.grades import check_shares
from training.metrics import binary_metrics
from training.registry import (
    FINGERPRINT_TAG,
    FORCED_TAG,
    GateDecision,
    clear_withheld,
    ensure_experiment,
    forced,
    log_scoring_model,
    promote,
    promotion_gate,
    set_alias,
    tag_version,
    tracking,
    version_report,
    version_with_fingerprint,
    withhold,
)
from training.time_to_close import FormChoice, TimeToCloseParams, fit_companion

Step = Callable[[str], None]

DEFAULT_DEAL_MODEL: DealModel = "single"
"""Measured: see benchmarks/README.md (per-stage vs single deal model)."""


class TrainSettings(BaseSettings):
    """Settings of one training run (CLI flags, or ``LEADSCORE_TRAIN_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_TRAIN_", extra="forbid")

    task: str
    """A registered task (``features.tasks.TASKS``)."""
    data: Path
    horizon_days: int | None = Field(None, ge=1)
    """The label's horizon for tasks with one; None: the task's default."""
    seed: int = 7
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    deal_model: DealModel = DEFAULT_DEAL_MODEL
    deal_censor_days: int | None = Field(None, ge=0)
    """Leave out entities first seen this many days before the data's end; None: the
    task's (deals: 240, see evaluate.py)."""
    tracking_uri: str | None = None
    experiment: str | None = None
    register_model: bool = True
    out_dir: Path | None = None
    """Where to keep the run's report (plots, card, metrics); a temp folder when None."""
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, ge=2)
    min_data_in_leaf: int = Field(100, ge=1)
    num_boost_round: int = Field(2000, ge=1)
    early_stopping_rounds: int = Field(100, ge=1)
    num_threads: int = Field(2, ge=1)
    grade_shares: tuple[float, float, float] = DEFAULT_SHARES
    """Shares of grades A, B and C among the validation period's scores, D the rest
    (``0.1,0.2,0.3``: A the top 10 %, B the next 20 %, C the next 30 %)."""

    @field_validator("grade_shares", mode="before")
    @classmethod
    def _split_shares(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("grade_shares")
    @classmethod
    def _check_shares(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return check_shares(value)
    small_data_entities: int = Field(5000, ge=0)
    """Below this many entities in the training period, smaller and smoother trees
    (``BoosterParams.for_small_data``); 0: never."""
    strict_backtest: bool = True
    """Also report the test figures of a model fit only on labels known at the test start."""
    force: bool = False
    """Promote even when the gate says no (recorded on the run and printed)."""
    static: bool = False
    """Grouped k-fold cross-validation instead of a time split (also chosen when the data's
    times cannot carry one: see :func:`static_reason`)."""
    folds: int = Field(5, ge=3, le=20)
    """Folds of the static cross-validation."""
    gap_days: int | None = Field(None, ge=0)
    """Rows dropped before each period boundary; None: the task's label rule."""
    cold_start: bool = True
    """A rate model below the floor of outcomes, a booster regularised toward the rates
    above it (``training.cold_start``)."""
    audit: bool = True
    """Run the leakage audit on the training period and leave flagged columns out."""
    allow_columns: tuple[str, ...] = ()
    """Columns the leakage audit flagged that the model keeps anyway (``--allow-column``)."""
    cluster: str | None = None
    """The Dask cluster the boosters are fit on (``local`` or ``tcp://HOST:PORT``), with
    ``lightgbm.dask``, the rounds chosen first on a sample (``training.dask_fit``); None:
    on this machine. The command line opens it and hands :func:`train` its fitter."""
    workers: int | None = Field(None, ge=1)
    """Worker processes of ``--cluster local`` (None: one per core)."""
    round_sample_rows: int = Field(ROUND_SAMPLE_ROWS, ge=1)
    """With a cluster: most training (and validation) rows of the single-machine fit that
    chooses the rounds."""

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"unknown task {value!r}; expected one of {', '.join(TASKS)}")
        return value

    def evaluation_config(self) -> EvaluationConfig:
        return EvaluationConfig(
            horizon_days=self.horizon_days,
            seed=self.seed,
            validation_fraction=self.validation_fraction,
            test_fraction=self.test_fraction,
            deal_model=self.deal_model,
            censor_days=self.deal_censor_days,
            grade_shares=self.grade_shares,
            small_data_entities=self.small_data_entities or None,
            strict_backtest=self.strict_backtest,
            evaluation="static_cv" if self.static else "time_split",
            folds=self.folds,
            gap_days=self.gap_days,
            cold_start=self.cold_start,
            params=BoosterParams(
                learning_rate=self.learning_rate,
                num_leaves=self.num_leaves,
                min_data_in_leaf=self.min_data_in_leaf,
                num_boost_round=self.num_boost_round,
                early_stopping_rounds=self.early_stopping_rounds,
                num_threads=self.num_threads,
            ),
        )


IMPORT_REPORT = "import_report.json"
"""What ``leadscore import`` writes beside the tables it makes."""
ORDER_NOT_CALENDAR = "an order, not a calendar"
"""How the import report says a time was made from the rows' order."""


def static_reason(settings: TrainSettings, frame: pd.DataFrame) -> str | None:
    """Why this run is evaluated by static cross-validation (None: by time): asked for
    with ``--static``; the import made the entities' creation times from an order; or the
    snapshots' times fall on too few days to cut periods from."""
    if settings.static:
        return "--static"
    spec = task_spec(settings.task)
    report = settings.data / IMPORT_REPORT if settings.data.is_dir() else None
    if report is not None and report.is_file():
        try:
            notes = json.loads(report.read_text()).get("derived") or []
        except (ValueError, AttributeError):
            notes = []
        for note in notes:
            if (isinstance(note, str) and note.startswith(f"{spec.table}.created_at:")
                    and ORDER_NOT_CALENDAR in note):
                return f"the import made the {spec.plural}' creation times from an order " \
                       f"({IMPORT_REPORT}: {note})"
    return time_split_problem(frame, settings.task)


def train_settings(**values: Any) -> TrainSettings:
    """Build the settings of one run (flags given here win over the environment)."""
    return TrainSettings(**{k: v for k, v in values.items() if v is not None})


FINGERPRINTED_PACKAGES = ("features", "modeling", "training")
"""Code whose change changes a model trained on the same data and settings."""
NOT_FINGERPRINTED = ("tracking_uri", "experiment", "out_dir", "register_model", "force")
"""Settings that say where a run goes, not what it trains."""


def fingerprint(frame: pd.DataFrame, settings: TrainSettings,
                excluded: tuple[str, ...] = ()) -> str:
    """A digest of what a model is trained from: the labelled rows, the settings that
    shape the fit, the columns the leakage audit left out (its thresholds may come from
    the environment), and the code of the packages that build and fit it. Equal digests,
    equal models (training is deterministic for a seed)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(excluded)).encode())
    digest.update(json.dumps(list(map(str, frame.columns))).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    chosen = settings.model_dump(exclude=set(NOT_FINGERPRINTED), mode="json")
    digest.update(json.dumps(chosen, sort_keys=True, default=str).encode())
    root = Path(__file__).resolve().parent.parent
    for package in FINGERPRINTED_PACKAGES:
        for source in sorted((root / package).glob("*.py")):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class TrainResult:
    evaluation: Evaluation | None
    """None when the inputs were unchanged and nothing was trained."""
    run_id: str | None
    version: str | None
    decision: GateDecision | None
    report_dir: Path | None
    """The folder the report was written to (``out_dir``); None: it is in MLflow only."""
    fingerprint: str | None = None
    unchanged: bool = False
    """The same data, settings and code as a registered version: ``version`` is kept."""
    alias: str | None = None
    """Where ``version`` stands now: champion, challenger, or None."""
    withheld: str | None = None
    """Why the task has no champion, when the gate left it without one."""
    report_uri: str | None = None
    """Where the run's report (plots, model card, grades) is in MLflow's artifacts."""
    audit: AuditReport | None = None
    """The leakage audit of the training period (None: not run)."""
    companions: tuple[str, ...] = ()
    """Companion models logged in the run (``time_to_close``)."""


def write_plots(ev: Evaluation, out: Path) -> list[Path]:
    """Plots (PNG) and metrics (JSON) of one evaluation."""
    out.mkdir(parents=True, exist_ok=True)
    y = ev.split.test["label"].to_numpy(dtype=int)
    title = f"{ev.task}: test period"
    scores = ev.test_scores
    figures = {
        "reliability.png": plots.reliability_curve(y, scores, title=f"{title}, reliability"),
        "gains_lift.png": plots.gains_and_lift(y, scores, title=title),
        "roc_pr.png": plots.roc_pr(y, scores, title=title),
    }
    if ev.model.boosters:
        booster = ev.model.boosters[next(iter(sorted(ev.model.boosters)))]
        gain = pd.Series(
            booster.feature_importance(importance_type="gain"), index=booster.feature_name()
        )
        figures["feature_importance.png"] = plots.feature_importance(
            gain, title=f"{ev.task}: gain")
    sample = ev.split.test.iloc[:: max(1, len(ev.split.test) // 5000)]
    contrib = ev.model.contributions(sample, lightgbm=True)  # no kernels to compile here
    figures["contributions.png"] = plots.contribution_summary(
        contrib, title=f"{ev.task}: per-feature contributions (test sample)"
    )
    written = []
    for name, fig in figures.items():
        path = out / name
        fig.savefig(path, dpi=110)
        written.append(path)
    metrics = out / "metrics.json"
    metrics.write_text(json.dumps(ev.metrics, indent=2, sort_keys=True))
    return [*written, metrics]


def write_card(ev: Evaluation, out: Path, version: str | None = None,
               gate_reason: str | None = None, audit: AuditReport | None = None) -> Path:
    """The model card (Markdown) of one evaluation."""
    out.mkdir(parents=True, exist_ok=True)
    card = out / "model_card.md"
    card.write_text(model_card(ev, version, gate_reason, audit))
    return card


AUDIT_FILE = "audit.json"


def write_audit(audit: AuditReport, out: Path) -> Path:
    """The leakage audit's findings, exclusions and probe AUCs, as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / AUDIT_FILE
    path.write_text(audit.dumps())
    return path


def write_grades(ev: Evaluation, out: Path) -> Path:
    """Per grade on the test period (count, share, observed rate), with the cut-offs, as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "grades.json"
    grading = ev.model.grading
    path.write_text(json.dumps({
        "grading": None if grading is None else {
            k: v for k, v in grading.to_json().items() if k != "reference"
        },
        "test_period": [asdict(r) for r in ev.grades],
        "warnings": ev.warnings,
    }, indent=2))
    return path


def champion_metrics_on(ev: Evaluation, tracking_uri: str | None) -> dict[str, float] | None:
    """The current champion's metrics on this run's test rows, or None if there is none.

    Raises ``ValueError`` when the champion cannot score these rows (another feature set).
    """
    if resolve_alias(ev.task, CHAMPION, tracking_uri) is None:
        return None
    champion, _ = load_model_version(ev.task, CHAMPION, tracking_uri)
    trained_to = champion.metadata.get("trained_to")
    if trained_to is not None and pd.Timestamp(trained_to) >= ev.split.test_start:
        raise ValueError(
            f"the champion was fit on data up to {trained_to}, inside this run's test period "
            f"(from {ev.split.test_start.isoformat()}), so these rows would favour it"
        )
    missing = [c for c in champion.feature_set.names if c not in ev.split.test.columns]
    if missing:
        raise ValueError(
            f"the champion uses feature set {champion.feature_set.name} "
            f"(columns {missing[:3]}... absent), so it cannot be compared on these rows"
        )
    y = ev.split.test["label"].to_numpy(dtype=int)
    return binary_metrics(y, champion.predict_proba(ev.split.test))


def baselines_to_beat(ev: Evaluation) -> dict[str, dict[str, float]]:
    """The CRM's own rate and logistic regression, by name, with their test figures."""
    spec = task_spec(ev.task)
    out = {}
    for name, prefix in ((f"the {spec.baselines.rate_label}", "baseline_rate_test_"),
                         ("logistic regression", "baseline_lr_test_")):
        if f"{prefix}log_loss" in ev.metrics:
            out[name] = {k: ev.metrics[f"{prefix}{k}"] for k in ("roc_auc", "log_loss")}
    return out


def decide(ev: Evaluation, tracking_uri: str | None) -> GateDecision:
    """The promotion gate on this run's test rows: against the current champion, the CRM's
    own rate and logistic regression."""
    if ev.model.is_rate_model:
        return rate_model_decision(ev, tracking_uri)
    new = {"roc_auc": ev.metrics["test_roc_auc"], "log_loss": ev.metrics["test_log_loss"]}
    try:
        old = champion_metrics_on(ev, tracking_uri)
    except ValueError as exc:
        return GateDecision(False, f"not compared: {exc}; promote by hand if intended")
    version = resolve_alias(ev.task, CHAMPION, tracking_uri)
    return promotion_gate(new, old, baselines=baselines_to_beat(ev),
                          champion_name=f"the champion (version {version})")


def rate_model_decision(ev: Evaluation, tracking_uri: str | None) -> GateDecision:
    """A cold start's rate model is the CRM's own rate, so it cannot beat that rate: it is
    served where nothing is (no champion, or a champion that is a rate model itself, whose
    rates it renews) and never replaces a booster."""
    label = task_spec(ev.task).baselines.rate_label
    version = resolve_alias(ev.task, CHAMPION, tracking_uri)
    if version is None:
        return GateDecision(True, f"cold start: no current champion; the {label} is served as "
                            "a rate model (calibrated rates, reasons) until LightGBM has the "
                            "outcomes it needs")
    champion, _ = load_model_version(ev.task, CHAMPION, tracking_uri)
    if champion.is_rate_model:
        return GateDecision(True, f"cold start: renews the rates of the champion (version "
                            f"{version}), itself a rate model")
    return GateDecision(False, f"cold start: a rate model does not replace the champion "
                        f"(version {version}), a LightGBM model")


def withheld_reason_for(ev: Evaluation, decision: GateDecision, version: str) -> str:
    """What a server says for a task that no version serves: none passed the gate."""
    spec = task_spec(ev.task)
    lost = "; ".join(c.describe() for c in decision.lost) or decision.reason
    return (
        f"no {spec.entity} model has passed the promotion gate, so none is served: version "
        f"{version} lost to {lost} on its test period. Keep using the CRM's own figures; "
        "train on more history, or promote a version by hand (`leadscore promote`)"
    )


def reference_profile(ev: Evaluation) -> ReferenceProfile:
    """The features and scores of the test period, the model's reference for drift
    (``modeling.profile``)."""
    test = ev.split.test
    return build_profile(test, ev.feature_set.names, ev.model.predict_proba(test),
                         earlier=ev.split.train, entity_key=ev.feature_set.entity_key)


def _mlflow_value(v: Any) -> Any:
    return v if isinstance(v, int | float | str | bool) else json.dumps(v, default=str)


def train(settings: TrainSettings, on_step: Step | None = None,
          on_iteration: Callable[[int], None] | None = None,
          fit: BoosterFitter = fit_locally) -> TrainResult:
    """Run one training: build, fit, evaluate, report, log, register and gate.

    ``fit`` fits the boosters: on this machine, or on the cluster of ``settings.cluster``
    (``training.dask_fit.DaskBoosterFitter`` on a client the caller holds open)."""
    step = on_step or (lambda _: None)
    inputs = load_training_inputs(settings.data, settings.task, settings.horizon_days,
                                  on_step=step)
    config = settings.evaluation_config()
    why_static = static_reason(settings, inputs.frame)
    if why_static is not None:
        config = replace(config, evaluation=STATIC_CV)
    audit: AuditReport | None = None
    if settings.audit:
        audit = audit_task(inputs.frame, settings.task, inputs.feature_set, config,
                           tables=inputs.tables, settings=audit_settings(),
                           allowed=settings.allow_columns, current=current_columns(inputs))
        config = replace(config, excluded=audit.excluded)
    step("audited the training period for leaks")
    digest = fingerprint(inputs.frame, settings.model_copy(
        update={"static": config.evaluation == STATIC_CV}), tuple(config.excluded))
    if settings.register_model:
        kept = keep_unchanged(settings, digest)
        if kept is not None:
            return replace(kept, audit=audit)
    ev = fit_and_evaluate(
        inputs.frame,
        settings.task,
        inputs.feature_set,
        config,
        tables=inputs.tables,
        oracle=inputs.oracle,
        on_step=step,
        on_iteration=on_iteration,
        fit=fit,
    )
    record_backend(ev, settings)
    if why_static is not None:
        ev.model.metadata["static_reason"] = why_static
        ev.params["static_reason"] = why_static
    if inputs.own is not None:
        record_own(ev, inputs.own)
    current = read_current_values(settings.data) if Path(settings.data).is_dir() else []
    if current:  # kept by the import although known only as of the export: a leak risk
        ev.model.metadata["current_values"] = current
        ev.params["current_values_allowed"] = ",".join(current)
    return log_and_register(
        ev, settings, extra_params={
            "data": str(settings.data),
            "unlabelled_rows": inputs.unlabelled_rows,
            "rejected_rows": inputs.rejected_rows,
        },
        on_step=step,
        fingerprint=digest,
        audit=audit,
        companions=fit_companions(ev, inputs.tables, settings, step),
    )


SINGLE_MACHINE, DASK = "single_machine", "dask"
"""Values of the run's ``training_backend`` param and tag."""
ROUNDS_ON_SAMPLE = "early_stopping_on_a_sample"
"""The ``rounds_chosen_by`` tag of a run fit on Dask (lightgbm.dask has no early stopping)."""


def record_backend(ev: Evaluation, settings: TrainSettings) -> None:
    """Where the boosters were fit, on the model (metadata, for its card) and the run
    (params): on a cluster, its address, and per booster how its rounds were chosen."""
    if settings.cluster is None or not ev.rounds:
        ev.params["training_backend"] = SINGLE_MACHINE
        return
    ev.model.metadata["training"] = {
        "backend": DASK, "cluster": settings.cluster,
        "rounds": {k: c.to_json() for k, c in ev.rounds.items()},
    }
    first = ev.rounds.get(ALL) or next(iter(ev.rounds.values()))
    ev.params.update({
        "training_backend": DASK,
        "dask_cluster": settings.cluster,
        "dask_workers": first.workers,
        "dask_partitions": first.partitions,
        "rounds_chosen_by": ROUNDS_ON_SAMPLE,
        "round_sample_rows": settings.round_sample_rows,
        "round_sample_train_rows": first.sample_train_rows,
        "round_sample_validation_rows": first.sample_validation_rows,
        "dask_rounds": first.rounds,
    })


def backend_tags(ev: Evaluation) -> dict[str, str]:
    """The run's tags saying where its boosters were fit and how their rounds were chosen."""
    training = ev.model.metadata.get("training") or {}
    if training.get("backend") != DASK:
        return {"training_backend": SINGLE_MACHINE}
    return {"training_backend": DASK, "dask_cluster": str(training.get("cluster")),
            "rounds_chosen_by": ROUNDS_ON_SAMPLE}


def record_own(ev: Evaluation, derived: Derived) -> None:
    """The export's own columns on the model (metadata, for its card and serving's
    warnings) and the run (MLflow params): which are features, which left out and why,
    and which are used with only the export's value (leak risks)."""
    own = own_names(ev.feature_set)
    used = [n for n in ev.feature_set.names if n in own]
    ev.model.metadata["own_features"] = {"used": used, "left_out": dict(derived.left_out),
                                         "leak_risks": list(derived.leak_risks)}
    ev.params["own_features"] = ",".join(used) or "none"
    ev.params["own_features_left_out"] = ",".join(derived.left_out) or "none"
    ev.params["own_features_leak_risks"] = ",".join(derived.leak_risks) or "none"


def fit_companions(ev: Evaluation, tables: CRMTables | None, settings: TrainSettings,
                   on_step: Step | None = None) -> dict[str, FormChoice]:
    """The task's companion models (``TaskSpec.companions``) on the run's own split.

    The time-to-close model needs the tables (when each won deal closed): a run from a
    prebuilt training set has none, and logs none.
    """
    step = on_step or (lambda _: None)
    out: dict[str, FormChoice] = {}
    if "time_to_close" in task_spec(ev.task).companions and tables is not None:
        split = ev.split
        choice = fit_companion(split.train, split.validation, split.test, split.test_start,
                               tables, TimeToCloseParams(num_threads=settings.num_threads),
                               settings.seed)
        if choice is not None:
            out["time_to_close"] = choice
            step("fitted the time-to-close model")
    return out


def keep_unchanged(settings: TrainSettings, digest: str) -> TrainResult | None:
    """The registered version trained on these very inputs, kept instead of a duplicate
    (promoted first with ``force``); None when there is none."""
    from modeling.registry import withheld_reason

    uri = settings.tracking_uri
    with tracking(uri):
        version = version_with_fingerprint(settings.task, digest, uri)
        if version is None:
            return None
        decision = None
        if settings.force and resolve_alias(settings.task, CHAMPION, uri) != version:
            promote(settings.task, version, uri)
            decision = GateDecision(True, "promoted by --force; it was trained on these same "
                                    "inputs", forced=True)
        champion = resolve_alias(settings.task, CHAMPION, uri)
        challenger = resolve_alias(settings.task, CHALLENGER, uri)
        alias = CHAMPION if champion == version else CHALLENGER if challenger == version else None
        run_id, report_uri = version_report(settings.task, version, uri)
        return TrainResult(None, run_id, version, decision, None, fingerprint=digest,
                           unchanged=True, alias=alias,
                           withheld=withheld_reason(settings.task, uri), report_uri=report_uri)


def log_and_register(
    ev: Evaluation,
    settings: TrainSettings,
    extra_params: dict[str, Any] | None = None,
    plots: bool = True,
    on_step: Step | None = None,
    fingerprint: str | None = None,
    audit: AuditReport | None = None,
    companions: dict[str, FormChoice] | None = None,
) -> TrainResult:
    """Write the report, log the run to MLflow, register the model and apply the gate.

    Without ``out_dir`` the report is written to a temporary folder, logged, and the folder
    removed: the run's artifacts in MLflow hold it (``report_uri``). Companion models are
    logged in the same run (artifact folder of their name, metrics and the form as a tag),
    so a registered version's run holds the ones fit beside it.
    """
    if settings.out_dir is not None:
        return _log_and_register(ev, settings, settings.out_dir, extra_params, plots, on_step,
                                 fingerprint, audit, companions)
    with tempfile.TemporaryDirectory(prefix="leadscore-train-") as tmp:
        result = _log_and_register(ev, settings, Path(tmp), extra_params, plots, on_step,
                                   fingerprint, audit, companions)
    return replace(result, report_dir=None)


def _log_and_register(
    ev: Evaluation,
    settings: TrainSettings,
    report_dir: Path,
    extra_params: dict[str, Any] | None,
    plots: bool,
    on_step: Step | None,
    fingerprint: str | None,
    audit: AuditReport | None,
    companions: dict[str, FormChoice] | None,
) -> TrainResult:
    import mlflow

    step = on_step or (lambda _: None)
    report_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        write_plots(ev, report_dir)
        step("wrote plots")
    write_grades(ev, report_dir)
    if audit is not None:
        write_audit(audit, report_dir)

    experiment = settings.experiment or ev.task
    experiment_id = ensure_experiment(experiment, settings.tracking_uri)
    with tracking(settings.tracking_uri), mlflow.start_run(experiment_id=experiment_id) as run:
        decision = decide(ev, settings.tracking_uri) if settings.register_model else None
        if decision is not None and settings.force:
            decision = forced(decision)
        mlflow.log_params({k: _mlflow_value(v) for k, v in ev.params.items()})
        if extra_params:
            mlflow.log_params({k: _mlflow_value(v) for k, v in extra_params.items()})
        mlflow.set_tags({
            "task": ev.task,
            "feature_set": f"{ev.feature_set.name}@{ev.feature_set.version}",
            "evaluation": ev.evaluation,
            "model_kind": "rate" if ev.model.is_rate_model else "booster",
            **({"not_a_backtest": "true"} if ev.static else {}),
            **({FINGERPRINT_TAG: fingerprint} if fingerprint else {}),
            **backend_tags(ev),
        })
        finite = {k: v for k, v in ev.metrics.items() if np.isfinite(v)}
        mlflow.log_metrics(finite)
        if audit is not None:
            mlflow.log_metrics({"audit_flagged_columns": float(len(audit.flagged)),
                                "audit_excluded_columns": float(len(audit.excluded))})
            mlflow.log_params({"audit_allowed_columns": ",".join(audit.kept) or "none"})
            mlflow.log_dict(audit.to_json(), AUDIT_FILE)
        version = log_scoring_model(
            ev.model, ev.split.test, ev.task if settings.register_model else None,
            profile=reference_profile(ev),
        )
        for name, choice in (companions or {}).items():
            with tempfile.TemporaryDirectory() as tmp:
                choice.model.save(Path(tmp) / name)
                mlflow.log_artifacts(str(Path(tmp) / name), artifact_path=name)
            mlflow.log_metrics({k: v for k, v in choice.metrics().items() if np.isfinite(v)})
            mlflow.set_tag(f"{name}_form", choice.model.form)
        withheld: str | None = None
        alias: str | None = None
        uri = settings.tracking_uri
        if version is not None and decision is not None:
            alias = CHAMPION if decision.promote else CHALLENGER
            set_alias(ev.task, version, alias, uri)
            if decision.promote:
                clear_withheld(ev.task, uri)
            elif resolve_alias(ev.task, CHAMPION, uri) is None:
                withheld = withheld_reason_for(ev, decision, version)
                withhold(ev.task, withheld, uri)
            mlflow.set_tags({"promotion": decision.reason,
                             FORCED_TAG: str(decision.forced).lower()})
            if fingerprint:
                tag_version(ev.task, version, FINGERPRINT_TAG, fingerprint, uri)
        write_card(ev, report_dir, version, decision.reason if decision else None, audit)
        mlflow.log_artifacts(str(report_dir), artifact_path="report")
        run_id = run.info.run_id
        report_uri = mlflow.get_artifact_uri("report")
    step("logged to MLflow")
    return TrainResult(ev, run_id, version, decision, report_dir, fingerprint=fingerprint,
                       alias=alias, withheld=withheld, report_uri=report_uri,
                       audit=audit, companions=tuple(companions or {}))
