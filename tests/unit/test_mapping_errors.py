"""A mapping that cannot be used says so with the key and the line of every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.mapping.document import MappingError, merge, parse_document
from features.mapping.load import PRESETS, load_mapping, mapping_from_document, preset_document


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    return [p.replace(str(path), "mapping.yaml") for p in info.value.problems]


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    text = """preset: flat-leads
tables:
  leads:
    source: leads
    feilds:
      lead_id: Id
"""
    assert _problems(tmp_path, text) == ["mapping.yaml:5: tables.leads.feilds: unknown key"]


def test_unknown_key_inside_a_field(tmp_path: Path) -> None:
    text = """preset: flat-deals
tables:
  opportunities:
    source: deals
    fields:
      amount:
        column: Amount
        multiply: 100
"""
    assert _problems(tmp_path, text) == [
        "mapping.yaml:8: tables.opportunities.fields.amount.multiply: unknown key"]


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    text = """preset: flat-leads
tables:
  leads:
    source: leads
    undated_outcome_days: soon
"""
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith("mapping.yaml:5: tables.leads.undated_outcome_days: ")
    assert "number" in problem


def test_missing_required_key(tmp_path: Path) -> None:
    text = """sources:
  deals: deals.csv
tables:
  opportunities:
    fields:
      opportunity_id: Id
"""
    assert _problems(tmp_path, text) == [
        "mapping.yaml:4: tables.opportunities.source: required key missing"]


def test_missing_required_key_of_a_sequence(tmp_path: Path) -> None:
    text = """preset: flat-leads
tables:
  leads:
    source: leads
    fields:
      created_at:
        sequence: {column: Lead Number, start: "2020-01-01"}
"""
    assert _problems(tmp_path, text) == [
        "mapping.yaml:7: tables.leads.fields.created_at.sequence.every: required key missing"]


def test_unknown_preset(tmp_path: Path) -> None:
    text = "description: mine\npreset: dynamics\n"
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith("mapping.yaml:2: preset: unknown preset 'dynamics'; use one of ")
    assert all(p in problem for p in PRESETS)


def test_bad_value_map_names_the_entry(tmp_path: Path) -> None:
    text = """preset: flat-deals
tables:
  opportunities:
    source: deals
    stage:
      column: Stage
      values:
        Won: closed_won
        Dead: lost
"""
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith("mapping.yaml:9: tables.opportunities.stage.values.Dead: 'lost' "
                              "is not one of prospecting")


def test_bad_activity_type_and_default(tmp_path: Path) -> None:
    text = """preset: hubspot
tables:
  activities:
    source: engagements
    fields:
      type:
        column: hs_engagement_type
        values: {EMAIL: email}
        default: chat
"""
    problems = _problems(tmp_path, text)
    assert [p.split(": ")[0] + ": " + p.split(": ")[1] for p in problems] == [
        "mapping.yaml:8: tables.activities.fields.type.values.EMAIL",
        "mapping.yaml:9: tables.activities.fields.type.default",
    ]


def test_unknown_table_column_and_source(tmp_path: Path) -> None:
    text = """preset: flat-leads
tables:
  leads:
    source: lead_file
    fields:
      lead_score: Score
"""
    assert _problems(tmp_path, text) == [
        "mapping.yaml:4: tables.leads.source: no source 'lead_file' under `sources:` "
        "(there are: leads)",
        "mapping.yaml:6: tables.leads.fields.lead_score: leads has no column 'lead_score'; "
        "its columns: lead_id, account_id, created_at, source, title, seniority, "
        "job_function, country, industry, employees, budget_confirmed, is_decision_maker, "
        "need_stated, timeline_days, qualified_at, disqualified_at, opportunity_id",
    ]


def test_unknown_table(tmp_path: Path) -> None:
    text = "sources:\n  x: x.csv\ntables:\n  contacts:\n    source: x\n"
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith("mapping.yaml:3: tables: unknown table(s) contacts; use accounts")


def test_field_with_two_origins(tmp_path: Path) -> None:
    text = """preset: flat-leads
tables:
  leads:
    source: leads
    fields:
      source: {column: Origin, value: web}
"""
    assert _problems(tmp_path, text) == [
        "mapping.yaml:6: tables.leads.fields.source: give exactly one of column, value, "
        "sequence or row_id"]


def test_yaml_syntax_error_and_repeated_key(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "preset: flat-leads\ntables: [\n")
    assert problem.startswith("mapping.yaml:3: not valid YAML")
    (problem,) = _problems(tmp_path, "preset: flat-leads\ntimezone: UTC\ntimezone: CET\n")
    assert problem == "mapping.yaml:3: timezone: written twice"


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = """preset: flat-leads
colour: blue
tables:
  leads:
    source: leads
    undated_outcome_days: -1
