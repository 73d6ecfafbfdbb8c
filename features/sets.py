"""The declared feature sets ``lead_v1`` and ``deal_v1``.

Each feature is declared once here: name, entity, window, dtype, a description (a
template with ``{value}``) and the direction in which it may move the score. The reasons a
rep reads group these features into topics with their own sentences (``features.reasons``).
Category levels are fixed here too, so that a training set and a single serving request
encode categories identically; values outside the levels become missing rather than new
categories.
"""

from __future__ import annotations

from typing import Literal

from features.declarations import Entity, FeatureDtype, FeatureSet, FeatureSpec
from features.schema import ACTIVITY_TYPES, OPEN_STAGES

# Category levels, in a fixed order. Values outside them encode as missing.
CATEGORY_LEVELS: dict[str, tuple[str, ...]] = {
    "source": (
        "inbound_web_form",
        "webinar",
        "referral",
        "paid_search",
        "cold_outbound",
        "event",
        "partner",
    ),
    "seniority": ("c_level", "vp", "director", "manager", "individual", "unknown"),
    "job_function": (
        "executive",
        "sales",
        "marketing",
        "it",
        "engineering",
        "finance",
        "operations",
        "hr",
        "other",
    ),
    "industry": (
        "software",
        "financial_services",
        "healthcare",
        "manufacturing",
        "retail",
        "education",
        "government",
        "media",
        "telecom",
        "energy",
        "professional_services",
        "logistics",
    ),
    "country": ("US", "CA", "GB", "DE", "FR", "NL", "SE", "ES", "IT", "AU", "IN", "JP", "BR", "SG"),
    "product": ("starter", "professional", "enterprise", "renewal", "expansion"),
    "stage": OPEN_STAGES,
    "renewal_stage": OPEN_STAGES,
    "term_product": ("starter", "professional", "enterprise", "renewal", "expansion"),
    "segment": ("smb", "mid_market", "enterprise"),
}

SEGMENT_EMPLOYEES: tuple[int, int] = (100, 1000)
"""Employees at which an account moves from SMB to mid-market, and to enterprise."""

# How each activity type reads in a sentence, and whether more of it is known to help.
_ACTIVITY_WORDS: dict[str, tuple[str, Literal[-1, 0, 1]]] = {
    "email_sent": ("emails sent", 0),
    "email_opened": ("emails opened", 0),
    "email_clicked": ("email links clicked", 0),
    "email_replied": ("email replies", 1),
    "web_visit": ("website visits", 0),
    "pricing_page_visit": ("pricing-page visits", 1),
    "content_download": ("content downloads", 0),
    "form_submitted": ("forms submitted", 1),
    "webinar_attended": ("webinars attended", 0),
    "call": ("calls", 0),
    "meeting": ("meetings", 1),
    "demo": ("demos", 1),
}
assert set(_ACTIVITY_WORDS) == set(ACTIVITY_TYPES)

ENGAGEMENT_WINDOWS: tuple[int, ...] = (7, 30, 90)


