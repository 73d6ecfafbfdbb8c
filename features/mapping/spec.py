"""The schema of a mapping file: what each key means and what it may hold.

A mapping says, per contract table (``features/schema.py``), which export file its rows
come from and, per contract column, how the value is made from the file's columns. Keys
outside the schema, values of the wrong type and values a map cannot reach (a stage that is
not one of the project's) are errors naming the key and its line.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.schema import (
    ACTIVITY_TYPES,
    DIRECTIONS,
    LEAD_CHANGEABLE,
    OPPORTUNITY_CHANGEABLE,
    STAGES,
    TABLES,
)

LEAD_STATUSES: tuple[str, ...] = ("qualified", "disqualified", "open")
"""What a lead's status maps to: its outcome, or none yet."""

Scalar = str | int | float | bool

KnownAt = Literal["creation", "history", "export"]
"""When a mapped attribute's value is known: ``creation`` (fixed when the record is made),
``history`` (its past values come from a field-history table and are read as of t),
``export`` (only today's value exists: left out of features unless opted in)."""
KNOWN_AT: tuple[str, ...] = ("creation", "history", "export")

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "accounts": ("name", "industry", "employees", "annual_revenue", "country"),
    "leads": LEAD_CHANGEABLE,
    "opportunities": OPPORTUNITY_CHANGEABLE,
}
"""Per contract table, the attributes that say when they are known (ids, creation times,
outcomes and the dated tables' rows are facts with a time of their own)."""
HISTORY_TABLES: dict[str, str] = {
    "leads": "lead_field_history",
    "opportunities": "opportunity_field_history",
}
"""The contract's field-history table of each table whose attributes can be read as of t."""
CHANGED_LATER: dict[str, tuple[str, ...]] = {
    "leads": ("industry", "employees", "budget_confirmed", "is_decision_maker", "need_stated",
              "timeline_days"),
}
"""Attributes CRMs usually fill in or edit after creation (BANT during qualification,
firmographics by enrichment): ``history`` by default where the export has the table's
field history, else ``export``. Every other attribute defaults to ``creation`` (a lead's
source and title as captured, a deal's product as opened, an account's firmographics,
for which the contract keeps no history); a field's own ``known_at`` says otherwise."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lookup(_Strict):
    """Replace a value by a column of another source, matched on a key column."""

    source: str = Field(description="the source (under `sources:`) to look the value up in")
    key: str = Field(description="its column holding the value being looked up")
    value: str = Field(description="its column holding the result")


class Sequence(_Strict):
    """A time made from an order, for exports with none: ``start`` + rank x ``every``."""

    column: str = Field(description="a column that orders the rows (a number), or `row`")
    start: str = Field(description="the time of the first row, ISO 8601")
    every: str = Field(description="the step between two rows, e.g. 1h, 1D")


class FieldMap(_Strict):
    """How one contract column is made. Written as a column name, a list of alternative
    names (an API name and a report label: the first present is used), or these keys."""

    column: tuple[str, ...] = ()
    value: Scalar | None = Field(default=None, description="a constant for every row")
    sequence: Sequence | None = None
    row_id: str | None = Field(
        default=None, description="an id made from the row's position: this text + its number"
    )
    values: dict[str, Scalar] | None = Field(
        default=None, description="export value -> contract value; others are reported"
    )
    default: Scalar | None = Field(
        default=None, description="what a value outside `values` becomes (counted in the report)"
    )
    lookup: Lookup | None = None
    prefix: str | None = Field(
        default=None, description="keep only ids that start with this (Salesforce WhoId: 00Q lead)"
    )
    format: str | None = Field(default=None, description="strptime format of a date, e.g. %m/%d/%Y")
    timezone: str | None = Field(default=None, description="time zone of times without an offset")
    date_only: Literal["start", "end"] = Field(
        default="start", description="a date without a time: the start or the end of that day"
    )
    scale: float | None = Field(default=None, description="multiply numbers by this (e.g. 1e6)")
    currency: bool = Field(
        default=False, description="convert this amount with the currency settings"
    )
    known_at: KnownAt | None = Field(
        default=None, description="when the value is known: creation, history (from the "
        "table's `changes`) or export (today's value only; left out of features unless in "
        "`allow_current_values`); default per attribute (see CHANGED_LATER)",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"column": (data,)}
        if isinstance(data, list):
            return {"column": tuple(data)}
        if isinstance(data, dict) and isinstance(data.get("column"), str):
            return {**data, "column": (data["column"],)}
        return data

    @model_validator(mode="after")
    def _one_origin(self) -> FieldMap:
        origins = [bool(self.column), self.value is not None, self.sequence is not None,
                   self.row_id is not None]
        if sum(origins) != 1:
            raise ValueError("give exactly one of column, value, sequence or row_id")
        return self


class SourceFile(_Strict):
    """One file of the export."""

    file: tuple[str, ...] = Field(description="its name; alternatives in a list")
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    missing: tuple[str, ...] = Field(
        default=(), description="texts that mean 'no value' in this file (besides an empty cell)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"file": (data,)}
        if isinstance(data, list):
            return {"file": tuple(data)}
        if isinstance(data, dict) and isinstance(data.get("file"), str):
            return {**data, "file": (data["file"],)}
        return data


class StageTable(_Strict):
    """A table of the CRM's stages that says which are won and closed (Salesforce's
    OpportunityStage): stages it lists and `stage.values` does not are mapped from it."""

    source: str
    name: tuple[str, ...] = ("ApiName", "MasterLabel")
    is_won: str = "IsWon"
    is_closed: str = "IsClosed"
    probability: str | None = Field(
        default="DefaultProbability",
        description="an open stage goes to the project's stage of the nearest CRM default",
    )


class _SourceColumns(_Strict):
    """A source file and, per role, the column names it may go by (one name or a list)."""

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (v,) if isinstance(v, str) and k != "source" else v
                    for k, v in data.items()}
        return data


class FieldHistory(_SourceColumns):
    """A long field-history table (Salesforce OpportunityFieldHistory, HubSpot property
    history): one row per change of one field of one record."""

    source: str
    id: tuple[str, ...]
    field: tuple[str, ...]
    new_value: tuple[str, ...]
    changed_at: tuple[str, ...]
    old_value: tuple[str, ...] = ()
    stage: tuple[str, ...] = Field(description="names the field takes for the stage")
    amount: tuple[str, ...] = ()
    close_date: tuple[str, ...] = ()


class StatusHistory(_SourceColumns):
    """When a lead's status was set, from a field-history table (Salesforce LeadHistory)."""

    source: str
    id: tuple[str, ...] = ("LeadId",)
    field: tuple[str, ...] = ("Field",)
    field_name: tuple[str, ...] = ("Status", "LeadStatus")
    new_value: tuple[str, ...] = ("NewValue",)
    changed_at: tuple[str, ...] = ("CreatedDate",)


