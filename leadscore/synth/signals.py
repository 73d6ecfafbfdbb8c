"""What a customer's hidden health shows: product usage, tickets, surveys, and engagement.

- ``active_users`` and ``logins`` every week from the sale until churn or the data's end:
  seats scale with head count and product tier; the share active and logins per user fall
  when the account is at risk.
- ``licensed_seats`` every month from the sale until churn, as billing reports them.
- ``ticket_opened`` (value = severity 1-4, detail = topic): more often, and more severe,
  when at risk or onboarding; a ``csat`` (1-5) follows some tickets a few days later.
- ``nps`` (0-10): a survey every quarter from the sale, answered by some accounts.
- Engagement activities with the account's contacts (no deal): check-ins, QBR meetings,
  emails; fewer, and with fewer of its contacts, when at risk; outbound only once churned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.schema import ACTIVITY_TYPES
from leadscore.synth.activities import ActivityRows, inbound
from leadscore.synth.health import CHURNED
from leadscore.synth.post_sale import Customers
from leadscore.synth.sampling import emit
from leadscore.synth.vocab import activity_rates

SIGNALS = ("active_users", "logins", "ticket_opened", "nps", "csat", "licensed_seats")
ACTIVE_USERS, LOGINS, TICKET, NPS, CSAT, SEATS = range(len(SIGNALS))
SEATS_EVERY_DAYS = 30.0
TICKET_TOPICS = ("how_to", "bug", "billing", "integration", "outage")
TICKET_TOPIC_WEIGHTS = np.array([0.35, 0.3, 0.1, 0.15, 0.1])
TIER_SEATS = np.array([0.4, 1.0, 2.2])  # starter, professional, enterprise
# By health state: onboarding, healthy, at_risk, churned.
ACTIVE_SHARE = np.array([0.4, 0.8, 0.45, 0.0])
LOGINS_PER_USER = np.array([3.0, 4.0, 2.3, 0.0])
TICKET_RATE = np.array([0.05, 0.018, 0.06, 0.0])  # per day, at median size
SEVERITY_WEIGHTS = np.array([
    [0.4, 0.4, 0.15, 0.05],
    [0.5, 0.32, 0.14, 0.04],
    [0.2, 0.3, 0.3, 0.2],
    [0.25, 0.25, 0.25, 0.25],
])
CSAT_RESPONSE = 0.45
CSAT_MEAN = np.array([4.0, 4.4, 3.1, 2.0])
CSAT_DAYS = 3.0
NPS_EVERY_DAYS = 91.0
NPS_RESPONSE = np.array([0.3, 0.35, 0.22, 0.0])
NPS_MEAN = np.array([7.4, 8.4, 5.2, 2.0])
ACCOUNT_RATES = np.stack([
    activity_rates(email_sent=0.07, email_opened=0.05, email_replied=0.03, call=0.03,
                   meeting=0.035, web_visit=0.04, content_download=0.01,
                   webinar_attended=0.005),
    activity_rates(email_sent=0.03, email_opened=0.025, email_replied=0.015, call=0.01,
                   meeting=0.012, web_visit=0.025, content_download=0.005,
                   webinar_attended=0.004),
    activity_rates(email_sent=0.03, email_opened=0.008, email_replied=0.003, call=0.005,
                   meeting=0.003, web_visit=0.006),
    activity_rates(email_sent=0.01),
])
ENGAGED_CONTACT_SHARE = np.array([1.0, 1.0, 0.34, 0.0])  # at least one
CURIOUS_TYPES = [ACTIVITY_TYPES.index(k) for k in
                 ("web_visit", "pricing_page_visit", "content_download", "webinar_attended")]
USAGE_APPETITE = 0.5  # log-effect of the hidden appetite on the share of users active
USAGE_ADOPTION = 0.2  # and of adoption
INBOUND_APPETITE = 0.8  # log-effect of appetite on the customer's inbound interest


@dataclass(frozen=True)
class Signals:
    """Signal rows sorted by time (customer index, day, signal, value, topic or -1)."""

    customer: np.ndarray
    time: np.ndarray
    signal: np.ndarray
    value: np.ndarray
    detail: np.ndarray


def _churn_time(customers: Customers, days: float) -> np.ndarray:
    path = customers.path
    out = np.full(customers.n, days)
    churned = path.state == CHURNED
    out[path.customer[churned]] = path.start[churned]
    return out


def _regular(customers: Customers, every: float, until: np.ndarray) -> tuple[np.ndarray, ...]:
    """(customer, day) every ``every`` days after the sale, strictly before ``until``."""
    count = np.maximum(np.ceil((until - customers.sale) / every) - 1, 0).astype(np.int64)
    cust = np.repeat(np.arange(customers.n), count)
    step = np.arange(cust.size) - np.repeat(np.cumsum(count) - count, count) + 1
    return cust, customers.sale[cust] + every * step


def _categorical(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One draw per row of ``weights`` (rows sum to one)."""
    u = np.asarray(rng.random(int(weights.shape[0])))
    return np.minimum((u[:, None] >= np.cumsum(weights, axis=1)).sum(axis=1),
                      weights.shape[1] - 1)