def _engagement(entity: Entity, subject: str) -> tuple[FeatureSpec, ...]:
    """Activity counts by type and window, recency, trend, inbound share and contacts."""
    specs: list[FeatureSpec] = []
    for kind in ACTIVITY_TYPES:
        words, direction = _ACTIVITY_WORDS[kind]
        for window in ENGAGEMENT_WINDOWS:
            specs.append(
                FeatureSpec(
                    name=f"{kind}_{window}d",
                    entity=entity,
                    dtype="int",
                    description=f"{{value:.0f}} {words} in the last {window} days",
                    window_days=window,
                    monotone=direction,
                )
            )
    specs += [
        FeatureSpec(
            "activities_30d",
            entity,
            "int",
            f"{{value:.0f}} activities on this {subject} in the last 30 days",
            window_days=30,
        ),
        FeatureSpec(
            "days_since_last_activity",
            entity,
            "float",
            "{value:.0f} days since the last activity",
            monotone=-1,
        ),
        FeatureSpec(
            "days_since_last_inbound",
            entity,
            "float",
            "{value:.0f} days since the prospect last reached out",
            monotone=-1,
        ),
        FeatureSpec(
            "activity_trend_7d",
            entity,
            "int",
            "{value:+.0f} activities this week against the week before",
            window_days=14,
        ),
        FeatureSpec(
            "inbound_share_90d",
            entity,
            "float",
            "{value:.0%} of activities in the last 90 days came from the prospect",
            window_days=90,
        ),
        FeatureSpec(
            "contacts_engaged",
            entity,
            "int",
            f"{{value:.0f}} contacts engaged on this {subject}",
            monotone=1,
        ),
        FeatureSpec(
            "account_activities_30d",
            "account",
            "int",
            "{value:.0f} activities across the whole account in the last 30 days",
            window_days=30,
        ),
        FeatureSpec(
            "account_contacts_engaged",
            "account",
            "int",
            "{value:.0f} contacts engaged across the account",
            to_date=True,
        ),
    ]
    return tuple(specs)


def _account_history() -> tuple[FeatureSpec, ...]:
    """The account's deals as known at t: closed before t, or still open at t."""
    return (
        FeatureSpec(
            "account_won_deals",
            "account",
            "int",
            "the account has won {value:.0f} earlier deals with us",
            to_date=True,
        ),
        FeatureSpec(
            "account_lost_deals",
            "account",
            "int",
            "the account has {value:.0f} earlier lost deals",
            to_date=True,
        ),
        FeatureSpec(
            "account_open_deals",
            "account",
            "int",
            "the account has {value:.0f} other open deals",
        ),
    )


LEAD_V1 = FeatureSet(
    name="lead_v1",
    version=1,
    task="lead_qualification",
    entity_key="lead_id",
    features=(
        FeatureSpec("source", "lead", "category", "lead source: {value}"),
        FeatureSpec("industry", "lead", "category", "industry: {value}"),
        FeatureSpec("country", "lead", "category", "country: {value}"),
        FeatureSpec("employees", "lead", "float", "company of {value:,.0f} employees"),
        FeatureSpec("seniority", "lead", "category", "seniority: {value}"),
        FeatureSpec("job_function", "lead", "category", "job function: {value}"),
        FeatureSpec("budget_confirmed", "lead", "bool", "budget confirmed: {value}"),
        FeatureSpec("is_decision_maker", "lead", "bool", "decision maker: {value}"),
        FeatureSpec("need_stated", "lead", "bool", "need stated: {value}"),
        FeatureSpec("timeline_days", "lead", "float", "plans to buy within {value:.0f} days"),
        FeatureSpec("lead_age_days", "lead", "float", "lead created {value:.0f} days ago"),
        *_engagement("lead", "lead"),
        *_account_history(),
    ),
)

