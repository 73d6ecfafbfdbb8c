"""Grades A-D and percentiles: how a probability is placed among the model's own scores.

A :class:`Grading` is learned at training (``training.grades``) from the calibrated
probabilities of a period the model was not fit on, and saved with the model. Applying
it needs numpy alone, so a server grades without training code. A model saved before
grades were learned has none; serving then grades it with :func:`fixed_grading`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRADES = ("A", "B", "C", "D")
DEFAULT_SHARES = (0.10, 0.20, 0.30)
"""Target shares of grades A, B and C among the reference scores; D is the rest."""
FIXED_CUTOFFS = (75, 50, 25)
"""The score cut-offs every model used before grades were learned."""


def to_score(probability: float) -> int:
    """0-100, rounded half up, so 0.745 is 75 on every platform."""
    return int(np.floor(probability * 100.0 + 0.5))


def to_scores(probabilities: np.ndarray) -> np.ndarray:
    """:func:`to_score` of an array."""
    return np.floor(np.asarray(probabilities, dtype=float) * 100.0 + 0.5).astype(np.int64)


@dataclass(frozen=True)
class Grading:
    """Minimum 0-100 scores of grades A, B and C (anything lower is D), and the reference
    distribution a probability's percentile is read against.

    Grades are cut on the integer score a rep reads, so one score always gets one grade.
    ``reference`` holds quantiles of the reference probabilities (ascending; empty: no
    reference, so no percentile).
    """

    a: int = FIXED_CUTOFFS[0]
    b: int = FIXED_CUTOFFS[1]
    c: int = FIXED_CUTOFFS[2]
    reference: tuple[float, ...] = ()
    shares: tuple[float, float, float] | None = None
    """The target shares the cut-offs were learned for; None: fixed cut-offs."""
    source: str = "fixed score cut-offs"
    """Where the cut-offs and the reference come from, in words."""
    rows: int = 0
    """Reference rows the cut-offs were learned on."""
    _quantiles: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 100 >= self.a > self.b > self.c > 0:
            raise ValueError(
                f"grade cut-offs must be decreasing scores in (0, 100]: A > B > C, "
                f"not {self.a}/{self.b}/{self.c}"
            )
        quantiles = np.asarray(self.reference, dtype=float)
        if quantiles.size and (np.diff(quantiles) < 0).any():
            raise ValueError("the reference quantiles must be in ascending order")
        object.__setattr__(self, "_quantiles", quantiles)

    @property
    def learned(self) -> bool:
        return self.shares is not None

    @property
    def cutoffs(self) -> tuple[int, int, int]:
        return self.a, self.b, self.c

    def grade(self, score: int) -> str:
        if score >= self.a:
            return "A"
        if score >= self.b:
            return "B"
        return "C" if score >= self.c else "D"

    def ranges(self) -> dict[str, str]:
        """Each grade's scores, in words: ``{"A": ">= 42", "B": "30-41", ...}``."""

        def span(low: int, high: int) -> str:
            return str(low) if low == high else f"{low}-{high}"

        return {"A": f">= {self.a}", "B": span(self.b, self.a - 1),
                "C": span(self.c, self.b - 1), "D": f"< {self.c}"}

    def grades(self, probabilities: np.ndarray) -> np.ndarray:
        """The grade of each probability (through its score), as an array of letters."""
        scores = to_scores(probabilities)
        letters = np.array(GRADES)
        index = 3 - (scores >= self.c) - (scores >= self.b) - (scores >= self.a)
        out: np.ndarray = letters[index]
        return out

    def percentile(self, probability: float) -> float | None:
        """Share of the reference scores below ``probability``, in percent (0-100, one
        decimal; ties count half); None without a reference."""
        q = self._quantiles
        if not q.size:
            return None
        below = np.searchsorted(q, probability, side="left")
        at_or_below = np.searchsorted(q, probability, side="right")
        return round(float(50.0 * (below + at_or_below) / q.size), 1)

    def percentiles(self, probabilities: np.ndarray) -> list[float | None]:
        """:meth:`percentile` of each probability, the reference searched once."""
        q = self._quantiles
        p = np.asarray(probabilities, dtype=float)
        if not q.size:
            return [None] * len(p)
        share = 50.0 * (np.searchsorted(q, p, side="left") + np.searchsorted(q, p, side="right"))
        return [round(v, 1) for v in (share / q.size).tolist()]

    def describe(self) -> str:
        """One line for a model's description and the logs."""
        cuts = f"A >= {self.a}, B >= {self.b}, C >= {self.c}, D below {self.c}"
        if self.learned:
            assert self.shares is not None
            a, b, c = (f"{s:.0%}" for s in self.shares)
            return (f"score cut-offs {cuts}, learned for A = top {a}, B the next {b}, C the "
                    f"next {c} of {self.source} ({self.rows:,} rows)")
        return f"{self.source}: {cuts}; no reference distribution, so no percentile"

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoffs": [self.a, self.b, self.c],
            "shares": None if self.shares is None else list(self.shares),
            "source": self.source,
            "rows": self.rows,
            "reference": list(self.reference),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Grading:
        a, b, c = (int(v) for v in data["cutoffs"])
        shares: tuple[float, float, float] | None = None
        if data.get("shares"):
            sa, sb, sc = (float(v) for v in data["shares"])
            shares = (sa, sb, sc)
        return cls(
            a=a, b=b, c=c,
            reference=tuple(float(v) for v in data.get("reference") or ()),
            shares=shares,
            source=str(data.get("source") or "stored cut-offs"),
            rows=int(data.get("rows") or 0),
        )


def fixed_grading(cutoffs: tuple[int, int, int] = FIXED_CUTOFFS) -> Grading:
    """The grading of a model saved before cut-offs were learned: fixed score cut-offs."""
    a, b, c = cutoffs
    return Grading(a=a, b=b, c=c,
                   source="fixed score cut-offs (the model was saved without learned ones)")
