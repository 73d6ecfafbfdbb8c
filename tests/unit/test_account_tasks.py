"""The post-purchase tasks on crafted accounts: contracts, snapshots, labels, features."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features import contracts
from features.build import build_features
from features.sets import ACCOUNT_EXPANSION_V1, ACCOUNT_RENEWAL_V1
from features.snapshots import RENEWAL_WINDOW_DAYS, expansion_snapshots, renewal_snapshots
from tests.unit.test_features_crafted import crm, day

TERM = contracts.TERM_DAYS


def won(opp_id: str, closed: float, account: str = "A1", product: str = "professional",
        amount: float = 10_000.0, created: float | None = None) -> dict[str, Any]:
    return {
        "opportunity_id": opp_id, "account_id": account, "owner_id": "U1",
        "created_at": day(created if created is not None else closed - 30), "product": product,
        "amount": amount, "closed_at": day(closed), "is_won": True,
    }


def renewal(opp_id: str, created: float, closed: float | None = None, is_won: bool | None = None,
            account: str = "A1") -> dict[str, Any]:
    return {
        "opportunity_id": opp_id, "account_id": account, "owner_id": "U1",
        "created_at": day(created), "product": "renewal", "amount": 10_000.0,
        "closed_at": None if closed is None else day(closed), "is_won": is_won,
    }


def by_account(snaps: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(k): g.reset_index(drop=True) for k, g in snaps.groupby("account_id")}


def test_renewal_won_lost_and_open_at_the_data_end() -> None:
    # A1 renews (won), A2's renewal is lost; both terms start on day 0, due on day 365.
    tables = crm([], opps=[
        won("W1", 0), renewal("R1", TERM - 40, TERM + 10, True),
        won("W2", 0, account="A2"), renewal("R2", TERM - 40, TERM - 5, False, account="A2"),
    ])
    snaps = by_account(renewal_snapshots(tables, data_end=day(TERM + 100)))
    first = day(TERM - RENEWAL_WINDOW_DAYS) + pd.Timedelta(minutes=1)
    a1, a2 = snaps["A1"], snaps["A2"]
    assert a1["as_of"].iloc[0] == first
    # Weekly until the renewal closes.
    assert a1["as_of"].max() < day(TERM + 10) <= a1["as_of"].max() + pd.Timedelta(days=7)
    assert a1["label"].eq(True).all()
    assert a2["as_of"].max() < day(TERM - 5) and a2["label"].eq(False).all()
    # The renewal won on day 375 starts a term of its own, due a year later: past this
    # data's end, so no snapshot of it yet.
    assert len(a1) == int(np.ceil((RENEWAL_WINDOW_DAYS + 10) / 7))


def test_an_open_renewal_at_the_data_end_is_unlabelled_not_negative() -> None:
    tables = crm([], opps=[won("W1", 0), renewal("R1", TERM - 40)])
    snaps = renewal_snapshots(tables, data_end=day(TERM + 30))
    assert len(snaps) and snaps["label"].isna().all()
    # Seen before it closed, the same renewal is unknown too: only what is known counts.
    tables = crm([], opps=[won("W1", 0), renewal("R1", TERM - 40, TERM + 10, True)])
    assert renewal_snapshots(tables, data_end=day(TERM + 5))["label"].isna().all()


def test_no_renewal_deal_within_the_grace_is_a_lost_renewal_once_the_grace_is_over() -> None:
    tables = crm([], opps=[won("W1", 0)])
    late = renewal_snapshots(tables, data_end=day(TERM + contracts.GRACE_DAYS + 1))
    assert late["label"].eq(False).all()
    assert late["as_of"].max() < day(TERM + contracts.GRACE_DAYS)
    early = renewal_snapshots(tables, data_end=day(TERM + contracts.GRACE_DAYS - 1))
    assert early["label"].isna().all()


def test_renewal_deals_match_terms_in_creation_order() -> None:
    # Two terms a quarter apart; the first renewal deal belongs to the first term.
    tables = crm([], opps=[
        won("W1", 0), won("W2", 90), renewal("R1", TERM - 30, TERM, False),
        renewal("R2", TERM + 60, TERM + 80, True),
    ])
    c = contracts.read_contracts(tables, tables.accounts["account_id"])
    deals = tables.opportunities["opportunity_id"].to_numpy()
    # The won renewal R2 is a term of its own, with no renewal yet.
    assert [deals[r] if r >= 0 else None for r in c.renewal] == ["R1", "R2", None]
    # Per (account, as_of) the term due first: the first renewal's snapshots end at its
    # loss, then the second term's take over, labelled by its renewal.
    snaps = renewal_snapshots(tables, data_end=day(TERM + 200))
    before = snaps.loc[snaps["as_of"] < day(TERM)]
    after = snaps.loc[snaps["as_of"] > day(TERM)]
    assert before["label"].eq(False).all() and after["label"].eq(True).all()
    assert not snaps.duplicated(["account_id", "as_of"]).any()


def test_a_won_expansion_adds_to_the_contract_without_a_term_of_its_own() -> None:
    tables = crm([], opps=[won("W1", 0), won("E1", 100, product="expansion")])
    c = contracts.read_contracts(tables, tables.accounts["account_id"])
    deals = tables.opportunities["opportunity_id"].to_numpy()
    assert [deals[d] for d in c.deal] == ["W1"]


def test_expansion_snapshots_monthly_while_a_customer_with_a_90_day_label() -> None:
    tables = crm([], opps=[
        won("W1", 0),
        {**renewal("E1", 200), "product": "expansion"},
    ])
    snaps = expansion_snapshots(tables, data_end=day(TERM + contracts.GRACE_DAYS + 200))
    assert snaps["as_of"].iloc[0] == day(0) + pd.Timedelta(minutes=1)
    gaps = snaps["as_of"].diff().dropna().unique()
    assert list(gaps) == [pd.Timedelta(days=30)]
    # No renewal: the customer is gone once the grace after its due date is over.
    assert snaps["as_of"].max() < day(TERM + contracts.GRACE_DAYS)
    days = ((snaps["as_of"] - day(0)) / pd.Timedelta(days=1)).round().astype(int)
    expected = (days < 200) & (days + 90 >= 200)
    assert snaps["label"].astype(bool).tolist() == expected.tolist()


def test_expansion_label_is_unknown_when_its_horizon_runs_past_the_data_end() -> None:
    tables = crm([], opps=[won("W1", 0)])
    snaps = expansion_snapshots(tables, data_end=day(100))
    days = ((snaps["as_of"] - day(0)) / pd.Timedelta(days=1)).round().astype(int)
    assert snaps.loc[days + 90 > 100, "label"].isna().all()
    assert snaps.loc[days + 90 <= 100, "label"].eq(False).all()


def _signal(i: int, when: float, signal: str, value: float) -> dict[str, Any]:
    return {"signal_id": f"S{i}", "account_id": "A1", "observed_at": day(when),
            "signal": signal, "value": value}


def test_account_features_read_only_what_came_before_t() -> None:
    from features.schema import ACCOUNT_SIGNALS, coerce_dtypes

    base = crm(
        [],
        # The deal's row says 99,000 (edited after the sale): its history says 12,000.
        opps=[won("W1", 0, amount=99_000.0), renewal("R1", TERM - 40)],
        hist=[{"opportunity_id": "W1", "changed_at": day(-30), "stage": "prospecting",
               "amount": 9_000.0, "close_date": day(0)},
              {"opportunity_id": "W1", "changed_at": day(0), "stage": "closed_won",
               "amount": 12_000.0, "close_date": day(0)},
              {"opportunity_id": "R1", "changed_at": day(TERM - 40), "stage": "proposal",
               "amount": 12_000.0, "close_date": day(TERM)}],
        acts=[{"occurred_at": day(300), "account_id": "A1", "type": "meeting",
               "direction": "outbound", "contact_id": "C1"}],
    )
    signals = [_signal(i, 250 + 7 * i, "active_users", 40 - i) for i in range(10)]
    signals += [_signal(50, 320, "ticket_opened", 4), _signal(51, 330, "nps", 3)]
    frame = pd.DataFrame(signals)
    for col in ACCOUNT_SIGNALS.column_names:
        if col not in frame:
            frame[col] = None
    tables = base.__class__(**{**base.__dict__,
                               "account_signals": coerce_dtypes(frame, ACCOUNT_SIGNALS)})
    snaps = pd.DataFrame({"account_id": pd.array(["A1", "A1"], dtype="string"),
                          "as_of": pd.DatetimeIndex([day(310), day(340)])})
    f = build_features(tables, snaps, ACCOUNT_RENEWAL_V1).set_index("as_of")
    at, later = f.loc[day(310)], f.loc[day(340)]
    assert at["days_to_renewal"] == TERM - 310 and at["active_contracts"] == 1
    assert at["contract_value"] == 12_000.0 and at["tenure_days"] == 310
    assert pd.isna(at["renewal_stage"])  # the renewal deal opens on day 325
    assert later["renewal_stage"] == "proposal"
    assert at["tickets_90d"] == 0 and later["tickets_90d"] == 1
    assert later["severe_tickets_90d"] == 1
    assert pd.isna(at["nps_last"]) and later["nps_last"] == 3
    # Active users fell from 40 to 31 over ten weeks: the last week before day 310 is the
    # ninth reading (day 306, value 32).
    assert at["active_users_last"] == 32
    assert at["active_users_trend"] < 0
    assert at["meeting_90d"] == 1 and at["contacts_engaged"] == 1
    e = build_features(tables, snaps, ACCOUNT_EXPANSION_V1)
    assert list(e.columns[2:]) == ACCOUNT_EXPANSION_V1.names


def test_an_expansion_inside_a_horizon_cut_by_the_data_end_is_still_unknown() -> None:
    """Keeping such early positives, and not their negatives, would skew the last weeks."""
    tables = crm([], opps=[won("W1", 0), {**renewal("E1", 60), "product": "expansion"}])
    snaps = expansion_snapshots(tables, data_end=day(100))
    days = ((snaps["as_of"] - day(0)) / pd.Timedelta(days=1)).round().astype(int)
    assert snaps.loc[days + 90 > 100, "label"].isna().all()
    assert snaps.loc[days + 90 <= 100, "label"].eq(True).all()


def test_a_won_deal_without_any_history_is_read_at_its_own_amount() -> None:
    """What a request that sends only the deal gives; with history, the history wins."""
    tables = crm([], opps=[won("W1", 0, amount=7_000.0)])
    c = contracts.read_contracts(tables, tables.accounts["account_id"])
    assert c.amount.tolist() == [7_000.0]
