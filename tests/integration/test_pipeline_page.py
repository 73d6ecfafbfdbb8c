"""The served pipeline review: sign-in and its cookie, the page and its JSON, what each says
without a data folder or a model, and the review rebuilt when the folder's files change."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from features.schema import TABLES
from review.build import build_review
from review.web import create_app
from serving import sessions
from tests.data.crm_builder import write_folder
from tests.integration.test_api_fixtures import (
    API_KEY,
    Trained,
    auth,
    settings,
    trained,  # noqa: F401  (session fixture)
)


def _folder(trained: Trained, folder: Path, drop: set[str] | None = None) -> Path:  # noqa: F811
    tables = {name: trained.tables.get(name) for name in TABLES}
    if drop:
        opps = tables["opportunities"]
        tables["opportunities"] = opps.loc[~opps["opportunity_id"].isin(drop)]
        hist = tables["opportunity_history"]
        tables["opportunity_history"] = hist.loc[~hist["opportunity_id"].isin(drop)]
    return write_folder(tables, folder, "parquet")


@pytest.fixture(scope="module")
def crm_dir(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return _folder(trained, tmp_path_factory.mktemp("crm"))


@pytest.fixture()
def client(trained: Trained, crm_dir: Path) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(settings(data_dir=crm_dir), models=[trained.lead, trained.deal])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _sign_in(client: TestClient, key: str = API_KEY) -> None:
    r = client.post("/pipeline/sign-in", data={"api_key": key}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/pipeline", r.text


def test_the_page_asks_to_sign_in_and_the_json_for_a_key(client: TestClient) -> None:
    r = client.get("/pipeline", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/pipeline/sign-in"
    form = client.get("/pipeline/sign-in")
    assert form.status_code == 200
    assert '<label for="api_key">' in form.text and 'method="post"' in form.text
    assert client.get("/v1/pipeline").status_code == 401
    assert client.get("/v1/pipeline", headers=auth("not-a-key")).status_code == 403
    # Signing in is POST only: a link cannot sign anyone in or out.
    assert client.get("/pipeline/sign-out").status_code == 405


def test_a_wrong_key_is_refused_and_sets_no_cookie(client: TestClient) -> None:
    r = client.post("/pipeline/sign-in", data={"api_key": "not-a-key"}, follow_redirects=False)
    assert r.status_code == 403 and "not accepted" in r.text
    assert "set-cookie" not in r.headers
    r = client.post("/pipeline/sign-in", data={"api_key": ""}, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert client.get("/pipeline", follow_redirects=False).status_code == 303


def test_sign_in_sets_a_strict_httponly_session_cookie_without_the_key(
    client: TestClient,
) -> None:
    r = client.post("/pipeline/sign-in", data={"api_key": API_KEY}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "max-age", "path"} <= attributes
    assert "samesite=strict" in cookie.lower()
    token = r.cookies[sessions.COOKIE]
    assert API_KEY not in token and "test-key" not in cookie
    page = client.get("/pipeline")
    assert page.status_code == 200 and "Pipeline review as of" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'action="/pipeline/sign-out"' in page.text
    # The same review as JSON, with the cookie and with the key.
    by_cookie = client.get("/v1/pipeline")
    client.cookies.clear()
    by_key = client.get("/v1/pipeline", headers={"X-API-Key": API_KEY})
    assert by_cookie.status_code == by_key.status_code == 200
    assert by_cookie.json() == by_key.json()


def test_a_forged_or_expired_session_is_refused(client: TestClient) -> None:
    secret = client.app.state.settings.session_secret.get_secret_value()  # type: ignore[attr-defined]
    expired = sessions.issue(secret, 60, now=time.time() - 120)
    other = sessions.issue("x" * 40, 3600)
    good = sessions.issue(secret, 3600)
    expiry, nonce, mac = good.split(".")
    extended = f"{int(expiry) + 10**6}.{nonce}.{mac}"
    for token in (expired, other, extended, "garbage", ""):
        client.cookies.set(sessions.COOKIE, token)
        assert client.get("/pipeline", follow_redirects=False).status_code == 303, token
        assert client.get("/v1/pipeline").status_code == 401, token
    client.cookies.set(sessions.COOKIE, good)
    assert client.get("/v1/pipeline").status_code == 200


def test_the_page_and_json_are_the_review_of_the_folder(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    _sign_in(client)
    got = client.get("/v1/pipeline").json()
    expected = build_review(trained.tables, trained.deal, settings())
    assert got["as_of"] == expected.model_dump(mode="json")["as_of"]
    assert [d["opportunity_id"] for d in got["at_risk"]["deals"]] == [
        d.opportunity_id for d in expected.at_risk.deals]
    html = client.get("/pipeline").text
    top = [d.opportunity_id for d in expected.at_risk.deals if d.money_at_risk > 0][:5]
    positions = [html.index(f'data-value="{o}"') for o in top]
    assert positions == sorted(positions)


def test_sign_out_ends_the_session(client: TestClient) -> None:
    _sign_in(client)
    r = client.post("/pipeline/sign-out", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/pipeline/sign-in"
    assert sessions.COOKIE not in client.cookies
    assert client.get("/pipeline", follow_redirects=False).status_code == 303


def test_without_a_data_folder_the_page_says_so(trained: Trained) -> None:  # noqa: F811
    app = create_app(settings(), models=[trained.lead, trained.deal])
    with TestClient(app) as client:
        _sign_in(client)
        page = client.get("/pipeline")
        assert page.status_code == 404 and "no data folder is configured" in page.text
        assert "LEADSCORE_DATA_DIR" in page.text
        r = client.get("/v1/pipeline", headers=auth())
        assert r.status_code == 404 and "LEADSCORE_DATA_DIR" in r.json()["detail"]


def test_without_a_deal_model_the_page_says_so(trained: Trained, crm_dir: Path) -> None:  # noqa: F811
    app = create_app(settings(data_dir=crm_dir, tasks="lead_qualification"),
                     models=[trained.lead])
    with TestClient(app) as client:
        r = client.get("/v1/pipeline", headers=auth())
        assert r.status_code == 503 and "no deal_close model" in r.json()["detail"]


def test_an_unreadable_folder_is_a_503_with_its_reason(
    trained: Trained, tmp_path: Path  # noqa: F811
) -> None:
    app = create_app(settings(data_dir=tmp_path / "missing"), models=[trained.lead, trained.deal])
    with TestClient(app) as client:
        r = client.get("/v1/pipeline", headers=auth())
        assert r.status_code == 503 and "cannot be read" in r.json()["detail"]


def _wait_current(client: TestClient, timeout_s: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get("/v1/pipeline", headers=auth())
        assert r.status_code == 200, r.text
        if r.headers["x-review-data"] == "current":
            body: dict[str, object] = r.json()
            return body
        assert time.monotonic() < deadline, "the review was not rebuilt"
        time.sleep(0.1)


def test_the_review_is_rebuilt_when_the_files_change(
    trained: Trained, tmp_path: Path  # noqa: F811
) -> None:
    folder = _folder(trained, tmp_path / "crm")
    app = create_app(settings(data_dir=folder), models=[trained.lead, trained.deal])
    with TestClient(app) as client:
        cache = app.state.review_cache
        assert cache.task is not None or cache.built is not None  # started at startup
        first = _wait_current(client)
        again = client.get("/v1/pipeline", headers=auth())
        assert again.headers["x-review-data"] == "current" and again.json() == first
        deals = first["at_risk"]["deals"]  # type: ignore[index]
        top = deals[0]["opportunity_id"]
        _folder(trained, folder, drop={top})
        # The cached review is served while the new one is built off the event loop.
        meanwhile = client.get("/v1/pipeline", headers=auth())
        assert meanwhile.status_code == 200
        if meanwhile.headers["x-review-data"] == "stale":
            assert meanwhile.json() == first
        rebuilt = _wait_current(client)
        ids = [d["opportunity_id"] for d in rebuilt["at_risk"]["deals"]]  # type: ignore[index]
        assert top not in ids and len(ids) == len(deals) - 1
        assert json.dumps(rebuilt) != json.dumps(first)


def test_sign_in_attempts_are_rate_limited_per_client(trained: Trained, crm_dir: Path) -> None:  # noqa: F811
    app = create_app(settings(data_dir=crm_dir, sign_in_attempts_per_minute=3),
                     models=[trained.lead, trained.deal])
    with TestClient(app) as c:
        codes = [c.post("/pipeline/sign-in", data={"api_key": "wrong-key"},
                        follow_redirects=False).status_code for _ in range(3)]
        assert codes == [403, 403, 403]
        r = c.post("/pipeline/sign-in", data={"api_key": API_KEY}, follow_redirects=False)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "Too many sign-in attempts" in r.text


def test_a_folder_that_cannot_be_reviewed_says_so_without_its_paths(
        trained: Trained, tmp_path: Path) -> None:  # noqa: F811
    folder = _folder(trained, tmp_path / "crm")
    (folder / "leads.parquet").unlink()  # a required table missing
    app = create_app(settings(data_dir=folder), models=[trained.lead, trained.deal])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.get("/v1/pipeline", headers=auth())
    assert r.status_code == 503
    assert "cannot be reviewed; the server's log says why" in r.text
    assert str(tmp_path) not in r.text and "leads.parquet" not in r.text
