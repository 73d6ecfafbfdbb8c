"""Ids looked up and hashed from Arrow's buffers: ``KeyIndex`` answers as
``pyarrow.compute.index_in`` does (with a null finding nothing), on odd ids."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import features.keys as keys_module
from features.keys import KeyIndex, text_hashes


def _expected(values: pa.Array, keys: pa.Array) -> list[int | None]:
    at = pc.index_in(values, value_set=keys).to_pylist()
    return [None if v is None else a for v, a in zip(values.to_pylist(), at, strict=True)]


ODD = ["", " ", "a", "A", "00Q1", "00Q1 ", "00Q10", "00Q01", "é", "e\u0301", "x" * 7,
       "x" * 8, "x" * 9, "x" * 16, "x" * 17, "y" * 300, "\x00", "\x00\x00", "日本語のID"]


@pytest.mark.parametrize("offset", [0, 3])
def test_index_in_equals_arrow_s_on_odd_ids(offset: int) -> None:
    keys = pa.array([*ODD, None, "00Q1", "a"], type=pa.string())  # repeated: the first wins
    values = pa.array(["pad"] * offset + [*reversed(ODD), None, "b", "00Q2", "xx" * 4],
                      type=pa.string()).slice(offset)
    index = KeyIndex(keys)
    assert index.index_in(values).to_pylist() == _expected(values, keys)
    assert index.contains(values).tolist() == [a is not None for a in _expected(values, keys)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=30),
       st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=30))
def test_index_in_equals_arrow_s(keys: list[str | None], values: list[str | None]) -> None:
    k, v = pa.array(keys, type=pa.string()), pa.array(values + keys, type=pa.string())
    assert KeyIndex(k).index_in(v).to_pylist() == _expected(v, k)


def test_no_keys_find_nothing_and_chunked_input_is_read() -> None:
    assert KeyIndex(pa.array([], type=pa.string())).index_in(pa.array(["a", None])).to_pylist() \
        == [None, None]
    chunked = pa.chunked_array([["b", "a"], ["c"]])
    assert KeyIndex(chunked).index_in(pa.chunked_array([["c"], ["a", "z"]])).to_pylist() == [
        2, 1, None]


def test_keys_sharing_a_hash_fall_back_to_arrow_s_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "text_hashes",
                        lambda arr: np.zeros(len(arr), dtype=np.uint64))  # every hash equal
    keys = pa.array(["a", "b", "a", None])
    index = KeyIndex(keys)
    values = pa.array(["b", "a", "c", None])
    assert index.index_in(values).to_pylist() == [1, 0, None, None]
    assert index.exact is False


def test_a_batch_far_larger_than_the_keys_goes_to_arrow_s_lookup() -> None:
    keys = pa.array(["b", "a", None, "b"])
    values = pa.array(["a", "b", None, "c", "", "a", "b", "zz", "a", None])
    index = KeyIndex(keys)
    assert index.index_in(values).to_pylist() == _expected(values, keys)
    assert index.exact is None  # never hashed
    assert index.index_in(values.slice(0, 3)).to_pylist() == [1, 0, None]
    assert index.exact is True


def test_equal_texts_hash_equal_wherever_they_sit() -> None:
    values = pa.array(["pad", "00Q1", "x" * 20, "00Q1", "x" * 20, None, "00Q2"]).slice(1)
    h = text_hashes(values)
    assert h[0] == h[2] and h[1] == h[3] and h[0] != h[5] and h[0] != h[1]
    alone = text_hashes(pa.array(["00Q1"]))[0]
    assert text_hashes(pa.array(["y" * 300, "00Q1"]))[1] == alone  # whatever is beside it
    ids = pa.array([f"00T{i:015d}" for i in range(100_000)])
    assert np.unique(text_hashes(ids)).size == 100_000


def test_many_keys_are_found_by_their_slice_of_the_hash_space() -> None:
    rng = np.random.default_rng(7)
    keys = pa.array([f"006{i:012d}" for i in rng.permutation(20_000)] + ["0060", "006"])
    values = pa.array([f"006{i:012d}" for i in rng.integers(0, 25_000, 30_000)]
                      + [None, "0060", "006", "06"])
    index = KeyIndex(keys)
    assert index.index_in(values).to_pylist() == _expected(values, keys)
    assert index.exact is True
