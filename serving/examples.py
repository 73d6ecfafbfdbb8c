"""Working request examples for every scoring route, in ``/openapi.json`` and so in ``/docs``.

Each example is a body a CRM would send: a lead with its activities and its account; a deal
with its stage history, activities and context (its account, its lead, the owner's other
deals); a customer account with its deals, activities and signals. Dates are relative to
the day the schema is asked for, so an example never goes stale (an example dated once
would, after ``stale_data_days``, answer with the stale-data warning forever).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from features.tasks import TASKS
from serving.body import with_body_schemas
from serving.endpoints import Endpoint
from serving.schemas import AccountBatch, DealBatch, LeadBatch

Example = dict[str, Any]
"""An OpenAPI Example Object: ``summary``, ``description`` and ``value``."""


class _Clock:
    """ISO timestamps a whole number of days (and some hours) before ``now``'s day."""

    def __init__(self, now: datetime) -> None:
        self.day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def ago(self, days: int, hour: int = 10) -> str:
        """``days`` >= 1 before today at ``hour``: always in the past."""
        return (self.day - timedelta(days=days, hours=-hour)).isoformat()

    def ahead(self, days: int) -> str:
        return (self.day + timedelta(days=days)).isoformat()


def _activity(ident: str, when: str, kind: str, direction: str, contact: str) -> dict[str, Any]:
    return {"activity_id": ident, "occurred_at": when, "contact_id": contact, "type": kind,
            "direction": direction}


def minimal_lead(now: datetime) -> dict[str, Any]:
    """The smallest useful lead body: one lead, one activity, no context (its warnings say
    what the account would have told)."""
    t = _Clock(now)
    return {"leads": [{
        "lead_id": "L-1", "account_id": "A-1", "created_at": t.ago(3), "source": "referral",
        "seniority": "vp", "job_function": "sales",
        "activities": [_activity("ACT-1", t.ago(1, 15), "demo", "outbound", "C-1")],
    }]}


def lead_examples(now: datetime) -> dict[str, Example]:
    t = _Clock(now)
    lead = {
        "lead_id": "L-1001", "account_id": "A-1001", "created_at": t.ago(12, 9),
        "source": "webinar", "title": "VP of Sales", "seniority": "vp", "job_function": "sales",
        "country": "US", "industry": "software", "employees": 420, "budget_confirmed": True,
        "is_decision_maker": True, "need_stated": True, "timeline_days": 90,
        "activities": [
            _activity("ACT-1001", t.ago(12, 9), "webinar_attended", "inbound", "C-1001"),
            _activity("ACT-1002", t.ago(10, 14), "email_opened", "inbound", "C-1001"),
            _activity("ACT-1003", t.ago(6, 16), "pricing_page_visit", "inbound", "C-1001"),
            _activity("ACT-1004", t.ago(3, 11), "content_download", "inbound", "C-1002"),
            _activity("ACT-1005", t.ago(1, 15), "call", "outbound", "C-1001"),
        ],
    }
    account = {"account_id": "A-1001", "name": "Northwind Analytics", "industry": "software",
               "employees": 420, "annual_revenue": 68_000_000, "country": "US",
               "created_at": t.ago(200)}
    return {
        "lead_with_activities": {
            "summary": "A lead with its activities and its account",
            "description": "A webinar lead who has since visited the pricing page and taken "
            "a call; `context` sends the account and says it has no other deals "
            "(`opportunities: []`), so nothing is read as not known.",
            "value": {"leads": [lead], "context": {"accounts": [account], "opportunities": []}},
        },
        "minimal_lead": {
            "summary": "The smallest lead: no context",
            "description": "What is left out (the account) is read as not known and named in "
            "the result's `warnings`, with where to send it.",
            "value": minimal_lead(now),
        },
    }


def deal_examples(now: datetime) -> dict[str, Example]:
    t = _Clock(now)
    close = t.ahead(25)
    stages = (("prospecting", 45), ("qualification", 38), ("meeting_demo", 27), ("proposal", 9))
    deal = {
        "opportunity_id": "O-2001", "account_id": "A-2001", "lead_id": "L-2001",
        "owner_id": "U-7", "created_at": t.ago(45), "product": "professional",
        "amount": 28_000.0, "close_date": close,
        "history": [{"changed_at": t.ago(days), "stage": stage, "amount": 28_000.0,
                     "close_date": close} for stage, days in stages],
        "activities": [
            _activity("ACT-2001", t.ago(30, 15), "meeting", "outbound", "C-2001"),
            _activity("ACT-2002", t.ago(26, 11), "demo", "outbound", "C-2001"),
            _activity("ACT-2003", t.ago(15, 9), "email_replied", "inbound", "C-2002"),
            _activity("ACT-2004", t.ago(8, 16), "call", "outbound", "C-2001"),
            _activity("ACT-2005", t.ago(3, 14), "meeting", "outbound", "C-2003"),
        ],
    }
    context = {
        "accounts": [{"account_id": "A-2001", "name": "Contoso Freight", "industry": "logistics",
                      "employees": 900, "annual_revenue": 150_000_000, "country": "DE",
                      "created_at": t.ago(400)}],
        "leads": [{"lead_id": "L-2001", "account_id": "A-2001", "created_at": t.ago(60),
                   "source": "referral", "seniority": "director", "job_function": "operations",
                   "country": "DE", "industry": "logistics", "employees": 900,
                   "qualified_at": t.ago(46), "opportunity_id": "O-2001"}],
        "opportunities": [
            {"opportunity_id": "O-1901", "account_id": "A-1950", "owner_id": "U-7",
             "created_at": t.ago(200), "product": "starter", "amount": 9_000.0,
             "closed_at": t.ago(150), "is_won": True},
            {"opportunity_id": "O-1902", "account_id": "A-1960", "owner_id": "U-7",
             "created_at": t.ago(160), "product": "professional", "amount": 30_000.0,
             "closed_at": t.ago(100), "is_won": False},
        ],
        "opportunity_history": [
            {"opportunity_id": "O-1901", "changed_at": t.ago(200), "stage": "prospecting"},
            {"opportunity_id": "O-1901", "changed_at": t.ago(150), "stage": "closed_won"},
            {"opportunity_id": "O-1902", "changed_at": t.ago(160), "stage": "prospecting"},
            {"opportunity_id": "O-1902", "changed_at": t.ago(100), "stage": "closed_lost"},
        ],
    }
    return {"deal_with_history_and_context": {
        "summary": "An open deal with its history, activities and context",
        "description": "A deal at proposal with four contacts' worth of meetings, a demo and "
        "calls; `context` sends its account, the lead it came from and the owner's other "
        "deals (their record), so nothing is read as not known.",
        "value": {"deals": [deal], "context": context},
    }}


