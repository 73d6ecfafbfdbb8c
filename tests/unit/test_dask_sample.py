"""The sample the rounds of a Dask fit are chosen on: whole entities, at most the rows asked."""

import pandas as pd

from training.dask_fit import entity_sample


def _frame() -> pd.DataFrame:
    ids = [f"L{i % 40:02d}" for i in range(400)]  # 40 entities of 10 rows each
    return pd.DataFrame({"lead_id": ids, "x": range(400)})


def test_a_small_frame_is_its_own_sample() -> None:
    frame = _frame()
    assert entity_sample(frame, "lead_id", 400, seed=1) is frame


def test_the_sample_keeps_whole_entities_in_order_and_repeats_for_a_seed() -> None:
    frame = _frame()
    sample = entity_sample(frame, "lead_id", 95, seed=3)
    assert len(sample) == 90  # nine whole entities; a tenth would exceed 95 rows
    counts = sample["lead_id"].value_counts()
    assert (counts == 10).all()
    assert sample.index.is_monotonic_increasing
    assert sample.equals(entity_sample(frame, "lead_id", 95, seed=3))
    assert not sample.equals(entity_sample(frame, "lead_id", 95, seed=4))
