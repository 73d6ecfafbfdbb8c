"""Fit the model and its baselines on a time split and score them all on the test period.

Pure with respect to I/O: frames in, an :class:`Evaluation` out. Logging, plots on
disk and the registry live in :mod:`training.train`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.declarations import FeatureSet
from features.schema import OPEN_STAGES, CRMTables
from features.tasks import task_spec
from modeling.artifact import ALL, ScoringModel
from modeling.grading import DEFAULT_SHARES
from training.baselines import crm_default_table, fit_rate_table, make_lr_pipeline
from training.calibration import MIN_CALIBRATION_ENTITIES, CalibrationChoice
from training.cold_start import (
    MIN_OUTCOMES,
    REGULARISED_OUTCOMES,
    Outcomes,
    Regime,
    count_outcomes,
    fit_rate_model,
    regularised_params,
)
from training.fit import (
    BoosterFitter,
    BoosterParams,
    FittedModel,
    blank_columns,
    fit_locally,
    fit_scoring_model,
)
from training.grades import (
    VALIDATION_REFERENCE,
    GradeRow,
    fit_grading,
    grade_metrics,
    grade_params,
    grade_table,
    grade_warnings,
)
from training.metrics import binary_metrics, log_loss
from training.split import TimeSplit, grouped_folds, strict_backtest, time_split

if TYPE_CHECKING:
    from training.dask_fit import RoundChoice

Step = Callable[[str], None]
DealModel = Literal["per_stage", "single"]
EvaluationMode = Literal["time_split", "static_cv"]
STATIC_CV: EvaluationMode = "static_cv"
MIN_SPLIT_DAYS = 3
"""Fewest distinct days the entities' first snapshots must fall on for a time split: on
fewer, the periods would be cut inside one day's rows, an order and not a calendar."""

WEAK_STAGE_AUC = 0.55
"""Inside a stage, a test ROC AUC below this ranks deals little better than chance."""
SCORED = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")


def weak_stages(metrics: dict[str, float]) -> dict[str, float]:
    """Stages inside which the model's test ROC AUC is below :data:`WEAK_STAGE_AUC`."""
    return {
        s: metrics[f"test_roc_auc_{s}"] for s in OPEN_STAGES
        if metrics.get(f"test_roc_auc_{s}", 1.0) < WEAK_STAGE_AUC
    }


def _noop(_: str) -> None:
    return None


@dataclass(frozen=True)
class EvaluationConfig:
    horizon_days: int | None = None
    """The label's horizon, for tasks that have one; None: the task's default."""
    seed: int = 7
    validation_fraction: float = 0.15
    test_fraction: float = 0.2
    deal_model: DealModel = "single"
    params: BoosterParams = field(default_factory=BoosterParams)
    gap_days: int | None = None
    """Rows dropped before each period boundary; None: the task's label rule."""
    censor_days: int | None = None
    """Entities first seen this close to the data's end are left out of every period; None:
    the task's (deals: 240, since only the quick closers among them have an outcome yet
    and losses close faster than wins. Measured on generated data, benchmarks/README.md:
    the oracle's own test ECE is 0.044 with 120 days, 0.020 with 180 and 0.016 with 240;
    won deals there take up to ~270 days)."""
    deal_offset: bool = True
    """Tasks with a stage: boost from the training period's per-stage win rates (see
    modeling.artifact.Offset)."""
    rate_column: str | None = None
    """Column of the CRM-rate baseline; None: the task's."""
    grade_shares: tuple[float, float, float] = DEFAULT_SHARES
    """Shares of grades A, B and C among the validation period's scores (D: the rest)."""
    small_data_entities: int | None = None
    """Below this many entities in the training period, fit with
    :meth:`BoosterParams.for_small_data`; None: never."""
    min_calibration_entities: int = MIN_CALIBRATION_ENTITIES
    """Fewest validation entities a calibrator is refitted on."""
    strict_backtest: bool = True
    """Also fit on the training and validation rows whose label was known when the test
    period starts, and report those test figures as ``strict_*`` (tasks that declare when
    a label is known, or have a horizon)."""
    evaluation: EvaluationMode = "time_split"
    """``static_cv``: grouped k-fold cross-validation (each entity, or account, in one fold)
    for data whose times cannot carry a time split; its figures are not a backtest."""
    folds: int = 5
    """Folds of the static cross-validation."""
    cold_start: bool = True
    """Below ``training.cold_start.MIN_OUTCOMES`` positive or negative training outcomes,
    a rate model; below ``REGULARISED_OUTCOMES``, a booster started from the rates and
    regularised toward them."""
    excluded: Mapping[str, str] = field(default_factory=dict)
    """Feature columns left out of the model, each with its reason (the leakage audit's,
    ``training.audit``). They are blanked in every period before fitting, so no booster
    splits on them and the model ignores whatever value they hold when it scores; the
    feature set stays the registered one, which serving checks against the code's."""


