"""Scores -> what a rep reads: probability, 0-100 score, grade and percentile, reasons,
risk and warnings."""

from __future__ import annotations

from typing import Any

from features.declarations import FeatureSet
from features.snapshots import RENEWAL_WINDOW_DAYS
from modeling.grading import Grading, fixed_grading, to_score
from serving.explain import Factor, plain_value, top_factors
from serving.models import LoadedModel
from serving.risk import RiskRules, renewal_flags, risk_flags, risk_level
from serving.schemas import (
    DealBatch,
    DealResult,
    ExpansionResult,
    LeadResult,
    ModelRef,
    Reason,
    Reasons,
    RenewalResult,
    Risk,
    RiskFlag,
)
from serving.scoring import Scored
from serving.settings import ScoringSettings


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


def _reasons(scored: Scored, values: list[Any], row: int, feature_set: FeatureSet) -> Reasons:
    """Top factors of one row; ``values`` is that row's feature values in declared order.

    Built with ``model_construct``: the values are ours, and FastAPI validates the whole
    response against its model once more on the way out.
    """
    if scored.contributions is None:
        return Reasons.model_construct(up=[], down=[])
    up, down = top_factors(scored.contributions[row], values, list(feature_set.features))

    def reason(f: Factor) -> Reason:
        return Reason.model_construct(
            feature=f.feature, value=f.value, contribution=f.contribution, text=f.text
        )

    return Reasons.model_construct(up=[reason(f) for f in up], down=[reason(f) for f in down])


def model_ref(model: LoadedModel) -> ModelRef:
    fs = model.model.feature_set
    return ModelRef(name=model.name, version=model.version, feature_set=f"{fs.name}@{fs.version}")


def lead_results(model: LoadedModel, scored: Scored, grading: Grading) -> list[LeadResult]:
    """One result per lead, in the order of ``scored.ids``."""
    ref = model_ref(model)
    fs = model.model.feature_set
    values = scored.values()
    out = []
    for i, lead_id in enumerate(scored.ids):
        p = float(scored.probabilities[i])
        score = to_score(p)
        out.append(
            LeadResult(
                lead_id=lead_id,
                probability=p,
                score=score,
                grade=grading.grade(score),  # type: ignore[arg-type]
                percentile=grading.percentile(p),
                reasons=_reasons(scored, list(values[i]), i, fs),
                model=ref,
            )
        )
    return out


def context_warnings(batch: DealBatch) -> list[list[str]]:
    """Per deal, what the request left out that training always had.

    In training a deal's account firmographics, its account's other deals and its owner's
    closed deals come from the full CRM; over HTTP only from ``context``. Missing, they
    read as unknown or "no history" and the probability moves (by 0.07 on average on
    the test models), so the answer says so instead of passing it silently.
    """
    ctx = batch.context
    accounts = {a.account_id for a in ctx.accounts} if ctx else set()
    others = ctx.opportunities if ctx else []
    owners = {o.owner_id for o in others}
    with_deals = {o.account_id for o in others}
    out = []
    for deal in batch.deals:
        said = []
        if deal.account_id not in accounts:
            said.append(f"account {deal.account_id} not in context: its industry, size "
                        "and country were read as unknown")
        if deal.owner_id not in owners:
            said.append(f"no deals of owner {deal.owner_id} in context: the owner's win "
                        "rate was read as no history")
        if deal.account_id not in with_deals:
            said.append(f"no other deals of account {deal.account_id} in context: the "
                        "account's deal history was read as none")
        out.append(said)
    return out


