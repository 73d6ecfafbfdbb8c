"""The hidden state behind the tables, as ``leadscore.truth`` reads it from ``_truth/``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.schema import OPEN_STAGES
from leadscore.synth.columns import take_ids, timestamps
from leadscore.synth.config import GeneratorConfig
from leadscore.synth.deal_chain import deal_win_probabilities
from leadscore.synth.deals import Deals
from leadscore.synth.health import HEALTH_STATES
from leadscore.synth.leads import Leads
from leadscore.synth.post_sale import PostSale
from leadscore.synth.tables import STAGE_NAMES, Ids


def truth_tables(cfg: GeneratorConfig, leads: Leads, deals: Deals, post: PostSale,
                 id_: Ids) -> dict[str, pa.Table]:
    """Leads' intent and chain times; deals' quality, outcome and win probability per state;
    every deal's stage x regime spells; customers' health and contracts; what was generated."""
    start_ns = cfg.start_ns
    n_opp = deals.n
    p_win = deal_win_probabilities(deals.quality) if n_opp else np.zeros((0, 5, 2))
    truth_leads = pa.table({
        "lead_id": id_.leads,
        "z": pa.array(leads.z),
        **{k: pa.array(v) for k, v in leads.rates.items()},
        "t_hot": timestamps(start_ns, leads.t_hot),
        "t_dead": timestamps(start_ns, leads.t_dead),
        "t_qualified": timestamps(start_ns, leads.t_qual),
    })
    truth_deals = pa.table({
        "opportunity_id": id_.opportunities,
        "quality": pa.array(deals.quality),
        "won": pa.array(deals.won),
        "closed_at": timestamps(start_ns, deals.closed),
        **{f"p_win_{OPEN_STAGES[s]}_{'healthy' if g == 0 else 'troubled'}":
           pa.array(p_win[:, s, g]) for s in range(5) for g in range(2)},
    })
    seg = deals.segments
    seg_order = np.lexsort((seg.start, seg.deal))
    truth_states = pa.table({
        "opportunity_id": id_.opportunities.take(pa.array(seg.deal[seg_order])),
        "start": timestamps(start_ns, seg.start[seg_order]),
        "stage": pa.array(STAGE_NAMES).take(pa.array(seg.stage[seg_order])),
        "troubled": pa.array(seg.regime[seg_order] == 1),
    })
    meta = pa.table({"key": ["n_leads", "seed", "start", "months", "installed_base", "data_end"],
                     "value": [str(cfg.n_leads), str(cfg.seed), cfg.start, str(cfg.months),
                               str(cfg.installed), cfg.end_ts.isoformat()]})
    return {"leads": truth_leads, "deals": truth_deals, "deal_states": truth_states,
            **post_sale_truth(cfg, post, id_), "meta": meta}


def post_sale_truth(cfg: GeneratorConfig, post: PostSale, id_: Ids) -> dict[str, pa.Table]:
    """``customers`` (constants, the health generator and expansion rates), ``health`` (every
    spell in a state) and ``contracts`` (due dates, renewals, P(win) by health at creation)."""
    start_ns = cfg.start_ns
    cu, co, path = post.customers, post.contracts, post.customers.path
    acc = id_.accounts.take(pa.array(cu.account))
    rates = {f"rate_{a}_to_{b}": pa.array(cu.generator[:, i, j])
             for i, a in enumerate(HEALTH_STATES) for j, b in enumerate(HEALTH_STATES) if i != j}
    customers = pa.table({
        "account_id": acc,
        "sale_at": timestamps(start_ns, cu.sale),
        "first_opportunity_id": id_.opportunities.take(pa.array(cu.anchor)),
        "fit": pa.array(cu.constants.fit),
        "adoption": pa.array(cu.constants.adoption),
        "appetite": pa.array(cu.constants.appetite),
        **rates,
        **{f"expansion_rate_{s}": pa.array(cu.expansion[:, i])
           for i, s in enumerate(HEALTH_STATES)},
    })
    health = pa.table({
        "account_id": acc.take(pa.array(path.customer)),
        "start": timestamps(start_ns, path.start),
        "state": pa.array(list(HEALTH_STATES)).take(pa.array(path.state)),
    })
    contracts = pa.table({
        "account_id": acc.take(pa.array(co.customer)),
        "won_opportunity_id": id_.opportunities.take(pa.array(co.won_deal)),
        "started_at": timestamps(start_ns, co.start),
        "due_at": timestamps(start_ns, co.due),
        "renewal_created_at": timestamps(start_ns, co.renewal_created),
        "renewal_opportunity_id": take_ids(id_.opportunities, co.renewal_deal),
        "renewal_base_quality": pa.array(co.base_quality),
        **{f"p_renew_{s}": pa.array(co.p_renew[:, i]) for i, s in enumerate(HEALTH_STATES)},
    })
    return {"customers": customers, "health": health, "contracts": contracts}
