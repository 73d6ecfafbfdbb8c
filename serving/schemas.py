"""Request and response bodies of the /v1 API.

Requests carry the data contract's columns (features/schema.py), named and typed, so a
CRM sends what it already stores. Constraints live here so that every bad value is a 422
naming the field and the reason, before any scoring code runs: finite numbers only,
timestamps pandas can hold, stages and activity types from the contract, bounded sizes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.parsing import FALSE_TOKENS, NULL_TOKENS, TRUE_TOKENS
from features.schema import (
    INTEGER_SIGNALS,
    LEADS,
    OPEN_STAGES,
    OPPORTUNITIES,
    SIGNAL_RANGES,
    Table,
)

ActivityType = Literal[
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
]
Direction = Literal["inbound", "outbound"]
Stage = Literal[
    "prospecting",
    "qualification",
    "meeting_demo",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
    "post_purchase",
]
SignalType = Literal["active_users", "logins", "licensed_seats", "ticket_opened", "nps", "csat"]
LeadField = Literal["source", "title", "seniority", "job_function", "country", "industry",
                    "employees", "budget_confirmed", "is_decision_maker", "need_stated",
                    "timeline_days"]
DealField = Literal["product"]
Grade = Literal["A", "B", "C", "D"]
RiskLevel = Literal["low", "medium", "high"]
Percentile = Annotated[float | None, Field(
    ge=0.0, le=100.0,
    description="share of the model's reference scores (its validation period) below this "
    "one, in percent; null for a model saved without a reference",
)]

MAX_BATCH = 1000
MAX_ROWS_PER_ENTITY = 5000

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
TIMESTAMP_RANGE = (_EARLIEST, _LATEST)
"""Every timestamp of a request is in [start, end) (UTC)."""


_EARLIEST_AS_WRITTEN = _EARLIEST.replace(tzinfo=None)
_LATEST_AS_WRITTEN = _LATEST.replace(tzinfo=None)


def _utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC (the contract's zone); all are kept in range: the
    date as written is from 1970-01-01 to 2199-12-31, what the schema's pattern states (an
    offset may move the UTC time a day either way, which every later step holds). Run for
    every timestamp of a request (~2,000 in 100 leads), so the bounds are built once."""
    if not _EARLIEST_AS_WRITTEN <= value.replace(tzinfo=None) < _LATEST_AS_WRITTEN:
        raise ValueError("timestamp must be between 1970-01-01 and 2200-01-01")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def clean_text(value: str) -> str:
    """Text must be valid Unicode without NUL: a lone surrogate cannot be stored or echoed.
    ASCII text (most ids and categories) is valid Unicode without encoding it."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text is not valid Unicode (lone surrogate)") from None
    if "\x00" in value:
        raise ValueError("text contains a NUL character")
    return value


def _iso_only(value: Any) -> Any:
    """A number is no timestamp: ``0`` would be read as 1970-01-01. Text (ISO 8601) and
    datetimes (a file's parsed column) go on to the datetime check."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("a timestamp is ISO 8601 text, e.g. 2024-09-01T12:00:00Z, not a number")
    return value


TIMESTAMP_PATTERN = r"^(19[7-9][0-9]|20[0-9]{2}|21[0-9]{2})-"
"""The years a timestamp may be written in (1970 to 2199)."""
TEXT_PATTERN = r"^[^\x00]*$"
"""Text has no NUL character. It must be valid Unicode too (no lone surrogate, which JSON
text can only send as a ``\ud800`` escape), a rule no pattern can state portably: a
range of surrogates is refused by regex engines of Unicode scalar values (Rust's, in
jsonschema-rs, which schemathesis validates with), and a pattern a validator cannot
compile is dropped whole, NUL rule included. The text fields' description says it."""
TEXT_RULE = "valid Unicode text without NUL (a lone surrogate escape is a 422)"

Timestamp = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_utc),
                      WithJsonSchema({"type": "string", "format": "date-time",
                                      "pattern": TIMESTAMP_PATTERN,
                                      "description": "ISO 8601, between 1970-01-01 and "
                                      "2200-01-01 as written; without an offset, UTC"})]
Id = Annotated[str, Field(min_length=1, max_length=128,
                          json_schema_extra={"pattern": TEXT_PATTERN, "$comment": TEXT_RULE}),
               AfterValidator(clean_text)]