"""
    problems = _problems(tmp_path, text)
    assert [p.split(":")[1] for p in problems] == ["2", "6"]


def test_the_preset_s_own_lines_are_named_for_a_problem_in_the_preset() -> None:
    base = parse_document("tables:\n  leads:\n    source: leads\n    bogus: 1\n", "preset x")
    doc = merge(base, parse_document("timezone: UTC\n", "mine.yaml"))
    with pytest.raises(MappingError) as info:
        mapping_from_document(doc)
    assert "preset x:4: tables.leads.bogus: unknown key" in info.value.problems


def test_keys_are_kept_as_written() -> None:
    doc = parse_document("values:\n  Yes: 1\n  No: 0\n  1: x\n", "m")
    assert doc.data == {"values": {"Yes": 1, "No": 0, "1": "x"}}


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_passes_its_schema_and_says_what_it_expects(name: str) -> None:
    doc = preset_document(name)
    mapping = mapping_from_document(doc)
    assert mapping.tables and mapping.sources
    assert len(str(doc.data["description"])) > 200


def test_a_field_written_over_a_preset_takes_its_origin_and_extends_its_map(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("""preset: salesforce
tables:
  activities:
    events:
      source: Event
      fields:
        direction:
          column: Direction__c
          values: {In: inbound, Out: outbound}
""", encoding="utf-8")
    mapping = load_mapping(path)
    events = dict(mapping.parts("activities"))["events"]
    direction = events.fields["direction"]
    assert direction.column == ("Direction__c",) and direction.value is None
    assert events.fields["type"].default == "meeting"  # the preset's other fields stay
    assert "tasks" in dict(mapping.parts("activities"))


def test_a_value_map_over_a_preset_adds_entries_and_null_removes_one(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("""preset: salesforce
tables:
  opportunities:
    source: Opportunity
    stage:
      values:
        Discovery: qualification
        Perception Analysis: null
""", encoding="utf-8")
    stage = dict(load_mapping(path).parts("opportunities"))["opportunities"].stage
    assert stage is not None and stage.values is not None
    assert stage.values["Discovery"] == "qualification"
    assert stage.values["Closed Won"] == "closed_won"  # the preset's entries stay
    assert "Perception Analysis" not in stage.values
    assert stage.column == ("StageName", "Stage")


def test_a_currency_without_its_rate(tmp_path: Path) -> None:
    text = "preset: flat-deals\ncurrency:\n  code: EUR\n"
    assert _problems(tmp_path, text) == [
        "mapping.yaml:2: currency: amounts in EUR need rates: {EUR: <USD per unit>}"]


def test_own_feature_errors_name_their_key(tmp_path: Path) -> None:
    text = """preset: flat-leads
features:
  leads:
    origin: {column: Origin, type: colour, known_at: creation}
    visits: {column: Visits, type: number, known_at: history}
"""
    problems = "\n".join(_problems(tmp_path, text))
    assert "mapping.yaml:4: features.leads.origin.type: Input should be 'number'" in problems
    history = text.replace("colour", "category")
    assert _problems(tmp_path, history) == [
        "mapping.yaml:5: features.leads.visits.known_at: history needs the records' field "
        "history: add `changes:` to tables.leads"]
    accounts = """preset: salesforce
features:
  accounts:
    tier: {column: Tier__c, type: category, known_at: history}
"""
    assert _problems(tmp_path, accounts) == [
        "mapping.yaml:4: features.accounts.tier.known_at: the contract keeps no field "
        "history of accounts: use creation or export"]
    names = """preset: flat-leads
features:
  leads:
    Bad-Name: {column: X, type: number, known_at: creation}
"""
    assert "a feature name is lower-case letters" in "\n".join(_problems(tmp_path, names))
    tables = """preset: flat-leads
features:
  activities:
    kind: {column: Kind, type: category, known_at: creation}
"""
    assert "use one of leads, opportunities, accounts" in "\n".join(
        _problems(tmp_path, tables))


def test_allow_current_values_names_an_export_only_own_feature(tmp_path: Path) -> None:
    base = """preset: flat-leads
features:
  leads:
    origin: {column: Origin, type: category, known_at: creation}
    visits: {column: Visits, type: number, known_at: export}
