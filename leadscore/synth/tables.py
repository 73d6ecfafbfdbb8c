"""The contract tables as Arrow: only what a CRM would record, cut at the data's end.

Drawing here is the CRM's own mess (blank industries, missing head counts, accounts created
before their first lead), not anything the hidden state depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import ACTIVITY_TYPES, OPEN_STAGES, TABLES, TERMINAL_STAGES
from leadscore.synth.accounts import Accounts
from leadscore.synth.activities import ActivityRows
from leadscore.synth.columns import dates, ids, take_ids, timestamps
from leadscore.synth.config import GeneratorConfig
from leadscore.synth.deal_history import DealHistory
from leadscore.synth.deals import Deals
from leadscore.synth.leads import Leads
from leadscore.synth.post_sale import Customers, PostSale
from leadscore.synth.signals import SIGNALS, TICKET_TOPICS, Signals
from leadscore.synth.vocab import (
    COUNTRIES,
    FUNCTION_LABEL,
    FUNCTIONS,
    INDUSTRIES,
    PRODUCTS,
    SENIORITIES,
    SENIORITY_TITLE,
    SOURCES,
)

STAGE_NAMES = OPEN_STAGES + TERMINAL_STAGES
SIGNAL_COLUMNS = tuple(TABLES["account_signals"].column_names)


@dataclass(frozen=True)
class Ids:
    accounts: pa.Array
    leads: pa.Array
    opportunities: pa.Array
    reps: pa.Array
    contacts: pa.Array


def make_ids(n_accounts: int, n_leads: int, n_opportunities: int, n_reps: int,
             n_contacts: int) -> Ids:
    return Ids(ids("ACC", n_accounts, 7), ids("LEAD", n_leads, 8),
               ids("OPP", n_opportunities, 7), ids("REP", n_reps, 4),
               ids("CON", n_contacts, 8))


def _blank(values: pa.Array, blank: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), values)


def accounts_table(rng: np.random.Generator, rng_post: np.random.Generator,
                   cfg: GeneratorConfig, post: PostSale, leads: Leads,
                   id_: Ids) -> tuple[pa.Table, np.ndarray]:
    """The accounts, and which of them have a blank industry (their leads show it blank too).

    A lead's account is created some months before its first lead (at a random day if it has
    none); an installed customer's, some months before its first sale.
    """
    accounts, D = post.accounts, cfg.days
    n_acc = post.n_lead_accounts
    created = np.full(n_acc, np.nan)
    first_lead = pd.Series(leads.created).groupby(leads.account).min()
    created[first_lead.index.to_numpy()] = first_lead.to_numpy()
    created = np.where(np.isnan(created), rng.random(n_acc) * D, created)
    created = created - rng.exponential(120.0, n_acc)
    industry_blank = rng.random(n_acc) < 0.08
    installed = np.arange(n_acc, accounts.n)
    if installed.size:
        sale = post.customers.sale[np.searchsorted(post.customers.account, installed)]
        created = np.concatenate([created, sale - rng_post.exponential(120.0, installed.size)])
        industry_blank = np.concatenate([industry_blank,
                                         rng_post.random(installed.size) < 0.08])
    table = pa.table({
        "account_id": id_.accounts,
        "name": pc.binary_join_element_wise(pa.scalar("Company "), pc.utf8_slice_codeunits(
            id_.accounts, 3), ""),
        "industry": _blank(pa.array(INDUSTRIES).take(pa.array(accounts.industry)),
                           industry_blank),
        "employees": pa.array(accounts.employees),
        "annual_revenue": pa.array(accounts.revenue),
        "country": pa.array(COUNTRIES).take(pa.array(accounts.country)),
        "created_at": timestamps(cfg.start_ns, created),
    })
    return table, industry_blank


def leads_table(rng: np.random.Generator, cfg: GeneratorConfig, accounts: Accounts,
                leads: Leads, deals: Deals, id_: Ids,
                account_industry_blank: np.ndarray) -> pa.Table:
    """Leads as typed in: some industries and head counts blank, head counts approximate."""
    n_leads, lead_acc, D = leads.n, leads.account, cfg.days
    lead_opp = np.full(n_leads, -1)
    first_round = deals.lead >= 0
    lead_opp[deals.lead[first_round]] = np.flatnonzero(first_round)
    titles = np.array([t.format(f=FUNCTION_LABEL[f]) for t in SENIORITY_TITLE
                       for f in range(len(FUNCTIONS))], dtype=object)
    title = pa.array(titles).take(pa.array(leads.seniority * len(FUNCTIONS) + leads.function))
    industry_blank = rng.random(n_leads) < 0.12
    emp_blank = rng.random(n_leads) < 0.25
    emp = np.round(accounts.employees[lead_acc] * np.exp(rng.normal(0, 0.2, n_leads)))

    def nullable_bool(values: np.ndarray, present: np.ndarray) -> pa.Array:
        return pa.array(values, mask=~present)

    qual_vis = np.where(leads.t_qual < D, leads.t_qual, np.nan)
    disq_vis = np.where(leads.t_disq < D, leads.t_disq, np.nan)
    return pa.table({
        "lead_id": id_.leads,
        "account_id": id_.accounts.take(pa.array(lead_acc)),
        "created_at": timestamps(cfg.start_ns, leads.created),
        "source": pa.array(SOURCES).take(pa.array(leads.source)),
        "title": title,
        "seniority": pa.array(SENIORITIES).take(pa.array(leads.seniority)),
        "job_function": pa.array(FUNCTIONS).take(pa.array(leads.function)),
        "country": pa.array(COUNTRIES).take(pa.array(accounts.country[lead_acc])),
        "industry": _blank(pa.array(INDUSTRIES).take(pa.array(accounts.industry[lead_acc])),
                           industry_blank | account_industry_blank[lead_acc]),
        "employees": pa.array(emp.astype(np.int64), mask=emp_blank),
        "budget_confirmed": nullable_bool(leads.budget, leads.has_bant),
        "is_decision_maker": nullable_bool(leads.authority, leads.has_bant),
        "need_stated": nullable_bool(leads.need, leads.has_bant),
        "timeline_days": pa.array(leads.timeline, mask=~leads.has_bant),
        "qualified_at": timestamps(cfg.start_ns, qual_vis),
        "disqualified_at": timestamps(cfg.start_ns, disq_vis),
        "opportunity_id": take_ids(id_.opportunities, lead_opp),
    })


def opportunities_table(cfg: GeneratorConfig, deals: Deals, history: DealHistory,
                        id_: Ids) -> pa.Table:
    """Deals created before the data's end, with their amount and close date as of then.

    A deal closing after the data's end is open.
    """
    D, n_opp = cfg.days, deals.n
    visible = history.time < D
    last_vis = pd.Series(np.arange(history.deal.size)[visible]).groupby(
        history.deal[visible]).max()
    cur_amount = np.full(n_opp, np.nan)
    cur_close = np.full(n_opp, np.nan)
    cur_amount[last_vis.index.to_numpy()] = history.amount[last_vis.to_numpy()]
    cur_close[last_vis.index.to_numpy()] = history.close[last_vis.to_numpy()]
    closed_vis = np.where(deals.closed < D, deals.closed, np.nan)
    is_won_vis = np.where(np.isnan(closed_vis), False, deals.won)
    return pa.table({
        "opportunity_id": id_.opportunities,
        "account_id": id_.accounts.take(pa.array(deals.account)),
        "lead_id": take_ids(id_.leads, deals.lead),
        "owner_id": id_.reps.take(pa.array(deals.owner)),
        "created_at": timestamps(cfg.start_ns, deals.created),
        "product": pa.array(PRODUCTS).take(pa.array(deals.product)),
        "amount": pa.array(cur_amount),
        "close_date": dates(cfg.start_ns, cur_close),
        "closed_at": timestamps(cfg.start_ns, closed_vis),
        "is_won": pa.array(is_won_vis, mask=np.isnan(closed_vis)),
    })


def history_table(cfg: GeneratorConfig, history: DealHistory, id_: Ids) -> pa.Table:
    hv = np.flatnonzero(history.time < cfg.days)
    return pa.table({
        "opportunity_id": id_.opportunities.take(pa.array(history.deal[hv])),
        "changed_at": timestamps(cfg.start_ns, history.time[hv]),
        "stage": pa.array(STAGE_NAMES).take(pa.array(history.stage[hv])),
        "amount": pa.array(history.amount[hv]),
        "close_date": dates(cfg.start_ns, history.close[hv]),
    })


def activities_table(cfg: GeneratorConfig, rows: ActivityRows, id_: Ids) -> pa.Table:
    return pa.table({
        "activity_id": ids("ACT", rows.time.size, 9),
        "occurred_at": timestamps(cfg.start_ns, rows.time),
        "account_id": id_.accounts.take(pa.array(rows.account)),
        "lead_id": take_ids(id_.leads, rows.lead),
        "opportunity_id": take_ids(id_.opportunities, rows.deal),
        "contact_id": id_.contacts.take(pa.array(rows.contact)),
        "type": pa.array(ACTIVITY_TYPES).take(pa.array(rows.kind)),
        "direction": pc.if_else(pa.array(rows.inbound), pa.scalar("inbound"),
                                pa.scalar("outbound")),
    })


def signals_table(cfg: GeneratorConfig, signals: Signals, customers: Customers,
                  id_: Ids) -> pa.Table:
    """``account_signals``: usage, tickets and surveys of customer accounts, in time order."""
    topics = take_ids(pa.array(list(TICKET_TOPICS)), signals.detail)
    return pa.table({
        "signal_id": ids("S", signals.time.size, 7),
        "account_id": id_.accounts.take(pa.array(customers.account[signals.customer])),
        "observed_at": timestamps(cfg.start_ns, signals.time),
        "signal": pa.array(list(SIGNALS)).take(pa.array(signals.signal)),
        "value": pa.array(signals.value, type=pa.float64()),
        "detail": topics,
    })
