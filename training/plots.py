"""Evaluation plots, as matplotlib figures (the caller saves and logs them).

Each function takes predictions already computed on the test period; none reads
files or touches pyplot's global state (figures are built with the OO API).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve


def _subplots(ncols: int, figsize: tuple[float, float]) -> tuple[Figure, list[Any]]:
    """A figure outside pyplot's global state (no backend switch, nothing to close)."""
    fig = Figure(figsize=figsize)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def reliability_curve(
    y: np.ndarray, scores: dict[str, np.ndarray], n_bins: int = 10, title: str = ""
) -> Figure:
    """Mean predicted vs observed rate in equal-mass bins, one line per model."""
    fig, (ax,) = _subplots(1, (5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    y = np.asarray(y, dtype=float)
    for name, p in scores.items():
        order = np.argsort(p, kind="mergesort")
        bins = [b for b in np.array_split(order, n_bins) if b.size]
        xs = [float(np.mean(p[b])) for b in bins]
        ys = [float(np.mean(y[b])) for b in bins]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel="mean predicted probability", ylabel="observed rate",
           title=title or "Reliability (10 equal-mass bins)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def gains_and_lift(y: np.ndarray, scores: dict[str, np.ndarray], title: str = "") -> Figure:
    """Cumulative gains (share of positives found) and lift by share of rows contacted."""
    fig, (ax1, ax2) = _subplots(2, (10, 4.5))
    y = np.asarray(y, dtype=float)
    total = y.sum()
    n = len(y)
    frac = np.arange(1, n + 1) / n
    for name, p in scores.items():
        order = np.argsort(-p, kind="mergesort")
        found = np.cumsum(y[order]) / total
        ax1.plot(frac, found, label=name)
        lift = found / frac
        keep = frac >= 0.01
        ax2.plot(frac[keep], lift[keep], label=name)
    ax1.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="random")
    ax1.set(xlabel="share of rows, highest score first", ylabel="share of positives found",
            title="Cumulative gains")
    ax2.axhline(1.0, color="grey", lw=1, ls="--")
    ax2.set(xlabel="share of rows, highest score first", ylabel="lift", title="Lift")
    ax1.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_pr(y: np.ndarray, scores: dict[str, np.ndarray], title: str = "") -> Figure:
    """ROC and precision-recall curves, one line per model."""
    fig, (ax1, ax2) = _subplots(2, (10, 4.5))
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax1.plot(fpr, tpr, label=name)
        prec, rec, _ = precision_recall_curve(y, p)
        ax2.plot(rec, prec, label=name)
    ax1.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax1.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax2.axhline(float(np.mean(y)), color="grey", lw=1, ls="--")
    ax2.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax1.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def feature_importance(gain: pd.Series, top: int = 25, title: str = "") -> Figure:
    """Total gain per feature, largest first."""
    g = gain.sort_values(ascending=False).head(top)[::-1]
    fig, (ax,) = _subplots(1, (7, 0.28 * len(g) + 1.2))
    ax.barh(g.index.astype(str), g.to_numpy())
    ax.set(xlabel="total gain", title=title or "Feature importance (gain)")
    fig.tight_layout()
    return fig


def contribution_summary(contrib: pd.DataFrame, top: int = 20, title: str = "") -> Figure:
    """Spread of per-row pred_contrib (log-odds) for the features that move scores most."""
    c = contrib.drop(columns=["bias"], errors="ignore")
    order = c.abs().mean().sort_values(ascending=False).head(top).index[::-1]
    fig, (ax,) = _subplots(1, (7, 0.3 * len(order) + 1.2))
    data = [c[name].to_numpy() for name in order]
    ax.boxplot(data, orientation="horizontal", showfliers=False, whis=(5, 95))
    ax.set_yticks(range(1, len(order) + 1), [str(n) for n in order])
    ax.axvline(0, color="grey", lw=1)
    ax.set(xlabel="contribution to log-odds (box: quartiles, whiskers: 5-95 %)",
           title=title or "Per-feature contributions (pred_contrib)")
    fig.tight_layout()
    return fig