tables:
  leads:
    allow_current_values: [%s]
"""
    unknown = "\n".join(_problems(tmp_path, base % "tags"))
    assert "tables.leads.allow_current_values: 'tags' is not an attribute of leads" in unknown
    assert "origin, visits" in unknown
    creation = "\n".join(_problems(tmp_path, base % "origin"))
    assert "'origin' is known at creation, not only at export" in creation
    (tmp_path / "ok.yaml").write_text(base % "visits", encoding="utf-8")
    mapping = load_mapping(tmp_path / "ok.yaml")
    assert mapping.parts("leads")[0][1].allow_current_values == ("visits",)


def test_export_section_errors_name_key_and_line(tmp_path: Path) -> None:
    text = """preset: salesforce
export:
  tasks:
    lead_qualification:
      fields:
        scor: Lead_Score__c
      id_pattern: "00Q("
"""
    problems = _problems(tmp_path, text)
    assert "mapping.yaml:6: export.tasks.lead_qualification.fields.scor: Input should be " \
        "'score', 'grade', 'probability', 'reasons', 'trend', 'risk_level', 'risk_reasons', " \
        "'model_version' or 'scored_at'" in problems
    assert any(p.startswith("mapping.yaml:7: export.tasks.lead_qualification.id_pattern: "
                            "not a regular expression") for p in problems)


def test_known_at_takes_only_its_three_words(tmp_path: Path) -> None:
    text = """preset: flat-leads
tables:
  leads:
    fields:
      industry:
        column: Industry
        known_at: later
"""
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith("mapping.yaml:7: tables.leads.fields.industry.known_at: ")
    assert "'creation', 'history' or 'export'" in problem


def test_known_at_history_needs_a_contract_history_and_the_records_changes(
    tmp_path: Path,
) -> None:
    text = """preset: flat-deals
tables:
  accounts:
    source: deals
    fields:
      account_id: Account
      industry:
        column: Sector
        known_at: history
    allow_current_values: [revenue]
  opportunities:
    fields:
      product:
        column: Product
        known_at: history
      amount:
        column: Amount
        known_at: export
"""
    assert _problems(tmp_path, text) == [
        "mapping.yaml:9: tables.accounts.fields.industry.known_at: the contract keeps no "
        "field history of accounts: use creation or export",
        "mapping.yaml:10: tables.accounts.allow_current_values: 'revenue' is not an "
        "attribute of accounts; its attributes: name, industry, employees, annual_revenue, "
        "country",
        "mapping.yaml:15: tables.opportunities.fields.product.known_at: history needs the "
        "records' field history: add `changes:` to tables.opportunities",
        "mapping.yaml:18: tables.opportunities.fields.amount.known_at: opportunities.amount "
        "takes no known_at: the attributes of opportunities are product",
    ]


def test_a_mapping_file_can_stand_on_another(tmp_path: Path) -> None:
    """``preset:`` naming a mapping file lays this one over it, and that one over its own
    preset: a variant of an export's mapping is a few lines."""
    (tmp_path / "base.yaml").write_text("""preset: flat-leads
features:
  leads:
    origin: {column: Origin, type: category, known_at: creation}
    visits: {column: Visits, type: number, known_at: export}
""", encoding="utf-8")
    (tmp_path / "more.yaml").write_text("""preset: base.yaml
tables:
  leads:
    allow_current_values: [visits]
""", encoding="utf-8")
    mapping = load_mapping(tmp_path / "more.yaml")
    assert mapping.parts("leads")[0][1].allow_current_values == ("visits",)
    assert set(mapping.features["leads"]) == {"origin", "visits"}
    flat = load_mapping(Path("flat-leads"))
    assert dict(mapping.parts("leads"))["leads"].fields.keys() == \
        dict(flat.parts("leads"))["leads"].fields.keys()


def test_a_mapping_file_preset_that_is_missing_or_loops(tmp_path: Path) -> None:
    assert _problems(tmp_path, "preset: other.yaml\n") == [
        "mapping.yaml:1: preset: no mapping file other.yaml beside this one"]
    (tmp_path / "other.yaml").write_text("preset: mapping.yaml\n", encoding="utf-8")
    (problem,) = _problems(tmp_path, "preset: other.yaml\n")
    assert problem.endswith("other.yaml:1: preset: mapping.yaml leads back to a mapping "
                            "already read: the presets form a loop")
    (problem,) = _problems(tmp_path, "preset: base.json\n")
    assert "unknown preset 'base.json'" in problem and "a mapping file's path" in problem
