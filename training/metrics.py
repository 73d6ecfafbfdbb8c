"""Binary-classification metrics used for every model and baseline.

The names returned here are the suffixes of the MLflow metric names
(``test_roc_auc``, ``baseline_lr_test_log_loss``, ...), so tools can read them.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from training.calibration import EPS, log_loss

METRIC_NAMES: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "lift_top_decile",
)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE over equal-mass bins: sum over bins of share x |mean predicted - observed rate|.

    Rows are sorted by predicted probability (stable sort, so ties are broken by row
    order, deterministically) and cut into ``n_bins`` bins of equal count.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    n = len(y)
    if n == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for idx in np.array_split(order, min(n_bins, n)):
        if idx.size:
            total += idx.size / n * abs(float(p[idx].mean()) - float(y[idx].mean()))
    return total


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Positive rate among the top 10 % of scores over the overall positive rate."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    base = y.mean() if len(y) else 0.0
    if base == 0:
        return float("nan")
    k = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-p, kind="mergesort")[:k]
    return float(y[top].mean() / base)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """All test metrics for one set of predictions (NaN where undefined, e.g. one class)."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": log_loss(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift_top_decile(y, p),
    }
