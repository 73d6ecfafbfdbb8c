"""An export's own columns as features: imported typed and keyed by record, read as of t,
their levels learned from the training rows, export-only values left out unless allowed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features, select_features
from features.columns import ColumnTable
from features.mapping.importing import import_settings, run_import
from features.own import (
    MAX_MISSING,
    OwnFeature,
    OwnFeatures,
    derive_feature_set,
    own_columns,
    read_own,
)
from features.sets import LEAD_V1
from features.training_set import build_training_set_with_own
from tests.data.crafted_exports import write_export
from tests.data.toy_crm import toy_crm
from training.data import read_tables

LEADS_CSV = """\
Lead ID,Created Date,Lead Source,Company,Country,Lead Status,Origin,Visits,Opt Out,Tags
L1,2024-01-05 10:00,Web,Acme,US,Qualified,Form,3,Yes,will buy
L2,2024-01-06 10:00,Web,Acme,US,Unqualified,API,many,No,ringing
L3,2024-01-07 10:00,Web,Beta,DE,Qualified,Form,5,maybe,
L4,2024-01-08 10:00,Web,Beta,DE,Working,Import,,no,will buy
"""

MAPPING = """preset: flat-leads
features:
  leads:
    origin: {column: Origin, type: category, known_at: creation}
    visits: {column: Visits, type: number, known_at: export}
    opt_out: {column: Opt Out, type: yes_no, known_at: creation}
    tags: {column: Tags, type: category, known_at: export}
tables:
  leads:
    allow_current_values: [visits]
