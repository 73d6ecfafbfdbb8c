"""ScoringModel: saved as text and JSON only, loaded back to identical scores and reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, feature_columns
from features.declarations import FeatureSet, FeatureSpec
from features.schema import OPEN_STAGES, CRMTables
from features.sets import DEAL_V1, LEAD_V1
from features.snapshots import deal_snapshots
from modeling.artifact import ALL, ScoringModel, _recode_tables
from training.evaluate import EvaluationConfig, fit_and_evaluate

from .conftest import QUICK


@pytest.fixture(scope="module")
def deal_models(deal_frame: pd.DataFrame) -> dict[str, ScoringModel]:
    out = {}
    for kind in ("single", "per_stage"):
        cfg = EvaluationConfig(params=QUICK, seed=5, deal_model=kind, censor_days=60,
                               cold_start=False)
        out[kind] = fit_and_evaluate(deal_frame, "deal_close", DEAL_V1, cfg).model
    return out


@pytest.mark.parametrize("kind", ["single", "per_stage"])
def test_round_trip_without_pickle(
    kind: str, deal_models: dict[str, ScoringModel], deal_frame: pd.DataFrame, tmp_path: Path
) -> None:
    model = deal_models[kind]
    model.save(tmp_path / "m")
    files = sorted(p.suffix for p in (tmp_path / "m").iterdir())
    assert set(files) <= {".txt", ".json"}, files
    loaded = ScoringModel.load(tmp_path / "m")
    X = deal_frame[DEAL_V1.names]
    assert np.array_equal(model.predict_proba(X), loaded.predict_proba(X))
    pd.testing.assert_frame_equal(model.contributions(X.head(20)), loaded.contributions(X.head(20)))
    assert loaded.feature_set is DEAL_V1
    assert loaded.task == "deal_close"
    assert loaded.offset is not None and loaded.offset == model.offset
    assert loaded.offset.column == "stage" and set(loaded.offset.logits) <= set(OPEN_STAGES)
    md = loaded.metadata
    assert md["stage_win_rates"] and set(md["stage_win_rates"]) <= set(OPEN_STAGES)
    assert all(0 <= v <= 1 for v in md["stage_win_rates"].values())
    assert set(md["won_stage_days_p75"]) <= set(OPEN_STAGES)
    assert md["calibration_method"] in ("sigmoid", "isotonic", "none")
    assert {"trained_from", "trained_to", "horizon_days", "test_metrics",
            "won_stage_days_p75"} <= set(md)


def test_offset_starts_from_the_stage_rates(deal_models: dict[str, ScoringModel]) -> None:
    logits = deal_models["single"].offset.logits  # type: ignore[union-attr]
    # Deals in later stages win more often: the start follows the stage order.
    known = [logits[s] for s in OPEN_STAGES if s in logits]
    assert len(known) >= 4 and known[-1] > known[0]


def test_per_stage_model_routes_by_stage(deal_models: dict[str, ScoringModel]) -> None:
    model = deal_models["per_stage"]
    assert model.route_by == "stage"
    assert ALL in model.boosters and len(model.boosters) > 1


def test_contributions_add_up_to_the_raw_score(
    deal_models: dict[str, ScoringModel], deal_frame: pd.DataFrame
) -> None:
    for model in deal_models.values():
        X = deal_frame[DEAL_V1.names].head(200)
        contrib = model.contributions(X)
        assert list(contrib.columns) == [*DEAL_V1.names, "bias"]
        assert np.allclose(contrib.sum(axis=1).to_numpy(), model.raw_score(X), atol=1e-9)


def test_string_categoricals_score_like_categories(
    deal_models: dict[str, ScoringModel], deal_frame: pd.DataFrame
) -> None:
    model = deal_models["single"]
    X = deal_frame[DEAL_V1.names].head(100)
    as_text = X.assign(**{c: X[c].astype("object") for c in DEAL_V1.categorical})
    assert np.array_equal(model.predict_proba(X), model.predict_proba(as_text))


def test_missing_feature_is_an_error(
    deal_models: dict[str, ScoringModel], deal_frame: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match="missing feature"):
        deal_models["single"].predict_proba(deal_frame[DEAL_V1.names[1:]])


def test_lead_model_has_no_routing(lead_frame: pd.DataFrame) -> None:
    model = fit_and_evaluate(lead_frame, "lead_qualification", LEAD_V1,
                             EvaluationConfig(params=QUICK)).model
    assert model.route_by is None and list(model.boosters) == [ALL]


@pytest.mark.parametrize("kind", ["single", "per_stage"])
def test_column_matrix_scores_like_the_frame(
    kind: str, deal_models: dict[str, ScoringModel], small_tables: CRMTables
) -> None:
    """Serving's arrays (``feature_columns`` -> ``column_matrix``) give the very matrix,
    routes, offset, probabilities and contributions of ``build_features``' frame."""
    model = deal_models[kind]
    snaps = deal_snapshots(small_tables).head(300)
    frame = build_features(small_tables, snaps, DEAL_V1)
    columns = feature_columns(small_tables, snaps, DEAL_V1)
    matrix = model.column_matrix(columns)
    np.testing.assert_array_equal(matrix, model._matrix(model._check(frame)))
    p, c = model.score_matrix(matrix, contributions=True)
    p_frame, c_frame = model.score(frame, contributions=True)
    assert c is not None and c_frame is not None
    np.testing.assert_array_equal(p, p_frame)
    np.testing.assert_array_equal(c, c_frame)
    # Explaining the first rows only (a trend's earlier rows are scored, not explained)
    # keeps every probability and those rows' contributions, routes and offset included.
    p_some, c_some = model.score_matrix(matrix, contributions=True, explain_rows=120)
    assert c_some is not None and c_some.shape == (120, c.shape[1])
    np.testing.assert_array_equal(p_some, p)
    np.testing.assert_array_equal(c_some, c[:120])
    # Every open stage was routed and offset: the comparison covered them.
    assert frame["stage"].nunique() >= 4


