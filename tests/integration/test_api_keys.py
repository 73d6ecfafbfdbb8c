"""API keys rotate without a restart (a key file read again when it changes), and a per-key
rate limit answers 429 with Retry-After."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.auth import KeyRing, RateLimiter, hash_api_key
from tests.integration.test_api_fixtures import (
    API_KEY,
    AS_OF,
    Trained,
    app_at,
    lead_request,
    open_leads,
    trained,  # noqa: F401  (session fixture)
)


def _models(client: TestClient, key: str) -> int:
    return client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code


def _touch(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    later = time.time() + 5  # a new mtime even within the file system's resolution
    os.utime(path, (later, later))


def test_keys_from_a_file_rotate_without_a_restart(trained: Trained, tmp_path: Path) -> None:  # noqa: F811
    keys = tmp_path / "keys.txt"
    _touch(keys, f"# rotated monthly\n{hash_api_key('old-key-1234')}\n")
    app = app_at([trained.lead, trained.deal], api_key_hashes="",
                 api_key_hashes_file=str(keys))
    app.state.keyring.check_every_s = 0.0
    with TestClient(app) as client:
        assert _models(client, "old-key-1234") == 200
        assert _models(client, "new-key-5678") == 403
        _touch(keys, f"{hash_api_key('new-key-5678')}\n")
        assert _models(client, "new-key-5678") == 200
        assert _models(client, "old-key-1234") == 403
        _touch(keys, "not a digest\n")  # a bad edit keeps the last good keys
        assert _models(client, "new-key-5678") == 200
        assert app.state.keyring.error is not None


def test_a_bad_key_file_is_refused_at_startup(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("abc\n", encoding="utf-8")
    from serving.settings import get_serving_settings

    with pytest.raises(ValueError, match="keys.txt:1: not a SHA-256 hex digest"):
        get_serving_settings(api_key_hashes="", api_key_hashes_file=str(keys))
    with pytest.raises(ValueError, match="no file"):
        get_serving_settings(api_key_hashes="", api_key_hashes_file=str(tmp_path / "none"))


def test_the_rate_limit_answers_429_with_retry_after(trained: Trained) -> None:  # noqa: F811
    app = app_at([trained.lead, trained.deal], rate_limit_per_minute=3)
    lead_id = open_leads(trained.tables, AS_OF)[0]
    body = lead_request(trained.tables, lead_id, AS_OF)
    with TestClient(app) as client:
        codes = [client.post("/v1/leads/score", json=body,
                             headers={"Authorization": f"Bearer {API_KEY}"}).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 200]
        r = client.post("/v1/leads/score", json=body,
                        headers={"Authorization": f"Bearer {API_KEY}"})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert "too many requests for this API key" in r.json()["detail"]
        assert client.get("/healthz").status_code == 200  # no key, no limit


def test_the_bucket_refills_evenly() -> None:
    limiter = RateLimiter(per_minute=60)
    assert all(limiter.retry_after("k", now=0.0) is None for _ in range(60))
    assert limiter.retry_after("k", now=0.0) == 1
    assert limiter.retry_after("k", now=1.0) is None  # one a second comes back
    assert limiter.retry_after("other", now=1.0) is None  # per key
    assert RateLimiter(0).retry_after("k") is None


def test_the_key_ring_reads_comments_and_the_settings_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"\n  {hash_api_key('a').upper()}  # ops\n", encoding="utf-8")
    ring = KeyRing([hash_api_key("b")], keys)
    assert set(ring.digests()) == {hash_api_key("a"), hash_api_key("b")}
