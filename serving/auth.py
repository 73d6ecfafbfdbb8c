"""API keys: only SHA-256 digests are configured; keys are compared in constant time.

A leaked configuration reveals no key, and the comparison takes the same time whether
the first or the last character differs, so timing does not leak a key either.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from fastapi import HTTPException, status

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest to put in LEADSCORE_API_KEY_HASHES for this key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, digests: Iterable[str]) -> bool:
    """True when the key's digest equals one of the digests; every digest is compared."""
    presented = hash_api_key(key).encode("ascii")
    found = False
    for digest in digests:
        # No early exit: the time taken does not depend on which digest matched.
        found |= hmac.compare_digest(presented, digest.encode("ascii"))
    return found


def check_key(key: str | None, digests: Iterable[str], enabled: bool) -> None:
    """Raise 401 when no key is presented and 403 when the key is not accepted."""
    if not enabled:
        return
    if key is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not key_matches(key, digests):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="API key not accepted")


def read_key_file(path: Path) -> list[str]:
    """The SHA-256 digests of a key file: one per line, ``#`` comments and blank lines
    skipped. Raises ``ValueError`` naming the line of anything that is not a digest."""
    digests = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip().lower()
        if not entry:
            continue
        if not SHA256_HEX.match(entry):
            raise ValueError(f"{path.name}:{n}: not a SHA-256 hex digest (64 hex characters)")
        digests.append(entry)
    return digests


class KeyRing:
    """The accepted key digests: those of the settings, and those of a key file that is
    read again when it changes (at most once per ``check_every_s``), so keys rotate
    without a restart. A file that becomes unreadable or invalid keeps the last good set
    (and says so through ``error``): a bad edit never locks every caller out."""

    def __init__(self, fixed: Iterable[str], path: Path | None = None,
                 check_every_s: float = 1.0) -> None:
        self.fixed = tuple(fixed)
        self.path = path
        self.check_every_s = check_every_s
        self.error: str | None = None
        self._from_file: tuple[str, ...] = ()
        self._stamp: tuple[int, int] | None = None
        self._checked = -math.inf
        self._lock = threading.Lock()
        if path is not None:
            self._from_file = tuple(read_key_file(path))  # at startup a bad file is fatal
            stat = path.stat()
            self._stamp = (stat.st_mtime_ns, stat.st_size)

    def digests(self) -> tuple[str, ...]:
        if self.path is not None:
            self._refresh()
        return self.fixed + self._from_file

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.check_every_s:
            return
        with self._lock:
            self._checked = now
            assert self.path is not None
            try:
                stat = self.path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
                if stamp == self._stamp:
                    return
                self._from_file = tuple(read_key_file(self.path))
                self._stamp, self.error = stamp, None
            except (OSError, ValueError) as exc:
                self.error = f"the key file could not be read again: {type(exc).__name__}"


class RateLimiter:
    """Requests a minute per key (its digest), as a token bucket: up to ``per_minute`` at
    once, refilled evenly. ``per_minute`` 0 turns it off."""

    MAX_BUCKETS = 10_000
    """Callers tracked at once: past it, those whose bucket has refilled are forgotten
    (a full bucket is what a new caller gets anyway), so many addresses cannot grow it."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _forget_full(self, now: float) -> None:
        refill = 60.0  # seconds for any bucket to fill again
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}

    def retry_after(self, digest: str, now: float | None = None) -> int | None:
        """None when the request may go ahead (and is counted); else the whole seconds
        until the key may send the next one."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        with self._lock:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._forget_full(now)
            tokens, last = self._buckets.get(digest, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[digest] = (tokens - 1.0, now)
                return None
            self._buckets[digest] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))


def check_rate(limiter: RateLimiter, key: str | None) -> None:
    """429 with ``Retry-After`` when the key has used up its requests a minute."""
    if key is None:
        return
    wait = limiter.retry_after(hash_api_key(key))
    if wait is not None:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many requests for this API key: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