def emit_signals(rng: np.random.Generator, customers: Customers, employees: np.ndarray,
                 days: float) -> Signals:
    c, path = customers.constants, customers.path
    churn = _churn_time(customers, days)
    seats = np.maximum(3.0, np.round(employees[customers.account] ** 0.6
                                     * TIER_SEATS[c.tier.astype(np.int64)]
                                     * np.exp(rng.normal(0.0, 0.3, customers.n))))
    # Weekly usage.
    u_cust, u_time = _regular(customers, 7.0, churn)
    u_state = path.state_at(u_cust, u_time)
    # Appetite for more shows as more of the team using the product, adoption as a
    # steadier share of it: the hidden constants leave traces a CRM records.
    reach = np.exp(USAGE_APPETITE * c.appetite + USAGE_ADOPTION * c.adoption)
    active = rng.poisson(seats[u_cust] * ACTIVE_SHARE[u_state] * reach[u_cust]
                         * np.exp(rng.normal(0.0, 0.15, u_cust.size))).astype(float)
    logins = rng.poisson(active * LOGINS_PER_USER[u_state]).astype(float)
    # Tickets, and the satisfaction survey after some of them.
    size_factor = np.exp(0.25 * c.size)[path.customer]
    spell, t_time, _ = emit(rng, path.start, path.end,
                            (TICKET_RATE[path.state] * size_factor)[:, None])
    t_cust, t_state = path.customer[spell], path.state[spell]
    severity = 1 + _categorical(rng, SEVERITY_WEIGHTS[t_state])
    topic = _categorical(rng, np.broadcast_to(TICKET_TOPIC_WEIGHTS, (spell.size, 5)))
    answered = rng.random(spell.size) < CSAT_RESPONSE
    s_time = t_time + rng.exponential(CSAT_DAYS, spell.size)
    s_value = np.clip(np.round(rng.normal(CSAT_MEAN[t_state] - 0.3 * (severity - 1), 0.8)), 1, 5)
    # Quarterly NPS surveys.
    n_cust, n_time = _regular(customers, NPS_EVERY_DAYS, churn)
    n_state = path.state_at(n_cust, n_time)
    responds = rng.random(n_cust.size) < NPS_RESPONSE[n_state]
    n_value = np.clip(np.round(rng.normal(NPS_MEAN[n_state], 1.6)), 0, 10)
    b_cust, b_time = _regular(customers, SEATS_EVERY_DAYS, churn)
    parts = [
        (u_cust, u_time, ACTIVE_USERS, active, -1),
        (b_cust, b_time, SEATS, seats[b_cust], -1),
        (u_cust, u_time, LOGINS, logins, -1),
        (t_cust, t_time, TICKET, severity.astype(float), topic),
        (n_cust[responds], n_time[responds], NPS, n_value[responds], -1),
        (t_cust[answered], s_time[answered], CSAT, s_value[answered], topic[answered]),
    ]
    cols = [np.concatenate([np.broadcast_to(np.asarray(p[k]), p[0].shape) for p in parts])
            for k in range(5)]
    keep = (cols[1] >= 0) & (cols[1] < days)  # an installed customer's usage before day 0
    sel = np.flatnonzero(keep)[np.argsort(cols[1][keep], kind="stable")]
    return Signals(cols[0][sel].astype(np.int64), cols[1][sel].astype(float),
                   cols[2][sel].astype(np.int64), cols[3][sel].astype(float),
                   cols[4][sel].astype(np.int64))


def emit_account_activities(rng: np.random.Generator, customers: Customers,
                            anchor_lead: np.ndarray,
                            first_contact: int) -> tuple[ActivityRows, int]:
    """Post-sale engagement with each customer's contacts; returns the rows and how many new
    contact ids they use (contact 0 of an account is the lead that bought, the rest new; an
    installed customer, with no lead, has only new ones)."""
    c, path = customers.constants, customers.path
    n_contacts = 2 + rng.poisson(1.0 + 0.7 * np.maximum(c.size, 0.0))
    has_lead = anchor_lead >= 0
    n_new = n_contacts - has_lead
    scale = np.exp(0.1 * c.size)[path.customer]
    rates = ACCOUNT_RATES[path.state] * scale[:, None]
    # Customers with an appetite for more look around: visits, downloads, webinars.
    curious = np.exp(INBOUND_APPETITE * c.appetite)[path.customer]
    rates[:, CURIOUS_TYPES] *= curious[:, None]
    spell, time, kind = emit(rng, path.start, path.end, rates)
    cust, state = path.customer[spell], path.state[spell]
    engaged = np.maximum(1, np.ceil(n_contacts[cust] * ENGAGED_CONTACT_SHARE[state]))
    j = (rng.random(spell.size) * engaged).astype(np.int64)
    base = first_contact + np.concatenate([[0], np.cumsum(n_new)])[:-1]
    contact = np.where(has_lead[cust],
                       np.where(j == 0, anchor_lead[cust], base[cust] + j - 1), base[cust] + j)
    rows = ActivityRows(time, kind, np.full(time.size, -1), np.full(time.size, -1),
                        customers.account[cust], contact, inbound(rng, kind))
    return rows, int(n_new.sum())
