"""A synthetic B2B CRM whose ground truth is known exactly.

Why a simulator: a model's test AUC means little without the best score any model could
reach on the same rows. Here every lead and deal is driven by a small continuous-time
Markov chain over *hidden* states, and every table row a model reads is an emission of
those states. Because the chains are Markov, the probability of the label given the hidden
state at any time ``t`` has a closed form (leads) or a 10-state linear solve (deals): that
is the oracle in ``leadscore.truth``.

Leads. Each lead has a hidden intent ``z`` (source, seniority, function, firmographic fit,
noise). It starts ``cold``; it may turn ``hot`` (buying now), go ``dead`` (interest gone)
or, rarely, qualify straight from cold. A hot lead qualifies or dies. Activity rates depend
on the state: quiet when cold (scaled by intent), a burst when hot, fading when dead. Dead
leads are disqualified by sales some weeks later, or linger open. Qualified leads become
opportunities.

Deals. Each deal has a hidden quality (the lead's intent, the rep's skill, the product,
the account's fit, noise) and a hidden regime, ``healthy`` or ``troubled``. In each open
stage, prospecting -> qualification -> meeting_demo -> proposal -> negotiation, it advances,
is lost, moves back a stage or switches regime, at rates set by stage, regime and quality.
Troubled deals advance slowly, get lost often, have their close date pushed and amount cut,
and go quiet. Near quarter end, every rate in proposal and negotiation speeds up by the same
factor (a change of clock that leaves the win probability unchanged, so the oracle stays
exact). Won deals bring renewals and expansions (deals with no lead).

Nothing of the hidden state is written into the tables: it goes to ``_truth/`` beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.schema import TABLES, CRMTables, coerce_dtypes
from leadscore.synth.accounts import simulate_accounts
from leadscore.synth.activities import activity_rows
from leadscore.synth.columns import DAY_NS
from leadscore.synth.config import GeneratorConfig
from leadscore.synth.deal_chain import (
    ADVANCE,
    BACK,
    LOSE,
    MAX_DEAL_STEPS,
    PRESSURE_STAGES,
    QUARTER_END_SPEEDUP,
    TO_HEALTHY,
    TO_TROUBLED,
    TROUBLED_ADVANCE,
    TROUBLED_LOSE,
    deal_rates,
    deal_win_probabilities,
)
from leadscore.synth.deal_history import (
    CUT_RATE,
    DEAL_RATES,
    PUSH_RATE,
    RAISE_RATE,
    TROUBLED_ACTIVITY_FACTOR,
    contact_counts,
    emit_deal_activities,
    emit_deal_events,
    history_rows,
    price_deals,
)
from leadscore.synth.deals import simulate_deal_rounds
from leadscore.synth.leads import (
    LEAD_COLD,
    LEAD_COLD_OUT,
    LEAD_DEAD_DAYS,
    LEAD_DEAD_FACTOR,
    LEAD_HOT,
    emit_lead_activities,
    lead_rates,
    simulate_leads,
)
from leadscore.synth.sampling import QUARTER_END_DAYS
from leadscore.synth.tables import (
    accounts_table,
    activities_table,
    history_table,
    leads_table,
    make_ids,
    opportunities_table,
)
from leadscore.synth.truth_tables import truth_tables
from leadscore.synth.vocab import (
    COUNTRIES,
    COUNTRY_EFFECT,
    COUNTRY_WEIGHTS,
    FUNCTION_EFFECT,
    FUNCTION_LABEL,
    FUNCTION_WEIGHTS,
    FUNCTIONS,
    INBOUND_SHARE,
    INDUSTRIES,
    INDUSTRY_EFFECT,
    INDUSTRY_WEIGHTS,
    N_TYPES,
    PRODUCT_BASE_AMOUNT,
    PRODUCT_EFFECT,
    PRODUCTS,
    SENIORITIES,
    SENIORITY_EFFECT,
    SENIORITY_TITLE,
    SENIORITY_WEIGHTS,
    SOURCE_EFFECT,
    SOURCE_WEIGHTS,
    SOURCES,
)
from leadscore.truth import TRUTH_DIR

__all__ = [
    "ADVANCE", "BACK", "COUNTRIES", "COUNTRY_EFFECT", "COUNTRY_WEIGHTS", "CUT_RATE", "DAY_NS",
    "DEAL_RATES", "FUNCTIONS", "FUNCTION_EFFECT", "FUNCTION_LABEL", "FUNCTION_WEIGHTS",
    "INBOUND_SHARE", "INDUSTRIES", "INDUSTRY_EFFECT", "INDUSTRY_WEIGHTS", "LEAD_COLD",
    "LEAD_COLD_OUT", "LEAD_DEAD_DAYS", "LEAD_DEAD_FACTOR", "LEAD_HOT", "LOSE", "MAX_DEAL_STEPS",
    "N_TYPES", "PRESSURE_STAGES", "PRODUCTS", "PRODUCT_BASE_AMOUNT", "PRODUCT_EFFECT",
    "PUSH_RATE", "QUARTER_END_DAYS", "QUARTER_END_SPEEDUP", "RAISE_RATE", "SENIORITIES",
    "SENIORITY_EFFECT", "SENIORITY_TITLE", "SENIORITY_WEIGHTS", "SOURCES", "SOURCE_EFFECT",
    "SOURCE_WEIGHTS", "TO_HEALTHY", "TO_TROUBLED", "TROUBLED_ACTIVITY_FACTOR",
    "TROUBLED_ADVANCE", "TROUBLED_LOSE", "GeneratedCRM", "GeneratorConfig", "Progress",
    "deal_rates", "deal_win_probabilities", "generate_crm", "lead_rates", "write_crm",
]


@dataclass(frozen=True)
class GeneratedCRM:
    """The five contract tables (as Arrow) and the hidden truth behind them."""

    config: GeneratorConfig
    arrow: dict[str, pa.Table]
    truth: dict[str, pa.Table]

    @property
    def tables(self) -> CRMTables:
        frames = {
            name: coerce_dtypes(tbl.to_pandas(), TABLES[name]) for name, tbl in self.arrow.items()
        }
        return CRMTables(**frames)


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


def generate_crm(
    n_leads: int,
    seed: int = 0,
    start: str = "2024-01-01",
    months: int = 24,
    progress: Progress = _noop,
) -> GeneratedCRM:
    """Simulate a CRM of ``n_leads`` leads over ``months`` months from ``start``.

    The phases run in a fixed order on one random generator; each says what it draws.
    """
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    cfg = GeneratorConfig(n_leads=n_leads, seed=seed, start=start, months=months)
    rng = np.random.default_rng(seed)
    D = cfg.days

    progress("accounts")
    accounts = simulate_accounts(rng, n_leads)
    progress("leads")
    leads = simulate_leads(rng, accounts, n_leads, D)
    progress("lead activities")
    lead_acts = emit_lead_activities(rng, leads, D)
    progress("deals")
    deals = simulate_deal_rounds(rng, cfg, accounts, leads)
    progress("deal history")
    amount0, close0 = price_deals(rng, deals, accounts.employees)
    deal_contacts = contact_counts(rng, deals.quality)
    progress("deal activities")
    deal_acts = emit_deal_activities(rng, deals)
    history = history_rows(deals, emit_deal_events(rng, deals), amount0, close0)
    progress("activities table")
    rows = activity_rows(rng, lead_acts, deal_acts, leads.account, deals, deal_contacts, D)

    progress("writing tables")
    id_ = make_ids(accounts.n, n_leads, deals.n, deals.n_reps, rows.n_contacts)
    accounts_tbl, industry_blank = accounts_table(rng, cfg, accounts, leads, id_)
    arrow = {
        "accounts": accounts_tbl,
        "leads": leads_table(rng, cfg, accounts, leads, deals, id_, industry_blank),
        "opportunities": opportunities_table(cfg, deals, history, id_),
        "opportunity_history": history_table(cfg, history, id_),
        "activities": activities_table(cfg, rows, id_),
    }
    progress("truth")
    return GeneratedCRM(config=cfg, arrow=arrow, truth=truth_tables(cfg, leads, deals, id_))


def write_crm(crm: GeneratedCRM, out_dir: Path) -> list[Path]:
    """Write one Parquet file per table, and the truth under ``_truth/``.

    Same seed, same bytes: no timestamps or random ids in the files' metadata.
    """
    out_dir = Path(out_dir)
    (out_dir / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for name, tbl in crm.arrow.items():
        schema_cols = TABLES[name].column_names
        path = out_dir / f"{name}.parquet"
        pq.write_table(tbl.select(schema_cols), path, compression="zstd")
        written.append(path)
    for name, tbl in crm.truth.items():
        path = out_dir / TRUTH_DIR / f"{name}.parquet"
        pq.write_table(tbl, path, compression="zstd")
        written.append(path)
    return written
