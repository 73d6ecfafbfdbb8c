"""Attributes that change are read as of t from the field-history tables.

Crafted rows pin the rule (the last change before t, else the first change's old value,
else the record); the toy CRM with field history shows that edits after t, in the
history or in the current row, never move a snapshot at t, that the CRM rolled back to a
time gives the same features before it, and that serving's own slice of rows and its
column tables give what training gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.columns import tables_from_frames
from features.declarations import FeatureSet
from features.schema import (
    LEAD_CHANGEABLE,
    LEADS,
    OPPORTUNITIES,
    TABLES,
    CRMTables,
    coerce_dtypes,
)
from features.sets import ACCOUNT_RENEWAL_V1, DEAL_V1, LEAD_V1
from features.snapshots import crm_as_of, deal_snapshots, lead_snapshots, renewal_snapshots
from tests.data.crm_builder import valid_field_history, valid_tables
from tests.data.entity_rows import entity_tables, features_at
from tests.data.toy_crm import text, toy_crm

UTC = "UTC"


def _crafted() -> CRMTables:
    return CRMTables(**valid_tables(), **valid_field_history())


def _lead_at(crm: CRMTables, lead: str, when: str) -> pd.Series:
    return features_at(crm, LEAD_V1, lead, pd.Timestamp(when, tz=UTC)).iloc[0]


def test_bant_filled_in_after_creation_is_missing_before_its_fill() -> None:
    crm = _crafted()  # L1 is created 2024-01-05; budget and timeline filled 01-10 09:00
    early, late = _lead_at(crm, "L1", "2024-01-08"), _lead_at(crm, "L1", "2024-01-11")
    assert pd.isna(early["budget_confirmed"]) and pd.isna(early["timeline_days"])
    assert late["budget_confirmed"] == 1.0 and late["timeline_days"] == 30.0
    # Strictly before: a change saved at t is not known at t.
    at = _lead_at(crm, "L1", "2024-01-10T09:00:00")
    assert pd.isna(at["budget_confirmed"])
    # A field that never changed reads the record, at every time.
    assert early["is_decision_maker"] == late["is_decision_maker"] == 1.0


def test_an_edit_is_invisible_before_it_and_the_old_value_holds_until_then() -> None:
    crm = _crafted()  # L1's head count went 100 -> 120 on 01-12; L3's need No -> Yes 02-11
    assert _lead_at(crm, "L1", "2024-01-11")["employees"] == 100.0
    assert _lead_at(crm, "L1", "2024-01-13")["employees"] == 120.0
    assert _lead_at(crm, "L3", "2024-02-10T12:00:00")["need_stated"] == 0.0
    assert _lead_at(crm, "L3", "2024-02-12")["need_stated"] == 1.0
    # The last change before t wins over the record (L2's record has no industry).
    assert pd.isna(_lead_at(crm, "L2", "2024-02-02")["industry"])
    assert _lead_at(crm, "L2", "2024-02-05")["industry"] == "retail"


def test_a_deals_product_is_read_as_of_t() -> None:
    crm = _crafted()  # O1: starter -> professional 02-01 -> enterprise 04-01

    def product(when: str) -> Any:
        return features_at(crm, DEAL_V1, "O1", pd.Timestamp(when, tz=UTC))["product"].iloc[0]

    assert [product(d) for d in ("2024-01-25", "2024-03-01", "2024-04-02")] == [
        "starter", "professional", "enterprise"]


def test_the_serving_form_reads_the_history_as_the_dataframes_do() -> None:
    crm = _crafted()
    snaps = pd.DataFrame({
        "lead_id": pd.array(["L1", "L1", "L2", "L3", "L3", "L4"], dtype="string"),
        "as_of": pd.DatetimeIndex(["2024-01-08", "2024-01-13", "2024-02-05", "2024-02-10",
                                   "2024-02-12", "2024-03-05"], tz=UTC),
    })
    expected = build_features(crm, snaps, LEAD_V1)
    pd.testing.assert_frame_equal(build_features(tables_from_frames(crm), snaps, LEAD_V1),
                                  expected)
    assert expected["budget_confirmed"].isna().iloc[0]


# --- the toy CRM with field history --------------------------------------------------

TASKS: dict[str, tuple[FeatureSet, Any]] = {
    "lead": (LEAD_V1, lead_snapshots),
    "deal": (DEAL_V1, deal_snapshots),
    "renewal": (ACCOUNT_RENEWAL_V1, renewal_snapshots),
}


BASE = ("accounts", "leads", "opportunities", "opportunity_history", "activities",
        "account_signals")


def _without_history(crm: CRMTables) -> CRMTables:
    return CRMTables(**{n: crm.get(n) for n in BASE})


def _crm(task: str, seed: int) -> CRMTables:
    if task == "renewal":
        return toy_crm(seed, n_leads=80, days=700, post_sale=True, field_history=True)
    return toy_crm(seed, n_leads=40, field_history=True)


def test_the_toy_history_makes_early_bant_missing_and_late_bant_known() -> None:
    crm = toy_crm(0, n_leads=60, field_history=True)
    snaps = lead_snapshots(crm)[["lead_id", "as_of"]]
    now = build_features(crm, snaps, LEAD_V1)
    latest = build_features(_without_history(crm), snaps, LEAD_V1)
    # Without the history the latest answers leak into early snapshots; with it they wait.
    assert now["budget_confirmed"].isna().sum() > latest["budget_confirmed"].isna().sum()


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("seed", [0, 1])
def test_rollback_with_field_history_gives_identical_features(task: str, seed: int) -> None:
    crm = _crm(task, seed)
    fs, make = TASKS[task]
    snaps = make(crm)[[fs.entity_key, "as_of"]]
    cutoff = snaps["as_of"].quantile(0.5)
    before = snaps.loc[snaps["as_of"] < cutoff]
    past = crm_as_of(crm, cutoff)
    if task != "renewal":  # renewals are scored late, after most edits
        assert len(past.lead_field_history) < len(crm.lead_field_history)
        assert not past.leads.set_index("lead_id")[list(LEAD_CHANGEABLE)].equals(
            crm.leads.set_index("lead_id").loc[past.leads["lead_id"], list(LEAD_CHANGEABLE)])
    pd.testing.assert_frame_equal(
        build_features(crm, before, fs).reset_index(drop=True),
        build_features(past, before, fs).reset_index(drop=True))


def _random_value(rng: np.random.Generator, field: str, kind: str) -> Any:
    if kind == "bool":
        return bool(rng.random() < 0.5)
    if kind == "int":
        return int(rng.integers(1, 9000))
    return str(rng.choice(["software", "retail", "vp", "sales", "US", "webinar", "enterprise",
                           "nonsense"]))


def _edit_after(crm: CRMTables, t: pd.Timestamp, rng: np.random.Generator) -> CRMTables:
    """Edit every changeable attribute after t the way a CRM records edits: the record takes
    a new value and a change row says so (its old value the record's value until then);
    changes already after t get other new values, and all but their first other old ones."""
    out = {n: crm.get(n) for n in BASE}
    for records, name, table, fields in (
        (crm.leads, "lead_field_history", LEADS, LEAD_CHANGEABLE),
        (crm.opportunities, "opportunity_field_history", OPPORTUNITIES, ("product",)),
    ):
        key = table.key
        assert key is not None
        hist = crm.get(name).copy()
        later = hist["changed_at"] >= t
        hist.loc[later, "new_value"] = [text(_random_value(rng, f, table.column(f).kind))
                                        for f in hist.loc[later, "field"]]
        ordered = hist.loc[later].sort_values("changed_at", kind="stable")
        not_first = ordered.index[ordered.duplicated([key, "field"], keep="first")]
        hist.loc[not_first, "old_value"] = "999"
        rec = records.copy()
        added = []
        when = max(t, crm.get(name)["changed_at"].max()) + pd.Timedelta(hours=1)
        for field in fields:
            kind = table.column(field).kind
            new = [_random_value(rng, field, kind) for _ in range(len(rec))]
            added += [{key: k, "changed_at": when, "field": field, "old_value": text(old),
                       "new_value": text(v)}
                      for k, old, v in zip(rec[key], rec[field], new, strict=True)]
            rec[field] = pd.array(new, dtype=rec[field].dtype)
        hist = pd.concat([hist, pd.DataFrame(added)], ignore_index=True)
        out[name] = coerce_dtypes(hist, TABLES[name])
        out["leads" if table is LEADS else "opportunities"] = coerce_dtypes(rec, table)
    return CRMTables(**out)


@pytest.mark.parametrize("task", ["lead", "deal"])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_edits_after_t_in_history_and_record_never_move_features_at_t(
    task: str, seed: int
) -> None:
    crm = _crm(task, seed)
    fs, make = TASKS[task]
    snaps = make(crm)[[fs.entity_key, "as_of"]]
    rng = np.random.default_rng(seed)
    for q in (0.3, 0.7):
        t = snaps["as_of"].quantile(q)
        known = snaps.loc[snaps["as_of"] <= t]
        edited = _edit_after(crm, t, rng)
        assert not edited.leads["budget_confirmed"].equals(crm.leads["budget_confirmed"])
        pd.testing.assert_frame_equal(build_features(edited, known, fs),
                                      build_features(crm, known, fs))


def test_the_same_edits_without_the_history_would_move_them() -> None:
    """The control: the record's edits alone, with no change rows, do move early features,
    so the test above has something to see."""
    crm = _crm("lead", 3)
    snaps = lead_snapshots(crm)[["lead_id", "as_of"]]
    t = snaps["as_of"].quantile(0.3)
    known = snaps.loc[snaps["as_of"] <= t]
    edited = _edit_after(crm, t, np.random.default_rng(3))
    blind = _without_history(edited)
    assert not build_features(blind, known, LEAD_V1).equals(build_features(crm, known, LEAD_V1))


@pytest.mark.parametrize(("feature_set", "make"), [(LEAD_V1, lead_snapshots),
                                                  (DEAL_V1, deal_snapshots)])
def test_serving_slice_with_field_history_equals_batch(feature_set: FeatureSet,
                                                       make: Any) -> None:
    crm = toy_crm(11, n_leads=40, field_history=True)
    snaps = make(crm)
    batch = build_features(crm, snaps, feature_set)
    picked = snaps.sample(n=min(25, len(snaps)), random_state=11).index
    rows = []
    for i in picked:
        entity = str(snaps.at[i, feature_set.entity_key])
        own = entity_tables(crm, feature_set, entity)
        rows.append(features_at(own, feature_set, entity, snaps.at[i, "as_of"]))
    pd.testing.assert_frame_equal(pd.concat(rows, ignore_index=True),
                                  batch.loc[picked].reset_index(drop=True))
    columns = tables_from_frames(crm)
    pd.testing.assert_frame_equal(build_features(columns, snaps, feature_set), batch)

