"""The review's forecast section: bookings of this and the next period from the
``forecast`` package, with the served deal model and the time-to-close model logged in
the same training run (``modeling.registry.load_time_to_close``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from features.schema import CRMTables
from forecast.core import PastError, TimeModel, errors_from_json, forecast
from review.schemas import Review
from serving.models import LoadedModel


class ForecastSection(BaseModel):
    """What the page and ``review.json`` show of the forecast."""

    current: dict[str, Any] = Field(description="the period holding the as-of: bookings "
                                    "P10/P50/P90, closed won so far, the weighted pipelines")
    next: dict[str, Any] = Field(description="the period after it, the same figures")
    draws: int
    seed: int
    spread: float = Field(description="the common error of past periods the range carries")
    spread_from: str = Field("none", description="whose errors it was measured on: "
                             "'backtest' (the last backtest's, out of sample), 'same models' "
                             "(the served models' on the periods before, in sample) or 'none'")
    errors_used: int = Field(0, description="past periods the common error rests on")


def time_model_for(model: LoadedModel, tracking_uri: str | None) -> TimeModel | None:
    """The time-to-close model logged beside a registered deal model; None for a model
    from a folder or from no registry run, or a run that logged none."""
    if model.run_id is None or not model.version or model.version == "file":
        return None
    from modeling.registry import load_time_to_close

    try:
        return load_time_to_close("deal_close", alias=None, version=model.version,
                                  tracking_uri=tracking_uri)
    except LookupError:
        return None


NO_TIME_MODEL = ("no forecast: the deal model has no time-to-close model logged beside it (a "
                 "registered deal_close version trained on the CRM's tables logs one)")


def backtest_errors(saved: dict[str, Any] | None, period: str,
                    data: Path | None) -> list[PastError] | None:
    """Our out-of-sample errors in the last backtest, when it backtested these periods
    of this data folder; None otherwise (the range then rests on the served models'
    errors on the periods before, in sample)."""
    if not saved or saved.get("period_kind") != period:
        return None
    if data is None or not saved.get("data") or Path(saved["data"]) != data.resolve():
        return None
    return errors_from_json(saved) or None


def attach_forecast(review: Review, tables: CRMTables, model: LoadedModel,
                    tracking_uri: str | None, backtest: dict[str, Any] | None = None,
                    data: Path | None = None) -> None:
    """Fill ``review.forecast``, or say in its warnings why it is not computed; its range
    rests on the errors of ``backtest`` (the last one's) when it backtested ``data``."""
    time_model = time_model_for(model, tracking_uri)
    if time_model is None:
        review.warnings.append(NO_TIME_MODEL)
        return
    review.forecast = forecast_section(tables, pd.Timestamp(review.as_of), review.period_kind,
                                       model, time_model,
                                       errors=backtest_errors(backtest, review.period_kind, data))


def forecast_section(tables: CRMTables, as_of: pd.Timestamp, period: str,
                     model: LoadedModel, time_model: TimeModel, seed: int = 0,
                     errors: list[PastError] | None = None) -> ForecastSection:
    """The forecast as of the review's time, for the review's period kind."""
    f = forecast(tables, as_of, period, model.model, time_model, seed=seed,
                 errors=errors).to_json()
    return ForecastSection(current=f["current"], next=f["next"], draws=int(f["draws"]),
                           seed=int(f["seed"]), spread=float(f["spread"]),
                           spread_from=str(f["spread_from"]),
                           errors_used=len(f["past_errors"]))
