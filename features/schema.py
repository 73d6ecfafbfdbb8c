"""The CRM data contract: five tables and three optional ones, declared once.

Every loader, generator and feature function reads these declarations instead of
repeating column names. Timestamps are UTC (``datetime64[ns, UTC]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from features.own import OwnFeatures

# Open pipeline stages, in order, then the terminal ones.
OPEN_STAGES: tuple[str, ...] = (
    "prospecting",
    "qualification",
    "meeting_demo",
    "proposal",
    "negotiation",
)
TERMINAL_STAGES: tuple[str, ...] = ("closed_won", "closed_lost")
POST_PURCHASE = "post_purchase"
STAGES: tuple[str, ...] = OPEN_STAGES + TERMINAL_STAGES + (POST_PURCHASE,)

# What most CRMs apply by default as the probability of each open stage.
CRM_DEFAULT_STAGE_PROBABILITY: dict[str, float] = {
    "prospecting": 0.10,
    "qualification": 0.20,
    "meeting_demo": 0.40,
    "proposal": 0.60,
    "negotiation": 0.80,
}

ACTIVITY_TYPES: tuple[str, ...] = (
    "email_sent",
    "email_opened",
    "email_clicked",
    "email_replied",
    "web_visit",
    "pricing_page_visit",
    "content_download",
    "form_submitted",
    "webinar_attended",
    "call",
    "meeting",
    "demo",
)
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound")

# What customer success watches after a sale: each signal's lowest and highest value,
# both allowed.
SIGNAL_RANGES: dict[str, tuple[float, float]] = {
    "active_users": (0.0, 1e7),  # product usage: active users in the week
    "logins": (0.0, 1e9),  # logins in the week
    "licensed_seats": (0.0, 1e7),  # seats the account's contracts license (billing, monthly)
    "ticket_opened": (1.0, 4.0),  # a support ticket opened; value = severity, 1 low to 4 urgent
    "nps": (0.0, 10.0),  # a survey answer
    "csat": (1.0, 5.0),  # a satisfaction answer
}
# Signals whose value is a grade or a score: whole numbers only.
INTEGER_SIGNALS: frozenset[str] = frozenset({"licensed_seats", "ticket_opened", "nps", "csat"})
SIGNALS: tuple[str, ...] = tuple(SIGNAL_RANGES)

Kind = Literal["string", "int", "float", "bool", "timestamp", "category"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = True
    allowed: tuple[str, ...] | None = None  # for category columns
    description: str = ""


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str | None
    time_column: str
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    # A folder may leave an optional table out: it then loads as an empty table.
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


ACCOUNTS = Table(
    name="accounts",
    key="account_id",
    time_column="created_at",
    columns=(
        Column("account_id", "string", nullable=False, description="account identifier"),
        Column("name", "string", description="company name"),
        Column("industry", "string", description="industry (blank where unknown)"),
        Column("employees", "int", description="head count"),
        Column("annual_revenue", "float", description="annual revenue in USD"),
        Column("country", "string", description="ISO country code"),
        Column("created_at", "timestamp", nullable=False,
               description="when the account was created"),
    ),
)

LEADS = Table(
    name="leads",
    key="lead_id",
    time_column="created_at",
    foreign_keys=(
        ForeignKey("account_id", "accounts", "account_id"),
        ForeignKey("opportunity_id", "opportunities", "opportunity_id"),
    ),
    columns=(
        Column("lead_id", "string", nullable=False),
        Column("account_id", "string"),
        Column("created_at", "timestamp", nullable=False),
        Column("source", "string", description="where the lead came from"),
        Column("title", "string", description="job title as typed"),
        Column("seniority", "string",
               description="c_level, vp, director, manager, individual, unknown"),
        Column("job_function", "string"),
        Column("country", "string"),
        Column("industry", "string"),
        Column("employees", "int"),
        Column("budget_confirmed", "bool", description="BANT budget, blank where not asked"),
        Column("is_decision_maker", "bool", description="BANT authority"),
        Column("need_stated", "bool", description="BANT need"),
        Column("timeline_days", "int", description="BANT timeline: days until purchase"),
        Column("qualified_at", "timestamp", description="outcome: when the lead was qualified"),
        Column("disqualified_at", "timestamp", description="outcome: when it was disqualified"),
        Column("opportunity_id", "string", description="the deal it became, if any"),
    ),
)

OPPORTUNITIES = Table(
    name="opportunities",
    key="opportunity_id",
    time_column="created_at",
    foreign_keys=(
        ForeignKey("account_id", "accounts", "account_id"),
        ForeignKey("lead_id", "leads", "lead_id"),
    ),
    columns=(
        Column("opportunity_id", "string", nullable=False),
        Column("account_id", "string", nullable=False),
        Column("lead_id", "string"),
        Column("owner_id", "string", nullable=False, description="the rep who owns the deal"),
        Column("created_at", "timestamp", nullable=False),
        Column("product", "string"),
        Column("amount", "float", description="current amount in USD"),
        Column("close_date", "timestamp", description="current expected close date"),
        Column("closed_at", "timestamp", description="outcome: when the deal closed"),
        Column("is_won", "bool", description="outcome: won (true) or lost (false)"),
    ),
)

OPPORTUNITY_HISTORY = Table(
    name="opportunity_history",
    key=None,
    time_column="changed_at",
    foreign_keys=(ForeignKey("opportunity_id", "opportunities", "opportunity_id"),),
    columns=(
        Column("opportunity_id", "string", nullable=False),
        Column("changed_at", "timestamp", nullable=False),
        Column("stage", "category", nullable=False, allowed=STAGES),
        Column("amount", "float"),
        Column("close_date", "timestamp"),
    ),
)

ACTIVITIES = Table(
    name="activities",
    key="activity_id",
    time_column="occurred_at",
    foreign_keys=(
        ForeignKey("account_id", "accounts", "account_id"),
        ForeignKey("lead_id", "leads", "lead_id"),
        ForeignKey("opportunity_id", "opportunities", "opportunity_id"),
    ),
    columns=(
        Column("activity_id", "string", nullable=False),
        Column("occurred_at", "timestamp", nullable=False),
        Column("account_id", "string", nullable=False),
        Column("lead_id", "string"),
        Column("opportunity_id", "string"),
        Column("contact_id", "string"),
        Column("type", "category", nullable=False, allowed=ACTIVITY_TYPES),
        Column("direction", "category", nullable=False, allowed=DIRECTIONS),
    ),
)

ACCOUNT_SIGNALS = Table(
    name="account_signals",
    key="signal_id",
    time_column="observed_at",
    optional=True,
    foreign_keys=(ForeignKey("account_id", "accounts", "account_id"),),
    columns=(
        Column("signal_id", "string", nullable=False),
        Column("account_id", "string", nullable=False),
        Column("observed_at", "timestamp", nullable=False,
               description="when the signal was observed"),
        Column("signal", "category", nullable=False, allowed=SIGNALS),
        Column("value", "float", nullable=False,
               description="within the signal's range in SIGNAL_RANGES"),
        Column("detail", "string", description="free text: the ticket's subject, a comment"),
    ),
)

# The attributes a CRM lets users change after creation, per entity. Their past values
# come from the field-history tables below; features read them as of t, never from the
# latest row (a BANT answer filled in during qualification must not be seen before).
# A deal's stage, amount and close date are kept apart, in opportunity_history.
LEAD_CHANGEABLE: tuple[str, ...] = (
    "source",
    "title",
    "seniority",
    "job_function",
    "country",
    "industry",
    "employees",
    "budget_confirmed",
    "is_decision_maker",
    "need_stated",
    "timeline_days",
)
OPPORTUNITY_CHANGEABLE: tuple[str, ...] = ("product",)


def _field_history(name: str, entity: Table, fields: tuple[str, ...]) -> Table:
    """A field-history table of ``entity``: one row per change of one attribute, as
    Salesforce (LeadHistory, OpportunityFieldHistory) and HubSpot (property history) keep
    it. Values are text, read by the changed attribute's own contract type."""
    key = entity.key
    assert key is not None
    return Table(
        name=name,
        key=None,
        time_column="changed_at",
        optional=True,
        foreign_keys=(ForeignKey(key, entity.name, key),),
        columns=(
            Column(key, "string", nullable=False),
            Column("changed_at", "timestamp", nullable=False,
                   description="when the change was saved"),
            Column("field", "category", nullable=False, allowed=fields,
                   description="the attribute that changed"),
            Column("old_value", "string", description="its value before (blank: empty)"),
            Column("new_value", "string", description="its value after (blank: emptied)"),
        ),
    )