DEAL_V1 = FeatureSet(
    name="deal_v1",
    version=1,
    task="deal_close",
    entity_key="opportunity_id",
    features=(
        FeatureSpec("stage", "deal", "category", "stage: {value}"),
        FeatureSpec("days_in_stage", "deal", "float", "{value:.0f} days in the current stage"),
        FeatureSpec("days_since_created", "deal", "float", "deal opened {value:.0f} days ago"),
        FeatureSpec(
            "stage_moves_back", "deal", "int", "moved back a stage {value:.0f} times", monotone=-1
        ),
        FeatureSpec(
            "close_date_pushes", "deal", "int", "close date pushed {value:.0f} times", monotone=-1
        ),
        FeatureSpec(
            "close_date_push_days",
            "deal",
            "float",
            "close date pushed out by {value:.0f} days in total",
            monotone=-1,
        ),
        FeatureSpec("amount", "deal", "float", "deal amount ${value:,.0f}"),
        FeatureSpec(
            "amount_change_pct",
            "deal",
            "float",
            "amount changed {value:+.0%} since the deal opened",
        ),
        FeatureSpec(
            "days_to_close",
            "deal",
            "float",
            "{value:.0f} days until the expected close date (negative: overdue)",
        ),
        FeatureSpec("product", "deal", "category", "product: {value}"),
        FeatureSpec(
            "owner_win_rate",
            "deal",
            "float",
            "the owner has won {value:.0%} of the deals they closed",
        ),
        FeatureSpec("owner_closed_deals", "deal", "int", "the owner has closed {value:.0f} deals",
                    to_date=True),
        FeatureSpec("industry", "account", "category", "industry: {value}"),
        FeatureSpec("country", "account", "category", "country: {value}"),
        FeatureSpec("employees", "account", "float", "company of {value:,.0f} employees"),
        FeatureSpec("source", "deal", "category", "lead source: {value}"),
        *_engagement("deal", "deal"),
        *_account_history(),
    ),
)



_ACCOUNT_TO_DATE = frozenset({"owner_closed_deals", "owner_renewals_closed", "renewals_won",
                              "renewals_lost", "expansions_opened", "expansions_won"})
"""A customer account's counts over all history (``FeatureSpec.to_date``)."""


def _account(monotone: dict[str, Literal[-1, 0, 1]]) -> tuple[FeatureSpec, ...]:
    """A customer account as of t: its contracts, engagement since the sale, product usage,
    support tickets and survey answers. ``monotone`` gives the task's known directions."""

    def spec(name: str, dtype: FeatureDtype, text: str, window: int | None = None) -> FeatureSpec:
        return FeatureSpec(name, "account", dtype, text, window_days=window,
                           monotone=monotone.get(name, 0), to_date=name in _ACCOUNT_TO_DATE)

    return (
        spec("industry", "category", "industry: {value}"),
        spec("country", "category", "country: {value}"),
        spec("employees", "float", "company of {value:,.0f} employees"),
        spec("segment", "category", "segment: {value}"),
        spec("tenure_days", "float", "a customer for {value:.0f} days"),
        spec("active_contracts", "int", "{value:.0f} contracts running"),
        spec("contract_value", "float", "${value:,.0f} of contracts running"),
        spec("days_to_renewal", "float", "next renewal due in {value:.0f} days"),
        spec("term_amount", "float", "the renewing contract is worth ${value:,.0f}"),
        spec("term_product", "category", "the renewing contract is for {value}"),
        spec("owner_win_rate", "float", "the account owner has won {value:.0%} of the deals "
             "they closed"),
        spec("owner_closed_deals", "int", "the account owner has closed {value:.0f} deals"),
        spec("owner_renewal_rate", "float", "the account owner has won {value:.0%} of the "
             "renewals they closed"),
        spec("owner_renewals_closed", "int", "the account owner has closed {value:.0f} "
             "renewals"),
        spec("renewal_stage", "category", "the renewal deal is at {value}"),
        spec("renewal_days_in_stage", "float", "{value:.0f} days in the renewal deal's stage"),
        spec("renewals_won", "int", "{value:.0f} earlier renewals won"),
        spec("renewals_lost", "int", "{value:.0f} earlier renewals lost"),
        spec("expansions_opened", "int", "{value:.0f} expansion deals opened before"),
        spec("expansions_won", "int", "{value:.0f} expansions bought before"),
        spec("days_since_expansion", "float", "{value:.0f} days since the last expansion deal"),
        spec("activities_30d", "int", "{value:.0f} activities with the account in the last "
             "30 days", 30),
        spec("activities_90d", "int", "{value:.0f} activities with the account in the last "
             "90 days", 90),
        spec("activity_trend_30d", "int", "{value:+.0f} activities in the last 30 days against "
             "the 30 before", 60),
        spec("days_since_last_activity", "float", "{value:.0f} days since the last activity"),
        spec("days_since_last_inbound", "float", "{value:.0f} days since the customer last "
             "reached out"),
        spec("contacts_engaged", "int", "{value:.0f} contacts engaged"),
        spec("meeting_90d", "int", "{value:.0f} meetings in the last 90 days", 90),
        spec("call_90d", "int", "{value:.0f} calls in the last 90 days", 90),
        spec("email_replied_90d", "int", "{value:.0f} email replies in the last 90 days", 90),
        spec("active_users_30d", "float", "{value:,.0f} weekly active users (30-day average)",
             30),
        spec("active_users_trend", "float", "active users {value:+.0%} against the two months "
             "before", 90),
        spec("active_users_last", "float", "{value:,.0f} active users last week"),
        spec("licensed_seats", "float", "{value:,.0f} licensed seats"),
        spec("seat_utilization", "float", "{value:.0%} of licensed seats active (30-day "
             "average)", 30),
        spec("logins_30d", "float", "{value:,.0f} weekly logins (30-day average)", 30),
        spec("logins_trend", "float", "logins {value:+.0%} against the two months before", 90),
        spec("tickets_30d", "int", "{value:.0f} support tickets in the last 30 days", 30),
        spec("tickets_90d", "int", "{value:.0f} support tickets in the last 90 days", 90),
        spec("severe_tickets_90d", "int", "{value:.0f} high-severity tickets in the last 90 "
             "days", 90),
        spec("nps_last", "float", "last NPS answer {value:.0f} of 10"),
        spec("days_since_nps", "float", "{value:.0f} days since the last NPS answer"),
        spec("csat_last", "float", "last satisfaction answer {value:.0f} of 5"),
    )