class FieldChanges(_SourceColumns):
    """A record's field history in long form (Salesforce LeadHistory and
    OpportunityFieldHistory, HubSpot property history): one row per change of one field.

    Each change of an attribute whose ``known_at`` is ``history`` becomes a row of the
    contract's field-history table, its old and new values read through the attribute's
    own field map (value maps, scaling). A change is matched to an attribute by the
    history's field name: the attribute's own column names, unless ``names`` says others.
    Without an old-value column, a change's old value is the field's previous new value.
    """

    source: str
    id: tuple[str, ...]
    field: tuple[str, ...] = ("Field", "Field / Event", "property")
    new_value: tuple[str, ...] = ("NewValue", "New Value", "value")
    changed_at: tuple[str, ...] = ("CreatedDate", "Edit Date", "timestamp")
    old_value: tuple[str, ...] = ("OldValue", "Old Value")
    names: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="attribute -> the history's names for its field, "
        "where they are not the attribute's column names",
    )

    @field_validator("names", mode="before")
    @classmethod
    def _name_lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in data.items()}
        return data


class ContactRoles(_SourceColumns):
    """Which deal a contact is on (Salesforce OpportunityContactRole): an activity with a
    contact and no deal is put on the contact's deal when the contact is on only one."""

    source: str
    contact: tuple[str, ...] = ("ContactId",)
    opportunity: tuple[str, ...] = ("OpportunityId",)


