"""A synthetic B2B CRM whose ground truth is known exactly.

Why a simulator: a model's test AUC means little without the best score any model could
reach on the same rows. Here every lead, deal and customer is driven by a small
continuous-time Markov chain over *hidden* states, and every table row a model reads is an
emission of those states. Because the chains are Markov, the probability of each label given
the hidden state at any time ``t`` has a closed form (leads), a 10-state linear solve
(deals) or a matrix exponential (customers): that is the oracle in ``leadscore.truth``.

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
exact).

After the sale. An account's first won new-business deal makes it a customer, with a
hidden health: onboarding -> healthy <-> at_risk -> churned, exponential holding times whose
rates depend on constants drawn at the sale (fit, size, product tier, a hidden adoption).
Health drives the ``account_signals`` table (weekly active users and logins until churn,
tickets with severity, CSAT after some tickets, quarterly NPS), post-sale engagement
activities with the account's contacts (fewer, with fewer contacts, when at risk),
expansion deals (a Poisson process whose rate follows the state), and renewals: every won
new-business or renewal deal is a contract due a year after the win, whose renewal deal
opens 15-35 days before the due date at the proposal stage, with its quality and start
regime set by the health at that moment (a churned account's renewal is mostly lost).
The post-sale simulation draws from its own generator, ``default_rng([seed, 1])``: changing
it leaves leads and new-business deals unchanged.

What the CRM knew, and when. A lead's BANT answers are mostly recorded during
qualification (when sales first talks to it, at the latest when it converts), not at its
creation; head counts and industries are filled in or corrected by enrichment days later.
Each change goes to ``lead_field_history`` (old value, new value, when), the lead row holds
the values as of the data's end, and features read them as of each snapshot. These draws
come from ``default_rng([seed, 2])``: the funnel itself is unchanged by them.

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
from leadscore.synth.activities import (
    ActivityRows,
    deal_activity_rows,
    lead_activity_rows,
    merge_activities,
)
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
    DealHistory,
    concat_events,
    contact_counts,
    emit_deal_activities,
    emit_deal_events,
    history_rows,
    price_follow_ons,
    price_new_business,
)
from leadscore.synth.deals import Deals, flatten, simulate_new_business
from leadscore.synth.drift import drift_for, thin_activities
from leadscore.synth.field_edits import FIELD_EDIT_STREAM, lead_field_edits
from leadscore.synth.health import HEALTH_STATES
from leadscore.synth.leads import (
    LEAD_COLD,
    LEAD_COLD_OUT,
    LEAD_DEAD_DAYS,
    LEAD_DEAD_FACTOR,
    LEAD_HOT,
    Leads,
    emit_lead_activities,
    lead_rates,
    simulate_leads,
)
from leadscore.synth.post_sale import PostSale, simulate_post_sale
from leadscore.synth.sampling import QUARTER_END_DAYS
from leadscore.synth.signals import SIGNALS, TICKET_TOPICS, emit_account_activities, emit_signals
from leadscore.synth.tables import (
    SIGNAL_COLUMNS,
    accounts_table,
    activities_table,
    history_table,
    leads_table,
    make_ids,
    opportunities_table,
    signals_table,
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

POST_SALE_STREAM = 1  # the post-sale generator is default_rng([seed, POST_SALE_STREAM])

__all__ = [
    "ADVANCE", "BACK", "COUNTRIES", "COUNTRY_EFFECT", "COUNTRY_WEIGHTS", "CUT_RATE", "DAY_NS",
    "DEAL_RATES", "FUNCTIONS", "FUNCTION_EFFECT", "FUNCTION_LABEL", "FUNCTION_WEIGHTS",
    "HEALTH_STATES", "INBOUND_SHARE", "INDUSTRIES", "INDUSTRY_EFFECT", "INDUSTRY_WEIGHTS",
    "LEAD_COLD", "LEAD_COLD_OUT", "LEAD_DEAD_DAYS", "LEAD_DEAD_FACTOR", "LEAD_HOT", "LOSE",
    "MAX_DEAL_STEPS", "N_TYPES", "PRESSURE_STAGES", "PRODUCTS", "PRODUCT_BASE_AMOUNT",
    "PRODUCT_EFFECT", "PUSH_RATE", "QUARTER_END_DAYS", "QUARTER_END_SPEEDUP", "RAISE_RATE",
    "SENIORITIES", "SENIORITY_EFFECT", "SENIORITY_TITLE", "SENIORITY_WEIGHTS", "SIGNALS",
    "SIGNAL_COLUMNS", "SOURCES", "SOURCE_EFFECT", "SOURCE_WEIGHTS", "TICKET_TOPICS",
    "TO_HEALTHY", "TO_TROUBLED", "TROUBLED_ACTIVITY_FACTOR", "TROUBLED_ADVANCE",
    "TROUBLED_LOSE", "GeneratedCRM", "GeneratorConfig", "Progress", "deal_rates",
    "deal_win_probabilities", "generate_crm", "lead_rates", "write_crm",
]


@dataclass(frozen=True)
class GeneratedCRM:
    """The contract tables (as Arrow; ``account_signals`` among them) and the hidden truth."""

    config: GeneratorConfig
    arrow: dict[str, pa.Table]
    truth: dict[str, pa.Table]

    @property
    def tables(self) -> CRMTables:
        """The contract tables, with the contract's dtypes."""
        return CRMTables(**{name: coerce_dtypes(tbl.to_pandas(), TABLES[name])
                            for name, tbl in self.arrow.items()})


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


