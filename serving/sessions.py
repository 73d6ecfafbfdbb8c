"""Session tokens of the pages a browser signs in to: signed, expiring, never the key.

A token is ``<expiry>.<nonce>.<mac>``: when it ends (Unix seconds), 16 random bytes, and an
HMAC-SHA256 of both under the server's session secret. It carries no API key nor its
digest, so a stolen cookie reveals nothing reusable against ``/v1`` scoring routes, and it
cannot be forged or extended without the secret. It is checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

COOKIE = "leadscore_session"


def _mac(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def issue(secret: str, ttl_s: int, now: float | None = None) -> str:
    """A new token valid for ``ttl_s`` seconds from ``now``."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    payload = f"{expiry}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_mac(secret, payload)}"


def valid(token: str | None, secret: str, now: float | None = None) -> bool:
    """True for a token this secret signed that has not expired."""
    if not token or len(token) > 200:
        return False
    payload, dot, mac = token.rpartition(".")
    expiry, _, nonce = payload.partition(".")
    if not dot or not nonce or not expiry.isdigit():
        return False
    if not hmac.compare_digest(_mac(secret, payload).encode(), mac.encode("ascii", "replace")):
        return False
    return int(expiry) > (time.time() if now is None else now)
