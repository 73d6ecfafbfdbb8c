"""The point-in-time primitives against brute force, on random events and query points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import point_in_time as pit


def _brute(keys: np.ndarray, times: np.ndarray, qk: np.ndarray, qt: np.ndarray) -> np.ndarray:
    ok = (keys[None, :] == qk[:, None]) & (times[None, :] < qt[:, None]) & (qk[:, None] >= 0)
    return ok.sum(axis=1)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_events=st.integers(0, 60),
    n_queries=st.integers(1, 40),
    sort_queries=st.booleans(),
    shift=st.integers(0, 5),
)
def test_counts_match_brute_force(
    seed: int, n_events: int, n_queries: int, sort_queries: bool, shift: int
) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(-1, 5, n_events)
    times = rng.integers(0, 20, n_events).astype(np.int64)
    times[rng.random(n_events) < 0.1] = pit.NAT
    qk = rng.integers(-1, 5, n_queries)
    qt = rng.integers(0, 22, n_queries).astype(np.int64)
    if sort_queries:
        order = np.lexsort((qt, qk))
        qk, qt = qk[order], qt[order]
    index = pit.index_events(keys, times)
    queries = pit.Queries(qk, qt)
    valid = times != pit.NAT
    expected = _brute(keys[valid], times[valid], qk, qt - shift)
    np.testing.assert_array_equal(queries.count(index, shift), expected)
    last = queries.last(index)
    for i in range(n_queries):
        mine = valid & (keys == qk[i]) & (times < qt[i]) & (qk[i] >= 0)
        if mine.any():
            assert index.times[last[i]] == times[mine].max()
        else:
            assert last[i] == -1


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "string[python]", "object"])
def test_codes_and_factorize_agree_between_small_and_large_paths(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = pd.Series(["a", "b", None, "zz", "a", "c"], dtype=dtype)
    vocab = pd.Series(["c", "b", "a", "b"], dtype=dtype)
    small = (pit.codes(values, vocab), pit.factorize(values))
    monkeypatch.setattr(pit, "SMALL", 0)
    large = (pit.codes(values, vocab), pit.factorize(values))
    np.testing.assert_array_equal(small[0], [2, 1, -1, -1, 2, 0])
    np.testing.assert_array_equal(small[0], large[0])
    np.testing.assert_array_equal(small[1], large[1])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 80), time_sorted=st.booleans())
def test_index_order_is_the_stable_order_of_key_then_time(
    seed: int, n: int, time_sorted: bool
) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 6, n)
    times = rng.integers(0, 10, n).astype(np.int64)
    if time_sorted:
        times = np.sort(times)
    distinct, rank = pit.rank_times(times)
    np.testing.assert_array_equal(distinct[rank], times)
    expected = np.argsort(keys * (len(distinct) + 1) + rank, kind="stable")
    np.testing.assert_array_equal(pit._order_by_key_then_rank(keys, rank), expected)
