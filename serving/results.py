"""Scores -> what a rep reads: probability, 0-100 score, grade and percentile, reasons,
risk and warnings."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, TypeAdapter

from features.reasons import Values
from features.snapshots import RENEWAL_WINDOW_DAYS
from modeling.grading import Grading, fixed_grading, to_score, to_scores
from serving.explain import (
    Explainer,
    Factor,
    context_warning,
    explainer,
    not_known,
    unseen_features,
    unseen_warning,
)
from serving.models import LoadedModel
from serving.risk import (
    Flag,
    RiskRules,
    flagged_features,
    renewal_flags,
    risk_flags,
    risk_level,
)
from serving.schemas import (
    DealResult,
    ExpansionResult,
    LeadResult,
    ModelRef,
    Reasons,
    RenewalResult,
    Risk,
    RiskFlag,
    Trend,
    TrendDirection,
)
from serving.scoring import TREND_DAYS, Scored
from serving.settings import ScoringSettings

ResultT = TypeVar("ResultT", bound=BaseModel)


def grading(model: LoadedModel, settings: ScoringSettings) -> Grading:
    """The cut-offs and reference learned with the model; a model saved before they were
    learned gets the settings' fixed cut-offs (``LEADSCORE_GRADE_CUTOFFS``) and no
    percentile, which ``/v1/models`` and the load log state."""
    learned: Grading | None = getattr(model.model, "grading", None)
    return learned if learned is not None else fixed_grading(settings.grade_cutoffs)


def risk_rules(settings: ScoringSettings) -> RiskRules:
    return RiskRules(
        no_activity_days=settings.risk_no_activity_days,
        probability_ratio=settings.risk_probability_ratio,
        amount_cut_ratio=settings.risk_amount_cut_ratio,
    )


@dataclass(frozen=True)
class _Rows:
    """What every result builder reads of a scored batch: each row's feature values by
    name and, with contributions, each row's topic sums."""

    scored: Scored
    explainer: Explainer
    values: Sequence[Values]
    sums: np.ndarray | None
    known: np.ndarray | None
    """Per row and topic, whether the topic is known (``Explainer.known_rows``; None for
    a few rows, each topic then asked of each row)."""

    @classmethod
    def of(cls, scored: Scored) -> _Rows:
        ex = explainer(scored.feature_set)
        values = scored.feature_values()
        sums = None
        if scored.contributions is not None:
            contributions = scored.contributions
            if any(g.context for g in scored.gaps):
                # What was not known counts for nothing in a topic that stays known.
                contributions = contributions.copy()
                for i, g in enumerate(scored.gaps):
                    contributions[i, ex.masked(g.context.keys())] = 0.0
            sums = ex.sums(contributions)
        return cls(scored, ex, values, sums, ex.known_rows(scored.columns))

    def explained(
        self, exclude_up: Sequence[Collection[str]] | None = None
    ) -> list[tuple[dict[str, list[dict[str, Any]]], list[str]]]:
        """Every row's reasons, as the JSON of :class:`Reasons` (what its
        ``model_dump(mode="json")`` gives), and its warnings: the context its request left
        out, the category values training never saw, then what else is not known, each
        once. ``exclude_up``: per row, the features its risk flags state."""
        scored = self.scored
        n = len(scored.ids)
        ignored = scored.ignored
        values: Sequence[Values] = self.values
        known = self.known
        if ignored:  # a topic that needs a feature the model ignores is not a reason
            values = scored.feature_values(ignored)
            if known is not None:
                known = known & np.array([not any(f in ignored for f in t.needs)
                                          for t in self.explainer.topics])
        gaps = [scored.gap(i) for i in range(n)]
        unseen = [unseen_features(scored.feature_set, g.categories) if g.categories else {}
                  for g in gaps]
        explained = self.explainer.explain_rows(
            self.sums, values, known, [g.context.keys() for g in gaps], exclude_up,
            [u.keys() | ignored if u else ignored for u in unseen])
        names = frozenset(scored.feature_set.names)
        rates = scored.rate_reasons
        out = []
        for g, u, e in zip(gaps, unseen, explained, strict=True):
            warnings = _context_warnings(self.explainer, g.context) if g.context else []
            warnings += [unseen_warning(f, v) for f, v in u.items()]
            unread = [a for a in g.attributes if a not in names]
            if unread:
                warnings.append(f"attributes the model does not read (not features of "
                                f"{scored.feature_set.name}): {', '.join(unread)}")
            line = not_known(e.unknown)
            if line is not None:
                warnings.append(line)
            out.append(({"up": [_reason(f, rates) for f in e.up],
                         "down": [_reason(f, rates) for f in e.down]}, warnings))
        return out


