"""The API's enums are the data contract's: a stage or activity type added to one is in both."""

from __future__ import annotations

from typing import get_args

from features import schema
from serving import schemas


def test_activity_types_and_directions_match_the_contract() -> None:
    assert set(get_args(schemas.ActivityType)) == set(schema.ACTIVITY_TYPES)
    assert set(get_args(schemas.Direction)) == set(schema.DIRECTIONS)


def test_stages_match_the_contract() -> None:
    assert set(get_args(schemas.Stage)) == set(schema.STAGES)


def test_signals_match_the_contract() -> None:
    assert set(get_args(schemas.SignalType)) == set(schema.SIGNALS)
