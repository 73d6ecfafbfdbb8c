"""How hard the post-sale labels are: the oracle's ROC AUC on renewal and expansion snapshots.

Usage: python -P benchmarks/post_sale.py [leads] [seed ...]  (default 30,000 leads, seed 1;
``-P`` keeps ``benchmarks/features.py`` from shadowing the ``features`` package).
Snapshots as the tasks define them: renewal weekly while the account's next renewal is due
within 120 days, until it closes (label: that renewal was won, from the truth, so renewals
closing after the data's end count too; renewals opening after the data's end are left
out); expansion monthly from the sale while the account has a renewal ahead, up to 90 days
before the data's end (label: an expansion deal created within the next 90 days).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadscore.generator import generate_crm
from leadscore.truth import (
    Truth,
    health_states,
    next_renewals,
    renewal_truth,
    truth_probabilities,
)

DAY = pd.Timedelta(days=1)


def renewal_snapshots(truth: Truth, end: pd.Timestamp) -> pd.DataFrame:
    """Each customer account weekly from its sale, kept while its next renewal is due within
    120 days; label: that renewal was won (renewals opening after the data's end dropped)."""
    assert truth.customers is not None
    rows = [(c.account_id, c.sale_at + 7 * k * DAY) for c in truth.customers.itertuples()
            for k in range(int((end - c.sale_at) / (7 * DAY)) + 1)]
    snaps = pd.DataFrame(rows, columns=["account_id", "as_of"])
    snaps = snaps[snaps["as_of"] < end].reset_index(drop=True)
    nxt = next_renewals(truth, snaps)
    keep = (nxt["due_at"] - snaps["as_of"] <= 120 * DAY) & nxt["won"].notna()
    return snaps[keep].assign(label=nxt.loc[keep, "won"].astype(bool)).reset_index(drop=True)


def expansion_snapshots(truth: Truth, opportunities: pd.DataFrame,
                        end: pd.Timestamp) -> pd.DataFrame:
    assert truth.customers is not None
    rows = [(c.account_id, c.sale_at + 30 * k * DAY) for c in truth.customers.itertuples()
            for k in range(int((end - 90 * DAY - c.sale_at) / (30 * DAY)) + 1)]
    snaps = pd.DataFrame(rows, columns=["account_id", "as_of"])
    snaps = snaps[~np.isnan(renewal_truth(truth, snaps))].reset_index(drop=True)
    exp = opportunities.loc[opportunities["product"] == "expansion", ["account_id", "created_at"]]
    m = snaps.reset_index().merge(exp, on="account_id", how="left")
    hit = (m["created_at"] > m["as_of"]) & (m["created_at"] <= m["as_of"] + 90 * DAY)
    label = hit.groupby(m["index"]).any().reindex(range(len(snaps)), fill_value=False)
    return snaps.assign(label=label.to_numpy())


def report(n_leads: int, seed: int) -> None:
    t0 = time.perf_counter()
    crm = generate_crm(n_leads, seed=seed)
    took = time.perf_counter() - t0
    from leadscore.truth import truth_from_arrow

    truth, tables, end = truth_from_arrow(crm.truth), crm.tables, crm.config.end_ts
    assert truth.customers is not None and truth.contracts is not None
    opps = tables.opportunities
    closed = opps[opps["closed_at"].notna()]
    print(f"{n_leads:,} leads, seed {seed}: generated in {took:.1f} s; "
          f"{len(truth.customers):,} customer accounts")
    for product in ("renewal", "expansion"):
        c = closed[closed["product"] == product]
        print(f"  {product}: {int((opps['product'] == product).sum())} created, "
              f"{len(c)} closed, {c['is_won'].astype(bool).mean():.3f} won")
    c = truth.contracts[truth.contracts["renewal_opportunity_id"].notna()]
    at_open = health_states(truth, pd.DataFrame({"account_id": c["account_id"],
                                                 "as_of": c["renewal_created_at"]}))
    share = pd.Series(at_open).value_counts(normalize=True).round(3).to_dict()
    print(f"  health when a renewal opens: {share}")
    first = truth.contracts.sort_values("started_at").drop_duplicates("account_id")
    first = first[first["renewal_opportunity_id"].notna()]
    renewed = truth.deals.set_index("opportunity_id").loc[first["renewal_opportunity_id"], "won"]
    print(f"  accounts whose first renewal opened: {len(first)}, of which renewed "
          f"{renewed.mean():.3f}")
    for task, snaps in (("account_renewal", renewal_snapshots(truth, end)),
                        ("account_expansion", expansion_snapshots(truth, opps, end))):
        p = truth_probabilities(truth, task, snaps, horizon_days=90)
        y = snaps["label"].to_numpy(dtype=bool)
        print(f"  {task}: {len(snaps):,} snapshots, label rate {y.mean():.3f}, "
              f"oracle ROC AUC {roc_auc_score(y, p):.3f}, mean oracle {p.mean():.3f}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    for seed in [int(s) for s in sys.argv[2:]] or [1]:
        report(n, seed)


if __name__ == "__main__":
    main()
