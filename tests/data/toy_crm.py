"""A tiny random CRM that obeys the data contract, for tests of the feature pipeline.

Small on purpose (tens of leads): the point-in-time tests compare whole frames and run
under hypothesis, so each table must build in milliseconds. Deals move through the stages
with moves back, close-date pushes and amount changes, so every deal feature is exercised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.schema import (
    ACCOUNT_SIGNALS,
    ACCOUNTS,
    ACTIVITIES,
    ACTIVITY_TYPES,
    LEAD_FIELD_HISTORY,
    LEADS,
    OPEN_STAGES,
    OPPORTUNITIES,
    OPPORTUNITY_FIELD_HISTORY,
    OPPORTUNITY_HISTORY,
    SIGNAL_RANGES,
    SIGNALS,
    CRMTables,
    coerce_dtypes,
)
from features.sets import CATEGORY_LEVELS

START = pd.Timestamp("2024-01-01", tz="UTC")


def _when(rng: np.random.Generator, base: Any, max_days: float) -> pd.Timestamp:
    return pd.Timestamp(base) + pd.Timedelta(seconds=int(rng.uniform(0, max_days) * 86_400))


def _choice(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def toy_crm(seed: int, n_leads: int = 30, days: int = 240, post_sale: bool = False,
            field_history: bool = False) -> CRMTables:
    """A random CRM of ``n_leads`` leads over ``days`` days, at one-second resolution.

    ``post_sale`` adds life after the sale to every won deal: renewal deals around its
    anniversary (won, lost or open), expansion deals, and account signals (usage, tickets,
    survey answers); ``field_history`` adds the changes of edited attributes (BANT filled
    in after creation, firmographics corrected, a deal's product changed), drawn from a
    stream of its own; the rest is drawn exactly as without them.
    """
    rng = np.random.default_rng(seed)

    def pick(options: Sequence[Any]) -> Any:
        return _choice(rng, options)

    n_accounts = max(2, n_leads // 3)
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(n_accounts)],
            "name": [f"Company {i}" for i in range(n_accounts)],
            "industry": [pick([*CATEGORY_LEVELS["industry"], None]) for _ in range(n_accounts)],
            "employees": rng.integers(5, 5000, n_accounts),
            "annual_revenue": rng.uniform(1e5, 1e8, n_accounts),
            "country": [pick(CATEGORY_LEVELS["country"]) for _ in range(n_accounts)],
            "created_at": [_when(rng, START, days / 4) for _ in range(n_accounts)],
        }
    )
    leads, opps, hist, acts = [], [], [], []
    owners = ["U1", "U2", "U3"]
    for i in range(n_leads):
        acc = int(rng.integers(n_accounts))
        created = _when(rng, accounts.loc[acc, "created_at"], days * 0.6)
        fate = rng.random()
        qualified: Any = _when(rng, created, 60) if fate < 0.4 else pd.NaT
        disqualified = _when(rng, created, 90) if 0.4 <= fate < 0.6 else pd.NaT
        lead_id = f"L{i}"
        opp_id = f"O{i}" if not pd.isna(qualified) else None
        leads.append(
            {
                "lead_id": lead_id,
                "account_id": f"A{acc}" if rng.random() < 0.9 else None,
                "created_at": created,
                "source": pick([*CATEGORY_LEVELS["source"], "carrier_pigeon"]),
                "title": "Head of Things",
                "seniority": pick(CATEGORY_LEVELS["seniority"]),
                "job_function": pick(CATEGORY_LEVELS["job_function"]),
                "country": pick(CATEGORY_LEVELS["country"]),
                "industry": pick([*CATEGORY_LEVELS["industry"], None]),
                "employees": int(rng.integers(5, 5000)),
                "budget_confirmed": pick([True, False, None]),
                "is_decision_maker": pick([True, False, None]),
                "need_stated": pick([True, False, None]),
                "timeline_days": pick([30, 90, 180, None]),
                "qualified_at": qualified,
                "disqualified_at": disqualified,
                "opportunity_id": opp_id,
            }
        )
        for _ in range(int(rng.integers(0, 25))):
            acts.append(
                {
                    "occurred_at": _when(rng, created, 120),
                    "account_id": f"A{acc}",
                    "lead_id": lead_id,
                    "opportunity_id": None,
                    "contact_id": f"C{i}-{rng.integers(3)}" if rng.random() < 0.9 else None,
                    "type": pick(ACTIVITY_TYPES),
                    "direction": pick(["inbound", "outbound"]),
                }
            )
        if opp_id is None:
            continue
        amount = float(rng.integers(5, 200) * 1000)
        close_date = qualified + pd.Timedelta(days=int(rng.integers(20, 120)))
        t, stage_i = qualified, 0
        hist.append((opp_id, t, OPEN_STAGES[0], amount, close_date))
        closed_at: Any = pd.NaT
        is_won: bool | None = None
        for _ in range(int(rng.integers(1, 9))):
            t = _when(rng, t, 30)
            r = rng.random()
            if r < 0.15:
                closed_at, is_won = t, bool(rng.random() < 0.5 + 0.1 * stage_i)
                hist.append(
                    (opp_id, t, "closed_won" if is_won else "closed_lost", amount, close_date)
                )
                break
            if r < 0.3 and stage_i > 0:
                stage_i -= 1
            elif r < 0.45:
                close_date = close_date + pd.Timedelta(days=int(rng.integers(1, 40)))
            elif r < 0.55:
                amount *= float(rng.uniform(0.5, 1.3))
            else:
                stage_i = min(stage_i + 1, len(OPEN_STAGES) - 1)
            hist.append((opp_id, t, OPEN_STAGES[stage_i], amount, close_date))
        opps.append(
            {
                "opportunity_id": opp_id,
                "account_id": f"A{acc}",
                "lead_id": lead_id,
                "owner_id": pick(owners),
                "created_at": qualified,
                "product": pick([*CATEGORY_LEVELS["product"], None]),
                "amount": amount,
                "close_date": close_date,
                "closed_at": closed_at,
                "is_won": is_won,
            }
        )
        for _ in range(int(rng.integers(0, 20))):
            acts.append(
                {
                    "occurred_at": _when(rng, qualified, 150),
                    "account_id": f"A{acc}",
                    "lead_id": lead_id if rng.random() < 0.3 else None,
                    "opportunity_id": opp_id,
                    "contact_id": f"C{i}-{rng.integers(4)}",
                    "type": pick(ACTIVITY_TYPES),
                    "direction": pick(["inbound", "outbound"]),
                }
            )
    signals: list[dict[str, Any]] = []
    if post_sale:
        _post_sale(rng, opps, hist, acts, signals)
    activities = pd.DataFrame(
        acts, columns=[c for c in ACTIVITIES.column_names if c != "activity_id"]
    )
    activities.insert(0, "activity_id", [f"X{i}" for i in range(len(activities))])
    history = pd.DataFrame(hist, columns=OPPORTUNITY_HISTORY.column_names)
    lead_changes: list[dict[str, Any]] = []
    opp_changes: list[dict[str, Any]] = []
    if field_history:
        _field_changes(np.random.default_rng([seed, 7]), leads, opps, lead_changes,
                       opp_changes)
    return CRMTables(
        accounts=coerce_dtypes(accounts, ACCOUNTS),
        leads=coerce_dtypes(pd.DataFrame(leads, columns=LEADS.column_names), LEADS),
        opportunities=coerce_dtypes(
            pd.DataFrame(opps, columns=OPPORTUNITIES.column_names), OPPORTUNITIES
        ),
        opportunity_history=coerce_dtypes(history, OPPORTUNITY_HISTORY),
        activities=coerce_dtypes(activities, ACTIVITIES),
        account_signals=coerce_dtypes(
            pd.DataFrame(signals, columns=ACCOUNT_SIGNALS.column_names), ACCOUNT_SIGNALS
        ),
        lead_field_history=coerce_dtypes(
            pd.DataFrame(lead_changes, columns=LEAD_FIELD_HISTORY.column_names),
            LEAD_FIELD_HISTORY,
        ),
        opportunity_field_history=coerce_dtypes(
            pd.DataFrame(opp_changes, columns=OPPORTUNITY_FIELD_HISTORY.column_names),
            OPPORTUNITY_FIELD_HISTORY,
        ),
    )


def text(value: Any) -> str | None:
    """A value as a field history writes it (None: empty)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def _field_changes(
    rng: np.random.Generator,
    leads: list[dict[str, Any]],
    opps: list[dict[str, Any]],
    lead_changes: list[dict[str, Any]],
    opp_changes: list[dict[str, Any]],
) -> None:
    """Changes that end at each record's current value: BANT answers filled in some days
    after creation, head counts and industries corrected, a deal's product chosen late.
    Some land after the other tables end, as edits keep coming."""
    bant = ("budget_confirmed", "is_decision_maker", "need_stated", "timeline_days")
    for lead in leads:
        if rng.random() < 0.6:
            at = _when(rng, lead["created_at"], 60)
            for col in bant:
                if lead[col] is not None:
                    lead_changes.append({"lead_id": lead["lead_id"], "changed_at": at,
                                         "field": col, "old_value": None,
                                         "new_value": text(lead[col])})
        if rng.random() < 0.4:
            at = _when(rng, lead["created_at"], 120)
            lead_changes.append({"lead_id": lead["lead_id"], "changed_at": at,
                                 "field": "employees",
                                 "old_value": text(int(rng.integers(5, 5000))),
                                 "new_value": text(lead["employees"])})
        if rng.random() < 0.3:
            at = _when(rng, lead["created_at"], 30)
            lead_changes.append({"lead_id": lead["lead_id"], "changed_at": at,
                                 "field": "industry", "old_value": None,
                                 "new_value": text(lead["industry"])})
    for deal in opps:
        if deal["lead_id"] is not None and rng.random() < 0.5:
            at = _when(rng, deal["created_at"], 40)
            opp_changes.append({"opportunity_id": deal["opportunity_id"], "changed_at": at,
                                "field": "product",
                                "old_value": _choice(rng, CATEGORY_LEVELS["product"]),
                                "new_value": text(deal["product"])})


def _post_sale(
    rng: np.random.Generator,
    opps: list[dict[str, Any]],
    hist: list[tuple[Any, ...]],
    acts: list[dict[str, Any]],
    signals: list[dict[str, Any]],
) -> None:
    """Renewals, expansions, account activities and signals after every won deal."""
    for deal in list(opps):
        if not deal["is_won"]:
            continue
        won_at, account = deal["closed_at"], deal["account_id"]
        for kind, offset, spread in (("renewal", 320, 80), ("expansion", 30, 300)):
            if rng.random() < 0.3 and kind == "expansion":
                continue
            opp_id = f"{deal['opportunity_id']}-{kind[:3]}"
            created = _when(rng, won_at + pd.Timedelta(days=offset), spread)
            fate = rng.random()
            closed: Any = _when(rng, created, 60) if fate < 0.8 else pd.NaT
            is_won = None if pd.isna(closed) else bool(fate < 0.6)
            opps.append({
                "opportunity_id": opp_id, "account_id": account, "lead_id": None,
                "owner_id": deal["owner_id"], "created_at": created, "product": kind,
                "amount": deal["amount"], "close_date": created + pd.Timedelta(days=45),
                "closed_at": closed, "is_won": is_won,
            })
            hist.append((opp_id, created, "proposal", deal["amount"], created))
            if not pd.isna(closed):
                stage = "closed_won" if is_won else "closed_lost"
                hist.append((opp_id, closed, stage, deal["amount"], created))
        for _ in range(int(rng.integers(0, 15))):
            acts.append({
                "occurred_at": _when(rng, won_at, 500), "account_id": account,
                "lead_id": None, "opportunity_id": None,
                "contact_id": f"K{account}-{rng.integers(3)}", "type": _choice(rng, ACTIVITY_TYPES),
                "direction": _choice(rng, ["inbound", "outbound"]),
            })
        for _ in range(int(rng.integers(0, 30))):
            name = _choice(rng, SIGNALS)
            low, high = SIGNAL_RANGES[name]
            value = float(rng.integers(int(low), int(min(high, 200)) + 1))
            signals.append({
                "signal_id": f"S{len(signals)}", "account_id": account,
                "observed_at": _when(rng, won_at, 500), "signal": name, "value": value,
                "detail": None,
            })
