"""Small generated CRMs and quick training settings shared by the model tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.schema import CRMTables
from features.training_set import build_training_set
from leadscore.generator import GeneratedCRM, generate_crm, write_crm
from training.fit import BoosterParams

QUICK = BoosterParams(
    num_leaves=15,
    min_data_in_leaf=20,
    num_boost_round=80,
    early_stopping_rounds=20,
    num_threads=1,
)


@pytest.fixture(scope="session")
def small_crm() -> GeneratedCRM:
    return generate_crm(2500, seed=11, months=18)


@pytest.fixture(scope="session")
def small_tables(small_crm: GeneratedCRM) -> CRMTables:
    return small_crm.tables


@pytest.fixture(scope="session")
def small_crm_dir(small_crm: GeneratedCRM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crm")
    write_crm(small_crm, out)
    return out


def _labelled(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    out = frame.loc[frame["label"].notna()].copy()
    out["label"] = out["label"].astype("int64")
    return out.sort_values(["as_of", key], kind="mergesort").reset_index(drop=True)


@pytest.fixture(scope="session")
def lead_frame(small_tables: CRMTables) -> pd.DataFrame:
    return _labelled(build_training_set(small_tables, "lead_qualification"), "lead_id")


@pytest.fixture(scope="session")
def deal_frame(small_tables: CRMTables) -> pd.DataFrame:
    return _labelled(build_training_set(small_tables, "deal_close"), "opportunity_id")