@dataclass
class Evaluation:
    """Everything a run reports: the model, the split, predictions and metrics."""

    task: str
    feature_set: FeatureSet
    model: ScoringModel
    split: TimeSplit
    calibration: dict[str, CalibrationChoice]
    best_iterations: dict[str, int]
    test_scores: dict[str, np.ndarray]
    """Test-period probabilities per scorer: "model", "baseline_lr", "baseline_rate", ..."""
    metrics: dict[str, float]
    """Flat, with the MLflow metric names (``test_roc_auc``, ``baseline_lr_test_log_loss``...)."""
    params: dict[str, Any]
    grades: list[GradeRow] = field(default_factory=list)
    """Per grade A-D on the test period: count and observed rate."""
    warnings: list[str] = field(default_factory=list)
    """What the run found wrong with its own model (shown by the command and the card)."""
    evaluation: EvaluationMode = "time_split"
    regime: Regime = "booster"
    """What was fit: a rate model (cold start), a booster started from the rates and
    regularised toward them, or a booster."""
    outcomes: Outcomes | None = None
    """Positive and negative outcomes of the training period."""
    regime_note: str | None = None
    """Why the regime is what it is, in words (the command and the card print it)."""
    rounds: dict[str, RoundChoice] = field(default_factory=dict)
    """Per booster fit on a Dask cluster, how its rounds were chosen (empty: each booster
    early-stopped on the validation period, on this machine)."""

    @property
    def static(self) -> bool:
        return self.evaluation == STATIC_CV


def stage_win_rates(train: pd.DataFrame, entity_key: str) -> dict[str, float]:
    """Of the training deals seen in each open stage, the share that were won."""
    seen = train[[entity_key, "stage", "label"]].copy()
    seen["stage"] = seen["stage"].astype("object")
    seen = seen.dropna(subset=["stage"]).drop_duplicates([entity_key, "stage"])
    rates = seen.groupby("stage")["label"].mean()
    return {s: float(rates[s]) for s in OPEN_STAGES if s in rates.index}


def won_stage_days_p75_from_history(
    tables: CRMTables, before: pd.Timestamp
) -> dict[str, float]:
    """75th percentile of the days won deals spent in each open stage (deals won before ``before``).

    Time in a stage sums every visit (a deal that moved back spends time twice).
    """
    opps = tables.opportunities
    won = opps.loc[
        (opps["is_won"].fillna(False).astype(bool)) & (opps["closed_at"] < before),
        "opportunity_id",
    ]
    hist = tables.opportunity_history
    hist = hist.loc[hist["opportunity_id"].isin(won)].sort_values(
        ["opportunity_id", "changed_at"], kind="mergesort"
    )
    stage = hist["stage"].astype("object")
    nxt = hist.groupby("opportunity_id", sort=False)["changed_at"].shift(-1)
    days = (nxt - hist["changed_at"]).dt.total_seconds() / 86400.0
    visits = pd.DataFrame({"opp": hist["opportunity_id"], "stage": stage, "days": days})
    visits = visits.loc[visits["stage"].isin(OPEN_STAGES) & visits["days"].notna()]
    per_deal = visits.groupby(["opp", "stage"])["days"].sum().reset_index()
    p75 = per_deal.groupby("stage")["days"].quantile(0.75)
    return {s: float(p75[s]) for s in OPEN_STAGES if s in p75.index}


def won_stage_days_p75_from_snapshots(train: pd.DataFrame, entity_key: str) -> dict[str, float]:
    """Fallback without tables: longest observed ``days_in_stage`` per won deal and stage."""
    if "days_in_stage" not in train.columns:
        return {}
    won = train.loc[train["label"] == 1, [entity_key, "stage", "days_in_stage"]].copy()
    won["stage"] = won["stage"].astype("object")
    per_deal = won.groupby([entity_key, "stage"])["days_in_stage"].max().reset_index()
    p75 = per_deal.groupby("stage")["days_in_stage"].quantile(0.75)
    return {s: float(p75[s]) for s in OPEN_STAGES if s in p75.index}


