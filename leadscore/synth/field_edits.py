"""When lead attributes became known: BANT asked during qualification, firmographics
enriched or corrected after creation, written to ``lead_field_history`` as CRMs keep it.

A CRM's lead row holds today's values. Most BANT answers are not on the form that created
the lead: sales asks them when it first talks to the lead (soon after it turns hot), or
records them when it converts it; a lead disqualified before anyone asked never gets them.
Head counts are filled in or corrected by enrichment some days later, industries likewise.
Each such change is a history row (old value, new value, when); one due after the data's
end has not happened yet, so the row still shows the value before it.

The draws come from a stream of their own (``default_rng([seed, FIELD_EDIT_STREAM])``), so
the simulated funnel, and everything drawn from it, is unchanged: only what the tables say
was known, and when, moves. The hidden truth does not depend on any of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import TABLES
from leadscore.synth.columns import timestamps
from leadscore.synth.config import GeneratorConfig
from leadscore.synth.leads import Leads
from leadscore.synth.vocab import SOURCES

FIELD_EDIT_STREAM = 2
FORM_SOURCES = (SOURCES.index("inbound_web_form"), SOURCES.index("webinar"))
FORM_BANT = 0.4  # of the leads ever asked, the share that answered on a form source's form
OTHER_BANT = 0.1  # ... on any other source's
ASK_AFTER_HOT_DAYS = 3.0  # mean delay from turning hot to sales asking BANT
ASK_COLD_DAYS = 25.0  # mean delay for a lead that never turned hot
EMPLOYEES_LATE = 0.3  # head counts entered by enrichment after creation (blank until then)
EMPLOYEES_FIXED = 0.15  # head counts corrected after creation (a rough guess until then)
EMPLOYEES_LATE_DAYS = 10.0
EMPLOYEES_FIXED_DAYS = 30.0
INDUSTRY_LATE = 0.2
INDUSTRY_LATE_DAYS = 7.0
BANT_FIELDS = ("budget_confirmed", "is_decision_maker", "need_stated", "timeline_days")


@dataclass(frozen=True)
class _Changes:
    lead: list[np.ndarray]
    time: list[np.ndarray]
    field: list[str]
    old: list[pa.Array]
    new: list[pa.Array]

    def add(self, lead: np.ndarray, time: np.ndarray, field: str, old: pa.Array,
            new: pa.Array) -> None:
        self.lead.append(lead)
        self.time.append(time)
        self.field.append(field)
        self.old.append(pc.cast(old, pa.string()))
        self.new.append(pc.cast(new, pa.string()))


def _text(values: pa.Array) -> pa.Array:
    """Values as a field history writes them: booleans as true/false, numbers as digits."""
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, pa.scalar("true"), pa.scalar("false"))
    return pc.cast(values, pa.string())


def _nulls_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def bant_answered(rng: np.random.Generator, leads: Leads) -> np.ndarray:
    """Day each lead's BANT answers were recorded: at creation for form answers, when
    sales first talked to it otherwise (at the latest at its qualification); NaN when it
    was never asked, or was disqualified first."""
    n = leads.n
    form = rng.random(n) < np.where(np.isin(leads.source, FORM_SOURCES), FORM_BANT, OTHER_BANT)
    after_hot = leads.t_hot + rng.exponential(ASK_AFTER_HOT_DAYS, n)
    cold = leads.created + rng.exponential(ASK_COLD_DAYS, n)
    asked = np.where(np.isnan(leads.t_hot), cold, after_hot)
    asked = np.fmin(asked, leads.t_qual)  # recorded at conversion if not before
    dropped = ~(leads.t_qual <= asked) & (leads.t_disq <= asked)
    asked = np.where(dropped, np.nan, asked)
    return np.where(~leads.has_bant, np.nan, np.where(form, leads.created, asked))


def lead_field_edits(rng: np.random.Generator, cfg: GeneratorConfig, leads: Leads,
                     table: pa.Table, ids: pa.Array) -> tuple[pa.Table, pa.Table]:
    """The leads table as of the data's end and its ``lead_field_history``, in time order.

    ``table`` holds every lead's final values (what ``leads_table`` writes); ``ids`` the
    lead ids.
    """
    n, end = leads.n, cfg.days
    changes = _Changes([], [], [], [], [])
    columns = {name: table.column(name).combine_chunks() for name in table.column_names}

    answered = bant_answered(rng, leads)
    later = ~np.isnan(answered) & (answered > leads.created)
    known = ~np.isnan(answered) & (answered < end)
    for name in BANT_FIELDS:
        final = columns[name]
        row = np.flatnonzero(later & known & np.asarray(final.is_valid()))
        changes.add(row, answered[row], name, pa.nulls(row.size, pa.string()),
                    _text(final.take(pa.array(row))))
        columns[name] = _nulls_where(final, ~known)

    emp = columns["employees"]
    has_emp = np.asarray(emp.is_valid())
    u = rng.random(n)
    late, fixed = has_emp & (u < EMPLOYEES_LATE), has_emp & (u >= 1 - EMPLOYEES_FIXED)
    guess = np.round(np.asarray(pc.fill_null(emp, 0)) * np.exp(rng.normal(0, 0.4, n)))
    guess = pa.array(np.maximum(guess, 1).astype(np.int64), mask=~fixed)
    when = leads.created + np.where(late, rng.exponential(EMPLOYEES_LATE_DAYS, n),
                                    rng.exponential(EMPLOYEES_FIXED_DAYS, n))
    edited = late | fixed
    row = np.flatnonzero(edited & (when < end))
    changes.add(row, when[row], "employees", _text(guess.take(pa.array(row))),
                _text(emp.take(pa.array(row))))
    pending = edited & (when >= end)
    columns["employees"] = pc.if_else(pa.array(pending), guess, emp)

    industry = columns["industry"]
    late = np.asarray(industry.is_valid()) & (rng.random(n) < INDUSTRY_LATE)
    when = leads.created + rng.exponential(INDUSTRY_LATE_DAYS, n)
    row = np.flatnonzero(late & (when < end))
    changes.add(row, when[row], "industry", pa.nulls(row.size, pa.string()),
                industry.take(pa.array(row)))
    columns["industry"] = _nulls_where(industry, late & (when >= end))

    lead = np.concatenate(changes.lead)
    time = np.concatenate(changes.time)
    field = np.repeat(np.array(changes.field, dtype=object), [r.size for r in changes.lead])
    order = np.lexsort((lead, time))  # by time, then lead; fields stay in declared order
    history = pa.table({
        "lead_id": ids.take(pa.array(lead[order])),
        "changed_at": timestamps(cfg.start_ns, time[order]),
        "field": pa.array(field[order].tolist(), pa.string()),
        "old_value": pa.concat_arrays(changes.old).take(pa.array(order)),
        "new_value": pa.concat_arrays(changes.new).take(pa.array(order)),
    })
    assert history.column_names == TABLES["lead_field_history"].column_names
    return pa.table(columns), history