def generate_crm(
    n_leads: int,
    seed: int = 0,
    start: str = "2024-01-01",
    months: int = 24,
    progress: Progress = _noop,
    installed_base: int | None = None,
    drift: bool = False,
) -> GeneratedCRM:
    """Simulate a CRM of ``n_leads`` leads over ``months`` months from ``start``, and about
    ``installed_base`` customers from before it (default: 6 per 100 leads). With
    ``drift``, the last quarter of the months shifts (``leadscore.synth.drift``).

    The pre-sale phases draw from ``default_rng(seed)``, everything after a sale from
    ``default_rng([seed, 1])``, each in a fixed order.
    """
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    if installed_base is not None and installed_base < 0:
        raise ValueError("installed_base must not be negative")
    cfg = GeneratorConfig(n_leads=n_leads, seed=seed, start=start, months=months,
                          installed_base=installed_base, drift=drift)
    rng = np.random.default_rng(seed)
    rng_post = np.random.default_rng([seed, POST_SALE_STREAM])
    D = cfg.days
    shift = drift_for(seed, D) if drift else None

    progress("accounts")
    accounts = simulate_accounts(rng, n_leads)
    progress("leads")
    leads = simulate_leads(rng, accounts, n_leads, D, shift)
    progress("lead activities")
    lead_acts = emit_lead_activities(rng, leads, D)
    progress("deals")
    nb = simulate_new_business(rng, cfg, accounts, leads)
    post = simulate_post_sale(rng_post, accounts, nb, D, installed=cfg.installed)
    deals = flatten([nb.batch, *post.batches], [nb.run, *post.runs], nb.rep_skill.size)
    history, deal_contacts, deal_acts = _deal_paper_trail(rng, rng_post, deals,
                                                          post.accounts.employees, progress)
    progress("activities table")
    rows, n_contacts = _activity_rows(rng, rng_post, leads, lead_acts, deals, deal_contacts,
                                      deal_acts, post, D)
    signals = emit_signals(rng_post, post.customers, post.accounts.employees, D)

    progress("writing tables")
    id_ = make_ids(post.accounts.n, n_leads, deals.n, deals.n_reps, n_contacts)
    accounts_tbl, industry_blank = accounts_table(rng, rng_post, cfg, post, leads, id_)
    final_leads = leads_table(rng, cfg, post.accounts, leads, deals, id_, industry_blank)
    leads_tbl, lead_changes = lead_field_edits(
        np.random.default_rng([seed, FIELD_EDIT_STREAM]), cfg, leads, final_leads, id_.leads)
    arrow = {
        "accounts": accounts_tbl,
        "leads": leads_tbl,
        "opportunities": opportunities_table(cfg, deals, history, id_),
        "opportunity_history": history_table(cfg, history, id_),
        "activities": (activities_table(cfg, rows, id_) if shift is None else
                       thin_activities(shift, activities_table(cfg, rows, id_), cfg.start_ns)),
        "account_signals": signals_table(cfg, signals, post.customers, id_),
        "lead_field_history": lead_changes,
    }
    progress("truth")
    return GeneratedCRM(config=cfg, arrow=arrow,
                        truth=truth_tables(cfg, leads, deals, post, id_))


DealActs = tuple[np.ndarray, np.ndarray, np.ndarray]


def _deal_paper_trail(
    rng: np.random.Generator,
    rng_post: np.random.Generator,
    deals: Deals,
    employees: np.ndarray,
    progress: Progress,
) -> tuple[DealHistory, np.ndarray, list[DealActs]]:
    """Amounts, close dates, contacts, history rows and activities of every deal: new
    business from the pre-sale generator, follow-ons from the post-sale one."""
    progress("deal history")
    new_biz = np.flatnonzero(deals.is_new_business)
    post_sale = np.flatnonzero(~deals.is_new_business)
    imported = np.flatnonzero(deals.imported)
    follow = np.flatnonzero(~deals.is_new_business & ~deals.imported)
    amount0, close0 = np.zeros(deals.n), np.zeros(deals.n)
    price_new_business(rng, deals, employees, new_biz, amount0, close0)
    if imported.size:
        price_new_business(rng_post, deals, employees, imported, amount0, close0)
    price_follow_ons(rng_post, deals, follow, amount0, close0)
    deal_contacts = np.zeros(deals.n, dtype=np.int64)
    deal_contacts[new_biz] = contact_counts(rng, deals.quality[new_biz])
    deal_contacts[post_sale] = contact_counts(rng_post, deals.quality[post_sale])
    progress("deal activities")
    parts = ((rng, deals.is_new_business), (rng_post, ~deals.is_new_business))
    deal_acts = [emit_deal_activities(r, deals, which) for r, which in parts]
    events = concat_events([emit_deal_events(r, deals, which) for r, which in parts])
    return history_rows(deals, events, amount0, close0), deal_contacts, deal_acts


def _activity_rows(
    rng: np.random.Generator,
    rng_post: np.random.Generator,
    leads: Leads,
    lead_acts: DealActs,
    deals: Deals,
    deal_contacts: np.ndarray,
    deal_acts: list[DealActs],
    post: PostSale,
    days: float,
) -> tuple[ActivityRows, int]:
    """Every activity with its contact and direction, and how many contact ids exist."""
    n_leads = leads.n
    contact_base = np.concatenate([[0], np.cumsum(deal_contacts)])
    n_contacts = n_leads + int(contact_base[-1])
    account_acts, n_account_contacts = emit_account_activities(
        rng_post, post.customers, deals.lead[post.customers.anchor], n_contacts)
    rows = merge_activities([
        lead_activity_rows(rng, lead_acts, leads.account),
        deal_activity_rows(rng, deal_acts[0], deals, contact_base, deal_contacts, n_leads),
        deal_activity_rows(rng_post, deal_acts[1], deals, contact_base, deal_contacts, n_leads),
        account_acts,
    ], days)
    return rows, n_contacts + n_account_contacts


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