"""


def _import(tmp_path: Path) -> Path:
    export = write_export(tmp_path / "export", {"leads.csv": LEADS_CSV})
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    out = tmp_path / "out"
    result = run_import(import_settings(mapping=tmp_path / "mapping.yaml", source=export,
                                        out=out, now="2025-01-01T00:00:00Z"))
    assert result.ok
    return out


def test_import_writes_own_columns_typed_by_record_and_reports_what_it_could_not_read(
        tmp_path: Path) -> None:
    out = _import(tmp_path)
    own = read_own(out)
    assert [(f.name, f.kind, f.known_at, f.allowed) for f in own.features] == [
        ("origin", "category", "creation", False), ("visits", "number", "export", True),
        ("opt_out", "yes_no", "creation", False), ("tags", "category", "export", False)]
    v = own.values["leads"].set_index("lead_id")
    assert v.loc["L1"].tolist() == ["Form", 3.0, 1.0, "will buy"]
    assert np.isnan(v.loc["L2", "visits"]) and v.loc["L2", "opt_out"] == 0.0
    assert np.isnan(v.loc["L3", "opt_out"]) and v.loc["L3", "tags"] is None
    summary = json.loads((out / "import_report.json").read_text())
    uses = {row["name"]: row["use"] for row in summary["own_features"]}
    assert uses == {"origin": "yes", "visits": "yes, by opt-in: a leak risk",
                    "opt_out": "yes", "tags": "no: known only at export"}
    unplaced = {(u["column"], u["what"]): dict(u["examples"])
                for u in summary["unplaced_values"]}
    assert unplaced[("visits", "Visits: not a number, left empty")] == {"many": 1}
    assert unplaced[("opt_out", "Opt Out: not a yes/no answer, left empty")] == {"maybe": 1}
    # The contract's own table is untouched by them.
    assert "origin" not in pd.read_parquet(out / "leads.parquet").columns


def test_training_set_derives_the_set_with_learned_levels_and_leaves_export_only_out(
        tmp_path: Path) -> None:
    out = _import(tmp_path)
    tables, _ = read_tables(out)
    frame, derived = build_training_set_with_own(tables, "lead_qualification", read_own(out))
    fs = derived.feature_set
    assert fs.name == "lead_v1+own" and fs.base_name == "lead_v1"
    assert fs.names[: len(LEAD_V1.names)] == LEAD_V1.names
    assert fs.names[len(LEAD_V1.names):] == ["origin", "visits", "opt_out"]
    assert derived.left_out == {"tags": "known only at export (Tags): list it under its "
                                        "table's allow_current_values to use it"}
    assert derived.leak_risks == ("visits",)
    # Levels come from the training rows, the most frequent first; values read per lead.
    # L4 is still open: not a training row, so its "Import" is no level.
    assert fs.spec("origin").levels == ("Form", "API")
    by_lead = frame.drop_duplicates("lead_id").set_index("lead_id")
    assert by_lead.loc["L1", "origin"] == "Form" and by_lead.loc["L1", "opt_out"]
    assert by_lead.loc["L1", "visits"] == 3.0


def test_own_values_are_not_known_before_the_record_exists_nor_for_unseen_levels() -> None:
    own = OwnFeatures(
        (OwnFeature("origin", "leads", "category", "creation", "Origin"),
         OwnFeature("visits", "leads", "number", "creation", "Visits")),
        {"leads": pd.DataFrame({"lead_id": ["L1", "L2"], "origin": ["Form", "Chat"],
                                "visits": [3.0, np.nan]})})
    snaps = ColumnTable({"lead_id": np.array(["L1", "L2", "L9"], dtype=object),
                         "as_of": np.zeros(3, dtype=np.int64)}, 3)
    cols = own_columns(own, "lead_id", snaps, np.array([True, False, True]))
    assert cols["origin"].tolist() == ["Form", None, None]
    assert np.isnan(cols["visits"][1:]).all() and cols["visits"][0] == 3.0
    derived = derive_feature_set(LEAD_V1, own, {"origin": np.array(["Form", "Form", "Web"],
                                                                   dtype=object),
                                                "visits": np.array([1.0, 2.0, np.nan])})
    fs = derived.feature_set
    assert fs.spec("origin").levels == ("Form", "Web")
    columns = {**{n: np.zeros(3) for n in LEAD_V1.names}, "entity_exists": np.ones(3, bool),
               "origin": np.array(["Web", "Chat", None], dtype=object),
               "visits": np.array([1.0, 2.0, 3.0])}
    for spec in LEAD_V1.features:
        if spec.dtype == "category":
            columns[spec.name] = np.full(3, -1)
    picked = select_features(columns, fs)
    assert picked["origin"].tolist() == [1, -1, -1]  # Chat: never seen in training


def test_a_feature_missing_almost_everywhere_is_dropped_and_said() -> None:
    own = OwnFeatures((OwnFeature("rare", "leads", "number", "creation", "Rare"),),
                      {"leads": pd.DataFrame({"lead_id": ["L1"], "rare": [1.0]})})
    n = 1000
    values = np.full(n, np.nan)
    values[: int(n * (1 - MAX_MISSING)) - 1] = 1.0
    derived = derive_feature_set(LEAD_V1, own, {"rare": values})
    assert derived.feature_set is LEAD_V1
    assert derived.left_out == {"rare": "missing in 99.1% of the training rows"}


def test_requests_without_the_attributes_read_own_features_as_not_known() -> None:
    own = OwnFeatures((OwnFeature("origin", "leads", "category", "creation", "Origin"),),
                      {"leads": pd.DataFrame({"lead_id": ["L1"], "origin": ["Form"]})})
    fs = derive_feature_set(LEAD_V1, own, {"origin": np.array(["Form"], dtype=object)}
                            ).feature_set
    crm = toy_crm(1, n_leads=5)
    first = crm.leads.iloc[0]
    snaps = pd.DataFrame({"lead_id": [first["lead_id"]],
                          "as_of": [first["created_at"] + pd.Timedelta(days=3)]})
    frame = build_features(crm, snaps, fs)  # a CRM without own columns
    assert frame["origin"].isna().all() and frame["lead_age_days"].notna().all()