def _prefixed(prefix: str, m: dict[str, float], keys: tuple[str, ...] | None = None) -> dict[
    str, float
]:
    return {f"{prefix}{k}": v for k, v in m.items() if keys is None or k in keys}


def _baseline_scores(
    train: pd.DataFrame, test: pd.DataFrame, task: str, feature_set: FeatureSet, rate_col: str
) -> dict[str, np.ndarray]:
    """Test-period probabilities of logistic regression and the CRM's rates, fit on ``train``."""
    spec = task_spec(task)
    out: dict[str, np.ndarray] = {}
    lr = make_lr_pipeline(feature_set)
    # One BLAS thread: multithreaded reductions are not bit-reproducible, and on a shared
    # machine the threads mostly wait on each other.
    with threadpool_limits(limits=1):
        lr.fit(train[feature_set.names], train["label"].to_numpy(dtype=int))
        out["baseline_lr"] = lr.predict_proba(test[feature_set.names])[:, 1]
    baselines = spec.baselines
    if rate_col in test.columns:
        per_entity = feature_set.entity_key if baselines.rate_per_entity else None
        rate = fit_rate_table(train, rate_col, entity_key=per_entity)
        out["baseline_rate"] = rate.predict(test)
        if baselines.crm_default and rate_col == baselines.rate_column:
            out["baseline_crm_default"] = crm_default_table(rate.prior).predict(test)
    return out


def _strict_metrics(
    strict: TimeSplit,
    y: np.ndarray,
    task: str,
    feature_set: FeatureSet,
    params: BoosterParams,
    config: EvaluationConfig,
    route_by: str | None,
    offset_column: str | None,
    rate_col: str,
    train_rows: int,
    validation_rows: int,
    fit: BoosterFitter = fit_locally,
) -> dict[str, float]:
    """The strict backtest's test figures (``strict_*``) and how many rows it left out.

    Nothing left out: the ordinary figures already are strict, and are not refit.
    """
    out: dict[str, float] = {
        "strict_train_rows_dropped": float(train_rows - len(strict.train)),
        "strict_validation_rows_dropped": float(validation_rows - len(strict.validation)),
    }
    if not out["strict_train_rows_dropped"] and not out["strict_validation_rows_dropped"]:
        return out
    if any(part["label"].nunique() < 2 for part in (strict.train, strict.validation)):
        return out  # too little known at the test start to fit anything: no figures
    fitted = fit_scoring_model(
        task, feature_set, strict.train, strict.validation, params, config.seed,
        route_by=route_by, offset_column=offset_column,
        min_calibration_entities=config.min_calibration_entities, fit=fit,
    )
    scores = {"model": fitted.model.predict_proba(strict.test),
              **_baseline_scores(strict.train, strict.test, task, feature_set, rate_col)}
    for name, p in scores.items():
        prefix = "strict_test_" if name == "model" else f"strict_{name}_test_"
        out.update(_prefixed(prefix, binary_metrics(y, p), SCORED))
    return out


def split_periods(
    frame: pd.DataFrame, task: str, config: EvaluationConfig,
    data_end: pd.Timestamp | None = None,
) -> TimeSplit:
    """The time split a run fits and evaluates on (the task's gap and censoring unless
    ``config`` sets them): the leakage audit reads the same training period. In the static
    mode, the registered model's: every fold but the first to train on, the first to
    validate (and, there being no later period, as the test rows)."""
    if config.evaluation == STATIC_CV:
        fold = static_split(frame, task, config)
        start = frame["as_of"].min()
        return TimeSplit(train=frame.loc[fold != 0], validation=frame.loc[fold == 0],
                         test=frame.loc[fold == 0], validation_start=start, test_start=start)
    spec = task_spec(task)
    horizon = config.horizon_days or spec.label.horizon_days
    gap = config.gap_days if config.gap_days is not None else spec.label.gap_days(horizon)
    censor = config.censor_days if config.censor_days is not None else spec.label.censor_days
    return time_split(
        frame,
        spec.split_column(frame.columns),
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        gap_days=gap,
        censor_days=censor,
        data_end=data_end,
    )


