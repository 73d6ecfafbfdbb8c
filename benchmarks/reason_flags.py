"""How often a deal's risk flags and its reasons disagree, over a test period.

Usage: python -P benchmarks/reason_flags.py DIR  (DIR from ``leadscore generate --out DIR
--leads N --seed 7``; ``-P`` keeps ``benchmarks/features.py`` from shadowing the
``features`` package).

Trains the deal model as ``leadscore train`` does (the same snapshots, time split and
default settings), then for every snapshot of the test period raises the risk flags and
picks the reasons the API gives. A disagreement is a raised flag with a reason *for* the
score about a feature the flag states (``serving.risk.FLAG_FEATURES``: a stall beside
"12 days in proposal" as a reason for). Counted twice: as serving builds reasons (the
flags' features kept out of the reasons for: zero by construction), and without that
exclusion, to show how often the reasons alone would contradict the flags.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from serving.explain import Explainer, Explanation, explainer, row_values
from serving.results import risk_rules
from serving.risk import FLAG_FEATURES, Flag, flagged_features, risk_flags
from serving.settings import get_scoring_settings
from training.data import load_training_inputs
from training.evaluate import EvaluationConfig, fit_and_evaluate


def disagreements(flags: list[Flag], e: Explanation) -> list[tuple[str, str]]:
    """(flag, reason topic) pairs where a reason for is about what the flag states."""
    return [(f.flag, r.topic) for f in flags for r in e.up
            if set(FLAG_FEATURES[f.flag]) & set(r.values)]


def main(data: Path) -> None:
    started = time.perf_counter()
    inputs = load_training_inputs(data, "deal_close")
    fs = inputs.feature_set
    ev = fit_and_evaluate(inputs.frame, "deal_close", fs, EvaluationConfig(),
                          tables=inputs.tables)
    test = ev.split.test.reset_index(drop=True)
    print(f"trained on {len(ev.split.train):,} deal snapshots, test period "
          f"{test['as_of'].min():%Y-%m-%d} to {test['as_of'].max():%Y-%m-%d}: "
          f"{len(test):,} snapshots of {test[fs.entity_key].nunique():,} deals "
          f"({time.perf_counter() - started:.0f} s)")

    proba = ev.model.predict_proba(test)
    contrib = ev.model.contributions(test)[fs.names].to_numpy()
    ex: Explainer = explainer(fs)
    sums = ex.sums(contrib)
    rules = risk_rules(get_scoring_settings())
    metadata = ev.model.metadata
    frame = test[fs.names].astype(object).to_numpy()

    flagged_rows = 0
    raised: Counter[str] = Counter()
    counts = {"as served": Counter[tuple[str, str]](), "without the exclusion": Counter()}
    rows_with = dict.fromkeys(counts, 0)
    for i in range(len(test)):
        values = row_values(fs, frame[i])
        flags = risk_flags(values, float(proba[i]), metadata, rules)
        if not flags:
            continue
        flagged_rows += 1
        raised.update(f.flag for f in flags)
        for name, exclude in (("as served", flagged_features(flags)),
                              ("without the exclusion", frozenset[str]())):
            found = disagreements(flags, ex.explain(sums[i], values, exclude_up=exclude))
            counts[name].update(found)
            rows_with[name] += bool(found)

    print(f"{flagged_rows:,} of {len(test):,} test snapshots raise a flag: "
          + ", ".join(f"{k} {v:,}" for k, v in raised.most_common()))
    for name, c in counts.items():
        total = sum(c.values())
        detail = ", ".join(f"{flag}/{topic} {n:,}" for (flag, topic), n in c.most_common())
        print(f"disagreements {name}: {total:,} in {rows_with[name]:,} snapshots"
              + (f" ({detail})" if detail else ""))
    assert sum(counts["as served"].values()) == 0
    print(f"mean probability {np.mean(proba):.3f}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
