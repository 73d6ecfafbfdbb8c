"""Train on public CRM datasets through the same training code, beside a logistic regression.

    .venv/bin/python -P benchmarks/real_data.py [--real ../shared/data/real]

(``-P`` keeps ``benchmarks/features.py`` from shadowing the ``features`` package.)

- xeducation_leads: lead conversion from a flat export (9,240 leads). It has no dates,
  so ``Lead Number`` (a creation sequence) orders the leads in time. Fields the sales
  team fills in after contact (Tags, Lead Quality, Lead Profile, Last (Notable)
  Activity, the Asymmetrique indices) leak the outcome and are left out: this is a
  score for a lead as it arrives.
- maven_crm: the closed deals (Won vs Lost) of an opportunity export, scored as of
  their engage date from the agent, product and account. ``close_value`` (0 for every
  loss) leaks the label and is not used; the product's list price stands in for the
  amount.

Each is then run again as the export has it (X Education with its after-contact fields,
Maven with ``close_value``) through the leakage audit (``training.audit.audit_task``, on
the training period), fit without what it flagged, as ``leadscore train`` would, and fit
with every column in for comparison.

Both go through ``training.evaluate.fit_and_evaluate``: time split, LightGBM with
early stopping, calibration chosen on validation, logistic-regression and rate
baselines. Skips with a clear message where the folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.declarations import FeatureSet, FeatureSpec
from training.audit import audit_task
from training.evaluate import EvaluationConfig, fit_and_evaluate
from training.fit import BoosterParams

XED_CATEGORIES = (
    "Lead Origin",
    "Lead Source",
    "Country",
    "Specialization",
    "How did you hear about X Education",
    "What is your current occupation",
    "What matters most to you in choosing a course",
    "City",
)
XED_BOOLS = (
    "Do Not Email",
    "Do Not Call",
    "Search",
    "Newspaper Article",
    "X Education Forums",
    "Newspaper",
    "Digital Advertisement",
    "Through Recommendations",
    "A free copy of Mastering The Interview",
)
XED_NUMBERS = ("TotalVisits", "Total Time Spent on Website", "Page Views Per Visit")
XED_AFTER_CONTACT = (
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Last Activity",
    "Last Notable Activity",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
)
"""Fields the sales team fills in after contact (SOURCE.md): in the export, not known when
a lead arrives."""


def _name(column: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in column.lower()).strip("_")


def xeducation(folder: Path, after_contact: bool = False) -> tuple[pd.DataFrame, FeatureSet]:
    """Leads as snapshots at arrival: key, as_of (from Lead Number), label, features
    (with ``after_contact``, also the fields filled in after contact, as an export has
    them)."""
    raw = pd.read_csv(folder / "Leads.csv")
    raw = raw.replace("Select", np.nan)
    specs: list[FeatureSpec] = []
    data: dict[str, object] = {}
    categories = XED_CATEGORIES + tuple(
        c for c in XED_AFTER_CONTACT if after_contact and raw[c].dtype == object)
    numbers = XED_NUMBERS + tuple(
        c for c in XED_AFTER_CONTACT if after_contact and raw[c].dtype != object)
    for col in categories:
        name = _name(col)
        data[name] = raw[col].astype("category")
        specs.append(FeatureSpec(name, "lead", "category", f"{col}: {{value}}"))
    for col in XED_BOOLS:
        name = _name(col)
        data[name] = raw[col].map({"Yes": 1.0, "No": 0.0})
        specs.append(FeatureSpec(name, "lead", "float", f"{col}: {{value}}"))
    for col in numbers:
        name = _name(col)
        data[name] = pd.to_numeric(raw[col], errors="coerce")
        specs.append(FeatureSpec(name, "lead", "float", f"{col}: {{value}}", monotone=0))
    order = raw["Lead Number"].rank(method="first").to_numpy()
    start = pd.Timestamp("2020-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "lead_id": raw["Prospect ID"].astype(str),
            "as_of": start + pd.to_timedelta(order, unit="h"),
            "label": raw["Converted"].astype("int64"),
            **data,
        }
    )
    name = "xeducation_export_v1" if after_contact else "xeducation_v1"
    fs = FeatureSet(name, 1, "lead_qualification", "lead_id", tuple(specs))
    return frame.sort_values(["as_of", "lead_id"]).reset_index(drop=True), fs


def maven(folder: Path, close_value: bool = False) -> tuple[pd.DataFrame, FeatureSet]:
    """Closed deals as snapshots at their engage date: key, as_of, label (won), features
    (with ``close_value``, also the export's close_value), and ``closed_at`` (the close
    date, not a feature: the leakage audit reads it as the outcome's time)."""
    pipe = pd.read_csv(folder / "sales_pipeline.csv")
    accounts = pd.read_csv(folder / "accounts.csv")
    products = pd.read_csv(folder / "products.csv")
    teams = pd.read_csv(folder / "sales_teams.csv")
    pipe["product"] = pipe["product"].replace({"GTXPro": "GTX Pro"})
    closed = pipe.loc[pipe["deal_stage"].isin(["Won", "Lost"])].copy()
    df = (
        closed.merge(accounts, on="account", how="left")
        .merge(products, on="product", how="left")
        .merge(teams, on="sales_agent", how="left")
    )
    engage = pd.to_datetime(df["engage_date"], utc=True)
    cats = ("sales_agent", "product", "series", "sector", "office_location", "manager",
            "regional_office", "account")
    nums = ("sales_price", "revenue", "employees", "year_established")
    specs = [FeatureSpec(c, "deal", "category", f"{c}: {{value}}") for c in cats]
    specs += [FeatureSpec(c, "deal", "float", f"{c}: {{value}}") for c in nums]
    specs.append(FeatureSpec("engage_month", "deal", "float", "engaged in month {value}"))
    extra = {}
    if close_value:
        specs.append(FeatureSpec("close_value", "deal", "float", "close value {value}"))
        extra["close_value"] = pd.to_numeric(df["close_value"], errors="coerce")
    frame = pd.DataFrame(
        {
            "opportunity_id": df["opportunity_id"].astype(str),
            "as_of": engage,
            "label": (df["deal_stage"] == "Won").astype("int64"),
            **{c: df[c].astype("category") for c in cats},
            **{c: pd.to_numeric(df[c], errors="coerce") for c in nums},
            "engage_month": engage.dt.month.astype(float),
            **extra,
            "closed_at": pd.to_datetime(df["close_date"], utc=True),
        }
    )
    name = "maven_export_v1" if close_value else "maven_deal_v1"
    fs = FeatureSet(name, 1, "deal_close", "opportunity_id", tuple(specs))
    return frame.sort_values(["as_of", "opportunity_id"]).reset_index(drop=True), fs


ROWS = (("LightGBM (calibrated)", "test_"), ("logistic regression", "baseline_lr_test_"),
        ("rate baseline", "baseline_rate_test_"))


def report(name: str, metrics: dict[str, float], rows: dict[str, int], seconds: float) -> None:
    print(f"\n## {name}  (train/validation/test rows {rows}; {seconds:.1f} s)")
    print(f"{'scorer':24s} {'ROC AUC':>8s} {'PR AUC':>8s} {'log loss':>9s} {'Brier':>7s} "
          f"{'ECE':>7s}")
    for label, prefix in ROWS:
        if prefix + "roc_auc" not in metrics:
            continue
        print(f"{label:24s} {metrics[prefix + 'roc_auc']:8.4f} {metrics[prefix + 'pr_auc']:8.4f} "
              f"{metrics[prefix + 'log_loss']:9.4f} {metrics[prefix + 'brier']:7.4f} "
              f"{metrics[prefix + 'ece']:7.4f}")


def audited(
    title: str, frame: pd.DataFrame, fs: FeatureSet, config: EvaluationConfig,
    event_at: pd.Series | None = None,
) -> None:
    """The leakage audit of the training period, then the model fit without what it
    flagged (as ``leadscore train`` does), and the same fit with every column in."""
    audit = audit_task(frame, fs.task, fs, config, event_at=event_at)
    print(f"\n## {title}: leakage audit of the training period ({audit.rows:,} rows)")
    for f in audit.findings:
        evidence = ", ".join(f"{k} {v:g}" for k, v in f.evidence.items())
        print(f"- {f.column} [{f.rule}] {evidence}: {f.reason}")
    if not audit.findings:
        print("- no column flagged")
    strongest = sorted(audit.probe.items(), key=lambda kv: -kv[1])[:8]
    print("strongest on their own (out-of-fold AUC): "
          + ", ".join(f"{c} {auc:.3f}" for c, auc in strongest))
    for excluded, label in ((audit.excluded, f"flagged left out: {', '.join(audit.excluded)}"),
                            ({}, "every column in, no audit")):
        t = time.perf_counter()
        ev = fit_and_evaluate(frame, fs.task, fs, replace(config, excluded=excluded))
        report(f"{title}, {label}", ev.metrics, ev.model.metadata["rows"],
               time.perf_counter() - t)
        p = ev.test_scores["model"]
        print(f"label rate: training {ev.split.train['label'].mean():.4f}, validation "
              f"{ev.split.validation['label'].mean():.4f}, test {ev.split.test['label'].mean():.4f}"
              f"; test probabilities: mean {p.mean():.4f}, standard deviation {p.std():.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    params = BoosterParams(num_leaves=15, min_data_in_leaf=30, learning_rate=0.03)
    ran = 0
    xed = args.real / "xeducation_leads"
    if (xed / "Leads.csv").exists():
        frame, fs = xeducation(xed)
        xed_config = EvaluationConfig(seed=args.seed, params=params, gap_days=0,
                                      rate_column="lead_source")
        t = time.perf_counter()
        ev = fit_and_evaluate(frame, "lead_qualification", fs, xed_config)
        report("xeducation_leads: converted (lead at arrival, leaky fields left out)",
               ev.metrics, ev.model.metadata["rows"], time.perf_counter() - t)
        frame, fs = xeducation(xed, after_contact=True)
        audited("xeducation_leads with its after-contact fields", frame, fs, xed_config)
        ran += 1
    else:
        print(f"skip xeducation_leads: {xed} not found (public data is not in a fresh clone)")
    mav = args.real / "maven_crm"
    if (mav / "sales_pipeline.csv").exists():
        # Maven's cycles run 1-138 days (SOURCE.md): deals engaged in the last 140
        # days before the data's end are left out, so outcomes are not censored.
        mav_config = EvaluationConfig(seed=args.seed, params=params, gap_days=0,
                                      censor_days=140, rate_column="sales_agent")
        frame, fs = maven(mav)
        frame = frame.drop(columns="closed_at")
        t = time.perf_counter()
        ev = fit_and_evaluate(frame, "deal_close", fs, mav_config)
        report("maven_crm: closed deals won, as of engagement", ev.metrics,
               ev.model.metadata["rows"], time.perf_counter() - t)
        frame, fs = maven(mav, close_value=True)
        audited("maven_crm with close_value", frame.drop(columns="closed_at"), fs, mav_config,
                event_at=frame["closed_at"])
        ran += 1
    else:
        print(f"skip maven_crm: {mav} not found (public data is not in a fresh clone)")
    if not ran:
        print("nothing to run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