def check_periods(split: TimeSplit, task: str, config: EvaluationConfig) -> None:
    """Refuse a split with an empty period, or a period of one class, saying which and why.

    An empty period is named as empty, with the gap and the window that emptied it: a
    gap at least as long as a period's window drops every row of it.
    """
    spec = task_spec(task)
    horizon = config.horizon_days or spec.label.horizon_days
    gap = config.gap_days if config.gap_days is not None else spec.label.gap_days(horizon)
    train_days = (split.validation_start - split.train["as_of"].min()).days if len(
        split.train) else None
    windows = {
        "train": train_days,
        "validation": (split.test_start - split.validation_start).days,
        "test": None,
    }
    for name, part in (("train", split.train), ("validation", split.validation),
                       ("test", split.test)):
        if part.empty:
            window = windows[name]
            why = (f": the {gap}-day gap outran a {window}-day window; give a shorter "
                   "--gap-days or a longer window (--validation-fraction, --test-fraction)"
                   if gap and window is not None and gap >= window else
                   "; give a longer window (--validation-fraction, --test-fraction)")
            raise ValueError(f"the {'training' if name == 'train' else name} period has no "
                             f"rows{why}")
        if part["label"].nunique() < 2:
            only = "positive" if int(part["label"].iloc[0]) else "negative"
            raise ValueError(f"the {'training' if name == 'train' else name} period has "
                             f"{len(part):,} rows, all {only}; need more data")


def time_split_problem(frame: pd.DataFrame, task: str) -> str | None:
    """Why the snapshots' times cannot carry a time split (None: they can): the entities'
    first snapshots fall on fewer than :data:`MIN_SPLIT_DAYS` days."""
    spec = task_spec(task)
    key = spec.split_column(frame.columns)
    first = frame["as_of"].groupby(frame[key], observed=True).min()
    days = first.dt.normalize().nunique()
    if days < MIN_SPLIT_DAYS:
        return (f"the {spec.plural}' first snapshots fall on {days} day(s): a time split "
                "would cut inside one day's rows")
    return None


def static_split(frame: pd.DataFrame, task: str, config: EvaluationConfig) -> np.ndarray:
    """Each row's fold of the static cross-validation, grouped by the split key (the
    entity, or the renewal or account unit) so no entity is in two folds."""
    key = task_spec(task).split_column(frame.columns)
    return grouped_folds(frame[key], config.folds, config.seed)


def _rate_column(task: str, feature_set: FeatureSet, config: EvaluationConfig) -> str:
    return config.rate_column or task_spec(task).baselines.rate_column


