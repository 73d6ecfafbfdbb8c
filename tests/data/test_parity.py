"""Serving computes the same features as training, for every feature of both sets.

The serving path is ``features_at`` on only the entity's own rows (``entity_tables``), at
t = the snapshot's time; the batch path is ``build_features`` over every snapshot of the CRM.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from features import point_in_time as pit
from features.build import build_features, feature_columns
from features.columns import ColumnTable, tables_from_frames
from features.declarations import FeatureSet
from features.schema import CRMTables
from features.sets import DEAL_V1, LEAD_V1
from features.snapshots import deal_snapshots, lead_snapshots
from tests.data.entity_rows import entity_tables, features_at
from tests.data.toy_crm import toy_crm

MakeSnapshots = Callable[[CRMTables], pd.DataFrame]
CASES = [(LEAD_V1, lead_snapshots), (DEAL_V1, deal_snapshots)]


@pytest.mark.parametrize(("feature_set", "make"), CASES, ids=["lead_v1", "deal_v1"])
@pytest.mark.parametrize("seed", [11, 12])
def test_serving_path_equals_batch(feature_set: FeatureSet, make: MakeSnapshots, seed: int) -> None:
    crm = toy_crm(seed, n_leads=40)
    snaps = make(crm)
    batch = build_features(crm, snaps, feature_set)
    picked = snaps.sample(n=min(25, len(snaps)), random_state=seed).index
    rows = []
    for i in picked:
        entity = str(snaps.at[i, feature_set.entity_key])
        own = entity_tables(crm, feature_set, entity)
        # The slice really is small: serving never sees the rest of the CRM.
        assert len(own.activities) < len(crm.activities)
        rows.append(features_at(own, feature_set, entity, snaps.at[i, "as_of"]))
    served = pd.concat(rows, ignore_index=True)
    expected = batch.loc[picked].reset_index(drop=True)
    assert list(served.columns) == [feature_set.entity_key, "as_of", *feature_set.names]
    pd.testing.assert_frame_equal(served, expected)
    # Something non-trivial was compared: at least some engagement was seen.
    assert (expected["activities_30d"] > 0).any()


@pytest.mark.parametrize(("feature_set", "make"), CASES, ids=["lead_v1", "deal_v1"])
def test_single_snapshot_equals_its_row_in_the_batch(
    feature_set: FeatureSet, make: MakeSnapshots
) -> None:
    crm = toy_crm(21, n_leads=30)
    snaps = make(crm)
    batch = build_features(crm, snaps, feature_set)
    i = snaps.index[len(snaps) // 2]
    one = build_features(crm, snaps.loc[[i]], feature_set)
    pd.testing.assert_frame_equal(one, batch.loc[[i]])


def test_unknown_entity_at_serving_gives_missing_attributes_not_an_error() -> None:
    crm = toy_crm(4, n_leads=10)
    out = features_at(crm, LEAD_V1, "no-such-lead", pd.Timestamp("2024-06-01", tz="UTC"))
    assert len(out) == 1
    assert pd.isna(out["source"].iloc[0])
    assert out["activities_30d"].iloc[0] == 0


@pytest.mark.parametrize(("feature_set", "make"), CASES, ids=["lead_v1", "deal_v1"])
@pytest.mark.parametrize("lookups", ["python", "arrow"])
def test_column_tables_give_the_dataframes_features(
    feature_set: FeatureSet, make: MakeSnapshots, lookups: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serving's numpy column tables (``features.columns``) and training's DataFrames give
    identical features, through both id-matching paths of ``features.point_in_time``."""
    if lookups == "arrow":
        monkeypatch.setattr(pit, "SMALL", 0)
    crm = toy_crm(13, n_leads=40)
    key = feature_set.entity_key
    snaps = make(crm)[[key, "as_of"]]
    expected = build_features(crm, snaps, feature_set)
    columns = tables_from_frames(crm)
    pd.testing.assert_frame_equal(build_features(columns, snaps, feature_set), expected)
    ids = np.empty(len(snaps), dtype=object)
    ids[:] = snaps[key].tolist()
    column_snaps = ColumnTable({key: ids, "as_of": pit.ns(snaps["as_of"])}, len(snaps))
    pd.testing.assert_frame_equal(
        build_features(columns, column_snaps, feature_set), expected.reset_index(drop=True)
    )
    assert (expected["activities_30d"] > 0).any()


@pytest.mark.parametrize(("feature_set", "make"), CASES, ids=["lead_v1", "deal_v1"])
def test_feature_columns_are_build_features_before_typing(
    feature_set: FeatureSet, make: MakeSnapshots
) -> None:
    crm = toy_crm(14, n_leads=40)
    snaps = make(crm)
    frame = build_features(crm, snaps, feature_set)
    columns = feature_columns(crm, snaps, feature_set)
    assert list(columns) == feature_set.names
    for spec in feature_set.features:
        got, col = columns[spec.name], frame[spec.name]
        if spec.dtype == "category":
            np.testing.assert_array_equal(got, col.cat.codes.to_numpy())
        else:
            np.testing.assert_array_equal(got, col.to_numpy(dtype="float64", na_value=np.nan))


@pytest.mark.parametrize(("feature_set", "make"), CASES, ids=["lead_v1", "deal_v1"])
def test_small_input_branches_equal_the_large_input_code(
    feature_set: FeatureSet, make: MakeSnapshots, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below ``pit.SMALL`` rows the feature code takes shortcuts (Python look-ups, one
    count matrix for every activity type, np.unique); the code for millions of rows must
    give the same features, with and without other deals in the tables."""
    crm = toy_crm(15, n_leads=40)
    snaps = make(crm)
    no_deals = CRMTables(crm.accounts, crm.leads, crm.opportunities.iloc[0:0],
                         crm.opportunity_history.iloc[0:0], crm.activities)
    built = []
    for tables in (crm, no_deals):
        small = build_features(tables, snaps, feature_set)
        with monkeypatch.context() as m:
            m.setattr(pit, "SMALL", 0)
            large = build_features(tables, snaps, feature_set)
        pd.testing.assert_frame_equal(small, large)
        built.append(small)
    assert (built[0]["activities_30d"] > 0).any()
    assert (built[0]["account_won_deals"] > 0).any()
