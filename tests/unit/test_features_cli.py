"""`leadscore build` writes a training set as Parquet and reports it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.declarations import FeatureSet
from features.sets import DEAL_V1, LEAD_V1
from leadscore import generator
from leadscore.cli import app


@pytest.fixture(scope="module")
def crm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crm")
    generator.write_crm(generator.generate_crm(400, seed=5), out)
    return out


@pytest.mark.parametrize(("task", "fs"), [("lead_qualification", LEAD_V1), ("deal_close", DEAL_V1)])
def test_build_writes_parquet_with_declared_columns(
    crm_dir: Path, tmp_path: Path, task: str, fs: FeatureSet
) -> None:
    out = tmp_path / "train.parquet"
    result = CliRunner().invoke(
        app, ["build", "--task", task, "--data", str(crm_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "label rate" in result.output and "snapshots" in result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns) == [fs.entity_key, "as_of", "label", *fs.names]
    assert str(frame["as_of"].dtype) == "datetime64[ns, UTC]"
    assert frame["label"].notna().any()
    assert len(frame) > 0


def test_build_rejects_an_unknown_task(crm_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["build", "--task", "churn", "--data", str(crm_dir), "--out", str(tmp_path / "x.parquet")],
    )
    assert result.exit_code == 2
    assert not (tmp_path / "x.parquet").exists()