def fit_for_outcomes(
    task: str,
    feature_set: FeatureSet,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    config: EvaluationConfig,
    booster_params: BoosterParams,
    route_by: str | None,
    offset_column: str | None,
    metadata: dict[str, Any] | None = None,
    on_iteration: Callable[[int], None] | None = None,
    fit: BoosterFitter = fit_locally,
) -> tuple[FittedModel, Regime, Outcomes, str | None, BoosterParams]:
    """Fit what the training period's outcomes support: the rate model below the floor,
    a booster from the rates' offset regularised toward them in the range above it, else
    the booster as configured. Returns the fit, its regime, the outcomes, a note and the
    booster settings used."""
    spec = task_spec(task)
    outcomes = count_outcomes(train, spec.split_column(train.columns))
    rate_col = _rate_column(task, feature_set, config)
    can_rate = rate_col in feature_set.categorical
    regime: Regime = outcomes.regime if config.cold_start and can_rate else "booster"
    note: str | None = None

    def rate_fit() -> FittedModel:
        model = fit_rate_model(task, feature_set, train, rate_col, metadata)
        model.grading = fit_grading(model.predict_proba(validation), config.grade_shares,
                                    source=VALIDATION_REFERENCE)
        return FittedModel(model=model, calibration={}, best_iterations={ALL: 0})

    if regime == "rate_model":
        more_pos, more_neg = outcomes.needed()
        wanted = " and ".join(
            f"{n:,} more {what}" for n, what in ((more_pos, "positive"), (more_neg, "negative"))
            if n)
        note = (f"cold start: {outcomes.positive:,} positive and {outcomes.negative:,} negative "
                f"outcomes in the training period, fewer than {MIN_OUTCOMES} of each that "
                f"LightGBM needs; registered the {spec.baselines.rate_label} as a rate model. "
                f"LightGBM needs {wanted} outcome(s) in the training period")
        return rate_fit(), regime, outcomes, note, booster_params
    def boost(params: BoosterParams, route: str | None, offset: str | None) -> FittedModel:
        return fit_scoring_model(
            task, feature_set, train, validation, params, config.seed,
            route_by=route, metadata=metadata, on_iteration=on_iteration,
            offset_column=offset, min_calibration_entities=config.min_calibration_entities,
            grade_shares=config.grade_shares, fit=fit,
        )

    if regime == "booster":
        return boost(booster_params, route_by, offset_column), regime, outcomes, None, \
            booster_params
    # A few hundred outcomes: the booster from the rates, regularised toward them, beside
    # the booster as configured and the rates alone; the validation period's log loss
    # chooses (as it chooses the calibration), so the registered model is not worse than
    # the rates there.
    regularised = regularised_params(booster_params, len(train))
    y = validation["label"].to_numpy(dtype=int)
    candidates: list[tuple[Regime, FittedModel, BoosterParams]] = [
        ("regularised", boost(regularised, None, offset_column or rate_col), regularised),
        ("booster", boost(booster_params, route_by, offset_column), booster_params),
        ("rate_model", rate_fit(), booster_params),
    ]
    losses = [log_loss(y, fit.model.predict_proba(validation)) for _, fit, _ in candidates]
    best = int(np.argmin(losses))
    chosen, fitted, params = candidates[best]
    label = spec.baselines.rate_label
    what = {"regularised": f"the booster started from the {label} and regularised toward it "
                           f"(at most {regularised.num_leaves} leaves of "
                           f"{regularised.min_data_in_leaf}+ rows, L2 {regularised.lambda_l2:g})",
            "booster": "the booster fit without the rates' start",
            "rate_model": f"the {label} as a rate model"}
    note = (f"{outcomes.positive:,} positive and {outcomes.negative:,} negative outcomes in the "
            f"training period, fewer than {REGULARISED_OUTCOMES} of the rarer kind: "
            f"registered {what[chosen]}; validation log loss {losses[0]:.4f} from the rates, "
            f"{losses[1]:.4f} without, {losses[2]:.4f} for the rates alone")
    return fitted, chosen, outcomes, note, params