Text = Annotated[str, Field(max_length=256, json_schema_extra={"pattern": TEXT_PATTERN,
                                                               "$comment": TEXT_RULE}),
                 AfterValidator(clean_text)]


def _not_text(kind: str) -> Any:
    """A JSON body's number or yes/no answer must be one, not text ("250", "true"): the
    API reads JSON as sent. A file's cells are text, so ``leadscore score`` (which
    validates without the ``json`` context) still reads "250" from a CSV."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and (info.context or {}).get("json"):
            raise ValueError(f"Input should be a valid {kind}, not text")
        return value

    return BeforeValidator(check)


Number = Annotated[float, _not_text("number")]
YesNo = Annotated[bool, _not_text("boolean (true or false)")]
Money = Annotated[float, Field(ge=0.0, le=1e12), _not_text("number")]
HeadCount = Annotated[int, Field(ge=0, le=10_000_000), _not_text("integer")]
Days = Annotated[int, Field(ge=0, le=3650), _not_text("integer")]


AttributeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
AttributeValue = Text | float | bool | None
ATTRIBUTES_DESCRIPTION = (
    "the export's own columns, by feature name, for a model trained on an import that "
    "passed them (its mapping's `features:`): a category as text, a number, or true/false. "
    "One the model does not read is named in the warnings; one it reads and is not sent is "
    "not known"
)


def _attributes() -> Any:
    # Every key must match the name pattern (the schema's patternProperties alone would let
    # any other key through with any value).
    return Field(default_factory=dict, max_length=200, description=ATTRIBUTES_DESCRIPTION,
                 json_schema_extra={"additionalProperties": False})


class _Strict(BaseModel):
    """Unknown fields and non-finite numbers are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ActivityIn(_Strict):
    """One engagement activity, as in the contract's `activities` table."""

    activity_id: Id
    occurred_at: Timestamp
    account_id: Id | None = Field(
        default=None, description="defaults to the lead's or deal's account"
    )
    lead_id: Id | None = Field(default=None, description="defaults to the enclosing lead")
    opportunity_id: Id | None = Field(default=None, description="defaults to the enclosing deal")
    contact_id: Id | None = None
    type: ActivityType
    direction: Direction


def _check_value(table: Table, field: str, value: str | None) -> None:
    """A change's value must read as its field's type, as the loader requires."""
    if value is None:
        return
    kind = table.column(field).kind
    text = value.strip().lower()
    if text in NULL_TOKENS or kind in ("string", "category"):
        return
    if kind == "bool" and text not in TRUE_TOKENS + FALSE_TOKENS:
        raise ValueError(f"{field}: expected a yes/no answer, got {value!r}")
    if kind == "int" and not (text.isdigit() and int(text) <= 10_000_000):
        raise ValueError(f"{field}: expected a whole number from 0 to 10000000, got {value!r}")


class _FieldChange(_Strict):
    changed_at: Timestamp
    old_value: Text | None = Field(default=None, description="the value before (null: empty)")
    new_value: Text | None = Field(default=None, description="the value after (null: emptied)")


class LeadFieldChange(_FieldChange):
    """One change of the enclosing lead's attribute, as in `lead_field_history`: features
    read the attribute as of their time (a lead without changes reads its own fields)."""

    field: LeadField

    @model_validator(mode="after")
    def _typed(self) -> LeadFieldChange:
        for value in (self.old_value, self.new_value):
            _check_value(LEADS, self.field, value)
        return self


class DealFieldChange(_FieldChange):
    """One change of the enclosing deal's attribute, as in `opportunity_field_history`."""

    field: DealField

    @model_validator(mode="after")
    def _typed(self) -> DealFieldChange:
        for value in (self.old_value, self.new_value):
            _check_value(OPPORTUNITIES, self.field, value)
        return self


