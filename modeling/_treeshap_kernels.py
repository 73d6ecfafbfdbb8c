"""The compiled kernels of :mod:`modeling.treeshap`.

A module of its own so that numba (about half a second to import) is imported only when a
model is first explained. ``cache=True`` keeps the machine code on disk (next to this file,
or in the user's cache folder when this folder is read-only), so only the first process
after an install pays the compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

ZERO_THRESHOLD = float(np.float32(1e-35))
INT_LIMIT = 2147483648.0


@njit(cache=True, inline="always")
def goes_left(v, n, threshold, kind, missing, default_left, cat_start, cat_end, cat_bits):
    """LightGBM's decision at split ``n`` for the value ``v`` (True: the left child)."""
    if abs(v) <= ZERO_THRESHOLD:  # the predictor passes such values on as 0 (NaN is kept)
        v = 0.0
    if kind[n] == 1:  # CategoricalDecision: NaN and negative codes go right
        if np.isnan(v) or v <= -1.0 or v >= INT_LIMIT:
            return False
        c = int(v)
        word = c >> 5
        if word >= cat_end[n] - cat_start[n]:
            return False
        return ((cat_bits[cat_start[n] + word] >> (c & 31)) & 1) == 1
    m = missing[n]
    if np.isnan(v) and m != 2:
        v = 0.0
    if (m == 1 and -ZERO_THRESHOLD <= v <= ZERO_THRESHOLD) or (m == 2 and np.isnan(v)):
        return default_left[n] == 1
    return v <= threshold[n]


@njit(cache=True, inline="always")
def leaf_values(zeros, start, k, fail, value, weights, c, out):
    """A leaf's contribution to each of its ``k`` path features, for the pattern ``fail``
    of unsatisfied features (TreeSHAP's sum over subsets, in closed form).

    With one fractions of 0 or 1, feature ``i``'s share is ``value x (o_i - z_i) x``
    the sum over subsets ``S`` of the satisfied features other than ``i`` of
    ``w(|S|) x`` the product of the zero fractions of the path features outside ``S`` and
    ``i``, where ``w(s) = s! (k - s - 1)! / k!`` (``weights[k, s]``). The product splits
    into the unsatisfied features' zero fractions (``pu``) and a polynomial over the
    satisfied ones, ``c(t) = prod (t + z_j)``, whose coefficient of ``t^s`` sums the
    subsets of size ``s``: an unsatisfied feature gets ``-value x pu x sum_s w(s) c_s``,
    a satisfied one the same over ``c(t) / (t + z_i)``, times ``(1 - z_i)``, all from
    ``O(k^2)`` multiplications. ``c``: scratch of ``k + 1``.
    """
    r = 0
    pu = 1.0
    c[0] = 1.0
    for d in range(k):
        z = zeros[start + d]
        if (fail >> d) & 1:
            pu *= z
        else:
            r += 1
            c[r] = c[r - 1]
            for s in range(r - 1, 0, -1):
                c[s] = c[s - 1] + z * c[s]
            c[0] = z * c[0]
    unsatisfied = 0.0
    if r < k:
        total = 0.0
        for s in range(r + 1):
            total += weights[k, s] * c[s]
        unsatisfied = -value * pu * total
    for d in range(k):
        if (fail >> d) & 1:
            out[d] = unsatisfied
            continue
        z = zeros[start + d]
        # q(t) = c(t) / (t + z), from the top: q[r-1] = c[r], q[s-1] = c[s] - z q[s].
        q = c[r]
        total = weights[k, r - 1] * q
        for s in range(r - 1, 0, -1):
            q = c[s] - z * q
            total += weights[k, s - 1] * q
        out[d] = value * (1.0 - z) * pu * total


@njit(cache=True)
def fill_tables(path_start, path_len, path_zero, leaf_value, weights, table_start, table):
    """Every tabled leaf's contributions for each of its 2^k patterns."""
    width = 1
    for lf in range(len(path_len)):
        width = max(width, path_len[lf])
    c = np.empty(width + 1)
    out = np.empty(width)
    for lf in range(len(path_len)):
        ts = table_start[lf]
        if ts < 0:
            continue
        k = path_len[lf]
        for fail in range(1 << k):
            leaf_values(path_zero, path_start[lf], k, fail, leaf_value[lf], weights, c, out)
            base = ts + fail * k
            for j in range(k):
                table[base + j] = out[j]


BLOCK = 1024
"""Rows explained together: each leaf's table is read for all of them in turn, so the
patterns they share stay in cache instead of costing a miss a row. On the 175-tree lead
model of the 100k CRM, 1,024 rows a block explained 1.3x to 1.6x as many rows a second as
256 did (one and two threads), and 4,096 no more than 1,024."""