def fit_and_evaluate(
    frame: pd.DataFrame,
    task: str,
    feature_set: FeatureSet,
    config: EvaluationConfig,
    tables: CRMTables | None = None,
    oracle: Callable[[pd.DataFrame], np.ndarray] | None = None,
    on_step: Step | None = None,
    on_iteration: Callable[[int], None] | None = None,
    data_end: pd.Timestamp | None = None,
    fit: BoosterFitter = fit_locally,
) -> Evaluation:
    """Split by time, fit + calibrate LightGBM and the baselines, score the test period.

    ``fit`` fits every booster (the registered model's, the strict backtest's, the static
    folds'): on this machine by default, or on a Dask cluster
    (``training.dask_fit.DaskBoosterFitter``)."""
    step = on_step or _noop
    spec = task_spec(task)
    key = feature_set.entity_key
    # A canonical row order: the same rows in any order give the same model and metrics.
    frame = frame.sort_values(["as_of", key], kind="mergesort").reset_index(drop=True)
    unknown = sorted(set(config.excluded) - set(feature_set.names))
    if unknown:
        raise ValueError(f"cannot leave out {unknown}: not features of {feature_set.name}")
    frame = blank_columns(frame, list(config.excluded))
    stage = spec.stage_column
    has_stage = stage is not None and stage in frame.columns
    horizon = config.horizon_days or spec.label.horizon_days
    censor = config.censor_days if config.censor_days is not None else spec.label.censor_days
    static = config.evaluation == STATIC_CV
    rate_col = _rate_column(task, feature_set, config)
    route_by = stage if has_stage and config.deal_model == "per_stage" else None
    task_params = replace(config.params, **spec.booster)
    offset_column = stage if has_stage and config.deal_offset else None
    oof: dict[str, np.ndarray] | None = None
    if static:
        split, oof = _static_cv(frame, task, feature_set, config, task_params, route_by,
                                offset_column, rate_col, fit)
        step("cross-validated by group (static)")
    else:
        split = split_periods(frame, task, config, data_end)
        check_periods(split, task, config)
        step("split by time")
    metadata: dict[str, Any] = {
        "task": task,
        "feature_set": feature_set.name,
        "feature_set_version": feature_set.version,
        "horizon_days": horizon,
        "trained_from": split.train["as_of"].min().isoformat(),
        "trained_to": split.validation["as_of"].max().isoformat(),
        "test_from": split.test["as_of"].min().isoformat(),
        "test_to": split.test["as_of"].max().isoformat(),
        "seed": config.seed,
        "excluded_features": dict(config.excluded),
        "evaluation": config.evaluation,
    }
    train_entities = int(split.train[key].nunique())
    small = config.small_data_entities is not None and train_entities < config.small_data_entities
    booster_params = task_params.for_small_data() if small else task_params
    fitted, regime, outcomes, regime_note, booster_params = fit_for_outcomes(
        task, feature_set, split.train, split.validation, config, booster_params, route_by,
        offset_column, metadata, on_iteration, fit,
    )
    if regime == "regularised":
        route_by, offset_column = None, offset_column or rate_col
    model = fitted.model
    step("fitted LightGBM and calibrated")

    test = split.test
    y = test["label"].to_numpy(dtype=int)
    if oof is not None:
        scores: dict[str, np.ndarray] = oof
    else:
        scores = {"model": model.predict_proba(test)}
        scores.update(_baseline_scores(split.train, test, task, feature_set, rate_col))
    step("fitted baselines")

    metrics: dict[str, float] = {}
    for name, p in scores.items():
        prefix = "test_" if name == "model" else f"{name}_test_"
        m = binary_metrics(y, p)
        keys = None if name == "model" else SCORED
        metrics.update(_prefixed(prefix, m, keys))
    if oracle is not None:
        scores["oracle"] = oracle(test[[key, "as_of"]])
        om = binary_metrics(y, scores["oracle"])
        metrics.update(
            _prefixed("oracle_test_", om, SCORED)
        )
        if om["roc_auc"] > 0:
            metrics["test_roc_auc_oracle_ratio"] = metrics["test_roc_auc"] / om["roc_auc"]
    if has_stage:
        stages = test[stage].astype("object").to_numpy()
        for s in OPEN_STAGES:
            mask = stages == s
            if mask.sum() and len(np.unique(y[mask])) == 2:
                ms = binary_metrics(y[mask], scores["model"][mask])
                metrics[f"test_roc_auc_{s}"] = ms["roc_auc"]
                metrics[f"test_brier_{s}"] = ms["brier"]
    assert model.grading is not None
    grades = grade_table(model.grading, scores["model"], y)
    metrics.update(grade_metrics(grades))
    for k, choice in fitted.calibration.items():
        suffix = "" if k == ALL else f"_{k}"
        metrics[f"validation_log_loss_raw{suffix}"] = choice.fit_log_loss["none"]
        metrics[f"validation_log_loss_calibrated{suffix}"] = choice.fit_log_loss[
            choice.calibrator.method
        ]
        # The honest comparison: each method fitted on other entities' validation rows.
        for method, loss in choice.cv_log_loss.items():
            metrics[f"validation_log_loss_oof_{method}{suffix}"] = loss
    step("scored the test period")

    resolved = (spec.label.resolution_times(frame, tables, horizon)
                if config.strict_backtest and not static and regime != "rate_model" else None)
    if resolved is not None:
        metrics.update(_strict_metrics(
            strict_backtest(split, resolved), y, task, feature_set, booster_params, config,
            route_by, offset_column, rate_col, len(split.train), len(split.validation), fit,
        ))

    metadata["test_metrics"] = {k: v for k, v in metrics.items() if k.startswith("test_")}
    metadata["baseline_metrics"] = {
        k: v for k, v in metrics.items() if k.startswith(("baseline_", "oracle_"))
    }
    metadata["calibration"] = {k: c.calibrator.method for k, c in fitted.calibration.items()}
    metadata["calibration_method"] = (fitted.calibration[ALL].calibrator.method
                                      if ALL in fitted.calibration else "none")
    metadata["regime"] = regime
    metadata["rows"] = {"train": len(split.train), "validation": len(split.validation),
                        "test": len(test)}
    if stage is not None:
        metadata["deal_model"] = config.deal_model
        metadata["deal_censor_days"] = censor
        if has_stage:
            metadata["stage_win_rates"] = stage_win_rates(split.train, key)
            metadata["won_stage_days_p75"] = (
                won_stage_days_p75_from_history(tables, split.validation_start)
                if tables is not None
                else won_stage_days_p75_from_snapshots(split.train, key)
            )
    # A rate model's rates and reasons were recorded when it was fit.
    metadata.update({k: model.metadata[k] for k in ("model_kind", "rate_model")
                     if k in model.metadata})
    model.metadata = metadata

    params: dict[str, Any] = {
        "task": task,
        "feature_set": feature_set.name,
        "feature_set_version": feature_set.version,
        "horizon_days": horizon,
        "seed": config.seed,
        "validation_fraction": config.validation_fraction,
        "test_fraction": config.test_fraction,
        "deal_model": config.deal_model if stage is not None else "n/a",
        "deal_censor_days": censor,
        "deal_offset": config.deal_offset if stage is not None else False,
        "calibration_method": metadata["calibration_method"],
        "best_iteration": fitted.best_iterations.get(ALL, 0),
        "evaluation": config.evaluation,
        "folds": config.folds if static else 0,
        "model_kind": "rate" if model.is_rate_model else "booster",
        "cold_start_regime": regime,
        "train_positive_outcomes": outcomes.positive,
        "train_negative_outcomes": outcomes.negative,
        **{f"lgb_{k}": v for k, v in config.params.lgb_params(config.seed, []).items()
           if k not in ("verbose",)},
        "data_from": str(frame["as_of"].min().isoformat()),
        "data_to": str(frame["as_of"].max().isoformat()),
        "validation_start": split.validation_start.isoformat(),
        "test_start": split.test_start.isoformat(),
        **grade_params(model.grading),
        "small_data": small,
        "train_entities": train_entities,
        "excluded_features": ",".join(config.excluded) or "none",
    }
    return Evaluation(
        task=task,
        feature_set=feature_set,
        model=model,
        split=split,
        calibration=fitted.calibration,
        best_iterations=fitted.best_iterations,
        test_scores=scores,
        metrics=metrics,
        params=params,
        grades=grades,
        warnings=grade_warnings(grades, grading=model.grading),
        evaluation=config.evaluation,
        regime=regime,
        outcomes=outcomes,
        regime_note=regime_note,
        rounds=fitted.rounds,
    )