class LeadIn(_Strict):
    """One lead, as in the contract's `leads` table, with its own activities."""

    lead_id: Id
    account_id: Id | None = None
    created_at: Timestamp
    source: Text | None = None
    title: Text | None = None
    seniority: Text | None = None
    job_function: Text | None = None
    country: Text | None = None
    industry: Text | None = None
    employees: HeadCount | None = None
    budget_confirmed: YesNo | None = None
    is_decision_maker: YesNo | None = None
    need_stated: YesNo | None = None
    timeline_days: Days | None = None
    qualified_at: Timestamp | None = None
    disqualified_at: Timestamp | None = None
    opportunity_id: Id | None = None
    attributes: dict[AttributeName, AttributeValue] = _attributes()
    activities: list[ActivityIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)
    field_history: list[LeadFieldChange] = Field(
        default_factory=list, max_length=MAX_ROWS_PER_ENTITY,
        description="changes of its attributes (BANT filled in, firmographics edited), if "
        "the CRM keeps them; none: its fields are its values at every time")


class _HistoryFields(_Strict):
    changed_at: Timestamp
    stage: Stage
    amount: Money | None = None
    close_date: Timestamp | None = None


class HistoryIn(_HistoryFields):
    """One stage/amount/close-date change of the enclosing deal, as in `opportunity_history`."""

    opportunity_id: Id | None = Field(default=None, description="defaults to the enclosing deal")


class HistoryRow(_HistoryFields):
    """One `opportunity_history` row of another deal (context)."""

    opportunity_id: Id


class AccountIn(_Strict):
    """One account, as in the contract's `accounts` table."""

    account_id: Id
    name: Text | None = None
    industry: Text | None = None
    employees: HeadCount | None = None
    annual_revenue: Money | None = None
    country: Text | None = None
    created_at: Timestamp
    attributes: dict[AttributeName, AttributeValue] = _attributes()


class OpportunityIn(_Strict):
    """One deal, as in the contract's `opportunities` table."""

    opportunity_id: Id
    account_id: Id
    lead_id: Id | None = None
    owner_id: Id
    created_at: Timestamp
    product: Text | None = None
    amount: Money | None = None
    close_date: Timestamp | None = None
    closed_at: Timestamp | None = None
    is_won: YesNo | None = None
    attributes: dict[AttributeName, AttributeValue] = _attributes()


class DealIn(OpportunityIn):
    """One open deal with its change history and, optionally, its activities."""

    history: list[HistoryIn] = Field(min_length=1, max_length=MAX_ROWS_PER_ENTITY)
    activities: list[ActivityIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)
    field_history: list[DealFieldChange] = Field(
        default_factory=list, max_length=MAX_ROWS_PER_ENTITY,
        description="changes of its product, if the CRM keeps them")

    @model_validator(mode="after")
    def _must_be_open(self) -> DealIn:
        last = max(self.history, key=lambda h: h.changed_at).stage
        if last not in OPEN_STAGES:
            raise PydanticCustomError(
                "closed_deal",
                "the deal's latest stage is '{last}': only open deals ({stages}) are scored",
                {"last": last, "stages": ", ".join(OPEN_STAGES)},
            )
        return self


class Context(_Strict):
    """Other CRM rows some features look at: the account, its other deals, the owner's deals.

    Features such as the account's earlier wins or the owner's win rate are computed from
    these rows exactly as in training. What is left out is read as not known and named in
    the result's warnings: the account when it is not in ``accounts``, the account's and
    the owner's deals when ``opportunities`` is left out (an empty list says there are
    none), a deal's lead when it is not in ``leads``.
    """

    accounts: list[AccountIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)
    leads: list[LeadIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)
    opportunities: list[OpportunityIn] = Field(
        default_factory=list, max_length=MAX_ROWS_PER_ENTITY
    )
    opportunity_history: list[HistoryRow] = Field(
        default_factory=list, max_length=MAX_ROWS_PER_ENTITY
    )
    activities: list[ActivityIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)


def _signal_ranges(schema: dict[str, Any]) -> None:
    """The value rule of each signal, in the schema: its range (``SIGNAL_RANGES``) and, for
    a count or an answer (``INTEGER_SIGNALS``), whole numbers only."""
    rules = []
    for name, (low, high) in SIGNAL_RANGES.items():
        value: dict[str, Any] = {"minimum": low, "maximum": high}
        if name in INTEGER_SIGNALS:
            value["multipleOf"] = 1
        rules.append({"if": {"properties": {"signal": {"const": name}}, "required": ["signal"]},
                      "then": {"properties": {"value": value}}})
    schema["allOf"] = rules