@njit(cache=True)
def explain_block(matrix, out, bias, max_splits, max_path, max_leaves, use_tables, weights,
                  split_start, split_slot, bit, feature, threshold, kind, missing,
                  default_left, cat_start, cat_end, cat_bits, leaf_start, leaf_slot,
                  leaf_value, path_start, path_len, path_feature, path_zero, table_start,
                  table):
    """Add the rows' contributions, bias included, to ``out``.

    Per tree: one pass over the splits per row (parents first) makes each decision once
    and hands both children their pattern of unsatisfied path features (``cm``: two
    slots a split, then a 0 for the root), which the leaves keep (``pattern``); then per
    leaf, for every row, its ``k`` numbers from its table (``use_tables``) or computed
    (once for a run of rows with the same pattern).
    """
    n = matrix.shape[0]
    cm = np.empty(2 * max_splits + 1, dtype=np.int64)
    pattern = np.empty((max_leaves, n), dtype=np.int64)
    c = np.empty(max_path + 1)
    values = np.empty(max_path + 1)
    for t in range(len(split_start) - 1):
        s = split_start[t]
        e = split_start[t + 1]
        first = leaf_start[t]
        for r in range(n):
            x = matrix[r]
            cm[2 * (e - s)] = 0
            for i in range(s, e):
                # LightGBM's Decision(), written out (a call with its arrays costs more).
                v = x[feature[i]]
                if abs(v) <= ZERO_THRESHOLD:  # the predictor reads these as 0 (NaN stays)
                    v = 0.0
                if kind[i] == 1:  # CategoricalDecision: NaN and negative codes go right
                    if np.isnan(v) or v <= -1.0 or v >= INT_LIMIT:
                        go = False
                    else:
                        code = int(v)
                        word = code >> 5
                        go = (word < cat_end[i] - cat_start[i]
                              and ((cat_bits[cat_start[i] + word] >> (code & 31)) & 1) == 1)
                else:  # NumericalDecision: NaN is 0 unless missing values are NaN
                    mt = missing[i]
                    if np.isnan(v):
                        if mt == 2:
                            go = default_left[i] == 1
                        else:
                            go = default_left[i] == 1 if mt == 1 else threshold[i] >= 0.0
                    elif mt == 1 and v == 0.0:
                        go = default_left[i] == 1
                    else:
                        go = v <= threshold[i]
                m = cm[split_slot[i]]
                b = np.int64(1) << bit[i]
                g = np.int64(go)
                j = 2 * (i - s)
                cm[j + 1] = m | (b * (1 - g))
                cm[j] = m | (b * g)
            for lf in range(first, leaf_start[t + 1]):
                pattern[lf - first, r] = cm[leaf_slot[lf]]
        for lf in range(first, leaf_start[t + 1]):
            k = path_len[lf]
            ps = path_start[lf]
            ts = table_start[lf]
            rows = pattern[lf - first]
            if use_tables and ts >= 0:
                for r in range(n):
                    base = ts + rows[r] * k
                    for j in range(k):
                        out[r, path_feature[ps + j]] += table[base + j]
            else:
                previous = np.int64(-1)
                for r in range(n):
                    if rows[r] != previous:
                        previous = rows[r]
                        leaf_values(path_zero, ps, k, previous, leaf_value[lf], weights, c,
                                    values)
                    for j in range(k):
                        out[r, path_feature[ps + j]] += values[j]
    last = out.shape[1] - 1
    for r in range(n):
        out[r, last] += bias


@njit(cache=True)
def explain_rows(matrix, out, bias, max_splits, max_path, max_leaves, use_tables, weights,
                 split_start, split_slot, bit, feature, threshold, kind, missing,
                 default_left, cat_start, cat_end, cat_bits, leaf_start, leaf_slot,
                 leaf_value, path_start, path_len, path_feature, path_zero, table_start,
                 table):
    """:func:`explain_block` over blocks of :data:`BLOCK` rows, on the calling thread."""
    for r0 in range(0, matrix.shape[0], BLOCK):
        r1 = min(matrix.shape[0], r0 + BLOCK)
        explain_block(matrix[r0:r1], out[r0:r1], bias, max_splits, max_path, max_leaves,
                      use_tables, weights, split_start, split_slot, bit, feature, threshold,
                      kind, missing, default_left, cat_start, cat_end, cat_bits, leaf_start,
                      leaf_slot, leaf_value, path_start, path_len, path_feature, path_zero,
                      table_start, table)


@njit(cache=True, parallel=True)
def explain_rows_parallel(threads, matrix, out, bias, max_splits, max_path, max_leaves,
                          use_tables, weights, split_start, split_slot, bit, feature,
                          threshold, kind, missing, default_left, cat_start, cat_end,
                          cat_bits, leaf_start, leaf_slot, leaf_value, path_start, path_len,
                          path_feature, path_zero, table_start, table):
    """:func:`explain_rows` with the blocks spread over numba's threads."""
    n = matrix.shape[0]
    # Blocks of at most BLOCK rows, as many as a multiple of the threads, so that every
    # thread gets the same share (5,000 rows: six blocks of 834, not five of 1,024).
    blocks = (n + BLOCK - 1) // BLOCK
    blocks = max(1, (blocks + threads - 1) // threads * threads)
    block = max(1, (n + blocks - 1) // blocks)
    for b in prange((n + block - 1) // block):
        r0 = b * block
        r1 = min(n, r0 + block)
        explain_block(matrix[r0:r1], out[r0:r1], bias, max_splits, max_path, max_leaves,
                      use_tables, weights, split_start, split_slot, bit, feature, threshold,
                      kind, missing, default_left, cat_start, cat_end, cat_bits, leaf_start,
                      leaf_slot, leaf_value, path_start, path_len, path_feature, path_zero,
                      table_start, table)