class TableMap(_Strict):
    """How one contract table is made from one source file."""

    source: str = Field(description="a name under `sources:`")
    fields: dict[str, FieldMap] = Field(default_factory=dict)
    skip_rows: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="column -> values whose rows are not imported "
        "(counted in the report)"
    )
    # leads
    status: FieldMap | None = Field(
        default=None, description="leads: qualified, disqualified or open"
    )
    status_at: FieldMap | None = Field(default=None, description="leads: when the status was set")
    status_history: StatusHistory | None = None
    undated_outcome_days: float | None = Field(
        default=None, ge=0, description="leads: an outcome with no date is dated this many days "
        "after creation (said in the report)",
    )
    # opportunities
    stage: FieldMap | None = Field(default=None, description="opportunities: the current stage")
    stage_table: StageTable | None = None
    stage_entered: tuple[str, ...] = Field(
        default=(), description="opportunities: columns with the date each stage was entered, "
        "`{stage}` standing for the CRM's stage name (HubSpot hs_date_entered_{stage})",
    )
    created_stage: str = Field(
        default="prospecting", description="opportunities: the stage a deal is in when created, "
        "where the export has no history"
    )
    field_history: FieldHistory | None = None
    # leads and opportunities
    changes: FieldChanges | None = Field(
        default=None, description="leads, opportunities: the records' field history, for "
        "attributes known from history",
    )
    # leads, opportunities and accounts
    allow_current_values: tuple[str, ...] = Field(
        default=(), description="attributes known only as of the export that features may "
        "read anyway (the model card names them as a leak risk)",
    )
    # activities
    contact_roles: ContactRoles | None = None

    @field_validator("allow_current_values", mode="before")
    @classmethod
    def _one_allowed(cls, data: Any) -> Any:
        return (data,) if isinstance(data, str) else data

    @field_validator("skip_rows", mode="before")
    @classmethod
    def _skip_lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in data.items()}
        return data

    @field_validator("stage_entered", mode="before")
    @classmethod
    def _one_pattern(cls, data: Any) -> Any:
        return (data,) if isinstance(data, str) else data

    @field_validator("created_stage")
    @classmethod
    def _open_stage(cls, value: str) -> str:
        if value not in STAGES[:5]:
            raise ValueError(f"{value!r} is not an open stage; use one of {', '.join(STAGES[:5])}")
        return value


class Currency(_Strict):
    """Amounts are in USD in the contract: one currency for the export, or a column and a
    rate table (USD per unit)."""

    code: str = "USD"
    column: tuple[str, ...] = ()
    rates: dict[str, float] = Field(default_factory=dict)

    @field_validator("column", mode="before")
    @classmethod
    def _one(cls, data: Any) -> Any:
        return (data,) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _rate_known(self) -> Currency:
        if not self.column and self.code != "USD" and self.code not in self.rates:
            raise ValueError(f"amounts in {self.code} need rates: {{{self.code}: <USD per unit>}}")
        return self


class OwnFeatureMap(FieldMap):
    """An export column passed into the models as a feature of its own (``features.own``):
    read from the table's own source file, like a contract column."""

    type: Literal["number", "category", "yes_no"] = Field(
        description="a number, a category (its levels learned in training) or a yes/no answer"
    )
    known_at: Literal["creation", "history", "export"] = Field(
        description="creation: fixed when the record is created; export: only its value on "
        "the day of the export exists (left out unless listed in allow_current_values); "
        "history: its past values come from a field-history table"
    )

    @model_validator(mode="after")
    def _readable(self) -> OwnFeatureMap:
        if not self.column:
            raise ValueError("an own feature is read from a column: give `column`")
        return self


_OWN_TABLES = ("leads", "opportunities", "accounts")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


ExportValue = Literal["score", "grade", "probability", "reasons", "trend", "risk_level",
                      "risk_reasons", "model_version", "scored_at"]
"""What write-back can put in a CRM field: a result's score (0-100), grade (A-D),
probability (0-1), reasons (the top reasons for and against, joined into one text),
trend (improving, steady or declining), risk level and risk reasons (deals), the model's
version and the time scored as of."""