def test_column_matrix_maps_codes_to_the_boosters_own_levels(
    deal_models: dict[str, ScoringModel], small_tables: CRMTables
) -> None:
    """A booster trained with other category levels (order, or a level missing) reads the
    feature set's codes through its own levels, as ``_matrix`` does with set_categories."""
    base = deal_models["single"]
    model = ScoringModel(base.task, base.feature_set, base.boosters, base.calibrators,
                         base.metadata, offset=base.offset)
    levels = model._levels["stage"]
    model._levels["stage"] = list(reversed(levels))[1:]  # reordered, one level unknown
    model._recode = _recode_tables(model.feature_set, model._levels)
    snaps = deal_snapshots(small_tables).head(300)
    frame = build_features(small_tables, snaps, DEAL_V1)
    matrix = model.column_matrix(feature_columns(small_tables, snaps, DEAL_V1))
    np.testing.assert_array_equal(matrix, model._matrix(model._check(frame)))
    stage = matrix[:, DEAL_V1.names.index("stage")]
    assert np.isnan(stage).any() and (stage == 0).any()


def test_feature_sets_of_other_crms_train_and_score_frames() -> None:
    """A category feature without fixed levels in features.sets (the public datasets'
    sets declare such) trains, saves and scores DataFrames; only the serving-only
    ``column_matrix`` refuses it, with a reason."""
    rng = np.random.default_rng(0)
    n = 3000
    agent = rng.choice(["ann", "bob", "cyd", "dee"], n)
    price = rng.uniform(0, 100, n)
    logit = np.where(agent == "ann", 1.0, -0.5) + (price - 50) / 40
    frame = pd.DataFrame({
        "opportunity_id": [f"O{i}" for i in range(n)],
        "as_of": pd.Timestamp("2024-01-01", tz="UTC")
        + pd.to_timedelta(np.sort(rng.uniform(0, 365, n)), unit="D"),
        "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64"),
        "sales_agent": pd.Categorical(agent),
        "sales_price": price,
    })
    fs = FeatureSet("other_crm", 1, "deal_close", "opportunity_id",
                    (FeatureSpec("sales_agent", "deal", "category", "agent {value}"),
                     FeatureSpec("sales_price", "deal", "float", "price {value}")))
    cfg = EvaluationConfig(params=QUICK, gap_days=0, rate_column="sales_agent")
    model = fit_and_evaluate(frame, "deal_close", fs, cfg).model
    p = model.predict_proba(frame[fs.names])
    assert p.shape == (n,) and np.all((p > 0) & (p < 1))
    with pytest.raises(ValueError, match="sales_agent.*no fixed levels"):
        model.column_matrix({"sales_agent": np.zeros(1, dtype=np.int32),
                             "sales_price": np.zeros(1)})


@pytest.mark.parametrize(("kind", "offset"), [("single", True), ("per_stage", False)])
def test_stage_offset_and_routing_work_when_stage_is_not_a_feature(
    kind: str, offset: bool, deal_frame: pd.DataFrame
) -> None:
    """The offset and the per-stage routing read the frame's stage column when the
    feature set leaves it out, as they did before scoring went through the matrix."""
    no_stage = FeatureSet("deal_no_stage", 1, "deal_close", "opportunity_id",
                          tuple(f for f in DEAL_V1.features if f.name != "stage"))
    cfg = EvaluationConfig(params=QUICK, seed=5, deal_model=kind, deal_offset=offset,
                           censor_days=60)
    model = fit_and_evaluate(deal_frame, "deal_close", no_stage, cfg).model
    assert (model.offset is not None) == offset
    assert (model.route_by == "stage") == (kind == "per_stage")
    X = deal_frame.head(200)
    p, contrib = model.score(X, contributions=True)
    assert contrib is not None
    np.testing.assert_allclose(contrib.sum(axis=1), model.raw_score(X), atol=1e-9)
    assert np.all((p > 0) & (p < 1))
