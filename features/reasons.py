"""The reasons each feature set can give: its features grouped into topics, each topic
with the sentence a rep reads.

A topic is one thing a rep would name: one kind of activity over its 7/30/90-day windows,
the deal's close date with its pushes, the owner's record. Serving sums the contributions
of a topic's features into one reason and words it with the topic's sentence, so the
grouping is declared here once, beside the feature sets, and nowhere else.

A missing value reads one of two ways, declared per topic. Either the data states an
absence ("the prospect has not reached out yet", "no NPS answer yet"), which the sentence
says; or the value is not known (no industry on the record, the account left out of a
request), which is never a reason: serving lists the topic's ``label`` in the result's
warnings instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from features.declarations import FeatureSet
from features.schema import ACTIVITY_TYPES
from features.sets import (
    ACCOUNT_EXPANSION_V1,
    ACCOUNT_RENEWAL_V1,
    DEAL_V1,
    ENGAGEMENT_WINDOWS,
    LEAD_V1,
)

Value = float | int | str | bool | None
Values = Mapping[str, Value]
Phrase = Callable[[Values], str]

ContextPart = Literal["account", "account_deals", "owner_deals", "lead"]
"""Rows beyond the entity's own that a topic's features read, which a request sends in
its ``context``: the account's row, the account's other deals, the owner's deals, and the
lead a deal came from."""

UNKNOWN_LEVELS = frozenset({"unknown"})
"""Category levels that say the value is not known (seniority "unknown")."""


@dataclass(frozen=True)
class Topic:
    """One reason's subject: the features behind it and how they read."""

    name: str
    label: str
    """A noun phrase for lists of what is not known: "industry", "expected close date"."""
    features: tuple[str, ...]
    phrase: Phrase
    """The sentence, from the values of ``features`` and ``reads`` (plain Python values,
    None where missing); called only when the topic is known."""
    actionable: bool
    """Something a rep can act on (engagement, contacts, next steps, time in stage), not
    a fact about the company (industry, size, source)."""
    needs: tuple[str, ...] = ()
    """Features without which the topic is not known (None, or an unknown level)."""
    absence: tuple[str, ...] = ()
    """Features whose zero, no or None together say the thing is absent."""
    reads: tuple[str, ...] = ()
    """Other features the sentence quotes without owning them (the stage of "12 days in
    proposal")."""
    context: ContextPart | None = None
    """The part of a request's context the features come from (None: the entity's own)."""
    context_features: tuple[str, ...] = ()
    """When only some features come from ``context``: those (the topic stays known
    without them, and reads them as None)."""
    context_label: str = ""
    """How the warnings name what ``context_features`` would have told."""

    def known(self, values: Values) -> bool:
        return all(_known(values.get(f)) for f in self.needs)

    def absent(self, values: Values) -> bool:
        """Whether the values state that the thing is absent (no demos, never reached out)."""
        return bool(self.absence) and all(not values.get(f) for f in self.absence)