class ExportTarget(_Strict):
    """One task's results as one import file of one CRM object, keyed by its record id."""

    object: str = Field(description="the CRM object the file updates, e.g. Lead, contacts")
    file: str = Field(description="the import file's name, e.g. Lead_scores.csv")
    id: str = Field(description="the column for the CRM's record id, e.g. Id, Record ID")
    id_pattern: str = Field(
        default=r".+", description="a regular expression every record id matches: a scored "
        "row whose id does not is not one of the CRM's records (write-back refuses)")
    fields: dict[ExportValue, str] = Field(
        description="result value -> the CRM field (API name or internal property name)")
    text_length: int = Field(
        default=255, ge=20, description="the longest text a text field takes: reasons are "
        "joined whole, as many as fit")

    @field_validator("id_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class ExportSection(_Strict):
    """Write-back: the CRM the files are for and, per task, its target."""

    crm: str = Field(description="the CRM the files are imported into (salesforce, hubspot)")
    tasks: dict[str, ExportTarget] = Field(description="task name -> where its results go")


# What each contract column's value map may reach, where the contract fixes it.
_DOMAINS: dict[tuple[str, str], tuple[str, ...]] = {
    ("opportunity_history", "stage"): STAGES,
    ("activities", "type"): ACTIVITY_TYPES,
    ("activities", "direction"): DIRECTIONS,
}


class Mapping(_Strict):
    """A whole mapping file, after its preset is merged under it."""

    preset: str | None = Field(
        default=None,
        description="a shipped preset (salesforce, hubspot, flat-leads, flat-deals) or another "
                    "mapping file (.yaml, relative to this one) that this file overrides")
    description: str | None = None
    timezone: str = Field(default="UTC", description="time zone of times without an offset")
    currency: Currency = Field(default_factory=Currency)
    sources: dict[str, SourceFile] = Field(default_factory=dict)
    tables: dict[str, dict[str, TableMap]] = Field(
        default_factory=dict, description="per contract table, one map (with `source:`) or "
        "several by name, whose rows are put together (Salesforce Task and Event)"
    )
    export: ExportSection | None = Field(
        default=None, description="write-back: `leadscore score --export` writes results "
        "as the CRM's import files"
    )

    @field_validator("tables", mode="before")
    @classmethod
    def _named_parts(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = [t for t in data if t not in TABLES]
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(unknown)}; use {', '.join(TABLES)}")
        # A map with any of a table map's own keys is one map; otherwise maps by name.
        own = set(TableMap.model_fields)
        return {t: {t: v} if isinstance(v, dict) and own & set(v) else v
                for t, v in data.items() if v is not None}

    features: dict[str, dict[str, OwnFeatureMap]] = Field(
        default_factory=dict, description="per table (leads, opportunities, accounts), the "
        "export's own columns passed into the models, by feature name (one known only at "
        "export is read when its table's allow_current_values lists it)"
    )

    @field_validator("features")
    @classmethod
    def _own_names(cls, data: dict[str, dict[str, OwnFeatureMap]]
                   ) -> dict[str, dict[str, OwnFeatureMap]]:
        unknown = [t for t in data if t not in _OWN_TABLES]
        if unknown:
            raise ValueError(f"own features of {', '.join(unknown)}: use one of "
                             f"{', '.join(_OWN_TABLES)}")
        seen: set[str] = set()
        for table, named in data.items():
            for name in named:
                if not _NAME.match(name):
                    raise ValueError(f"{table}.{name}: a feature name is lower-case letters, "
                                     "digits and _, starting with a letter")
                if name in seen:
                    raise ValueError(f"feature {name!r} is declared twice")
                seen.add(name)
        return data

    def parts(self, table: str) -> list[tuple[str, TableMap]]:
        """The table's maps by name (the table's own name where there is one)."""
        return list(self.tables.get(table, {}).items())


def domain_of(table: str, column: str) -> tuple[str, ...] | None:
    """The values a contract column may take, where the contract fixes them."""
    return _DOMAINS.get((table, column))


def check_references(mapping: Mapping) -> list[tuple[tuple[str, ...], str]]:
    """Problems the schema alone cannot see, each with its key path: unknown sources,
    columns that are not the contract's, and value maps that reach outside a fixed set."""
    problems: list[tuple[tuple[str, ...], str]] = []
    known = set(mapping.sources)

    def source_ok(path: tuple[str, ...], name: str) -> None:
        if name not in known:
            problems.append((path, f"no source {name!r} under `sources:` "
                             f"(there are: {', '.join(sorted(known)) or 'none'})"))

    for table in mapping.tables:
        for name, part in mapping.parts(table):
            base: tuple[str, ...] = ("tables", table, name)
            source_ok((*base, "source"), part.source)
            contract = TABLES[table]
            for col, fm in part.fields.items():
                path = (*base, "fields", col)
                if col not in contract.column_names:
                    problems.append((path, f"{table} has no column {col!r}; its columns: "
                                     f"{', '.join(contract.column_names)}"))
                    continue
                if fm.lookup is not None:
                    source_ok((*path, "lookup", "source"), fm.lookup.source)
                dom = domain_of(table, col)
                if dom is not None:
                    _check_targets(problems, path, fm, dom)
            if part.status is not None:
                _check_targets(problems, (*base, "status"), part.status, LEAD_STATUSES)
            if part.stage is not None:
                _check_targets(problems, (*base, "stage"), part.stage, STAGES)
            for name, sub in (("stage_table", part.stage_table),
                              ("field_history", part.field_history),
                              ("status_history", part.status_history),
                              ("contact_roles", part.contact_roles),
                              ("changes", part.changes)):
                if sub is not None:
                    source_ok((*base, name, "source"), sub.source)
            _check_timing(problems, base, table, part, mapping.features.get(table, {}))
    return problems


def _check_timing(problems: list[tuple[tuple[str, ...], str]], base: tuple[str, ...],
                  table: str, part: TableMap, own: dict[str, OwnFeatureMap]) -> None:
    """``known_at``, ``changes`` and ``allow_current_values`` where the contract has them;
    ``allow_current_values`` also names the table's own features (``features:``) known
    only at export."""
    attributes = ATTRIBUTES.get(table, ())
    for col, fm in part.fields.items():
        if fm.known_at is None or fm.known_at == "creation":
            continue
        path = (*base, "fields", col, "known_at")
        if col not in attributes:
            problems.append((path, f"{table}.{col} takes no known_at: the attributes of "
                             f"{table} are {', '.join(attributes) or 'none'}"))
        elif fm.known_at == "history" and table not in HISTORY_TABLES:
            problems.append((path, f"the contract keeps no field history of {table}: use "
                             "creation or export"))
        elif fm.known_at == "history" and part.changes is None:
            problems.append((path, f"history needs the records' field history: add "
                             f"`changes:` to tables.{table}"))
    if part.changes is not None and table not in HISTORY_TABLES:
        problems.append(((*base, "changes"), f"the contract keeps no field history of {table}"))
    for name, om in own.items():
        if om.known_at != "history":
            continue
        path = ("features", table, name, "known_at")
        if table not in HISTORY_TABLES:
            problems.append((path, f"the contract keeps no field history of {table}: use "
                             "creation or export"))
        elif part.changes is None:
            problems.append((path, f"history needs the records' field history: add "
                             f"`changes:` to tables.{table}"))
    for col in part.allow_current_values:
        if col in own:
            if own[col].known_at != "export":
                problems.append(((*base, "allow_current_values"),
                                 f"{col!r} is known at {own[col].known_at}, not only at "
                                 "export"))
        elif col not in attributes:
            listed = [*attributes, *own]
            problems.append(((*base, "allow_current_values"),
                             f"{col!r} is not an attribute of {table}; its attributes: "
                             f"{', '.join(listed) or 'none'}"))


def _check_targets(problems: list[tuple[tuple[str, ...], str]], path: tuple[str, ...],
                   fm: FieldMap, allowed: tuple[str, ...]) -> None:
    for key, target in (fm.values or {}).items():
        if str(target) not in allowed:
            problems.append(((*path, "values", key),
                             f"{target!r} is not one of {', '.join(allowed)}"))
    if fm.default is not None and str(fm.default) not in allowed:
        problems.append(((*path, "default"),
                         f"{fm.default!r} is not one of {', '.join(allowed)}"))
    if fm.value is not None and str(fm.value) not in allowed:
        problems.append(((*path, "value"), f"{fm.value!r} is not one of {', '.join(allowed)}"))


def plain(column: str) -> FieldMap:
    """A field read from one column as it is."""
    return FieldMap.model_validate({"column": [column]})
