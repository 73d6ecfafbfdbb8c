"""One column's conversion: time zones, date-only values, formats, value maps, numbers."""

from __future__ import annotations

import pandas as pd

from features.mapping.spec import Currency, FieldMap
from features.mapping.values import (
    Unplaced,
    apply_value_map,
    clean_text,
    sequence_times,
    to_number_text,
    to_utc_text,
)


def _fm(**kw: object) -> FieldMap:
    return FieldMap.model_validate({"column": ["x"], **kw})


def _s(*values: object) -> pd.Series:
    return pd.Series(list(values), dtype=object)


def test_times_without_an_offset_are_in_the_mapping_s_time_zone() -> None:
    out, dates = to_utc_text(_s("2024-07-01 09:00", "2024-01-15T09:00:00", None),
                             _fm(), "Europe/Paris")
    assert out.tolist() == ["2024-07-01T07:00:00Z", "2024-01-15T08:00:00Z", None]
    assert dates == 0


def test_a_date_alone_is_the_start_or_the_end_of_its_day() -> None:
    start, n = to_utc_text(_s("2024-03-15"), _fm(), "UTC")
    end, _ = to_utc_text(_s("2024-03-15"), _fm(date_only="end"), "UTC")
    assert (start.tolist(), end.tolist(), n) == (
        ["2024-03-15T00:00:00Z"], ["2024-03-15T23:59:59Z"], 1)
    ny, _ = to_utc_text(_s("2024-03-15"), _fm(timezone="America/New_York"), "UTC")
    assert ny.tolist() == ["2024-03-15T04:00:00Z"]


def test_a_format_reads_a_report_s_dates_and_a_bad_value_is_kept_as_written() -> None:
    out, n = to_utc_text(_s("3/1/2017", "13/45/2017"), _fm(format="%m/%d/%Y"), "UTC")
    assert out.tolist() == ["2017-03-01T00:00:00Z", "13/45/2017"]
    assert n == 1


def test_a_time_in_a_daylight_saving_gap_is_moved_forward_not_lost() -> None:
    out, _ = to_utc_text(_s("2024-03-31 02:30"), _fm(), "Europe/Berlin")
    assert out.tolist() == ["2024-03-31T01:00:00Z"]


def test_offsets_are_kept_and_mixed_with_naive_values() -> None:
    out, _ = to_utc_text(_s("2024-01-20T09:00:00+02:00", "2024-01-20 09:00"), _fm(), "UTC")
    assert pd.to_datetime(out, utc=True, format="ISO8601").tolist() == [
        pd.Timestamp("2024-01-20T07:00:00Z"), pd.Timestamp("2024-01-20T09:00:00Z")]


def test_value_map_exact_then_ignoring_case_and_the_rest_counted() -> None:
    seen = Unplaced("not in the value map")
    out = apply_value_map(_s("Won", "won ", "LOST", "Maybe", None, "Maybe"),
                          _fm(values={"Won": "closed_won", "lost": "closed_lost"}), seen)
    assert out.tolist() == ["closed_won", "closed_won", "closed_lost", "Maybe", None, "Maybe"]
    assert seen.examples() == [("Maybe", 2)]
    dflt = apply_value_map(_s("Maybe"), _fm(values={"Won": True}, default="other"),
                           Unplaced("x"))
    assert dflt.tolist() == ["other"]


def test_clean_text_trims_and_empties() -> None:
    assert clean_text(_s(" a ", "", "   ", None, "b")).tolist() == ["a", None, None, None, "b"]


def test_numbers_scaled_and_converted_and_a_missing_rate_kept_visible() -> None:
    seen = Unplaced("currency without a rate")
    cur = Currency.model_validate({"column": ["c"], "rates": {"EUR": 1.1}})
    out = to_number_text(_s("USD 1,000.50", "100", "7", "x"), _fm(currency=True), cur,
                         _s("USD", "EUR", "JPY", "USD"), seen)
    assert out.tolist() == ["1000.5", repr(100 * 1.1), "7 JPY", "x"]
    assert seen.examples() == [("JPY", 1)]
    scaled = to_number_text(_s("2.5"), _fm(scale=1e6), Currency(), None, Unplaced("y"))
    assert scaled.tolist() == ["2500000.0"]


def test_sequence_times_follow_the_order_not_the_file() -> None:
    out = sequence_times(_s("30", "10", "20"), "2020-01-01", "1h")
    assert out.tolist() == ["2020-01-01T02:00:00Z", "2020-01-01T00:00:00Z",
                            "2020-01-01T01:00:00Z"]


def test_one_currency_for_the_whole_export() -> None:
    cur = Currency.model_validate({"code": "EUR", "rates": {"EUR": 1.1}})
    out = to_number_text(_s("100", None), _fm(currency=True), cur, None, Unplaced("x"))
    assert out.tolist() == [repr(100 * 1.1), None]