class SignalIn(_Strict):
    """What customer success watches: product usage, a support ticket, a survey answer."""

    model_config = ConfigDict(json_schema_extra=_signal_ranges)

    signal_id: Id
    observed_at: Timestamp
    account_id: Id | None = Field(default=None, description="defaults to the enclosing account")
    signal: SignalType
    value: Number = Field(allow_inf_nan=False, description="in the signal's range: active_users "
                         "and logins >= 0, ticket_opened severity 1-4, nps 0-10, csat 1-5")
    detail: Text | None = None

    @model_validator(mode="after")
    def _in_range(self) -> SignalIn:
        low, high = SIGNAL_RANGES[self.signal]
        if not low <= self.value <= high:
            raise ValueError(f"value {self.value:g} is outside {self.signal}'s range "
                             f"{low:g} to {high:g}")
        if self.signal in INTEGER_SIGNALS and self.value != int(self.value):
            raise ValueError(f"{self.signal} takes whole numbers, not {self.value:g}")
        return self


class AccountDealIn(_Strict):
    """One of the account's deals: won ones start contract terms, renewals renew them."""

    opportunity_id: Id
    owner_id: Id = Field(default="unknown", description="the rep who owns the deal")
    created_at: Timestamp
    product: Text | None = Field(default=None, description="renewal and expansion deals say so")
    amount: Money | None = None
    close_date: Timestamp | None = None
    closed_at: Timestamp | None = None
    is_won: YesNo | None = None
    history: list[HistoryIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)


class CustomerAccountIn(AccountIn):
    """An account with what its renewal and expansion scores read."""

    deals: list[AccountDealIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)
    activities: list[ActivityIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)
    signals: list[SignalIn] = Field(default_factory=list, max_length=MAX_ROWS_PER_ENTITY)


def batch_rules(entity: str, key: str) -> str:
    """The rules a batch's records are held to beyond their own fields (the schema says
    what the server enforces)."""
    return (f"each {entity} once (a repeated {key} is a 422); none created after the "
            "request's time (a 422, future_timestamp)")


class AccountBatch(_Strict):
    accounts: list[CustomerAccountIn] = Field(
        min_length=1, max_length=MAX_BATCH,
        description=batch_rules("account", "account_id"),
    )
    context: Context | None = Field(
        default=None,
        description="the account owners' other deals (`opportunities`), which their record "
        "reads, and those deals' `activities`, which the renewal score reads as how busy the "
        "owner's deals are; left out, the owner's record is not known and the result says so",
    )


class LeadBatch(_Strict):
    leads: list[LeadIn] = Field(
        min_length=1, max_length=MAX_BATCH,
        description=batch_rules("lead", "lead_id"),
    )
    context: Context | None = None


class DealBatch(_Strict):
    deals: list[DealIn] = Field(
        min_length=1, max_length=MAX_BATCH,
        description=batch_rules("deal", "opportunity_id"),
    )
    context: Context | None = None


class Reason(BaseModel):
    """One thing behind a score (a kind of activity, the close date, the owner's record),
    in words a rep can read."""

    topic: str = Field(description="what the reason is about, e.g. demo, close_date")
    text: str = Field(description="the sentence a rep reads, with the telling values")
    actionable: bool = Field(description="true for what a rep can act on (engagement, "
                             "contacts, next steps, time in stage); false for facts such as "
                             "industry, size or source")
    contribution: float = Field(description="log-odds contribution of the topic's features "
                                "summed (pred_contrib)")
    features: dict[str, float | int | str | bool | None] = Field(
        description="the features behind the reason and their values")


class Reasons(BaseModel):
    up: list[Reason] = Field(description="up to three reasons raising the score, largest first")
    down: list[Reason] = Field(
        description="up to three reasons lowering the score, largest first")


WARNINGS_DESCRIPTION = (
    "what the model read as not known: context the request left out (send it for the "
    "score training would give), values the record lacks, and category values training "
    "never saw, each with its field"
)


TrendDirection = Literal["improving", "steady", "declining"]


class Trend(BaseModel):
    """The score as of 7 and 28 days before the request's time, computed from the same
    request (the features read only what happened before each time)."""

    score_7d_ago: int | None = Field(
        ge=0, le=100, description="the score 7 days earlier; null: not yet created then, or "
        "not scored then (a renewal not yet due, an account not yet a customer)")
    score_28d_ago: int | None = Field(ge=0, le=100, description="the score 28 days earlier")
    probability_7d_ago: float | None = Field(ge=0.0, le=1.0)
    probability_28d_ago: float | None = Field(ge=0.0, le=1.0)
    change: int | None = Field(
        description="score points gained since the earliest of those scores (null: neither)")
    direction: TrendDirection | None = Field(
        description="improving or declining when the change reaches the steady band "
        "(LEADSCORE_TREND_STEADY_POINTS, default 5 points), else steady; null: no earlier score")


