"""Ids looked up and hashed in bulk without making Python strings of them.

A large export's activities are checked a block at a time against the same parents (a
million leads, deals and accounts): ``pyarrow.compute.is_in`` and ``index_in`` build their
hash table of the parents' keys again on every call, which then costs more than the block.
``KeyIndex`` hashes and sorts the keys once and looks each value's hash up in its slice of
them, every hit confirmed on the texts themselves, so its answer is exactly ``index_in``'s
(the first position of an equal key; a null finds nothing).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.parsing import np_mask

_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_SEED = 0x9E3779B97F4A7C15


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (wrapping uint64 arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _plain_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def text_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each text value (of anything else, its text), read from Arrow's
    buffers eight bytes at a time; a text's hash depends on that text alone. Nulls get an
    arbitrary hash: mask them."""
    arr = _plain_text(arr)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    starts = offsets[:-1].astype(np.int64)
    lengths = np.diff(offsets).astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(
        0, dtype=np.uint8)
    padded = np.zeros(data.size + 8, dtype=np.uint8)
    padded[:data.size] = data
    # Every eight bytes from every position, as one little-endian word.
    words = np.ndarray(shape=(padded.size - 7,), dtype="<u8", buffer=padded, strides=(1,))
    h = _mix(lengths.astype(np.uint64) ^ np.uint64(_SEED))
    active = np.arange(n)
    for w in range(0, int(lengths.max()), 8):
        active = active[lengths[active] > w]  # the texts that still have bytes from w on
        word = words[starts[active] + w] & _MASKS[np.minimum(lengths[active] - w, 8)]
        h[active] = _mix(h[active] ^ _mix(word + np.uint64((w + 1) * _SEED % (1 << 64))))
    return h


class KeyIndex:
    """``index_in`` and ``is_in`` against fixed text keys, for many batches of values.

    A batch of more than twice as many values as there are keys goes to Arrow's own
    lookup (building its table of so few keys costs about what hashing the batch does);
    the keys are hashed and sorted the first time a batch is not.
    """

    def __init__(self, keys: pa.Array | pa.ChunkedArray) -> None:
        self.keys = _plain_text(keys)
        self.exact: bool | None = None  # not built yet
        self.hashes = self.pos = self.starts = np.zeros(0, dtype=np.int64)
        self.shift = np.uint64(63)

    def _build(self) -> None:
        pos = np.flatnonzero(np_mask(pc.is_valid(self.keys)))
        h = text_hashes(self.keys)[pos]
        order = np.argsort(h, kind="stable")
        h, pos = h[order], pos[order]
        lead = np.concatenate(([True], h[1:] != h[:-1])) if h.size else np.zeros(0, bool)
        self.exact = True
        if not lead.all():  # a repeated hash: a repeated key, or two keys with one hash
            again = pos[~lead]
            first = pos[lead][np.cumsum(lead)[~lead] - 1]
            same = np_mask(pc.equal(self.keys.take(pa.array(again)),
                                    self.keys.take(pa.array(first))))
            self.exact = bool(same.all())  # else: Arrow's own lookup (keys sharing a hash)
        self.hashes, self.pos = h[lead], pos[lead]
        # Where each slice of the hash space starts among the sorted hashes: a value's
        # hash is looked for in its slice only (about one hash a slice).
        bits = max(1, int(self.hashes.size).bit_length())
        self.shift = np.uint64(64 - bits)
        self.starts = np.empty((1 << bits) + 1, dtype=np.int64)
        self.starts[:-1] = np.searchsorted(
            self.hashes, np.arange(1 << bits, dtype=np.uint64) << self.shift)
        self.starts[-1] = self.hashes.size

    def positions(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Per value, the position of the first equal key; -1 for none (and for null)."""
        values = _plain_text(values)
        valid = np_mask(pc.is_valid(values))
        if self.exact is None and 2 * len(self.keys) >= len(values):
            self._build()
        if not self.exact:
            at = pc.index_in(values, value_set=self.keys)
            out = np.asarray(pc.fill_null(at, -1).to_numpy(zero_copy_only=False), np.int64)
            out[~valid] = -1
            return out
        out = np.full(len(values), -1, dtype=np.int64)
        if self.hashes.size == 0 or not valid.any():
            return out
        h = text_hashes(values)
        slot = (h >> self.shift).astype(np.int64)
        lo = self.starts[slot]
        left = self.starts[slot + 1] - lo  # how many hashes the slice holds
        at = np.full(h.size, -1, dtype=np.int64)
        todo = np.flatnonzero(valid & (left > 0))
        step = 0
        while todo.size:
            here = lo[todo] + step
            found = self.hashes[here] == h[todo]
            at[todo[found]] = here[found]
            todo = todo[~found]
            step += 1
            todo = todo[left[todo] > step]
        hit = at >= 0
        cand = np.where(hit, self.pos[np.maximum(at, 0)], 0)
        same = np_mask(pc.equal(self.keys.take(pa.array(cand)), values))
        hit &= same  # the same hash, and the same text
        out[hit] = cand[hit]
        return out

    def index_in(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """``pyarrow.compute.index_in(values, keys)``, with a null value finding nothing."""
        at = self.positions(values)
        return pa.array(at.astype(np.int32), type=pa.int32(), mask=at < 0)

    def contains(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Whether each value is among the keys (a null is not)."""
        return self.positions(values) >= 0
