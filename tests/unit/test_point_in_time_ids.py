"""Ids matched through their numbers give exactly what hashing the strings gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import point_in_time as pit


def hashed(values: pd.Series, vocab: pd.Series) -> np.ndarray:
    hits = pc.index_in(pit.arrow_strings(values), value_set=pit.arrow_strings(vocab))
    return np.asarray(pc.fill_null(hits, -1).to_numpy(), dtype=np.int64)


def series(ids: list[str | None], dtype: str = "string[pyarrow]") -> pd.Series:
    return pd.Series(ids, dtype=dtype)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    prefix=st.sampled_from(["", "L", "ACC", "00"]),
    digits=st.integers(1, 6),
    cut=st.integers(0, 5),
    dtype=st.sampled_from(["string[pyarrow]", "string[python]"]),
)
def test_codes_by_number_equal_hashing(
    seed: int, prefix: str, digits: int, cut: int, dtype: str
) -> None:
    rng = np.random.default_rng(seed)
    top = 10**digits
    keys = rng.permutation(top)[: max(1, top // 2)]
    vocab = series([f"{prefix}{k:0{digits}d}" for k in keys], dtype).iloc[cut:]
    drawn = rng.integers(0, top, 300)
    values = series(
        [None if rng.random() < 0.2 else f"{prefix}{k:0{digits}d}" for k in drawn], dtype
    ).iloc[cut:]
    if len(vocab) == 0:
        return
    by_number = pit._codes_by_number(values, vocab)
    assert by_number is not None
    np.testing.assert_array_equal(by_number, hashed(values, vocab))


@pytest.mark.parametrize(
    "values",
    [
        ["L00001", "L0001", None],  # two widths: "00001" and "0001" are different ids
        ["X00001", "L00001", None],  # two prefixes
        ["L0000a", "L00001", "L00002"],  # not all digits
        ["Lé0001", "L00001", "L00002"],  # a multi-byte character
        [None, None, None],
    ],
)
def test_other_shapes_fall_back_to_hashing(values: list[str | None]) -> None:
    vocab = series([f"L{i:05d}" for i in range(50)])
    many = series(values * 10_000)
    assert pit._codes_by_number(many, vocab) is None
    np.testing.assert_array_equal(pit.codes(many, vocab), hashed(many, vocab))


def test_repeated_key_keeps_its_first_position() -> None:
    vocab = series(["L003", "L001", "L003", "L002"])
    values = series(["L003", "L002", None, "L009"] * 10_000)
    assert pit._codes_by_number(values, vocab) is None
    np.testing.assert_array_equal(pit.codes(values, vocab)[:4], [0, 3, -1, -1])


def test_several_arrow_chunks() -> None:
    chunks = pa.chunked_array([pa.array(["L01", None, "L02"] * 10_000), pa.array(["L03"] * 9)])
    values = pd.Series(pd.arrays.ArrowStringArray(chunks))
    vocab = series(["L03", "L02", "L01"])
    np.testing.assert_array_equal(pit.codes(values, vocab), hashed(values, vocab))


@pytest.mark.parametrize("ids", [["C0042", "C0007", None, "C0042"], ["x1", "y22", None, "x1"]])
def test_id_codes_are_equal_exactly_where_ids_are(ids: list[str | None]) -> None:
    values = series(ids * 6_000)
    got = pit.id_codes(values)
    dense = pit.factorize(values)
    assert ((got == -1) == (dense == -1)).all()
    # Same partition into equal ids: each dense code maps to exactly one code and back.
    pairs = set(zip(got.tolist(), dense.tolist(), strict=True))
    assert len(pairs) == len({g for g, _ in pairs}) == len({d for _, d in pairs})


def test_blocks_of_other_shapes_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pit, "ID_BLOCK", 4)
    vocab = series(["L01", "L02", "X01"])
    same = series([None] * 5 + ["L02", None, "L01"] * 3)
    assert pit._codes_by_number(same, vocab[:2]) is not None
    np.testing.assert_array_equal(pit.codes(same, vocab[:2]), hashed(same, vocab[:2]))
    mixed = series(["L01"] * 5 + ["X01", "L02"])
    assert pit._id_numbers(mixed) is None
    np.testing.assert_array_equal(pit.codes(mixed, vocab), hashed(mixed, vocab))
