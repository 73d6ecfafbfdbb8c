"""What a rep could do next: the catalogue of actions a what-if re-scores.

Each action is a row a CRM would record once the rep has done it: an activity (a meeting
booked, a reply, a demo, a second contact writing back) or, for a deal, a stage move (the
proposal sent). Scoring the request with that row added, through the same model, tells
what the action would do to the score; nothing here touches firmographics (industry,
size, source, seniority), which no rep can change.

Actions are declared once here and read by ``serving.what_if``. "Add a decision maker" is
not among them: the contract's activities do not say who a contact is, so no row could
state it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from features.schema import OPEN_STAGES

_PROPOSAL = OPEN_STAGES.index("proposal")
"""Stage codes follow the open stages in order (``features.build``): below this, a deal
has not reached the proposal."""


def _anyone(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    first = next(iter(columns.values()))
    return np.ones(len(first), dtype=bool)


def _has_a_contact(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    engaged = columns.get("contacts_engaged")
    if engaged is None:
        return np.zeros(len(next(iter(columns.values()))), dtype=bool)
    return np.asarray(engaged >= 1, dtype=bool)


def _before_proposal(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    stage = columns.get("stage")
    if stage is None:  # a lead: no stage to be past
        return _anyone(columns)
    return np.asarray((stage >= 0) & (stage < _PROPOSAL), dtype=bool)


def _proposal_next(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """A deal in the stage just before the proposal (a prospect is not sent one)."""
    stage = columns.get("stage")
    if stage is None:
        return np.zeros(len(next(iter(columns.values()))), dtype=bool)
    return np.asarray(stage == _PROPOSAL - 1, dtype=bool)


@dataclass(frozen=True)
class Action:
    """One next step and the row that records it."""

    name: str
    text: str
    """What the rep reads: "book a meeting"."""
    entities: tuple[str, ...]
    """The entity keys it applies to (``lead_id``, ``opportunity_id``, ``account_id``)."""
    applies: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    """Per row of an entity's feature columns (as scored now), whether the action makes
    sense for it: a second contact needs a first; a proposal, a deal not yet there."""
    activity: tuple[str, str] | None = None
    """(type, direction) of the activity it records."""
    new_contact: bool = False
    """The activity is with a contact not seen before."""
    stage: str | None = None
    """The stage a deal moves to."""
    extends: str | None = None
    """The action this one does more than (a second contact's reply is a reply): listed
    only when it raises the score beyond that one's."""


ALL = ("lead_id", "opportunity_id", "account_id")

ACTIONS: tuple[Action, ...] = (
    Action("book_meeting", "book a meeting", ALL, _anyone, activity=("meeting", "outbound")),
    Action("get_reply", "get a reply to an email", ALL, _anyone,
           activity=("email_replied", "inbound")),
    Action("engage_second_contact", "engage a second contact (a reply from someone new)",
           ALL, _has_a_contact, activity=("email_replied", "inbound"), new_contact=True,
           extends="get_reply"),
    Action("run_demo", "run a demo", ("lead_id", "opportunity_id"), _before_proposal,
           activity=("demo", "outbound")),
    Action("send_proposal", "send the proposal (move the deal to proposal)",
           ("opportunity_id",), _proposal_next, stage="proposal"),
)
"""The catalogue, in the order ties are listed."""


def actions_for(entity_key: str) -> tuple[Action, ...]:
    return tuple(a for a in ACTIONS if entity_key in a.entities)
