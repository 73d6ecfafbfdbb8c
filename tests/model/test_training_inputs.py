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