def _reason(f: Factor, rates: tuple[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """The factor as a reason (the JSON of :class:`Reason`); a rate model's rate column
    reads as its rate."""
    text = f.text
    if rates is not None and rates[0] in f.values:
        text = rates[1].get(str(f.values[rates[0]]), text)
    return {"topic": f.topic, "text": text, "actionable": f.actionable,
            "contribution": f.contribution, "features": f.values}


def _context_warnings(ex: Explainer, absent: dict[Any, str]) -> list[str]:
    """One warning per place to send what was left out, with what it would have told."""
    by_where: dict[str, list[str]] = {}
    for part, where in absent.items():
        by_where.setdefault(where, []).extend(ex.context_labels.get(part, []))
    return [context_warning(where, labels) for where, labels in by_where.items() if labels]


def model_ref(model: LoadedModel) -> ModelRef:
    fs = model.model.feature_set
    return ModelRef(name=model.name, version=model.version, feature_set=f"{fs.name}@{fs.version}")


Eligible = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Which rows of feature columns a model scores (a renewal due, an account a customer)."""


def _direction(change: int, steady_points: int) -> TrendDirection:
    if change >= steady_points:
        return "improving"
    if change <= -steady_points:
        return "declining"
    return "steady"


def trends(
    scored: Scored, steady_points: int, eligible: Eligible | None = None
) -> list[dict[str, Any] | None]:
    """Each row's trend from ``scored.earlier``, as the JSON of :class:`Trend` (None for
    every row when not asked for).

    An earlier time counts only where the entity existed then and, with ``eligible``,
    where the model would have scored it then; the change runs from the earliest of them.
    """
    if not scored.earlier:
        return [None] * len(scored.ids)
    earlier = {e.days: e for e in scored.earlier}
    if set(earlier) != set(TREND_DAYS):
        raise ValueError(f"a trend scores {TREND_DAYS} days earlier, not {sorted(earlier)}")
    then: dict[int, list[float | None]] = {}
    for days, e in earlier.items():
        p = e.probabilities if eligible is None else np.where(
            eligible(e.columns), e.probabilities, np.nan)
        then[days] = [None if v != v else float(v) for v in p.tolist()]
    out: list[dict[str, Any] | None] = []
    for i, p in enumerate(scored.probabilities.tolist()):
        p7, p28 = then[7][i], then[28][i]
        s7 = None if p7 is None else to_score(p7)
        s28 = None if p28 is None else to_score(p28)
        first = s28 if s28 is not None else s7
        change = None if first is None else to_score(p) - first
        out.append({
            "score_7d_ago": s7, "score_28d_ago": s28, "probability_7d_ago": p7,
            "probability_28d_ago": p28, "change": change,
            "direction": None if change is None else _direction(change, steady_points),
        })
    return out


def _trend(record: dict[str, Any] | None) -> Trend | None:
    return None if record is None else Trend.model_validate(record)


def lead_records(
    model: LoadedModel, scored: Scored, grading: Grading, steady_points: int = 5
) -> list[dict[str, Any]]:
    """One result per lead, in the order of ``scored.ids``, as the JSON of
    :class:`LeadResult` (what a batch file writes; :func:`lead_results` validates them)."""
    ref = model_ref(model).model_dump()
    explained = _Rows.of(scored).explained()
    trend = trends(scored, steady_points)
    graded = _graded(scored, grading)
    return [{"lead_id": lead_id, **graded[i], "reasons": explained[i][0], "trend": trend[i],
             "what_if": None, "model": ref, "warnings": explained[i][1]}
            for i, lead_id in enumerate(scored.ids)]


def lead_results(
    model: LoadedModel, scored: Scored, grading: Grading, steady_points: int = 5
) -> list[LeadResult]:
    """One result per lead, in the order of ``scored.ids``."""
    return validated(LeadResult, lead_records(model, scored, grading, steady_points))


def deal_records(
    model: LoadedModel,
    scored: Scored,
    amounts: list[float | None],
    grading: Grading,
    rules: RiskRules,
    steady_points: int = 5,
) -> list[dict[str, Any]]:
    """One result per deal, with expected value and risk flags, in order of ``scored.ids``,
    as the JSON of :class:`DealResult`.

    The features a raised flag states are kept out of the deal's reasons for.
    """
    ref = model_ref(model).model_dump()
    metadata = {**model.metadata, **getattr(model.model, "metadata", {})}
    rows = _Rows.of(scored)
    every = _graded(scored, grading)
    flags = [risk_flags(rows.values[i], every[i]["probability"], metadata, rules)
             for i in range(len(scored.ids))]
    explained = rows.explained([flagged_features(f) for f in flags])
    trend = trends(scored, steady_points)
    out = []
    for i, deal_id in enumerate(scored.ids):
        graded = every[i]
        amount = amounts[i]
        out.append({
            "opportunity_id": deal_id,
            "stage": str(rows.values[i].get("stage") or ""),
            **graded,
            "expected_value": (None if amount is None
                               else round(float(amount) * graded["probability"], 2)),
            "risk": _risk(flags[i]).model_dump(mode="json"),
            "reasons": explained[i][0],
            "trend": trend[i],
            "what_if": None,
            "model": ref,
            "warnings": explained[i][1],
        })
    return out


def deal_results(
    model: LoadedModel,
    scored: Scored,
    amounts: list[float | None],
    grading: Grading,
    rules: RiskRules,
    steady_points: int = 5,
) -> list[DealResult]:
    """One result per deal, with expected value and risk flags, in order of ``scored.ids``.

    The features a raised flag states are kept out of the deal's reasons for.
    """
    return validated(DealResult, deal_records(model, scored, amounts, grading, rules,
                                              steady_points))


@functools.cache
def list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """One validator and serialiser of a list of ``model`` (built once per model)."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def validated(model: type[ResultT], records: list[dict[str, Any]]) -> list[ResultT]:
    """Records (the JSON of ``model``) as ``model`` instances, validated in one call."""
    return list_adapter(model).validate_python(records)


def _graded(scored: Scored, grading: Grading) -> list[dict[str, Any]]:
    """Each row's calibrated probability, its 0-100 score, grade and percentile."""
    probabilities = np.asarray(scored.probabilities, dtype=float)
    scores = to_scores(probabilities).tolist()
    return [{"probability": p, "score": score, "grade": grading.grade(score),
             "percentile": percentile}
            for p, score, percentile in zip(probabilities.tolist(), scores,
                                            grading.percentiles(probabilities), strict=True)]


def _risk(flags: list[Flag]) -> Risk:
    return Risk(level=risk_level(flags), flags=[
        RiskFlag(flag=f.flag, reason=f.reason, evidence=f.evidence)  # type: ignore[arg-type]
        for f in flags
    ])


def renewal_due(columns: dict[str, np.ndarray]) -> np.ndarray:
    """A contract of the account is due within the renewal window (what the renewal model
    was trained on)."""
    due = columns.get("days_to_renewal")
    if due is None:
        return np.zeros(0, dtype=bool)
    return np.asarray(due <= RENEWAL_WINDOW_DAYS, dtype=bool)


def is_customer(columns: dict[str, np.ndarray]) -> np.ndarray:
    """A contract of the account is running (what the expansion model was trained on)."""
    running = columns.get("active_contracts")
    if running is None:
        return np.zeros(0, dtype=bool)
    return np.asarray(running > 0, dtype=bool)


def renewal_results(
    model: LoadedModel, scored: Scored, grading: Grading, rules: RiskRules,
    steady_points: int = 5,
) -> list[RenewalResult | None]:
    """Per account, its renewal's score with churn-risk flags; None when no contract of
    the account is due within the renewal window (the model was trained on those only)."""
    ref = model_ref(model)
    rows = _Rows.of(scored)
    due = renewal_due(scored.columns).tolist() or [False] * len(scored.ids)
    trend = trends(scored, steady_points, renewal_due)
    graded = _graded(scored, grading)
    flags = [renewal_flags(rows.values[i], rules) if due[i] else []
             for i in range(len(scored.ids))]
    explained = rows.explained([flagged_features(f) for f in flags])
    out: list[RenewalResult | None] = []
    for i in range(len(scored.ids)):
        if not due[i]:
            out.append(None)
            continue
        out.append(RenewalResult(
            **graded[i],
            days_to_renewal=float(scored.columns["days_to_renewal"][i]),
            reasons=Reasons.model_validate(explained[i][0]),
            risk=_risk(flags[i]),
            trend=_trend(trend[i]),
            model=ref,
        ))
    return out


def expansion_results(
    model: LoadedModel, scored: Scored, grading: Grading, steady_points: int = 5
) -> list[ExpansionResult | None]:
    """Per account, its expansion score; None when it is not a customer (no contract runs)."""
    ref = model_ref(model)
    customer = is_customer(scored.columns).tolist() or [False] * len(scored.ids)
    trend = trends(scored, steady_points, is_customer)
    graded = _graded(scored, grading)
    explained = _Rows.of(scored).explained()
    out: list[ExpansionResult | None] = []
    for i in range(len(scored.ids)):
        if not customer[i]:
            out.append(None)
            continue
        out.append(ExpansionResult(
            **graded[i],
            reasons=Reasons.model_validate(explained[i][0]),
            trend=_trend(trend[i]),
            model=ref,
        ))
    return out


def account_warnings(
    renewals: list[RenewalResult | None], expansions: list[ExpansionResult | None],
    scored: Scored, unserved: list[str] | None = None,
) -> list[list[str]]:
    """Why a part of an account's answer is missing, in words, and what the scores read
    as not known. ``unserved``: the parts no model serves (the gate withheld them)."""
    unserved = unserved or []
    due = scored.columns.get("days_to_renewal")
    ex = explainer(scored.feature_set)
    said_of = [w for _, w in
               _Rows(scored, ex, scored.feature_values(), None,
                     ex.known_rows(scored.columns)).explained()]
    out = []
    for i, (renewal, expansion) in enumerate(zip(renewals, expansions, strict=True)):
        said = [f"{field} is not scored: no model of it is served (GET /v1/models says why)"
                for field in unserved]
        if "expansion" in unserved:
            if renewal is not None:
                said += said_of[i]
            out.append(said)
            continue
        if expansion is None:
            said.append("not a customer: no contract of the account is running (no won deal "
                        "in its last term), so neither renewal nor expansion is scored")
        elif renewal is None and "renewal" not in unserved:
            days = None if due is None or due[i] != due[i] else float(due[i])
            when = "" if days is None else f" (the next is due in {days:.0f} days)"
            said.append(f"no renewal due within {RENEWAL_WINDOW_DAYS} days{when}: renewal "
                        "is scored from then on")
        if expansion is not None:
            said += said_of[i]
        out.append(said)
    return out
