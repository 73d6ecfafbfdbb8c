"""The Arrow twins of the column conversions (used on the blocks of a large activity file)
give what the pandas ones give: the same values, the same unplaced counts and examples,
the same number of date-only values, on odd input."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.mapping.spec import FieldMap
from features.mapping.values import (
    Unplaced,
    apply_value_map,
    map_values_arrow,
    prefixed_arrow,
    to_utc_text,
    utc_text_arrow,
)

VALUES = {"Call": "call", "Email": "email_sent", " Inbound Call ": "call", "WEB": "web_visit",
          "Demo": "demo", "Meeting": "meeting"}


def _fm(**kw: object) -> FieldMap:
    return FieldMap.model_validate({"column": ["x"], **kw})


def _both(values: list[str | None]) -> tuple[pd.Series, pa.Array]:
    return pd.Series(values, dtype=object), pa.array(values, type=pa.string())


def _same_map(values: list[str | None], fm: FieldMap) -> None:
    s, arr = _both(values)
    seen_pd, seen_arrow = Unplaced("x"), Unplaced("x")
    expected = apply_value_map(s, fm, seen_pd)
    got = map_values_arrow(arr, fm, seen_arrow)
    assert got.type == pa.string()
    assert got.to_pylist() == expected.tolist()
    assert seen_arrow.counts == seen_pd.counts
    assert seen_arrow.examples() == seen_pd.examples()  # ties in the same order


@pytest.mark.parametrize("default", [None, "outbound"])
def test_value_map_in_arrow_on_odd_values(default: str | None) -> None:
    odd = ["Call", "call", "CALL", "  call", "Inbound Call", "inbound call", "web", "Web ",
           None, "Smoke Signal", "smoke signal", "Smoke Signal", "", "Ünïcode", "ÜNÏCODE",
           "Demo", None, "Carrier Pigeon", "Meeting", "meeting\t"]
    _same_map(odd, _fm(values=VALUES, default=default))


def test_value_map_in_arrow_with_nothing_to_map_or_nothing_placed() -> None:
    _same_map([None, None], _fm(values=VALUES))
    _same_map([], _fm(values=VALUES))
    _same_map(["a", "b", "a", "c", "b"], _fm(values=VALUES))  # none placed: tied counts
    _same_map(["a", None, "b"], _fm())  # no map: as written
    _same_map(["yes", "no"], _fm(values={"yes": True, "no": 0.0}))  # mapped to non-text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.sampled_from(
    ["Call", "call", " Call", "EMAIL", "Web", "WEB", "Other", "other", "x", ""]),
    st.text(max_size=4)), max_size=40), st.sampled_from([None, "meeting"]))
def test_value_map_in_arrow_equals_the_python_one(values: list[str | None],
                                                  default: str | None) -> None:
    _same_map(values, _fm(values=VALUES, default=default))


def test_prefix_in_arrow_keeps_only_the_ids_that_start_with_it() -> None:
    arr = pa.array(["00Q1", None, "0031", "00Q2", "00q3", "x00Q4"], type=pa.string())
    assert prefixed_arrow(arr, "00Q").to_pylist() == ["00Q1", None, None, "00Q2", None, None]


TIMES = [
    ["2024-02-01T10:00:00.000Z", "2024-02-01T10:00:00.123Z", None, "2024-02-29T23:59:59Z"],
    ["2024-02-01T10:00:00+02:00", "2024-02-01 10:00:00-0500", None],
    ["2024-03-15", None, "2024-03-16"],
    ["2024-03-15 09:30", "2024-03-15T09:30:15.5", None],
    ["2024-03-15", "2024-03-15T09:30:00Z", "last tuesday", None],  # mixed and bad
    ["2024-13-45T10:00:00Z", "2024-02-01T10:00:00Z"],  # shaped, but no time
    [None, None],
    [],
]


@pytest.mark.parametrize("values", TIMES)
@pytest.mark.parametrize("fm", [_fm(), _fm(date_only="end"), _fm(timezone="America/New_York"),
                                _fm(timezone="Europe/Berlin", date_only="end"),
                                _fm(format="%Y-%m-%d")],
                         ids=["utc", "end", "new-york", "berlin-end", "format"])
def test_times_in_arrow_equal_the_pandas_ones(values: list[str | None], fm: FieldMap) -> None:
    s, arr = _both(values)
    expected, n_expected = to_utc_text(s, fm, "UTC")
    got, n_got = utc_text_arrow(arr, fm, "UTC")
    assert got.to_pylist() == expected.tolist()
    assert n_got == n_expected


def test_times_in_arrow_use_the_mapping_s_default_time_zone() -> None:
    s, arr = _both(["2024-07-01 09:00", None, "2024-01-15"])
    expected, n_expected = to_utc_text(s, _fm(), "Europe/Paris")
    got, n_got = utc_text_arrow(arr, _fm(), "Europe/Paris")
    assert (got.to_pylist(), n_got) == (expected.tolist(), n_expected)
    assert got.to_pylist()[0] == "2024-07-01T07:00:00Z"


ISO_SHAPED = ["2024-03-01T09:15:00.000Z", "2024-03-01 09:15:00.123Z", "2024-03-01T09:15:00Z",
              "1999-12-31 23:59:59Z"]
NOT_QUITE = ["2024-03-01T09:15:00.000+", "2024-03-01X09:15:00.000Z", "2024-03-01T09:15:0a.000Z",
             "2024/03/01T09:15:00.000Z", "2024-03-01T09:15:00,000Z", "2024-03-01T09:15:00.0000",
             "2024-03-01T09:15:00.00Z ", "2024-03-01T09:15:00.00+01:00", "2024-٠3-01T09:15:00Z",
             "2024-03-01T09:15:00z", "2024-03-01T09:1500.000Z"]


@pytest.mark.parametrize("odd", NOT_QUITE)
def test_times_of_one_shape_are_told_from_the_pattern_as_the_pattern_tells_them(
        odd: str) -> None:
    """The byte-by-byte check of columns of one ISO shape agrees with ``ISO_AWARE`` on a
    column of such times with one value that is almost, or not, of that shape."""
    from features.mapping.values import ISO_AWARE, _all_iso_aware

    for column in (ISO_SHAPED, [*ISO_SHAPED[:1] * 3, odd], [odd] * 4, [ISO_SHAPED[2], odd],
                   [odd, *ISO_SHAPED[:2]]):
        arr = pa.array(column, type=pa.string())
        expected = bool(pc.all(pc.match_substring_regex(arr, ISO_AWARE)).as_py())
        assert _all_iso_aware(arr) is expected, column
        sliced = pa.array(["x", *column], type=pa.string()).slice(1)  # an offset into buffers
        assert _all_iso_aware(sliced) is expected, column