def _renewal_signs() -> tuple[FeatureSpec, ...]:
    """What a renewal's outcome shows before it closes, beyond what the expansion task
    reads: the owner's deals' activity (their skill), the open renewal deal slipping or
    going quiet, and usage falling from the account's own usual level."""

    def spec(name: str, dtype: FeatureDtype, text: str, window: int | None = None) -> FeatureSpec:
        return FeatureSpec(name, "account", dtype, text, window_days=window)

    return (
        spec("owner_activity_rate", "float", "the account owner's deals have {value:.1f} "
             "activities a day while open"),
        spec("renewal_close_date_pushes", "int", "the renewal deal's close date pushed "
             "{value:.0f} times"),
        spec("renewal_activities_14d", "int", "{value:.0f} activities on the renewal deal in "
             "the last 14 days", 14),
        spec("renewal_contacts", "int", "{value:.0f} contacts engaged on the renewal deal"),
        spec("renewal_days_since_activity", "float", "{value:.0f} days since the last activity "
             "on the renewal deal"),
        spec("days_since_usage", "float", "{value:.0f} days since the last usage report"),
        spec("active_users_vs_usual", "float", "active users {value:+.0%} against the "
             "account's usual level", 30),
        spec("logins_per_user_14d", "float", "{value:.1f} logins per active user a week (last "
             "14 days)", 14),
        spec("logins_per_user_30d", "float", "{value:.1f} logins per active user a week (last "
             "30 days)", 30),
    )


ACCOUNT_RENEWAL_V1 = FeatureSet(
    name="account_renewal_v1",
    version=2,
    task="account_renewal",
    entity_key="account_id",
    features=(*_account({"severe_tickets_90d": -1, "renewals_lost": -1}), *_renewal_signs()),
)

ACCOUNT_EXPANSION_V1 = FeatureSet(
    name="account_expansion_v1",
    version=1,
    task="account_expansion",
    entity_key="account_id",
    features=_account({}),
)

FEATURE_SETS: dict[str, FeatureSet] = {
    fs.name: fs for fs in (LEAD_V1, DEAL_V1, ACCOUNT_RENEWAL_V1, ACCOUNT_EXPANSION_V1)
}
