"""The hidden state behind the tables, as ``leadscore.truth`` reads it from ``_truth/``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.schema import OPEN_STAGES
from leadscore.synth.columns import timestamps
from leadscore.synth.config import GeneratorConfig
from leadscore.synth.deal_chain import deal_win_probabilities
from leadscore.synth.deals import Deals
from leadscore.synth.leads import Leads
from leadscore.synth.tables import STAGE_NAMES, Ids


def truth_tables(cfg: GeneratorConfig, leads: Leads, deals: Deals,
                 id_: Ids) -> dict[str, pa.Table]:
    """Leads' intent and chain times; deals' quality, outcome and win probability per state;
    every deal's stage x regime spells; what was generated."""
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
    meta = pa.table({"key": ["n_leads", "seed", "start", "months", "data_end"],
                     "value": [str(cfg.n_leads), str(cfg.seed), cfg.start, str(cfg.months),
                               cfg.end_ts.isoformat()]})
    return {"leads": truth_leads, "deals": truth_deals, "deal_states": truth_states,
            "meta": meta}
