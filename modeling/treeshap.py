"""Exact path-dependent TreeSHAP for LightGBM boosters, a row in one pass per tree.

``Booster.predict(pred_contrib=True)`` runs the recursive TreeSHAP algorithm for every row:
per tree, every root-to-leaf path is extended and unwound again, with divisions,
O(leaves x depth²) a row. Most of that does not depend on the row. For one leaf, the
path's unique features each have a *zero fraction* (the share of the training rows that
follow the path's branches on that feature: child over parent counts, multiplied) and a
*one fraction*, 1 when the row satisfies all the path's conditions on that feature and 0
when it does not. The leaf's contribution to each of its ``k`` features is therefore a
function of the ``k``-bit pattern of unsatisfied features alone.

Per row and tree, one pass over the splits (parents first) makes each decision once and
hands each child its pattern; then each leaf either reads its ``k`` numbers from a table
of all 2^k patterns made at load (FastTreeSHAP's "v2" idea) or computes them in closed
form, O(k²) multiplications and no division (``_treeshap_kernels.leaf_values``). Tables
are kept for short paths only (:data:`MAX_TABLE_FEATURES`): on the project's models a
table for longer paths costs a cache miss per leaf, which was slower than computing.

The decisions are LightGBM's own (``tree.h``: ``NumericalDecision``,
``CategoricalDecision``, and the predictor's reading of values within 1e-35 of zero as
zero), and the bias is its ``ExpectedValue`` per tree, so the contributions are
``pred_contrib``'s up to the order of floating-point additions (differences around 1e-15).

The kernels are compiled with numba and cached on disk (next to the module, or in the
user's cache folder when that is read-only); :func:`warm_up` compiles or loads them,
which ``ScoringModel.explainers`` does before a model's first explanation.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import lightgbm as lgb

log = logging.getLogger(__name__)

MAX_TABLE_FEATURES = 10
"""Leaves with more unique features on their path than this are computed per row. A table
is k x 2^k doubles (512 bytes at k = 4, 80 KiB at k = 10): 73 MB for the 175-tree lead
model (6.7 features a path on average, 92% of its leaves tabled)."""
TABLE_ROWS = 16
"""Fewer rows than this are computed without the tables: one row reads one pattern of
each leaf's table, a cache miss a leaf, which is slower than computing it. Blocks of
rows read each table for all their rows in turn (``_treeshap_kernels.BLOCK``)."""
TABLE_BUDGET_BYTES = 128 * 1024**2
"""Most memory the tables of one booster may take; past it, the longest paths lose their
tables first."""
MAX_PATH_FEATURES = 62
"""A path's unique features are bits of one 64-bit pattern."""
ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold`` (a float): the predictor reads smaller values as 0."""
_NUMERIC, _CATEGORICAL = 0, 1


def _weights(most: int) -> np.ndarray:
    """``w[k, s] = s! (k - s - 1)! / k!``, the Shapley weight of a subset of ``s`` of the
    ``k - 1`` other features (exact fractions, then rounded once)."""
    from fractions import Fraction
    from math import factorial

    out = np.zeros((most + 1, most + 1))
    for k in range(1, most + 1):
        for s in range(k):
            out[k, s] = float(Fraction(factorial(s) * factorial(k - s - 1), factorial(k)))
    return out


WEIGHTS = _weights(MAX_PATH_FEATURES)
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


class Unsupported(ValueError):
    """The booster has something this explainer does not reproduce (use ``pred_contrib``)."""


@dataclass(frozen=True)
class TreeTables:
    """One booster's trees, flattened into the arrays the kernels read.

    Splits of tree ``t`` are ``split_start[t]:split_start[t + 1]``, in pre-order (a parent
    before its children); leaves are ``leaf_start[t]:leaf_start[t + 1]``. Each split's
    decision gives its two children their *pattern*: the bits of their path's unique
    features the row does not satisfy, the parent's pattern plus the split's feature bit
    on the side the row does not take. ``slot`` says where a node reads its pattern from
    (``2 x parent + 1`` for a left child, ``2 x parent`` for a right one, within the tree's
    splits; the root reads slot ``2 x splits``, always 0). A leaf's path features are
    ``path_feature[path_start[l]:path_start[l] + path_len[l]]`` in bit order, with their
    zero fractions in ``path_zero``; its table (``-1``: computed per row) is at
    ``table_start[l]``, ``path_len[l]`` numbers for each pattern in turn.
    """

    num_features: int
    split_start: np.ndarray
    split_slot: np.ndarray
    bit: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    kind: np.ndarray
    missing: np.ndarray
    default_left: np.ndarray
    cat_start: np.ndarray
    cat_end: np.ndarray
    cat_bits: np.ndarray
    leaf_start: np.ndarray
    leaf_slot: np.ndarray
    leaf_value: np.ndarray
    path_start: np.ndarray
    path_len: np.ndarray
    path_feature: np.ndarray
    path_zero: np.ndarray
    table_start: np.ndarray
    table: np.ndarray
    bias: float
    max_splits: int
    max_path: int
    max_leaves: int

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    def arrays(self) -> tuple[Any, ...]:
        return (self.split_start, self.split_slot, self.bit, self.feature, self.threshold,
                self.kind, self.missing, self.default_left, self.cat_start, self.cat_end,
                self.cat_bits, self.leaf_start, self.leaf_slot, self.leaf_value,
                self.path_start, self.path_len, self.path_feature, self.path_zero,
                self.table_start, self.table)


def _bitset(categories: list[int]) -> list[int]:
    words = [0] * (max(categories) // 32 + 1)
    for c in categories:
        words[c // 32] |= 1 << (c % 32)
    return words


class _Builder:
    """Accumulates the arrays of :class:`TreeTables` tree by tree."""

    def __init__(self) -> None:
        self.split_start = [0]
        self.leaf_start = [0]
        self.split_slot: list[int] = []
        self.bit: list[int] = []
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.kind: list[int] = []
        self.missing: list[int] = []
        self.default_left: list[int] = []
        self.cat_start: list[int] = []
        self.cat_end: list[int] = []
        self.cat_bits: list[int] = []
        self.leaf_slot: list[int] = []
        self.leaf_value: list[float] = []
        self.paths: list[tuple[list[int], list[float]]] = []
        self.bias = 0.0
        self.max_splits = 1

    def split(self, node: dict[str, Any], slot: int, bit: int) -> None:
        self.split_slot.append(slot)
        self.bit.append(bit)
        self.feature.append(int(node["split_feature"]))
        self.missing.append(_MISSING[str(node.get("missing_type", "None"))])
        self.default_left.append(1 if node.get("default_left") else 0)
        if node["decision_type"] == "==":
            self.kind.append(_CATEGORICAL)
            cats = [int(c) for c in str(node["threshold"]).split("||")]
            if min(cats) < 0:
                raise Unsupported("a negative category in a split")
            self.threshold.append(0.0)
            self.cat_start.append(len(self.cat_bits))
            self.cat_bits.extend(_bitset(cats))
            self.cat_end.append(len(self.cat_bits))
        elif node["decision_type"] == "<=":
            self.kind.append(_NUMERIC)
            self.threshold.append(float(node["threshold"]))
            self.cat_start.append(0)
            self.cat_end.append(0)
        else:
            raise Unsupported(f"decision type {node['decision_type']!r}")

    def tree(self, root: dict[str, Any]) -> None:
        if "split_index" not in root:
            if "leaf_coeff" in root:
                raise Unsupported("linear trees")
            # One leaf: its value is the tree's expected value, all of it in the bias.
            self.bias += float(root["leaf_value"])
            return
        first = len(self.split_slot)
        leaves: list[tuple[int, float, float]] = []  # (index, count, value): the bias
        # Depth first, pre-order: (node, slot of its pattern, path features, their zeros).
        stack: list[tuple[dict[str, Any], int, list[int], list[float]]] = [(root, -1, [], [])]
        while stack:
            node, slot, feats, zeros = stack.pop()
            if "split_index" not in node:
                if "leaf_coeff" in node:
                    raise Unsupported("linear trees")
                self.leaf_slot.append(slot)
                value = float(node["leaf_value"])
                self.leaf_value.append(value)
                self.paths.append((feats, zeros))
                leaves.append((int(node["leaf_index"]), float(node["leaf_count"]), value))
                continue
            f = int(node["split_feature"])
            if f not in feats:
                feats, zeros = [*feats, f], [*zeros, 1.0]
            if len(feats) > MAX_PATH_FEATURES:
                raise Unsupported(f"a path with more than {MAX_PATH_FEATURES} features")
            b = feats.index(f)
            here = len(self.split_slot) - first
            self.split(node, slot, b)
            count = float(node["internal_count"])
            children = []
            for child, side in ((node["left_child"], 1), (node["right_child"], 0)):
                child_count = float(child.get("internal_count", child.get("leaf_count", 0)))
                if count <= 0 or child_count <= 0:
                    raise Unsupported("a node without training rows (a zero fraction of 0)")
                child_zeros = list(zeros)
                child_zeros[b] *= child_count / count
                children.append((child, 2 * here + side, feats, child_zeros))
            stack.extend(reversed(children))  # the left child next
        splits = len(self.split_slot) - first
        root_slot = 2 * splits
        for i in range(first, len(self.split_slot)):
            if self.split_slot[i] < 0:
                self.split_slot[i] = root_slot
        # ExpectedValue(): leaves in their index order, (count / root count) x value.
        root_count = float(root["internal_count"])
        expected = 0.0
        for _, count, value in sorted(leaves):
            expected += (count / root_count) * value
        self.bias += expected
        self.split_start.append(len(self.split_slot))
        self.leaf_start.append(len(self.leaf_slot))
        self.max_splits = max(self.max_splits, splits)


def parse(booster: lgb.Booster, *, max_table_features: int = MAX_TABLE_FEATURES,
          budget_bytes: int = TABLE_BUDGET_BYTES) -> TreeTables:
    """The arrays of :class:`TreeTables` from ``booster.dump_model()``, tables filled.

    Raises :class:`Unsupported` for what ``pred_contrib`` does beyond plain trees (several
    trees an iteration, averaged output, linear leaves) or paths this module cannot hold.
    """
    return tables_from_dump(booster.dump_model(), max_table_features=max_table_features,
                            budget_bytes=budget_bytes)


def tables_from_dump(model: dict[str, Any], *, max_table_features: int = MAX_TABLE_FEATURES,
                     budget_bytes: int = TABLE_BUDGET_BYTES) -> TreeTables:
    """:func:`parse` of a ``dump_model()`` dictionary."""
    if model.get("num_tree_per_iteration", 1) != 1 or model.get("num_class", 1) != 1:
        raise Unsupported("more than one tree per iteration (multiclass)")
    if model.get("average_output"):
        raise Unsupported("averaged output (random forest)")
    built = _Builder()
    for info in model["tree_info"]:
        built.tree(info["tree_structure"])
    path_len = np.array([len(f) for f, _ in built.paths], dtype=np.int64)
    path_start = np.zeros(len(path_len), dtype=np.int64)
    if len(path_len):
        path_start[1:] = np.cumsum(path_len)[:-1]
    path_zero = np.array([z for _, zs in built.paths for z in zs], dtype=np.float64)
    leaf_value = np.array(built.leaf_value, dtype=np.float64)
    table_start, table_size = _table_layout(path_len, max_table_features, budget_bytes)
    table = np.empty(table_size, dtype=np.float64)
    _kernels().fill_tables(path_start, path_len, path_zero, leaf_value, WEIGHTS, table_start,
                          table)

    def ints(values: list[int], dtype: Any = np.int64) -> np.ndarray:
        return np.array(values, dtype=dtype)

    return TreeTables(
        num_features=int(model["max_feature_idx"]) + 1,
        split_start=ints(built.split_start),
        split_slot=ints(built.split_slot),
        bit=ints(built.bit),
        feature=ints(built.feature),
        threshold=np.array(built.threshold, dtype=np.float64),
        kind=ints(built.kind, np.uint8),
        missing=ints(built.missing, np.uint8),
        default_left=ints(built.default_left, np.uint8),
        cat_start=ints(built.cat_start),
        cat_end=ints(built.cat_end),
        cat_bits=ints(built.cat_bits or [0], np.uint32),
        leaf_start=ints(built.leaf_start),
        leaf_slot=ints(built.leaf_slot),
        leaf_value=leaf_value,
        path_start=path_start,
        path_len=path_len,
        path_feature=ints([f for fs, _ in built.paths for f in fs]),
        path_zero=path_zero,
        table_start=table_start,
        table=table,
        bias=built.bias,
        max_splits=built.max_splits,
        max_path=int(path_len.max()) if len(path_len) else 0,
        max_leaves=int(np.diff(built.leaf_start).max()) if len(built.leaf_start) > 1 else 1,
    )


def _table_layout(path_len: np.ndarray, max_features: int, budget_bytes: int
                  ) -> tuple[np.ndarray, int]:
    """Where each leaf's table starts (-1: none) and the tables' total length.

    Leaves get tables up to the largest path length (at most ``max_features``) whose
    tables all fit ``budget_bytes``.
    """
    sizes = path_len * (np.int64(1) << np.minimum(path_len, MAX_PATH_FEATURES))
    cap = max_features
    while cap > 0 and int(sizes[path_len <= cap].sum()) * 8 > budget_bytes:
        cap -= 1
    tabled = path_len <= cap
    lengths = np.where(tabled, sizes, 0)
    ends = np.cumsum(lengths)
    starts = np.where(tabled, ends - lengths, -1).astype(np.int64)
    return starts, int(ends[-1]) if len(ends) else 0


_LOCK = threading.Lock()
"""Calls on several threads go one at a time: numba's fallback threading layer
(workqueue) must not be entered by two threads at once."""


def _kernels() -> Any:
    from modeling import _treeshap_kernels

    return _treeshap_kernels


class TreeExplainer:
    """``booster.predict(m, pred_contrib=True)`` for one booster, from precomputed tables.

    Build with :meth:`of` (parses the booster and fills its tables); :meth:`contributions`
    returns the same (rows, features + 1) matrix, bias last.
    """

    def __init__(self, tables: TreeTables) -> None:
        self.tables = tables
        self._arrays = tables.arrays()

    @classmethod
    def of(cls, booster: lgb.Booster, **options: int) -> TreeExplainer:
        return cls(parse(booster, **options))

    @property
    def nbytes(self) -> int:
        """Memory the explainer holds (tables and tree arrays)."""
        return self.tables.nbytes

    def contributions(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """Per row, each feature's contribution and the bias (log-odds), as
        ``pred_contrib``. ``num_threads``: as LightGBM's (1: this thread; 0: all)."""
        t = self.tables
        x = np.ascontiguousarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != t.num_features:
            raise ValueError(f"expected a matrix of {t.num_features} columns, got {x.shape}")
        out = np.zeros((len(x), t.num_features + 1), dtype=np.float64)
        k = _kernels()
        args = (x, out, t.bias, t.max_splits, t.max_path, t.max_leaves,
                len(x) >= TABLE_ROWS, WEIGHTS, *self._arrays)
        if num_threads == 1 or len(x) <= 1:
            k.explain_rows(*args)
            return out
        import numba

        with _LOCK:
            available = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
            threads = available if num_threads <= 0 else min(num_threads, available)
            numba.set_num_threads(threads)
            k.explain_rows_parallel(threads, *args)
        return out


