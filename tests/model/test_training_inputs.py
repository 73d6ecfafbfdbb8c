"""`leadscore train --data` takes a folder of tables or a prebuilt training set; both agree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.data import load_training_inputs


def test_folder_and_prebuilt_parquet_give_the_same_rows(
    small_crm_dir: Path, lead_frame: pd.DataFrame, tmp_path: Path
) -> None:
    from_folder = load_training_inputs(small_crm_dir, "lead_qualification")
    assert from_folder.oracle is not None and from_folder.tables is not None
    assert from_folder.unlabelled_rows > 0  # recent snapshots are kept apart, not negatives
    path = tmp_path / "leads.parquet"
    lead_frame.to_parquet(path)
    from_file = load_training_inputs(path, "lead_qualification")
    assert from_file.oracle is None and from_file.tables is None
    pd.testing.assert_frame_equal(from_folder.frame, from_file.frame, check_dtype=False)
    assert from_folder.frame["as_of"].is_monotonic_increasing
    assert set(from_folder.frame["label"].unique()) == {0, 1}


def test_a_folder_s_invalid_rows_are_counted_and_never_trained_on(
    small_crm_dir: Path, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "crm"
    shutil.copytree(small_crm_dir, folder)
    leads = pd.read_parquet(folder / "leads.parquet")
    bad = leads["lead_id"].iat[0]
    clean = load_training_inputs(small_crm_dir, "lead_qualification")
    assert bad in set(clean.frame["lead_id"].astype(str))  # trained on while valid
    leads["employees"] = leads["employees"].astype("float64")
    leads.loc[0, "employees"] = -5.0  # a head count below zero: the loader rejects the row
    leads.to_parquet(folder / "leads.parquet", index=False)
    inputs = load_training_inputs(folder, "lead_qualification")
    assert inputs.rejected_rows >= 1
    assert bad not in set(inputs.frame["lead_id"].astype(str))