def account_examples(now: datetime) -> dict[str, Example]:
    t = _Clock(now)
    account = {
        "account_id": "A-3001", "name": "Fabrikam Health", "industry": "healthcare",
        "employees": 250, "country": "GB", "created_at": t.ago(700),
        "deals": [{
            "opportunity_id": "O-3001", "owner_id": "U-4", "created_at": t.ago(340),
            "product": "professional", "amount": 24_000.0, "closed_at": t.ago(300),
            "is_won": True,
            "history": [{"changed_at": t.ago(340), "stage": "prospecting", "amount": 24_000.0},
                        {"changed_at": t.ago(300), "stage": "closed_won", "amount": 24_000.0}],
        }],
        "activities": [
            _activity("ACT-3001", t.ago(20, 15), "meeting", "outbound", "C-3001"),
            _activity("ACT-3002", t.ago(5, 9), "email_replied", "inbound", "C-3002"),
        ],
        "signals": [
            {"signal_id": "S-3001", "observed_at": t.ago(30), "signal": "licensed_seats",
             "value": 50},
            {"signal_id": "S-3002", "observed_at": t.ago(40), "signal": "nps", "value": 8},
            {"signal_id": "S-3003", "observed_at": t.ago(14), "signal": "active_users",
             "value": 41},
            {"signal_id": "S-3004", "observed_at": t.ago(12), "signal": "ticket_opened",
             "value": 2, "detail": "SSO login fails for some users"},
            {"signal_id": "S-3005", "observed_at": t.ago(7), "signal": "active_users",
             "value": 38},
            {"signal_id": "S-3006", "observed_at": t.ago(7), "signal": "logins", "value": 520},
        ],
    }
    owner_deals = [{"opportunity_id": "O-2950", "account_id": "A-2950", "owner_id": "U-4",
                    "created_at": t.ago(420), "product": "renewal", "amount": 18_000.0,
                    "closed_at": t.ago(380), "is_won": True}]
    return {"customer_with_deals_and_signals": {
        "summary": "A customer account with its deals, activities and signals",
        "description": "A customer whose contract (won 300 days ago) renews within 120 days: "
        "the answer holds its renewal score with churn-risk flags and its expansion score; "
        "`context.opportunities` sends the owner's other deals (their record).",
        "value": {"accounts": [account], "context": {"opportunities": owner_deals}},
    }}


EXAMPLES: dict[type[BaseModel], Callable[[datetime], dict[str, Example]]] = {
    LeadBatch: lead_examples,
    DealBatch: deal_examples,
    AccountBatch: account_examples,
}
"""Per request body, its examples as of a time."""


def route_examples(now: datetime) -> dict[str, dict[str, Example]]:
    """Per scoring route (``/v1/leads/score``...), its examples dated relative to ``now``."""
    out: dict[str, dict[str, Example]] = {}
    for spec in TASKS.values():
        endpoint: Endpoint = spec.endpoint.load()
        build = EXAMPLES.get(endpoint.batch)
        if build is not None and spec.route not in out:
            out[spec.route] = build(now)
    return out


def install_examples(app: FastAPI, clock: Callable[[], datetime] | None = None) -> None:
    """Serve the scoring routes' examples in ``app.openapi()`` (``/openapi.json``, ``/docs``),
    dated relative to the day the schema is asked for; rebuilt once a day."""
    clock = clock or (lambda: datetime.now(UTC))
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        # Built once (FastAPI keeps it on app.openapi_schema), with the body schemas of the
        # scoring routes, which read their bodies themselves (serving.body).
        from serving.routes import BODY_MODELS

        base = with_body_schemas(FastAPI.openapi(app), BODY_MODELS)
        now = clock()
        day = now.astimezone(UTC).date().isoformat()
        if cached.get("day") != day:
            schema = copy.deepcopy(base)
            for path, examples in route_examples(now).items():
                operation = schema["paths"].get(path, {}).get("post")
                if operation is not None:
                    body = operation["requestBody"]["content"]["application/json"]
                    body["examples"] = examples
            cached.update(day=day, schema=schema)
        schema_today: dict[str, Any] = cached["schema"]
        return schema_today

    app.openapi = openapi  # type: ignore[method-assign]