def explainer_or_none(booster: lgb.Booster, name: str = "booster") -> TreeExplainer | None:
    """A :class:`TreeExplainer` for the booster, or None (with one log line saying why)
    when it has something only ``pred_contrib`` handles."""
    try:
        return TreeExplainer.of(booster)
    except Unsupported as exc:
        log.info("%s: explained with LightGBM's pred_contrib (%s)", name, exc)
        return None


STUMP = {
    "max_feature_idx": 0,
    "tree_info": [{"tree_structure": {
        "split_index": 0, "split_feature": 0, "threshold": 0.5, "decision_type": "<=",
        "default_left": True, "missing_type": "NaN", "internal_count": 2,
        "left_child": {"leaf_index": 0, "leaf_value": 1.0, "leaf_count": 1},
        "right_child": {"leaf_index": 1, "leaf_value": -1.0, "leaf_count": 1},
    }}],
}
"""A one-split model: what :func:`warm_up` compiles the kernels on."""


def warm_up() -> float:
    """Compile every kernel (or load it from numba's cache); the seconds it took."""
    import time

    start = time.perf_counter()
    explainer = TreeExplainer(tables_from_dump(STUMP))
    for threads in (1, 0):
        explainer.contributions(np.zeros((2, 1)), num_threads=threads)
    return time.perf_counter() - start


_WARM = threading.Event()
_WARMING = threading.Lock()


def warm_up_once() -> None:
    """:func:`warm_up` the first time it is called in a process (its time logged)."""
    if _WARM.is_set():
        return
    with _WARMING:
        if not _WARM.is_set():
            log.info("TreeSHAP kernels ready in %.2f s", warm_up())
            _WARM.set()
