"""One entity's rows, as a serving request carries them, and its features through them.

Test helpers for the parity tests: serving sees only these rows, training the whole CRM.
"""

from __future__ import annotations

import pandas as pd

from features.build import build_features
from features.declarations import FeatureSet
from features.schema import CRMTables


def _isin(frame: pd.DataFrame, column: str, values: pd.Series | list[str]) -> pd.Series:
    wanted = set(pd.Series(values, dtype=object).dropna())
    return frame[column].isin(wanted) & frame[column].notna()


def _rows_of(history: pd.DataFrame, column: str, ids: pd.Series) -> pd.DataFrame:
    """The field changes of these records (their history, as a request would carry it)."""
    return history.loc[_isin(history, column, ids)]


def entity_tables(tables: CRMTables, feature_set: FeatureSet, entity_id: str) -> CRMTables:
    """Only the rows one entity's features read: what a serving request has to supply.

    For a lead: its row and field changes, its account, the activities of the lead or its
    account, and the account's deals. For a deal: its row, history and field changes, its
    account and lead (with the lead's changes), the activities of the deal or its account,
    and the deals of its owner and of its account.
    """
    key = feature_set.entity_key
    if key == "lead_id":
        lead = tables.leads.loc[tables.leads["lead_id"] == entity_id]
        account_ids = lead["account_id"]
        opps = tables.opportunities.loc[_isin(tables.opportunities, "account_id", account_ids)]
        acts = tables.activities
        own = (acts["lead_id"] == entity_id).fillna(False)
        acts = acts.loc[own | _isin(acts, "account_id", account_ids)]
        return CRMTables(
            accounts=tables.accounts.loc[_isin(tables.accounts, "account_id", account_ids)],
            leads=lead,
            opportunities=opps,
            opportunity_history=tables.opportunity_history.iloc[0:0],
            activities=acts,
            lead_field_history=_rows_of(tables.lead_field_history, "lead_id", lead["lead_id"]),
        )
    if key == "opportunity_id":
        opps = tables.opportunities
        deal = opps.loc[opps["opportunity_id"] == entity_id]
        account_ids, owner_ids = deal["account_id"], deal["owner_id"]
        related = opps.loc[
            _isin(opps, "account_id", account_ids) | _isin(opps, "owner_id", owner_ids)
        ]
        hist = tables.opportunity_history
        acts = tables.activities
        own = (acts["opportunity_id"] == entity_id).fillna(False)
        acts = acts.loc[own | _isin(acts, "account_id", account_ids)]
        return CRMTables(
            accounts=tables.accounts.loc[_isin(tables.accounts, "account_id", account_ids)],
            leads=tables.leads.loc[_isin(tables.leads, "lead_id", deal["lead_id"])],
            opportunities=related,
            opportunity_history=hist.loc[hist["opportunity_id"] == entity_id],
            activities=acts,
            lead_field_history=_rows_of(tables.lead_field_history, "lead_id", deal["lead_id"]),
            opportunity_field_history=_rows_of(tables.opportunity_field_history,
                                               "opportunity_id", deal["opportunity_id"]),
        )
    raise ValueError(f"no features for entity key {key!r}")


def features_at(
    tables: CRMTables, feature_set: FeatureSet, entity_id: str, as_of: pd.Timestamp
) -> pd.DataFrame:
    """One entity's features at one time (serving: ``as_of`` = now), through ``build_features``.

    ``tables`` may hold the whole CRM or only the entity's own rows (see ``entity_tables``);
    the result is the same.
    """
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    snapshot = pd.DataFrame(
        {
            feature_set.entity_key: pd.array([entity_id], dtype="string"),
            "as_of": pd.DatetimeIndex([stamp]).astype("datetime64[ns, UTC]"),
        }
    )
    return build_features(tables, snapshot, feature_set)