def deal_results(
    model: LoadedModel,
    scored: Scored,
    amounts: list[float | None],
    grading: Grading,
    rules: RiskRules,
    warnings: list[list[str]] | None = None,
) -> list[DealResult]:
    """One result per deal, with expected value and risk flags, in order of ``scored.ids``."""
    ref = model_ref(model)
    fs = model.model.feature_set
    metadata = {**model.metadata, **getattr(model.model, "metadata", {})}
    values = scored.values()
    names = fs.names
    out = []
    for i, deal_id in enumerate(scored.ids):
        p = float(scored.probabilities[i])
        score = to_score(p)
        row = {str(k): plain_value(v) for k, v in zip(names, values[i], strict=True)}
        flags = risk_flags(row, p, metadata, rules)
        amount = amounts[i]
        out.append(
            DealResult(
                opportunity_id=deal_id,
                stage=str(row.get("stage") or ""),
                probability=p,
                score=score,
                grade=grading.grade(score),  # type: ignore[arg-type]
                percentile=grading.percentile(p),
                expected_value=None if amount is None else round(float(amount) * p, 2),
                risk=Risk(
                    level=risk_level(flags),
                    flags=[
                        RiskFlag(flag=f.flag, reason=f.reason, evidence=f.evidence)  # type: ignore[arg-type]
                        for f in flags
                    ],
                ),
                reasons=_reasons(scored, list(values[i]), i, fs),
                model=ref,
                warnings=warnings[i] if warnings else [],
            )
        )
    return out


def _graded(scored: Scored, i: int, grading: Grading) -> dict[str, Any]:
    """Row ``i``'s calibrated probability, its 0-100 score, grade and percentile."""
    p = float(scored.probabilities[i])
    score = to_score(p)
    return {"probability": p, "score": score, "grade": grading.grade(score),
            "percentile": grading.percentile(p)}


def _eligible(scored: Scored, name: str, test: Any) -> list[bool]:
    col = scored.columns.get(name)
    if col is None:
        return [False] * len(scored.ids)
    return [bool(test(v)) for v in col.tolist()]


def renewal_results(
    model: LoadedModel, scored: Scored, grading: Grading, rules: RiskRules
) -> list[RenewalResult | None]:
    """Per account, its renewal's score with churn-risk flags; None when no contract of
    the account is due within the renewal window (the model was trained on those only)."""
    ref = model_ref(model)
    fs = model.model.feature_set
    values = scored.values()
    due = _eligible(scored, "days_to_renewal", lambda v: v == v and v <= RENEWAL_WINDOW_DAYS)
    out: list[RenewalResult | None] = []
    for i in range(len(scored.ids)):
        if not due[i]:
            out.append(None)
            continue
        row = {str(k): plain_value(v) for k, v in zip(fs.names, values[i], strict=True)}
        flags = renewal_flags(row, rules)
        out.append(RenewalResult(
            **_graded(scored, i, grading),
            days_to_renewal=float(scored.columns["days_to_renewal"][i]),
            reasons=_reasons(scored, list(values[i]), i, fs),
            risk=Risk(level=risk_level(flags), flags=[
                RiskFlag(flag=f.flag, reason=f.reason, evidence=f.evidence)  # type: ignore[arg-type]
                for f in flags
            ]),
            model=ref,
        ))
    return out


def expansion_results(
    model: LoadedModel, scored: Scored, grading: Grading
) -> list[ExpansionResult | None]:
    """Per account, its expansion score; None when it is not a customer (no contract runs)."""
    ref = model_ref(model)
    fs = model.model.feature_set
    values = scored.values()
    customer = _eligible(scored, "active_contracts", lambda v: v > 0)
    out: list[ExpansionResult | None] = []
    for i in range(len(scored.ids)):
        if not customer[i]:
            out.append(None)
            continue
        out.append(ExpansionResult(
            **_graded(scored, i, grading),
            reasons=_reasons(scored, list(values[i]), i, fs),
            model=ref,
        ))
    return out


def account_warnings(
    renewals: list[RenewalResult | None], expansions: list[ExpansionResult | None],
    scored: Scored,
) -> list[list[str]]:
    """Why a part of an account's answer is missing, in words."""
    due = scored.columns.get("days_to_renewal")
    out = []
    for i, (renewal, expansion) in enumerate(zip(renewals, expansions, strict=True)):
        said = []
        if expansion is None:
            said.append("not a customer: no contract of the account is running (no won deal "
                        "in its last term), so neither renewal nor expansion is scored")
        elif renewal is None:
            days = None if due is None or due[i] != due[i] else float(due[i])
            when = "" if days is None else f" (the next is due in {days:.0f} days)"
            said.append(f"no renewal due within {RENEWAL_WINDOW_DAYS} days{when}: renewal "
                        "is scored from then on")
        out.append(said)
    return out