TREND_DESCRIPTION = "the score's trend (null when asked with trend=false)"


class WhatIf(BaseModel):
    """One next step from the declared catalogue and the score it would give, from the same
    request with the step's row added, scored again through the same model."""

    action: str = Field(description="the action's name in the catalogue, e.g. book_meeting")
    text: str = Field(description="what the rep reads, e.g. book a meeting")
    probability: float = Field(ge=0.0, le=1.0, description="the probability after the action")
    score: int = Field(ge=0, le=100)
    grade: Grade
    gain: float = Field(description="probability added: after the action minus now")
    add: dict[str, list[dict[str, Any]]] = Field(
        description="the rows that record the action, as the entity's request carries them "
        "(under activities or history): append them and score again for this probability")


WHAT_IF_DESCRIPTION = ("up to three actions that would raise the score, most first (null "
                       "unless asked with what_if=true)")


class ModelRef(BaseModel):
    name: str
    version: str
    feature_set: str


class LeadResult(BaseModel):
    lead_id: str
    probability: float = Field(ge=0.0, le=1.0, description="calibrated P(qualified within H days)")
    score: int = Field(ge=0, le=100)
    grade: Grade = Field(description="A-D, by the score cut-offs learned with the model "
                         "(A: its top 10 % by default); see /v1/models")
    percentile: Percentile
    reasons: Reasons
    trend: Trend | None = Field(None, description=TREND_DESCRIPTION)
    what_if: list[WhatIf] | None = Field(None, description=WHAT_IF_DESCRIPTION)
    model: ModelRef
    warnings: list[str] = Field(default_factory=list, description=WARNINGS_DESCRIPTION)


class RiskFlag(BaseModel):
    flag: Literal[
        "stalled", "no_activity", "close_date_pushed", "amount_cut", "single_threaded",
        "low_probability", "usage_falling", "tickets_rising", "detractor",
        "silent_before_renewal", "one_contact",
    ]
    reason: str
    evidence: dict[str, Any]


class Risk(BaseModel):
    level: RiskLevel
    flags: list[RiskFlag]


class DealResult(BaseModel):
    opportunity_id: str
    stage: str
    probability: float = Field(ge=0.0, le=1.0, description="calibrated P(the deal is won)")
    score: int = Field(ge=0, le=100)
    grade: Grade = Field(description="A-D, by the score cut-offs learned with the model "
                         "(A: its top 10 % by default); see /v1/models")
    percentile: Percentile
    expected_value: float | None = Field(description="amount x probability; null without amount")
    risk: Risk
    reasons: Reasons
    trend: Trend | None = Field(None, description=TREND_DESCRIPTION)
    what_if: list[WhatIf] | None = Field(None, description=WHAT_IF_DESCRIPTION)
    model: ModelRef
    warnings: list[str] = Field(default_factory=list, description=WARNINGS_DESCRIPTION)


class RenewalResult(BaseModel):
    probability: float = Field(ge=0.0, le=1.0, description="calibrated P(the next renewal is won)")
    score: int = Field(ge=0, le=100)
    grade: Grade = Field(description="A-D, by the score cut-offs learned with the model "
                         "(A: its top 10 % by default); see /v1/models")
    percentile: Percentile
    days_to_renewal: float = Field(description="days until the renewing contract is due")
    reasons: Reasons
    risk: Risk
    trend: Trend | None = Field(None, description=TREND_DESCRIPTION)
    what_if: list[WhatIf] | None = Field(None, description=WHAT_IF_DESCRIPTION)
    model: ModelRef


class ExpansionResult(BaseModel):
    probability: float = Field(ge=0.0, le=1.0,
                               description="calibrated P(an expansion deal within H days)")
    score: int = Field(ge=0, le=100)
    grade: Grade = Field(description="A-D, by the score cut-offs learned with the model "
                         "(A: its top 10 % by default); see /v1/models")
    percentile: Percentile
    reasons: Reasons
    trend: Trend | None = Field(None, description=TREND_DESCRIPTION)
    what_if: list[WhatIf] | None = Field(None, description=WHAT_IF_DESCRIPTION)
    model: ModelRef