LEAD_FIELD_HISTORY = _field_history("lead_field_history", LEADS, LEAD_CHANGEABLE)
OPPORTUNITY_FIELD_HISTORY = _field_history(
    "opportunity_field_history", OPPORTUNITIES, OPPORTUNITY_CHANGEABLE
)

FIELD_HISTORIES: dict[str, Table] = {
    LEAD_FIELD_HISTORY.name: LEADS,
    OPPORTUNITY_FIELD_HISTORY.name: OPPORTUNITIES,
}
"""Each field-history table and the entity table whose attributes it records."""

# The order the rejection report and the summary list tables in.
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        ACCOUNTS,
        LEADS,
        OPPORTUNITIES,
        OPPORTUNITY_HISTORY,
        ACTIVITIES,
        ACCOUNT_SIGNALS,
        LEAD_FIELD_HISTORY,
        OPPORTUNITY_FIELD_HISTORY,
    )
}

PANDAS_DTYPES: dict[str, str] = {
    "string": "string",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "timestamp": "datetime64[ns, UTC]",
    "category": "string",
}


@dataclass(frozen=True)
class CRMTables:
    """The tables of one CRM, as validated DataFrames (an optional one left out is empty)."""

    accounts: pd.DataFrame
    leads: pd.DataFrame
    opportunities: pd.DataFrame
    opportunity_history: pd.DataFrame
    activities: pd.DataFrame
    account_signals: pd.DataFrame = field(default_factory=lambda: empty_frame(ACCOUNT_SIGNALS))
    lead_field_history: pd.DataFrame = field(
        default_factory=lambda: empty_frame(LEAD_FIELD_HISTORY)
    )
    opportunity_field_history: pd.DataFrame = field(
        default_factory=lambda: empty_frame(OPPORTUNITY_FIELD_HISTORY)
    )
    own: OwnFeatures | None = None
    """The export's own columns beside the tables (``features.own``), if any."""

    def get(self, name: str) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(self, name)
        return frame


def empty_frame(table: Table) -> pd.DataFrame:
    """An empty DataFrame with the table's columns and dtypes."""
    return pd.DataFrame(
        {c.name: pd.Series([], dtype=PANDAS_DTYPES[c.kind]) for c in table.columns}
    )


def coerce_dtypes(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Cast already-clean columns to the contract's dtypes (no validation here)."""
    out = {}
    for c in table.columns:
        s = frame[c.name]
        if c.kind == "timestamp":
            out[c.name] = pd.to_datetime(s, utc=True).astype("datetime64[ns, UTC]")
        else:
            out[c.name] = s.astype(PANDAS_DTYPES[c.kind])
    return pd.DataFrame(out, index=frame.index)
