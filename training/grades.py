"""Learning grade cut-offs from a score distribution, and how the grades did on a period.

Fixed cut-offs (75/50/25) put almost every lead in D when the base rate is 19 %: a grade
must say where an entity stands among the model's own scores. The cut-offs are learned
from the calibrated probabilities of a period the model was not fit on (the validation
period: the booster never trained on it; see ``training.fit``), and judged on the test
period: each grade's count and observed rate, which must fall from A to D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeling.grading import DEFAULT_SHARES, GRADES, Grading, to_scores

REFERENCE_QUANTILES = 1001
"""Quantiles of the reference stored with the model: percentiles to a tenth of a point."""
VALIDATION_REFERENCE = "the validation period's calibrated probabilities"
FEW_REFERENCE_ROWS = 200
"""Below this many reference rows a grade's cut-off moves with a handful of rows: say so."""


def check_shares(shares: tuple[float, float, float]) -> tuple[float, float, float]:
    """Shares of A, B and C must be positive and leave some room for D."""
    if len(shares) != 3 or min(shares) <= 0 or sum(shares) >= 1:
        raise ValueError(
            f"grade shares are the shares of A, B and C: three numbers above 0 that add up "
            f"to less than 1 (D is the rest), not {shares}"
        )
    return shares


def fit_grading(
    probabilities: np.ndarray,
    shares: tuple[float, float, float] = DEFAULT_SHARES,
    source: str = VALIDATION_REFERENCE,
) -> Grading:
    """Score cut-offs so that A holds the top ``shares[0]`` of ``probabilities``, B the
    next ``shares[1]`` and C the next ``shares[2]``, and the quantiles for percentiles.

    Grades are cut on the 0-100 score, so each cut-off is the score whose share at or
    above it is closest to the grade's target (ties: the higher score). Many rows on one
    score make a grade larger or smaller than its target; fewer than four distinct
    scores leave a grade empty, which training reports.
    """
    check_shares(shares)
    p = np.asarray(probabilities, dtype=float)
    p = p[np.isfinite(p)]
    if not p.size:
        raise ValueError("no reference probabilities to learn grade cut-offs from")
    scores = np.clip(to_scores(p), 0, 100)
    counts = np.bincount(scores, minlength=101)
    at_or_above = counts[::-1].cumsum()[::-1] / p.size
    cutoffs: list[int] = []
    highest = 100
    for k, target in enumerate(np.cumsum(shares)):
        # A above B above C above 0, so every grade keeps at least one possible score.
        candidates = np.arange(highest, 2 - k, -1)
        best = candidates[int(np.argmin(np.abs(at_or_above[candidates] - target)))]
        cutoffs.append(int(best))
        highest = int(best) - 1
    a, b, c = cutoffs
    quantiles = np.quantile(p, np.linspace(0.0, 1.0, REFERENCE_QUANTILES))
    return Grading(a=a, b=b, c=c, reference=tuple(float(q) for q in quantiles),
                   shares=shares, source=source, rows=int(p.size))


@dataclass(frozen=True)
class GradeRow:
    """One grade on one period: how many rows it holds and how many of them were won."""

    grade: str
    count: int
    share: float
    observed_rate: float | None
    """Share of the grade's rows with label 1; None when the grade is empty."""
    mean_probability: float | None


def grade_table(grading: Grading, probabilities: np.ndarray, labels: np.ndarray) -> list[GradeRow]:
    """Per grade A-D, the count, share, observed rate and mean probability of the rows."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    grades = grading.grades(p)
    out = []
    for g in GRADES:
        mask = grades == g
        n = int(mask.sum())
        out.append(GradeRow(
            grade=g,
            count=n,
            share=n / len(p) if len(p) else 0.0,
            observed_rate=float(y[mask].mean()) if n else None,
            mean_probability=float(p[mask].mean()) if n else None,
        ))
    return out


def grade_warnings(rows: list[GradeRow], period: str = "test period",
                   grading: Grading | None = None) -> list[str]:
    """What a rep should know: cut-offs learned on few rows, an empty grade, or observed
    rates that do not fall strictly from A to D."""
    out = []
    if grading is not None and grading.learned and grading.rows < FEW_REFERENCE_ROWS:
        out.append(f"the grade cut-offs were learned on only {grading.rows} rows of "
                   f"{grading.source}: they move with a handful of rows")
    out += [f"grade {r.grade} holds none of the {period}'s rows" for r in rows if not r.count]
    rates = [r.observed_rate for r in rows if r.observed_rate is not None]
    if any(later >= earlier for earlier, later in zip(rates, rates[1:], strict=False)):
        said = ", ".join(f"{r.grade} {r.observed_rate:.1%}" for r in rows
                         if r.observed_rate is not None)
        out.append(f"the observed rate does not fall strictly from A to D on the {period} "
                   f"({said}): the grades do not separate there")
    return out


def grade_metrics(rows: list[GradeRow], prefix: str = "test_grade_") -> dict[str, float]:
    """MLflow metrics: ``test_grade_a_count``, ``test_grade_a_rate`` (absent when empty)..."""
    out: dict[str, float] = {}
    for r in rows:
        key = f"{prefix}{r.grade.lower()}"
        out[f"{key}_count"] = float(r.count)
        if r.observed_rate is not None:
            out[f"{key}_rate"] = r.observed_rate
    return out


def grade_params(grading: Grading) -> dict[str, object]:
    """MLflow params: the target shares, the learned cut-offs and the reference."""
    shares = grading.shares or (None, None, None)
    out: dict[str, object] = {"grade_reference": grading.source,
                              "grade_reference_rows": grading.rows}
    for g, share, cut in zip("abc", shares, grading.cutoffs, strict=True):
        out[f"grade_share_{g}"] = share
        out[f"grade_cutoff_{g}"] = cut
    return out