class AccountResult(BaseModel):
    account_id: str
    renewal: RenewalResult | None = Field(
        description="null unless a contract of the account is due within the renewal window"
    )
    expansion: ExpansionResult | None = Field(
        description="null unless the account is a customer (a contract running)"
    )
    warnings: list[str] = Field(default_factory=list)


class AccountScores(BaseModel):
    results: list[AccountResult]


class LeadScores(BaseModel):
    results: list[LeadResult]


class DealScores(BaseModel):
    results: list[DealResult]


class GradingDescription(BaseModel):
    cutoffs: dict[Literal["A", "B", "C"], int] = Field(
        description="minimum score of grades A, B and C; lower scores are D"
    )
    learned: bool = Field(description="learned from the model's validation scores; false: "
                          "a model saved without them, graded with fixed cut-offs")
    description: str


class AttributeDescription(BaseModel):
    """One of the export's own columns a model reads, sent in a record's ``attributes``."""

    name: str
    kind: Literal["number", "category", "yes_no"]
    column: str = Field(description="the export's column it was trained from")
    levels: list[str] = Field(
        default_factory=list, description="a category's values seen in training, the most "
        "frequent first (any other is read as not known)")
    leak_risk: bool = Field(
        default=False, description="trained on the export's current value only "
        "(allow_current_values)")


class ModelDescription(BaseModel):
    task: str
    name: str
    version: str
    alias: str | None
    run_id: str | None
    feature_set: str
    trained_period: dict[str, Any] | None
    test_metrics: dict[str, float]
    grading: GradingDescription
    excluded_features: dict[str, str] = Field(
        default_factory=dict,
        description="features of its set the model was fit without, each with the leakage "
        "audit's reason: read from a request and ignored",
    )
    attributes: list[AttributeDescription] = Field(
        default_factory=list,
        description="the export's own columns the model reads: what a record sends under "
        "`attributes`",
    )
    loaded_at: datetime


class WithheldTask(BaseModel):
    """A task served by no model on purpose: no version passed the promotion gate."""

    task: str
    reason: str = Field(description="which comparison the best version lost, with its figures")


class ModelList(BaseModel):
    models: list[ModelDescription]
    withheld: list[WithheldTask] = Field(
        default_factory=list,
        description="tasks no version serves because none beat the CRM's own rate or the "
        "other baselines on its test period",
    )


class ErrorItem(BaseModel):
    field: str = Field(description="dotted path to the offending field, e.g. leads.0.created_at")
    reason: str
    type: str


class ErrorBody(BaseModel):
    error: str
    detail: str | list[ErrorItem]
    request_id: str | None = None


DriftStatus = Literal["ok", "warn", "alert"]


class ColumnDriftOut(BaseModel):
    name: str = Field(description="the feature's name, or \"score\" for the 0-100 score")
    psi: float | None = Field(description="population stability index against the model's "
                              "reference profile (null: not computable)")
    status: DriftStatus
    trending: bool = Field(False, description="the feature moved as much between the "
                           "model's training and test periods (an age), or counts over all "
                           "history (an owner's closed deals): its status stops at warn")
    expected_psi: float = Field(0.0, ge=0.0, description="the PSI sampling alone gives at "
                                "this window's and the reference's numbers of entities, "
                                "with no drift: warn and alert are read above it")


class TaskMonitoring(BaseModel):
    task: str
    version: str | None = Field(description="the model version the window was scored by")
    window_rows: int = Field(ge=0, description="rows in the window (the newest scored)")
    seen_rows: int = Field(ge=0, description="rows scored by this version since it loaded")
    status: Literal["ok", "warn", "alert", "too few rows", "no reference profile", "no model"]
    score: ColumnDriftOut | None = None
    features: list[ColumnDriftOut] = Field(
        default_factory=list, description="PSI per feature, the worst first")


class MonitoringReport(BaseModel):
    """What the server scored lately against each model's reference profile."""

    warn_psi: float
    alert_psi: float
    min_rows: int = Field(description="fewest rows in a window for a PSI to be given")
    tasks: list[TaskMonitoring]
