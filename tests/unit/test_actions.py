"""The what-if catalogue: every action records a row the contract can hold."""

from __future__ import annotations

import numpy as np

from features.actions import ACTIONS, actions_for
from features.schema import ACTIVITY_TYPES, DIRECTIONS, OPEN_STAGES


def test_each_action_records_one_valid_row_and_names_what_it_extends() -> None:
    names = [a.name for a in ACTIONS]
    assert len(set(names)) == len(names)
    for i, action in enumerate(ACTIONS):
        assert (action.activity is None) != (action.stage is None), action.name
        if action.activity is not None:
            kind, direction = action.activity
            assert kind in ACTIVITY_TYPES and direction in DIRECTIONS
        if action.stage is not None:
            assert action.stage in OPEN_STAGES and action.entities == ("opportunity_id",)
        if action.extends is not None:  # evaluated first, so its score is known
            assert action.extends in names[:i]
        assert action.text and "_" not in action.text


def test_which_deals_an_action_applies_to() -> None:
    stage = np.array([OPEN_STAGES.index(s) for s in OPEN_STAGES] + [-1])
    columns = {"stage": stage, "contacts_engaged": np.array([0, 1, 2, 0, 3, 1])}
    by_name = {a.name: a.applies(columns).tolist() for a in actions_for("opportunity_id")}
    assert by_name["send_proposal"] == [False, False, True, False, False, False]
    assert by_name["run_demo"] == [True, True, True, False, False, False]
    assert by_name["engage_second_contact"] == [False, True, True, False, True, True]
    assert {a.name for a in actions_for("account_id")} == {
        "book_meeting", "get_reply", "engage_second_contact"}