def _static_cv(
    frame: pd.DataFrame,
    task: str,
    feature_set: FeatureSet,
    config: EvaluationConfig,
    task_params: BoosterParams,
    route_by: str | None,
    offset_column: str | None,
    rate_col: str,
    fit: BoosterFitter = fit_locally,
) -> tuple[TimeSplit, dict[str, np.ndarray]]:
    """Grouped k-fold cross-validation: each fold scored by a model fit on the others
    (the next fold its validation: early stopping, calibration), the baselines likewise.

    Returns the split the registered model is fit on (fold 0 as its validation, the rest
    to train on; every row as the "test" rows the out-of-fold scores belong to) and
    those scores. No period is later than another: the figures are not a backtest.
    """
    if config.folds < 3:
        raise ValueError("static cross-validation needs at least 3 folds")
    fold = static_split(frame, task, config)
    k = config.folds
    key = feature_set.entity_key
    scores: dict[str, np.ndarray] = {}
    for i in range(k):
        test_mask, val_mask = fold == i, fold == (i + 1) % k
        train, validation, test = (frame.loc[~(test_mask | val_mask)], frame.loc[val_mask],
                                   frame.loc[test_mask])
        for name, part in (("training", train), ("validation", validation)):
            if part["label"].nunique() < 2:
                raise ValueError(f"fold {i + 1} of {k}: its {name} rows hold one class; "
                                 "need more data or fewer --folds")
        small = (config.small_data_entities is not None
                 and train[key].nunique() < config.small_data_entities)
        params = task_params.for_small_data() if small else task_params
        fitted, *_ = fit_for_outcomes(task, feature_set, train, validation, config, params,
                                      route_by, offset_column, fit=fit)
        fold_scores = {"model": fitted.model.predict_proba(test),
                       **_baseline_scores(train, test, task, feature_set, rate_col)}
        for name, p in fold_scores.items():
            scores.setdefault(name, np.full(len(frame), np.nan))[test_mask] = p
    if frame["label"].nunique() < 2:
        raise ValueError("every row holds one class; need more data")
    start = frame["as_of"].min()
    split = TimeSplit(train=frame.loc[fold != 0], validation=frame.loc[fold == 0], test=frame,
                      validation_start=start, test_start=start)
    return split, scores