def _known(value: Value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return not (isinstance(value, str) and value in UNKNOWN_LEVELS)


# -- words --------------------------------------------------------------------------------

LEVEL_WORDS: dict[str, str] = {
    "inbound_web_form": "inbound web form",
    "paid_search": "paid search",
    "cold_outbound": "cold outbound",
    "c_level": "C-level",
    "vp": "VP",
    "individual": "individual contributor",
    "it": "IT",
    "hr": "HR",
    "financial_services": "financial services",
    "professional_services": "professional services",
    "meeting_demo": "meeting/demo",
    "smb": "SMB",
    "mid_market": "mid-market",
    "US": "United States",
    "CA": "Canada",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "NL": "Netherlands",
    "SE": "Sweden",
    "ES": "Spain",
    "IT": "Italy",
    "AU": "Australia",
    "IN": "India",
    "JP": "Japan",
    "BR": "Brazil",
    "SG": "Singapore",
}
"""How a category level reads where replacing underscores by spaces is not enough."""


def words(level: Value) -> str:
    text = str(level)
    return LEVEL_WORDS.get(text, text.replace("_", " "))


def whole(value: Value) -> int:
    """A count or a number of days as a whole number (half up)."""
    return int(math.floor(float(value or 0) + 0.5))


def count(n: int, one: str, many: str | None = None) -> str:
    """ "1 meeting", "2 meetings", "1,200 employees"."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n:,} times"


def days(value: Value) -> str:
    n = whole(value)
    return "less than a day" if n == 0 else count(n, "day")


def ago(value: Value) -> str:
    n = whole(value)
    return "today" if n == 0 else f"{count(n, 'day')} ago"


def span(value: Value) -> str:
    """A long stretch of time: days under two months, then months, then years."""
    d = float(value or 0)
    if d < 60:
        return days(d)
    months = whole(d / 30.44)
    return count(months, "month") if months < 24 else count(whole(d / 365.25), "year")


def money(value: Value) -> str:
    return f"${float(value or 0):,.0f}"


def share(value: Value) -> str:
    return f"{abs(float(value or 0)):.0%}"


def rate(value: Value) -> str:
    """Activities a day: "1.5 activities a day", "1 activity a day"."""
    x = float(value or 0)
    return "1 activity a day" if f"{x:.1f}" == "1.0" else f"{x:,.1f} activities a day"


def per_user(value: Value) -> str:
    """Weekly logins per active user."""
    x = float(value or 0)
    return "1 login a week per active user" if f"{x:.1f}" == "1.0" else \
        f"{x:,.1f} logins a week per active user"


def _article(text: str) -> str:
    return ("an " if text[:1].lower() in "aeio" or text.startswith("SMB") else "a ") + text


# -- topic builders -------------------------------------------------------------------------


def _category(name: str, label: str, lead_in: str, context: ContextPart | None = None,
              actionable: bool = False) -> Topic:
    return Topic(name, label, (name,), lambda v: f"{lead_in}: {words(v[name])}",
                 actionable, needs=(name,), context=context)


def _yes_no(name: str, label: str, yes: str, no: str) -> Topic:
    return Topic(name, label, (name,), lambda v: yes if v[name] else no, True,
                 needs=(name,), absence=(name,))


def _windows(kind: str) -> Topic:
    """A kind of activity over the 7, 30 and 90-day windows, in one sentence with the
    counts that tell: "3 demos in the last 90 days (1 in the last 7)"."""
    one, many = _ACTIVITY_NOUNS[kind]
    names = tuple(f"{kind}_{w}d" for w in ENGAGEMENT_WINDOWS)

    def phrase(v: Values) -> str:
        c = [whole(v[n]) for n in names]
        total = c[-1]
        if total == 0:
            return f"no {one} in the last {ENGAGEMENT_WINDOWS[-1]} days"
        i = c.index(total)
        head = f"{count(total, one, many)} in the last {ENGAGEMENT_WINDOWS[i]} days"
        parts = []
        while i > 0:
            sub = c[i - 1]
            if sub == 0:
                parts.append(f"none in the last {ENGAGEMENT_WINDOWS[i - 1]}")
                break
            i = c.index(sub)
            parts.append(f"{sub:,} in the last {ENGAGEMENT_WINDOWS[i]}")
        return head + (f" ({', '.join(parts)})" if parts else "")

    return Topic(kind, many, names, phrase, True, needs=names, absence=names)


_ACTIVITY_NOUNS: dict[str, tuple[str, str]] = {
    "email_sent": ("email sent", "emails sent"),
    "email_opened": ("email opened", "emails opened"),
    "email_clicked": ("email link clicked", "email links clicked"),
    "email_replied": ("email reply", "email replies"),
    "web_visit": ("website visit", "website visits"),
    "pricing_page_visit": ("pricing-page visit", "pricing-page visits"),
    "content_download": ("content download", "content downloads"),
    "form_submitted": ("form submitted", "forms submitted"),
    "webinar_attended": ("webinar attended", "webinars attended"),
    "call": ("call", "calls"),
    "meeting": ("meeting", "meetings"),
    "demo": ("demo", "demos"),
}
assert set(_ACTIVITY_NOUNS) == set(ACTIVITY_TYPES)


def _activity(subject: str) -> Topic:
    names = ("activities_30d", "days_since_last_activity", "activity_trend_7d")

    def phrase(v: Values) -> str:
        n, last, trend = whole(v[names[0]]), v[names[1]], whole(v[names[2]])
        if last is None:
            return f"no activity on this {subject} yet"
        if n == 0:
            return f"no activity on this {subject} in the last 30 days (the latest {ago(last)})"
        text = f"{count(n, 'activity', 'activities')} on this {subject} in the last 30 days, " \
               f"the latest {ago(last)}"
        if trend:
            more = "more" if trend > 0 else "fewer"
            text += f"; {abs(trend):,} {more} in the last 7 days than in the 7 before"
        return text

    return Topic("activity", "activity", names, phrase, True, needs=names[:1],
                 absence=names[:1])


def _inbound(who: str, with_share: bool) -> Topic:
    names = ("days_since_last_inbound", "inbound_share_90d")[: 2 if with_share else 1]

    def phrase(v: Values) -> str:
        last = v[names[0]]
        part = v.get(names[1]) if with_share else None
        if last is None:
            return f"{who} has not reached out yet"
        text = f"{who} last reached out {ago(last)}"
        if part is not None and float(part) > 0:
            text += f"; {share(part)} of the activity in the last 90 days came from them"
        return text

    return Topic("inbound", f"when {who} last reached out", names, phrase, True,
                 absence=names[:1])


def _contacts(where: str) -> Topic:
    """Contacts engaged (customer accounts: at the account)."""
    def phrase(v: Values) -> str:
        n = whole(v["contacts_engaged"])
        return f"no contact engaged {where} yet" if n == 0 else \
            f"{count(n, 'contact')} engaged {where}"

    return Topic("contacts", "contacts engaged", ("contacts_engaged",), phrase, True,
                 needs=("contacts_engaged",), absence=("contacts_engaged",))


def _contacts_and_account(subject: str) -> Topic:
    """The contacts engaged on a lead or deal and across its account: one count of people,
    so a single-threaded flag keeps both out of the reasons for."""
    names = ("contacts_engaged", "account_contacts_engaged")

    def phrase(v: Values) -> str:
        n, across = whole(v[names[0]]), v.get(names[1])
        text = f"no contact engaged on this {subject} yet" if n == 0 else \
            f"{count(n, 'contact')} engaged on this {subject}"
        if across is not None and whole(across) > n:
            text += f", {whole(across):,} across the account"
        return text

    return Topic("contacts", "contacts engaged", names, phrase, True, needs=names[:1],
                 absence=names, context="account", context_features=names[1:],
                 context_label="contacts across the account")


def _account_activity_30d() -> Topic:
    def phrase(v: Values) -> str:
        n = whole(v["account_activities_30d"])
        return "no activity across the whole account in the last 30 days" if n == 0 else \
            f"{count(n, 'activity', 'activities')} across the whole account in the last 30 days"

    return Topic("account_activity", "activity across the account",
                 ("account_activities_30d",), phrase, True, needs=("account_activities_30d",),
                 absence=("account_activities_30d",), context="account")


def _account_history(subject: str) -> Topic:
    names = ("account_won_deals", "account_lost_deals", "account_open_deals")

    def phrase(v: Values) -> str:
        won, lost, open_ = (whole(v[n]) for n in names)
        if not (won or lost or open_):
            return f"no {subject} yet"
        parts = [f"{n:,} {what}" for n, what in ((won, "won"), (lost, "lost"), (open_, "open"))
                 if n]
        return f"{subject}: {', '.join(parts)}"

    return Topic("account_history", "the account's deal history", names, phrase, False,
                 needs=names, absence=names, context="account_deals")


def _size(context: ContextPart | None = None, segment: bool = False) -> Topic:
    def phrase(v: Values) -> str:
        n = whole(v["employees"])
        seg = v.get("segment") if segment else None
        company = f"{words(seg)} company" if seg is not None else "company"
        return f"{_article(company)} of {count(n, 'employee')}"

    names = ("employees", "segment") if segment else ("employees",)
    return Topic("size", "company size", names, phrase, False, needs=("employees",),
                 context=context)


def _single(name: str, label: str, text: Callable[[int], str], absent: bool = True,
            actionable: bool = True) -> Topic:
    """One count: ``text(n)`` words it."""
    return Topic(name, label, (name,), lambda v: text(whole(v[name])), actionable,
                 needs=(name,), absence=(name,) if absent else ())


def _in_90_days(kind: str) -> Topic:
    """The count of one activity type in the last 90 days (``<kind>_90d``)."""
    one, many = _ACTIVITY_NOUNS[kind]
    return _single(f"{kind}_90d", many, lambda n: f"no {one} in the last 90 days" if n == 0
                   else f"{count(n, one, many)} in the last 90 days")


# -- leads and deals ------------------------------------------------------------------------


def _engagement(subject: str, who: str) -> tuple[Topic, ...]:
    return (
        *(_windows(kind) for kind in ACTIVITY_TYPES),
        _activity(subject),
        _inbound(who, with_share=True),
        _contacts_and_account(subject),
        _account_activity_30d(),
    )


def _close_date(v: Values) -> str:
    d = float(v["days_to_close"] or 0)
    pushes, pushed = whole(v["close_date_pushes"]), v.get("close_date_push_days")
    if whole(d) == 0:
        text = "expected to close today"
    elif d > 0:
        text = f"expected to close in {days(d)}"
    else:
        text = f"{days(-d)} past its expected close date"
    if pushes == 0:
        return text + "; the close date was never pushed"
    by = "" if pushed is None else f", by {days(pushed)}" + (" in all" if pushes > 1 else "")
    return text + f"; the close date was pushed {times(pushes)}{by}"


def _amount(v: Values) -> str:
    text = f"deal amount {money(v['amount'])}"
    change = v.get("amount_change_pct")
    if change is not None and abs(float(change)) >= 0.005:
        verb = "cut" if float(change) < 0 else "raised"
        text += f", {verb} by {share(change)} since the deal opened"
    return text


def _owner_record(v: Values, whose: str) -> str:
    """The owner's closed deals and win rate, as ``whose`` owner ("the deal's")."""
    closed, rate = whole(v["owner_closed_deals"]), v.get("owner_win_rate")
    if closed == 0:
        return f"{whose} owner has not closed a deal yet"
    if closed == 1:
        return f"{whose} owner has closed 1 deal, and {'won' if rate else 'lost'} it"
    return f"{whose} owner has won {share(rate)} of the {closed:,} deals they closed"


def _owner(v: Values) -> str:
    return _owner_record(v, "the deal's")


def _moves_back(n: int) -> str:
    return "never moved back a stage" if n == 0 else f"moved back a stage {times(n)}"


LEAD_TOPICS: tuple[Topic, ...] = (
    _category("source", "lead source", "lead source"),
    _category("industry", "industry", "industry"),
    _category("country", "country", "country"),
    _size(),
    _category("seniority", "seniority", "seniority"),
    _category("job_function", "job function", "job function"),
    _yes_no("budget_confirmed", "budget", "budget confirmed", "budget not confirmed"),
    _yes_no("is_decision_maker", "decision maker", "talking to a decision maker",
            "the contact is not a decision maker"),
    _yes_no("need_stated", "need", "need stated", "no need stated"),
    Topic("timeline_days", "timeline", ("timeline_days",),
          lambda v: f"plans to buy within {days(v['timeline_days'])}", True,
          needs=("timeline_days",)),
    Topic("lead_age_days", "lead age", ("lead_age_days",),
          lambda v: f"lead created {ago(v['lead_age_days'])}", False, needs=("lead_age_days",)),
    *_engagement("lead", "the prospect"),
    _account_history("the account's deals with us"),
)

DEAL_TOPICS: tuple[Topic, ...] = (
    _category("stage", "stage", "stage"),
    Topic("time_in_stage", "time in stage", ("days_in_stage",),
          lambda v: f"{days(v['days_in_stage'])} in "
                    f"{words(v['stage']) if v.get('stage') else 'the current stage'}",
          True, needs=("days_in_stage",), reads=("stage",)),
    _single("stage_moves_back", "moves back a stage", _moves_back),
    Topic("deal_age", "deal age", ("days_since_created",),
          lambda v: f"deal opened {ago(v['days_since_created'])}", False,
          needs=("days_since_created",)),
    Topic("close_date", "expected close date",
          ("days_to_close", "close_date_pushes", "close_date_push_days"), _close_date, True,
          needs=("days_to_close",)),
    Topic("amount", "deal amount", ("amount", "amount_change_pct"), _amount, False,
          needs=("amount",)),
    _category("product", "product", "product"),
    Topic("owner", "the owner's win rate", ("owner_win_rate", "owner_closed_deals"), _owner,
          False, needs=("owner_closed_deals",), absence=("owner_closed_deals",),
          context="owner_deals"),
    _category("industry", "industry", "industry", context="account"),
    _category("country", "country", "country", context="account"),
    _size(context="account"),
    # Renewals and expansions come from no lead: no source is an absence there.
    Topic("source", "lead source", ("source",),
          lambda v: "the deal did not come from a lead" if v["source"] is None
          else f"lead source: {words(v['source'])}", False, absence=("source",),
          context="lead"),
    *_engagement("deal", "the buyer"),
    _account_history("the account's other deals"),
)


# -- customer accounts ------------------------------------------------------------------------


def _contracts(v: Values) -> str:
    n = whole(v["active_contracts"])
    if n == 0:
        return "no contract running"
    return f"{count(n, 'contract')} running, worth {money(v.get('contract_value'))}" + (
        " in all" if n > 1 else "")


def _renewal_due(v: Values) -> str:
    d = float(v["days_to_renewal"] or 0)
    if whole(d) == 0:
        return "the next renewal is due today"
    return f"the next renewal is due in {days(d)}" if d > 0 else \
        f"the next renewal is {days(-d)} past its due date"


def _term(v: Values) -> str:
    product = v.get("term_product")
    what = f" ({words(product)})" if product is not None else ""
    return f"the contract up for renewal is worth {money(v['term_amount'])}{what}"


def _renewal_deal(v: Values) -> str:
    stage = v["renewal_stage"]
    if stage is None:
        return "no renewal deal open yet"
    spent = v.get("renewal_days_in_stage")
    return f"the renewal deal is in {words(stage)}" + (
        f", for {days(spent)}" if spent is not None else "")


def _renewals(v: Values) -> str:
    won, lost = whole(v["renewals_won"]), whole(v["renewals_lost"])
    if not (won or lost):
        return "no earlier renewal"
    return "earlier renewals: " + ", ".join(f"{n:,} {what}" for n, what in
                                            ((won, "won"), (lost, "lost")) if n)


def _expansions(v: Values) -> str:
    opened, won = whole(v["expansions_opened"]), whole(v["expansions_won"])
    if opened == 0:
        return "no expansion deal yet"
    bought = f"{won:,} bought" if won else "none bought"
    last = v.get("days_since_expansion")
    latest = f", the latest opened {ago(last)}" if last is not None else ""
    return f"{count(opened, 'expansion deal')} opened before, {bought}{latest}"


def _account_activity(v: Values) -> str:
    n30, n90 = whole(v["activities_30d"]), whole(v["activities_90d"])
    last, trend = v["days_since_last_activity"], whole(v["activity_trend_30d"])
    if last is None:
        return "no activity with the account recorded"
    if n90 == 0:
        return f"no activity with the account in the last 90 days (the latest {ago(last)})"
    recent = "none" if n30 == 0 else f"{n30:,}"
    text = (f"{count(n90, 'activity', 'activities')} with the account in the last 90 days "
            f"({recent} in the last 30), the latest {ago(last)}")
    if trend:
        more = "more" if trend > 0 else "fewer"
        text += f"; {abs(trend):,} {more} in the last 30 days than in the 30 before"
    return text


def _trend(value: Value) -> str:
    if value is None or abs(float(value)) < 0.005:
        return ""
    return f", {'up' if float(value) > 0 else 'down'} {share(value)} against the two " \
           "months before"


def _usage(v: Values) -> str:
    users = v["active_users_30d"]
    if users is None:
        return "no product usage reported in the last 30 days"
    text = f"{count(whole(users), 'weekly active user')} on average over the last 30 days"
    seats, used = v.get("licensed_seats"), v.get("seat_utilization")
    if seats is not None and used is not None:
        text += f" ({share(used)} of {count(whole(seats), 'licensed seat')})"
    text += _trend(v.get("active_users_trend"))
    last = v.get("active_users_last")
    return text + (f"; {whole(last):,} at the latest count" if last is not None else "")


def _account_owner(v: Values) -> str:
    text = _owner_record(v, "the account's")
    if whole(v["owner_closed_deals"]) == 0:
        return text
    renewals, renewal_rate = whole(v.get("owner_renewals_closed") or 0), v.get(
        "owner_renewal_rate")
    if renewals == 1:
        text += f", and {'won' if renewal_rate else 'lost'} the 1 renewal they closed"
    elif renewals > 1:
        text += f", {share(renewal_rate)} of their {renewals:,} renewals"
    return text


def _logins(v: Values) -> str:
    n = v["logins_30d"]
    if n is None:
        return "no logins reported in the last 30 days"
    return f"{count(whole(n), 'login')} a week on average over the last 30 days" + _trend(
        v.get("logins_trend"))


def _tickets(v: Values) -> str:
    n30, n90, severe = (whole(v[n]) for n in ("tickets_30d", "tickets_90d", "severe_tickets_90d"))
    if n90 == 0:
        return "no support ticket in the last 90 days"
    parts = ["none in the last 30" if n30 == 0 else f"{n30:,} in the last 30"]
    if severe:
        parts.append(f"{severe:,} high-severity")
    return f"{count(n90, 'support ticket')} in the last 90 days ({', '.join(parts)})"


def _nps(v: Values) -> str:
    score = v["nps_last"]
    if score is None:
        return "no NPS answer yet"
    when = v.get("days_since_nps")
    return f"last NPS answer {whole(score)} of 10" + (
        f", given {ago(when)}" if when is not None else "")


def _account_topics() -> tuple[Topic, ...]:
    return (
        _category("industry", "industry", "industry"),
        _category("country", "country", "country"),
        _size(segment=True),
        Topic("tenure", "time as a customer", ("tenure_days",),
              lambda v: f"a customer for {span(v['tenure_days'])}", False,
              needs=("tenure_days",)),
        Topic("contracts", "contracts running", ("active_contracts", "contract_value"),
              _contracts, False, needs=("active_contracts",), absence=("active_contracts",)),
        Topic("renewal_due", "renewal date", ("days_to_renewal",), _renewal_due, False,
              needs=("days_to_renewal",)),
        Topic("term", "the renewing contract", ("term_amount", "term_product"), _term, False,
              needs=("term_amount",)),
        Topic("owner", "the account owner's record",
              ("owner_win_rate", "owner_closed_deals", "owner_renewal_rate",
               "owner_renewals_closed"), _account_owner, False,
              needs=("owner_closed_deals",), absence=("owner_closed_deals",),
              context="owner_deals"),
        Topic("renewal_deal", "the renewal deal", ("renewal_stage", "renewal_days_in_stage"),
              _renewal_deal, True, absence=("renewal_stage",)),
        Topic("renewals", "earlier renewals", ("renewals_won", "renewals_lost"), _renewals,
              False, needs=("renewals_won", "renewals_lost"),
              absence=("renewals_won", "renewals_lost")),
        Topic("expansions", "earlier expansions",
              ("expansions_opened", "expansions_won", "days_since_expansion"), _expansions,
              False, needs=("expansions_opened",), absence=("expansions_opened",)),
        Topic("activity", "activity",
              ("activities_30d", "activities_90d", "activity_trend_30d",
               "days_since_last_activity"), _account_activity, True,
              needs=("activities_90d",), absence=("activities_90d",)),
        _inbound("the customer", with_share=False),
        _contacts("at the account"),
        *(_in_90_days(kind) for kind in ("meeting", "call", "email_replied")),
        Topic("usage", "product usage",
              ("active_users_30d", "active_users_trend", "active_users_last", "licensed_seats",
               "seat_utilization"), _usage, False, absence=("active_users_30d",)),
        Topic("logins", "logins", ("logins_30d", "logins_trend"), _logins, False,
              absence=("logins_30d",)),
        Topic("tickets", "support tickets", ("tickets_30d", "tickets_90d", "severe_tickets_90d"),
              _tickets, False, needs=("tickets_90d",), absence=("tickets_90d",)),
        Topic("nps", "NPS", ("nps_last", "days_since_nps"), _nps, False, absence=("nps_last",)),
        Topic("csat", "satisfaction", ("csat_last",),
              lambda v: "no satisfaction answer yet" if v["csat_last"] is None
              else f"last satisfaction answer {whole(v['csat_last'])} of 5", False,
              absence=("csat_last",)),
    )


def _owner_activity(v: Values) -> str:
    return f"the account owner's deals see {rate(v['owner_activity_rate'])} while open"


def _renewal_trail(v: Values) -> str:
    if v.get("renewal_stage") is None:
        return "no renewal deal open yet"
    pushes = whole(v["renewal_close_date_pushes"])
    return ("the renewal deal's close date was never pushed" if pushes == 0
            else f"the renewal deal's close date was pushed {times(pushes)}")


def _renewal_activity(v: Values) -> str:
    last = v["renewal_days_since_activity"]
    if last is None:
        return ("no renewal deal open yet" if v.get("renewal_stage") is None
                else "no activity on the renewal deal yet")
    n14 = whole(v["renewal_activities_14d"])
    text = ("no activity on the renewal deal in the last 14 days" if n14 == 0 else
            f"{count(n14, 'activity', 'activities')} on the renewal deal in the last 14 days")
    text += f", the latest {ago(last)}"
    contacts = whole(v.get("renewal_contacts"))
    return text + (f"; {count(contacts, 'contact')} engaged on it" if contacts else "")


def _usage_level(v: Values) -> str:
    since = v["days_since_usage"]
    if since is None:
        return "no product usage reported yet"
    text = f"the latest usage report came {ago(since)}"
    change = v.get("active_users_vs_usual")
    if change is not None and abs(float(change)) >= 0.005:
        text += (f"; active users {'up' if float(change) > 0 else 'down'} {share(change)} "
                 "against the account's usual level")
    return text


def _login_intensity(v: Values) -> str:
    recent, month = v["logins_per_user_14d"], v.get("logins_per_user_30d")
    if recent is None and month is None:
        return "no logins reported in the last 30 days"
    if recent is None:
        return f"{per_user(month)} over the last 30 days"
    text = f"{per_user(recent)} over the last 14 days"
    return text + (f" ({per_user(month)} over the last 30)" if month is not None else "")


def _renewal_sign_topics() -> tuple[Topic, ...]:
    """The renewal set's own topics, beside the ones it shares with expansion."""
    return (
        Topic("owner_activity", "the account owner's deal activity", ("owner_activity_rate",),
              _owner_activity, False, needs=("owner_activity_rate",), context="owner_deals"),
        Topic("renewal_trail", "the renewal deal's close date", ("renewal_close_date_pushes",),
              _renewal_trail, True, absence=("renewal_close_date_pushes",),
              reads=("renewal_stage",)),
        Topic("renewal_activity", "activity on the renewal deal",
              ("renewal_activities_14d", "renewal_contacts", "renewal_days_since_activity"),
              _renewal_activity, True, absence=("renewal_days_since_activity",),
              reads=("renewal_stage",)),
        Topic("usage_level", "usage against the usual level",
              ("days_since_usage", "active_users_vs_usual"), _usage_level, False,
              absence=("days_since_usage",)),
        Topic("login_intensity", "logins per active user",
              ("logins_per_user_14d", "logins_per_user_30d"), _login_intensity, False,
              absence=("logins_per_user_14d", "logins_per_user_30d")),
    )


TOPICS: dict[str, tuple[Topic, ...]] = {
    LEAD_V1.name: LEAD_TOPICS,
    DEAL_V1.name: DEAL_TOPICS,
    ACCOUNT_RENEWAL_V1.name: (*_account_topics(), *_renewal_sign_topics()),
    ACCOUNT_EXPANSION_V1.name: _account_topics(),
}
"""Per feature set (by name), its topics: every feature in exactly one."""


def _fallback(spec_name: str, description: str) -> Topic:
    """A feature no topic covers (a stored feature set the code no longer declares): its
    own description as the sentence."""

    def phrase(v: Values) -> str:
        try:
            return description.format(value=v[spec_name])
        except (ValueError, TypeError, KeyError, IndexError):
            return f"{spec_name.replace('_', ' ')}: {v[spec_name]}"

    return Topic(spec_name, spec_name.replace("_", " "), (spec_name,), phrase, False,
                 needs=(spec_name,))


def topics_for(feature_set: FeatureSet) -> tuple[Topic, ...]:
    """The topics of a feature set, covering each of its features once.

    Topics of the declared set of that name (for a derived set, of the set it is built on)
    whose features the set holds; any other feature (an export's own column, or a model
    saved with a set the code declares differently) reads through its own description.
    """
    names = set(feature_set.names)
    declared = [t for t in TOPICS.get(feature_set.base_name, ()) if set(t.features) <= names]
    covered = {f for t in declared for f in t.features}
    rest = [_fallback(s.name, s.description) for s in feature_set.features
            if s.name not in covered]
    return (*declared, *rest)
