"""How old the data behind a score is: the newest event of a request, the warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from serving.schemas import (
    AccountDealIn,
    ActivityIn,
    CustomerAccountIn,
    DealIn,
    HistoryIn,
    LeadIn,
    SignalIn,
)
from serving.settings import get_scoring_settings
from serving.staleness import (
    add_stale_warnings,
    as_of_after,
    as_of_line,
    newest_event,
    past_data_warning,
    stale_warning,
)

T0 = datetime(2025, 10, 1, 12, tzinfo=UTC)
LATER = T0 + timedelta(days=365)


def _activity(ident: str, days: int) -> ActivityIn:
    return ActivityIn(activity_id=ident, occurred_at=T0 + timedelta(days=days), type="call",
                      direction="outbound")


def test_newest_event_of_a_lead_is_its_latest_activity_or_its_creation() -> None:
    lead = LeadIn(lead_id="L1", created_at=T0, activities=[_activity("a1", 5), _activity("a2", 3)])
    assert newest_event(lead, LATER) == T0 + timedelta(days=5)
    assert newest_event(LeadIn(lead_id="L2", created_at=T0), LATER) == T0


def test_newest_event_of_a_deal_reads_history_and_not_the_planned_close_date() -> None:
    far = T0 + timedelta(days=90)
    deal = DealIn(
        opportunity_id="O1", account_id="A1", owner_id="U1", created_at=T0, close_date=far,
        history=[HistoryIn(changed_at=T0 + timedelta(days=9), stage="proposal", close_date=far)],
        activities=[_activity("a1", 2)],
    )
    assert newest_event(deal, LATER) == T0 + timedelta(days=9)


def test_what_is_dated_after_now_has_not_happened() -> None:
    lead = LeadIn(lead_id="L1", created_at=T0, qualified_at=T0 + timedelta(days=50),
                  activities=[_activity("a1", 5), _activity("a2", 40)])
    assert newest_event(lead, LATER) == T0 + timedelta(days=50)
    assert newest_event(lead, T0 + timedelta(days=20)) == T0 + timedelta(days=5)


def test_newest_event_of_an_account_reads_signals_and_its_deals() -> None:
    account = CustomerAccountIn(
        account_id="A1", created_at=T0,
        deals=[AccountDealIn(opportunity_id="O1", created_at=T0 + timedelta(days=1),
                             closed_at=T0 + timedelta(days=20), is_won=True)],
        signals=[SignalIn(signal_id="s1", observed_at=T0 + timedelta(days=12),
                          signal="active_users", value=3)],
    )
    assert newest_event(account, LATER) == T0 + timedelta(days=20)  # the won deal's close
    account.signals.append(SignalIn(signal_id="s2", observed_at=T0 + timedelta(days=31),
                                    signal="logins", value=30))
    assert newest_event(account, LATER) == T0 + timedelta(days=31)


@pytest.mark.parametrize(("age_days", "days", "warned"), [
    (31, 30, True), (30, 30, False), (3, 30, False), (400, 0, False), (61, 60, True),
])
def test_stale_warning_past_the_threshold_only(age_days: int, days: int, warned: bool) -> None:
    line = stale_warning(T0, T0 + timedelta(days=age_days), days)
    assert (line is not None) == warned
    if line is not None:
        assert line.startswith(f"the newest event sent is {age_days} days old (2025-10-01): ")
        assert "silence" in line and "send it" in line


def test_add_stale_warnings_appends_to_each_stale_entity_only() -> None:
    class Result:
        def __init__(self) -> None:
            self.warnings = ["not known: timeline"]

    old = LeadIn(lead_id="L1", created_at=T0)
    fresh = LeadIn(lead_id="L2", created_at=T0, activities=[_activity("a1", 40)])
    results = [Result(), Result()]
    add_stale_warnings([old, fresh], results, T0 + timedelta(days=45), 30)
    assert results[0].warnings[0] == "not known: timeline"
    assert results[0].warnings[1].startswith("the newest event sent is 45 days old")
    assert results[1].warnings == ["not known: timeline"]


def test_a_file_is_scored_just_after_its_newest_event() -> None:
    end = pd.Timestamp("2025-12-31T23:51:43Z")
    assert as_of_after(end) == pd.Timestamp("2025-12-31T23:52:43Z")
    line = as_of_line(as_of_after(end), end, default=True)
    assert line.startswith("as of 2025-12-31 23:52:43 UTC: just after the newest event")
    assert "(--as-of)" in as_of_line(end + pd.Timedelta(days=3), end, default=False)


def test_an_as_of_far_past_the_data_warns() -> None:
    end = pd.Timestamp("2025-12-31T23:51:43Z")
    assert past_data_warning(end + pd.Timedelta(days=30), end, 30) is None
    line = past_data_warning(pd.Timestamp("2026-12-01T00:00Z"), end, 30)
    assert line is not None and "334 days after the newest event in the data (2025-12-31)" in line
    assert past_data_warning(pd.Timestamp("2026-12-01T00:00Z"), end, 0) is None


def test_the_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_scoring_settings().stale_data_days == 30
    monkeypatch.setenv("LEADSCORE_STALE_DATA_DAYS", "90")
    assert get_scoring_settings().stale_data_days == 90
    monkeypatch.setenv("LEADSCORE_STALE_DATA_DAYS", "-1")
    with pytest.raises(ValueError, match="stale_data_days"):
        get_scoring_settings()
