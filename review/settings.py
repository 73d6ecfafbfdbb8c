"""Settings of ``leadscore pipeline`` (and of a server showing the review): scoring's own
settings (where the deal model is, grades, risk rules, trend) plus the review's, read from
``LEADSCORE_*`` variables and built by :func:`get_review_settings`, never at import."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from review.periods import PeriodKind, check_kind
from review.render import PAGE_DEALS
from serving.settings import ScoringSettings


class ReviewSettings(ScoringSettings):
    review_period: str = "month"
    """month or quarter (``LEADSCORE_REVIEW_PERIOD``)."""
    review_target: float | None = Field(None, gt=0)
    """The period's bookings target, for the coverage; none: no coverage."""
    review_history_periods: int = Field(3, ge=0, le=36)
    """Periods shown before the one holding the date."""
    review_page_deals: int = Field(PAGE_DEALS, ge=1)
    """Most deals the page's at-risk table lists: those with money at risk, most first (the
    CSV and JSON hold every open deal)."""

    @field_validator("review_period")
    @classmethod
    def _known_period(cls, value: str) -> str:
        return check_kind(value)

    @property
    def period(self) -> PeriodKind:
        return check_kind(self.review_period)


def get_review_settings(**overrides: Any) -> ReviewSettings:
    """The review's settings from the environment, with explicit overrides on top (None
    values are left to the environment)."""
    return ReviewSettings(**{k: v for k, v in overrides.items() if v is not None})
