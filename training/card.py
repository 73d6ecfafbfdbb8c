"""The model card: one Markdown page per run, for the people who will rely on the scores."""

from __future__ import annotations

import math
from typing import Any

from features.tasks import task_spec
from training.audit import AuditReport
from training.evaluate import WEAK_STAGE_AUC, Evaluation, weak_stages

SCORERS = (
    ("model", "LightGBM", "test_"),
    ("baseline_lr", "logistic regression", "baseline_lr_test_"),
    ("baseline_rate", "CRM rate (training period)", "baseline_rate_test_"),
    ("baseline_crm_default", "CRM default stage probabilities", "baseline_crm_default_test_"),
    ("oracle", "oracle (true probability)", "oracle_test_"),
)


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.4f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def grade_lines(ev: Evaluation) -> list[str]:
    """The grades' cut-offs and, per grade on the test period, its count and observed rate."""
    grading = ev.model.grading
    if grading is None:
        return []
    lines = [
        "",
        "## Grades",
        "",
        f"- {grading.describe()}.",
        "- `percentile` in each result is the share of those reference scores below the "
        "entity's.",
        "",
        "| grade | scores | test rows | share | observed rate | mean probability |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    bounds = grading.ranges()
    for r in ev.grades:
        lines.append(f"| {r.grade} | {bounds[r.grade]} | {r.count:,} | {r.share:.1%} "
                     f"| {_pct(r.observed_rate)} | {_pct(r.mean_probability)} |")
    return lines


def _strict_section(m: dict[str, float], rows: dict[str, int]) -> list[str]:
    """The strict backtest beside the ordinary split, as Markdown lines."""
    if "strict_train_rows_dropped" not in m:
        return []
    lines = ["", "## Strict backtest", ""]
    dropped = int(m["strict_train_rows_dropped"]), int(m["strict_validation_rows_dropped"])
    lines.append(
        "The split above keeps every training and validation row whose entity was first seen "
        "before the next period, even when its label was only known later, inside the test "
        "period. The strict backtest refits on the rows whose label was known at the test "
        f"start: {dropped[0]:,} of {rows.get('train', 0):,} training and {dropped[1]:,} of "
        f"{rows.get('validation', 0):,} validation rows left out."
    )
    if not any(dropped):
        return [*lines, "", "Nothing to leave out: the figures above are already strict."]
    if "strict_test_log_loss" not in m:
        return [*lines, "", "Too little was known at the test start to fit a model."]
    lines += ["", "| scorer | ROC AUC | strict ROC AUC | log loss | strict log loss |",
              "| --- | --- | --- | --- | --- |"]
    for _, label, prefix in SCORERS:
        if f"strict_{prefix}log_loss" in m:
            lines.append(
                f"| {label} | {_fmt(m.get(prefix + 'roc_auc'))} "
                f"| {_fmt(m[f'strict_{prefix}roc_auc'])} | {_fmt(m.get(prefix + 'log_loss'))} "
                f"| {_fmt(m[f'strict_{prefix}log_loss'])} |"
            )
    return lines


def audit_lines(audit: AuditReport | None) -> list[str]:
    """The leakage audit: what it flagged, what the model leaves out and what it kept."""
    if audit is None:
        return ["", "## Leakage audit", "", "Not run for this model."]
    lines = ["", "## Leakage audit", "",
             f"Run on the training period ({audit.rows:,} rows, {audit.entities:,} entities) "
             "before fitting: a single-feature AUC probe per column, fields filled in only for "
             "one outcome, values changed after the outcome, timestamps at or after it, and "
             "measures that track the cycle's length (thresholds in `audit.json`)."]
    if not audit.findings:
        lines += ["", "No column was flagged."]
    else:
        lines += ["", "| column | rule | reason | left out |", "| --- | --- | --- | --- |"]
        excluded = audit.excluded
        for f in audit.findings:
            verdict = ("yes" if f.column in excluded else "kept (--allow-column): leak risk"
                       if f.column in audit.allowed else "not a feature")
            lines.append(f"| `{f.column}` | {f.rule} | {f.reason} | {verdict} |")
    if audit.kept:
        lines += ["", "**Leak risk:** kept on purpose although flagged: "
                  + ", ".join(f"`{c}`" for c in audit.kept) + "."]
    if audit.skipped:
        lines.append("")
    for rule, why in audit.skipped.items():
        lines.append(f"- {rule} not checked: {why}")
    strongest = sorted(audit.probe.items(), key=lambda kv: -kv[1])[:5]
    if strongest:
        lines += ["", "Strongest columns on their own (out-of-fold AUC): "
                  + ", ".join(f"`{c}` {auc:.3f}" for c, auc in strongest) + "."]
    return lines


def own_lines(own: dict[str, Any] | None) -> list[str]:
    """The export's own columns: which the model reads, which it leaves out and why, and
    which it reads with only their value on the export's day (leak risks)."""
    if not own:
        return []
    lines = ["", "## The export's own columns", ""]
    used, risks = own.get("used") or [], set(own.get("leak_risks") or [])
    if used:
        lines.append("- Features: " + ", ".join(
            f"`{n}`" + (" (**leak risk**: only the export's value exists, used by "
                        "allow_current_values)" if n in risks else "") for n in used) + ".")
    for name, why in (own.get("left_out") or {}).items():
        lines.append(f"- Left out: `{name}`: {why}.")
    return lines


def model_card(ev: Evaluation, version: str | None = None, gate_reason: str | None = None,
               audit: AuditReport | None = None) -> str:
    """Markdown: data range, row counts, feature set, metrics beside baselines, limits."""
    md = ev.model.metadata
    m = ev.metrics
    spec = task_spec(ev.task)
    lines = [
        f"# Model card: {ev.task}" + (f" v{version}" if version else ""),
        "",
        f"**Predicts** {spec.describe_label(md.get('horizon_days'))}, for each {spec.entity} "
        f"scored {spec.snapshots.description}.",
        "",
        "## Data",
        "",
        f"- Feature set: `{ev.feature_set.name}` version {ev.feature_set.version} "
        f"({len(ev.feature_set.names)} features, "
        f"{len(ev.feature_set.categorical)} categorical)",
        f"- Snapshots from {ev.params['data_from']} to {ev.params['data_to']}",
        f"- Train: {len(ev.split.train):,} rows up to {ev.params['validation_start']}; "
        f"validation: {len(ev.split.validation):,} rows; "
        f"test: {len(ev.split.test):,} rows from {ev.params['test_start']}",
        f"- Label rate: train {ev.split.train['label'].mean():.3f}, "
        f"test {ev.split.test['label'].mean():.3f}",
    ]
    current = md.get("current_values") or []
    if current:
        lines.append(
            "- **Leak risk:** known only as of the export and read anyway "
            "(`allow_current_values` in the import's mapping): "
            + ", ".join(f"`{c}`" for c in current)
            + ". Every snapshot sees today's value, including what was filled in or edited "
            "after it; the test figures may be better than the model will do.")
    if ev.static:
        lines += [
            f"- **Not a backtest.** Static mode: the data's times cannot carry a time split "
            f"({md.get('static_reason') or 'asked for'}), so the figures below come from "
            f"grouped {ev.params.get('folds')}-fold cross-validation (each {spec.entity} in "
            "one fold), every row scored by a model fit on the other folds. No fold is later "
            "than another: they say how well the model ranks and calibrates rows like its "
            "training rows, not how it will do on next month's.",
        ]
    else:
        lines.append("- Split by time, by entity: an entity belongs to the period of its "
                     "first snapshot, and no period's rows are later than the next period's "
                     "start.")
    lines += own_lines(md.get("own_features"))
    lines += ["", "## Model", ""]
    if ev.model.is_rate_model:
        info = md.get("rate_model") or {}
        lines.append(
            f"- **Rate model** (cold start): the {spec.baselines.rate_label}, each value's "
            f"rate Beta-smoothed toward the overall {info.get('prior', 0):.3f} with a prior "
            f"of {info.get('prior_strength', 0):g} {spec.plural}; no booster")
        for value, text in (info.get("reasons") or {}).items():
            lines.append(f"  - {value}: {text}")
    elif ev.rounds:
        where = (md.get("training") or {}).get("cluster")
        lines.append(
            f"- LightGBM fit on a Dask cluster ({where}) with `lightgbm.dask`, native "
            "categoricals, monotone constraints from the feature declarations. "
            "`lightgbm.dask` has no early stopping, so the rounds were chosen first on a "
            "sampled validation:")
        lines += [f"  - {key}: {choice.describe()}" for key, choice in ev.rounds.items()]
    else:
        lines.append(
            f"- LightGBM, native categoricals, early stopping on validation log loss "
            f"(best iteration {ev.best_iterations}), monotone constraints from the feature "
            f"declarations")
    if ev.regime_note:
        lines.append(f"- {ev.regime_note}")
    if ev.params.get("small_data") and not ev.model.is_rate_model:
        lines.append(
            f"- Small data ({ev.params.get('train_entities'):,} {spec.plural} to train on): "
            "smaller, smoother trees on half the features at a time "
            "(`BoosterParams.for_small_data`)"
        )
    if spec.stage_column is not None:
        kind = {"single": "one booster with the stage as a feature",
                "per_stage": "one booster per stage (a pooled one for rare stages)"}
        lines.append(f"- Deal model: {kind.get(str(md.get('deal_model')), md.get('deal_model'))}")
    censor = ev.params.get("deal_censor_days")
    if censor:
        lines.append(
            f"- {spec.plural.capitalize()} first seen in the last {censor} days of the data are "
            "left out of every period: only the quick ones among them have an outcome yet"
        )
    cal = ev.calibration
    for key, choice in cal.items():
        cv = ", ".join(f"{k} {v:.4f}" for k, v in sorted(choice.cv_log_loss.items()))
        lines.append(
            f"- Calibration ({key}): **{choice.calibrator.method}**, chosen by out-of-fold "
            f"validation log loss ({cv})"
        )
    lines += [
        "",
        "## Cross-validated metrics (not a backtest)" if ev.static else "## Test-period metrics",
        "",
        "| scorer | ROC AUC | PR AUC | log loss | Brier | ECE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, label, prefix in SCORERS:
        if name not in ev.test_scores:
            continue
        if name == "model" and ev.model.is_rate_model:
            label = "rate model (cold start)"
        lines.append(
            f"| {label} | {_fmt(m.get(prefix + 'roc_auc'))} | {_fmt(m.get(prefix + 'pr_auc'))} "
            f"| {_fmt(m.get(prefix + 'log_loss'))} | {_fmt(m.get(prefix + 'brier'))} "
            f"| {_fmt(m.get(prefix + 'ece'))} |"
        )
    lines += ["", f"Lift in the top decile: {_fmt(m.get('test_lift_top_decile'))}."]
    if "test_roc_auc_oracle_ratio" in m:
        lines.append(f"ROC AUC as a share of the oracle's: {m['test_roc_auc_oracle_ratio']:.3f}.")
    per_stage = [k for k in m if k.startswith("test_roc_auc_") and k != "test_roc_auc_oracle_ratio"]
    if per_stage:
        lines += ["", "| stage | ROC AUC | Brier |", "| --- | --- | --- |"]
        for k in per_stage:
            s = k.removeprefix("test_roc_auc_")
            lines.append(f"| {s} | {_fmt(m[k])} | {_fmt(m.get('test_brier_' + s))} |")
        weak = [] if ev.model.is_rate_model else list(weak_stages(m))
        if weak:
            lines += ["", f"**Warning:** inside {', '.join(weak)} the model ranks "
                      f"{spec.plural} little better than chance (ROC AUC below {WEAK_STAGE_AUC})."]
    lines += _strict_section(m, md.get("rows") or {})
    lines += audit_lines(audit)
    lines += grade_lines(ev)
    if ev.warnings:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in ev.warnings)]
    if gate_reason:
        lines += ["", "## Promotion", "",
                  "Champion only if, on these test rows, log loss is lower and ROC AUC not worse "
                  "by more than 0.002 than the current champion, the "
                  f"{spec.baselines.rate_label} and logistic regression.", "", gate_reason]
    lines += [
        "",
        "## Known limits",
        "",
        "- Scores are only as current as the CRM: activity not logged is not seen.",
        "- Trained on one period; behaviour shifts (new sources, products, pricing) call for "
        "retraining and a fresh comparison against the champion.",
        "- Test rows are entities first seen in the test period; entities still open at the "
        "data's end are unlabelled and not scored in this report.",
        "- Contributions (reasons) are in log-odds before calibration: they rank factors, "
        "they do not add up to the calibrated probability.",
    ]
    return "\n".join(lines) + "\n"
