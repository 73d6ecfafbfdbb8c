"""Deal-risk flags, each with the reason a manager reads and the evidence behind it.

The flags read the deal's own features (the same ones the model saw) and what the model
learned in training: how long won deals stayed in each stage (75th percentile) and each
stage's win rate. A flag is raised only where its evidence is known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.reasons import ago, days, times, whole, words
from serving.schemas import RiskLevel

WEIGHTS: dict[str, int] = {
    "stalled": 1,
    "no_activity": 1,
    "close_date_pushed": 1,
    "amount_cut": 1,
    "single_threaded": 1,
    "low_probability": 2,
    "usage_falling": 1,
    "tickets_rising": 1,
    "detractor": 1,
    "silent_before_renewal": 1,
    "one_contact": 1,
}
"""How much each flag counts toward the level: 0 is low, 1-2 medium, 3 or more high."""

FLAG_FEATURES: dict[str, tuple[str, ...]] = {
    "stalled": ("days_in_stage",),
    "no_activity": ("days_since_last_activity",),
    "close_date_pushed": ("close_date_pushes", "close_date_push_days"),
    "amount_cut": ("amount_change_pct",),
    "single_threaded": ("contacts_engaged",),
    "low_probability": (),
    "usage_falling": ("active_users_trend",),
    "tickets_rising": ("tickets_30d", "tickets_90d"),
    "detractor": ("nps_last",),
    "silent_before_renewal": ("days_since_last_activity",),
    "one_contact": ("contacts_engaged",),
}
"""The features whose condition each flag states. A raised flag keeps the reasons about
them out of the reasons for, so an answer never flags a stall and praises the time in
stage (low_probability states the score itself, no feature)."""


def flagged_features(flags: list[Flag]) -> frozenset[str]:
    return frozenset(f for flag in flags for f in FLAG_FEATURES[flag.flag])


@dataclass(frozen=True)
class RiskRules:
    no_activity_days: int = 14
    probability_ratio: float = 0.5
    amount_cut_ratio: float = 0.1
    usage_drop_ratio: float = 0.2
    """Renewals: flagged when active users fell by more than this share."""
    renewal_silence_days: int = 30
    """Renewals: flagged when nothing happened with the account for this long before it."""


@dataclass(frozen=True)
class Flag:
    flag: str
    reason: str
    evidence: dict[str, Any]


def _num(row: Mapping[str, Any], name: str) -> float | None:
    value = row.get(name)
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _stage_words(stage: str) -> str:
    return words(stage)


def risk_flags(
    features: Mapping[str, Any],
    probability: float,
    metadata: dict[str, Any],
    rules: RiskRules,
) -> list[Flag]:
    """The flags one deal raises, from its feature row and its calibrated probability."""
    flags: list[Flag] = []
    stage = features.get("stage")
    stage = None if stage is None else str(stage)

    days_in_stage = _num(features, "days_in_stage")
    p75 = (metadata.get("won_stage_days_p75") or {}).get(stage) if stage else None
    if days_in_stage is not None and p75 is not None and days_in_stage > float(p75):
        flags.append(
            Flag(
                "stalled",
                f"{days(days_in_stage)} in {_stage_words(stage or '')}; 75% of won deals "
                f"left this stage within {days(p75)}",
                {"stage": stage, "days_in_stage": round(days_in_stage, 1),
                 "won_deals_p75_days": round(float(p75), 1)},
            )
        )

    idle = _num(features, "days_since_last_activity")
    if idle is not None and idle >= rules.no_activity_days:
        flags.append(
            Flag(
                "no_activity",
                f"no activity for {days(idle)}",
                {"days_since_last_activity": round(idle, 1),
                 "threshold_days": rules.no_activity_days},
            )
        )
    elif idle is None and "days_since_last_activity" in features:
        age = _num(features, "days_since_created")
        if age is not None and age >= rules.no_activity_days:
            flags.append(
                Flag(
                    "no_activity",
                    f"no activity recorded since the deal opened {ago(age)}",
                    {"days_since_last_activity": None, "days_since_created": round(age, 1),
                     "threshold_days": rules.no_activity_days},
                )
            )

    pushes = _num(features, "close_date_pushes")
    push_days = _num(features, "close_date_push_days")
    if pushes is not None and pushes >= 1:
        by = "" if push_days is None else (
            f", by {days(push_days)}" + (" in total" if pushes > 1 else ""))
        flags.append(
            Flag(
                "close_date_pushed",
                f"close date pushed {times(whole(pushes))}{by}",
                {"pushes": int(pushes),
                 "total_days": None if push_days is None else round(push_days, 1)},
            )
        )

    change = _num(features, "amount_change_pct")
    if change is not None and change < -rules.amount_cut_ratio:
        flags.append(
            Flag(
                "amount_cut",
                f"amount cut by {-change:.0%} since the deal opened",
                {"amount_change_pct": round(change, 4), "amount": _num(features, "amount")},
            )
        )

    contacts = _num(features, "contacts_engaged")
    if contacts is not None and contacts <= 1:
        flags.append(
            Flag(
                "single_threaded",
                "only one contact engaged" if contacts == 1 else "no contact engaged yet",
                {"contacts_engaged": int(contacts)},
            )
        )

    rate = (metadata.get("stage_win_rates") or {}).get(stage) if stage else None
    if rate is not None and probability < rules.probability_ratio * float(rate):
        flags.append(
            Flag(
                "low_probability",
                f"{probability:.0%} chance to win, against {float(rate):.0%} for deals in "
                f"{_stage_words(stage or '')}",
                {"probability": round(probability, 4), "stage_win_rate": round(float(rate), 4),
                 "ratio": round(probability / float(rate), 3) if rate else None},
            )
        )
    return flags


def risk_level(flags: list[Flag]) -> RiskLevel:
    """low (no flag), medium (weight 1-2) or high (weight 3 or more)."""
    weight = sum(WEIGHTS.get(f.flag, 1) for f in flags)
    if weight == 0:
        return "low"
    return "medium" if weight <= 2 else "high"


def renewal_flags(features: Mapping[str, Any], rules: RiskRules) -> list[Flag]:
    """The churn-risk flags of one renewal, from the account's feature row."""
    flags: list[Flag] = []
    trend = _num(features, "active_users_trend")
    if trend is not None and trend < -rules.usage_drop_ratio:
        flags.append(Flag(
            "usage_falling",
            f"active users down {-trend:.0%} against the two months before",
            {"active_users_trend": round(trend, 4),
             "active_users_30d": _num(features, "active_users_30d")},
        ))
    recent, quarter = _num(features, "tickets_30d"), _num(features, "tickets_90d")
    if recent is not None and quarter is not None:
        before = quarter - recent
        if recent >= 2 and recent > before / 2:
            flags.append(Flag(
                "tickets_rising",
                f"{recent:.0f} support tickets in the last 30 days against {before:.0f} in "
                "the 60 days before",
                {"tickets_30d": int(recent), "tickets_prior_60d": int(before),
                 "severe_tickets_90d": _num(features, "severe_tickets_90d")},
            ))
    nps = _num(features, "nps_last")
    if nps is not None and nps <= 6:
        flags.append(Flag(
            "detractor",
            f"last NPS answer {nps:.0f} of 10 (a detractor)",
            {"nps_last": nps, "days_since_nps": _num(features, "days_since_nps")},
        ))
    idle = _num(features, "days_since_last_activity")
    due = _num(features, "days_to_renewal")
    if due is not None and (idle is None or idle >= rules.renewal_silence_days):
        flags.append(Flag(
            "silent_before_renewal",
            (f"renewal due in {days(due)}" if due >= 0 else
             f"renewal {days(-due)} past its due date")
            + (" and no activity recorded with the account" if idle is None
               else f" and no activity for {days(idle)}"),
            {"days_to_renewal": round(due, 1),
             "days_since_last_activity": None if idle is None else round(idle, 1),
             "threshold_days": rules.renewal_silence_days},
        ))
    contacts = _num(features, "contacts_engaged")
    if contacts is not None and contacts <= 1:
        flags.append(Flag(
            "one_contact",
            "only one contact engaged at the account" if contacts == 1
            else "no contact engaged at the account",
            {"contacts_engaged": int(contacts)},
        ))
    return flags
