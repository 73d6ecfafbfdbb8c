"""API keys: only SHA-256 digests are configured; keys are compared in constant time.

A leaked configuration reveals no key, and the comparison takes the same time whether
the first or the last character differs, so timing does not leak a key either.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from fastapi import HTTPException, status


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
