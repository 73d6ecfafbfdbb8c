"""The pipeline review served: ``GET /pipeline`` (the page) and ``GET /v1/pipeline`` (the
same review as JSON) for the data folder of ``LEADSCORE_DATA_DIR``, behind a sign-in.

The review is built once and cached with its rendered page and JSON. Each request compares
the folder's files (names, sizes, modification times) and the served ``deal_close``
version with what the cached review was built from; on a change the review is rebuilt in
a thread, off the event loop, while the cached one keeps being served (header
``X-Review-Data: stale``). Only the first build, with nothing cached yet, is waited for.

Signing in posts an API key to ``/pipeline/sign-in``; it is checked as the ``/v1`` routes
check it and answered with a signed, expiring session cookie (``serving.sessions``):
HttpOnly, SameSite=Strict, never the key. SameSite=Strict keeps the browser from sending
the cookie with a request another site starts, and signing in and out are POST only, so
no page elsewhere can act with a manager's session: no CSRF token is needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from features.loader import DataContractError, load_crm
from modeling.registry import redact
from review.backtest import attach_backtest, read_last_backtest
from review.build import ReviewInputError, build_review
from review.forecasting import attach_forecast
from review.render import environment, render_html
from review.schemas import Review
from review.settings import ReviewSettings, get_review_settings
from serving import sessions
from serving.app import create_app as create_scoring_app
from serving.auth import RateLimiter, check_key, key_matches
from serving.deps import keyring
from serving.errors import error_response
from serving.models import LoadedModel, ModelStore
from serving.settings import ScoringSettings, ServingSettings

log = logging.getLogger("leadscore.review.web")

TASK = "deal_close"
SIGN_IN = "/pipeline/sign-in"
SIGN_OUT = "/pipeline/sign-out"
MAX_FORM_BYTES = 4096

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""The page runs only its own inline script and style, posts only to this server and is
never framed; a signed-in page is never cached."""

Fingerprint = tuple[tuple[str, int, int], ...]


class PageUnavailable(Exception):
    """The review cannot be shown; ``status`` and ``reason`` say why (404: no data folder
    configured; 503: no deal model, or the folder cannot be reviewed)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Built:
    """A review with its page and JSON, and what it was built from."""

    key: tuple[Fingerprint, str]
    review: Review
    html: bytes
    json: bytes
    seconds: float


def fingerprint(folder: Path) -> Fingerprint:
    """Name, size and modification time of each file in ``folder``: what a change to the
    data changes. Raises :class:`PageUnavailable` when the folder cannot be read."""
    try:
        with os.scandir(folder) as entries:
            found = [(e.name, (st := e.stat()).st_size, st.st_mtime_ns)
                     for e in entries if e.is_file()]
    except OSError as exc:
        log.error("pipeline data folder unreadable",
                  extra={"error": f"{folder}: {exc.strerror or exc}"})
        raise PageUnavailable(503, "the data folder cannot be read; the server's log says "
                                   "why") from None
    return tuple(sorted(found))


class ReviewCache:
    """The latest review of one folder with one deal model, rebuilt when either changes."""

    def __init__(self, folder: Path, settings: ReviewSettings) -> None:
        self.folder = folder
        self.settings = settings
        self.built: Built | None = None
        self.failed: tuple[tuple[Fingerprint, str], PageUnavailable] | None = None
        self.task: asyncio.Task[None] | None = None

    def build(self, key: tuple[Fingerprint, str], model: LoadedModel) -> Built:
        """Read the folder and build the review as of its latest event (blocking)."""
        started = time.perf_counter()
        try:
            loaded = load_crm(self.folder)
            s = self.settings
            review = build_review(loaded.tables, model, s, period=s.period,
                                  target=s.review_target,
                                  history_periods=s.review_history_periods)
            saved = read_last_backtest(s.tracking_uri)
            attach_forecast(review, loaded.tables, model, s.tracking_uri, saved, self.folder)
            attach_backtest(review, saved, self.folder)
        except (DataContractError, ReviewInputError, OSError) as exc:
            # The reason names files and columns of the server: the log has it, the
            # answer only says where to look.
            log.error("pipeline review not built", extra={"error": redact(str(exc))})
            raise PageUnavailable(503, "the data folder cannot be reviewed; the server's log "
                                       "says why") from None
        html = render_html(review, self.settings.review_page_deals, sign_out=SIGN_OUT)
        return Built(key, review, html.encode("utf-8"), review.model_dump_json().encode(),
                     time.perf_counter() - started)

    async def _refresh(self, key: tuple[Fingerprint, str], model: LoadedModel) -> None:
        try:
            built = await asyncio.to_thread(self.build, key, model)
        except PageUnavailable as exc:
            self.failed = (key, exc)
            log.warning("pipeline review not built", extra={"error": exc.reason})
        except Exception as exc:  # a bad build must not take the cached review down
            self.failed = (key, PageUnavailable(503, "the review could not be built; the "
                                                     "log has the error"))
            log.error("pipeline review failed", exc_info=exc)
        else:
            self.built, self.failed = built, None
            log.info("pipeline review built", extra={
                "seconds": round(built.seconds, 3), "open_deals": built.review.at_risk.open_deals,
                "model_version": model.version})
        finally:
            self.task = None

    def refresh(self, model: LoadedModel) -> tuple[Fingerprint, str]:
        """Start a rebuild when the folder or the model changed and none is running."""
        key = (fingerprint(self.folder), f"{model.name}/{model.version}")
        stale = self.built is None or self.built.key != key
        retried = self.failed is not None and self.failed[0] == key
        if stale and not retried and self.task is None:
            self.task = asyncio.create_task(self._refresh(key, model))
        return key

    async def get(self, model: LoadedModel) -> tuple[Built, bool]:
        """The review to serve and whether it is current (False: a rebuild is running or
        failed, and this is the one before it)."""
        key = self.refresh(model)
        if self.built is None and self.task is not None:
            await asyncio.shield(self.task)
        if self.built is not None:
            return self.built, self.built.key == key
        assert self.failed is not None
        raise self.failed[1]


def _cache(request: Request) -> ReviewCache:
    cache: ReviewCache | None = request.app.state.review_cache
    if cache is None:
        raise PageUnavailable(404, "no data folder is configured: set LEADSCORE_DATA_DIR to "
                                   "the CRM folder to review and restart the server")
    return cache


def _model(request: Request) -> LoadedModel:
    store: ModelStore = request.app.state.store
    model = store.get(TASK)
    if model is None:
        why = store.withheld(TASK) or "none is loaded yet"
        raise PageUnavailable(503, f"no {TASK} model is served to score the deals: {why}")
    return model


def _settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def signed_in(request: Request) -> bool:
    """The request carries a valid session cookie (or the server runs without keys)."""
    s = _settings(request)
    return s.insecure_no_auth or sessions.valid(
        request.cookies.get(sessions.COOKIE), s.session_secret.get_secret_value())


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    header = request.headers.get("x-api-key", "").strip()
    return header or None


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


page = APIRouter(include_in_schema=True, tags=["pipeline review"])


@page.get(SIGN_IN, response_class=HTMLResponse, summary="The sign-in form of the page")
async def sign_in_form(request: Request) -> Response:
    if signed_in(request):
        return RedirectResponse("/pipeline", status_code=303)
    return _page("sign_in.html.j2", error=None)


@page.post(SIGN_IN, response_class=HTMLResponse,
           summary="Sign in with an API key: sets the session cookie")
async def sign_in(request: Request) -> Response:
    """Checks the form's ``api_key`` as the /v1 routes check a key; on success a 303 to
    /pipeline with the session cookie (HttpOnly, SameSite=Strict, the session's expiry)."""
    s = _settings(request)
    wait = request.app.state.sign_in_limiter.retry_after(
        request.client.host if request.client else "unknown")
    if wait is not None:
        log.info("pipeline sign-in rate limited")
        limited = _page("sign_in.html.j2", 429,
                        error=f"Too many sign-in attempts: try again in {wait} s.")
        limited.headers["Retry-After"] = str(wait)
        return limited
    body = await request.body()
    form = parse_qs(body.decode("utf-8", "replace")) if len(body) <= MAX_FORM_BYTES else {}
    key = (form.get("api_key") or [""])[0].strip()
    if not key:
        return _page("sign_in.html.j2", 401, error="Enter an API key.")
    if not s.insecure_no_auth and not key_matches(key, keyring(request).digests()):
        log.info("pipeline sign-in refused")
        return _page("sign_in.html.j2", 403, error="That API key is not accepted.")
    response = RedirectResponse("/pipeline", status_code=303)
    response.set_cookie(
        sessions.COOKIE, sessions.issue(s.session_secret.get_secret_value(), s.session_ttl_s),
        max_age=s.session_ttl_s, path="/", httponly=True, samesite="strict",
        secure=s.session_cookie_secure)
    return response


@page.post(SIGN_OUT, summary="Sign out: clears the session cookie")
async def sign_out() -> Response:
    response = RedirectResponse(SIGN_IN, status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return response


@page.get("/pipeline", response_class=HTMLResponse,
          summary="The pipeline review page (signed in; otherwise a redirect to sign-in)")
async def pipeline_page(request: Request) -> Response:
    if not signed_in(request):
        return RedirectResponse(SIGN_IN, status_code=303)
    try:
        built, current = await _cache(request).get(_model(request))
    except PageUnavailable as exc:
        return _page("unavailable.html.j2", exc.status, reason=exc.reason)
    return Response(built.html, media_type="text/html; charset=utf-8",
                    headers={**PAGE_HEADERS, "X-Review-Data": "current" if current else "stale"})


@page.get("/v1/pipeline", summary="The pipeline review as JSON",
          responses={200: {"model": Review, "description": "the review (review.json's form)"},
                     401: {"description": "no API key and no session"},
                     403: {"description": "API key not accepted"},
                     404: {"description": "no data folder configured"},
                     503: {"description": "no deal model, or the folder cannot be reviewed"}})
async def pipeline_json(request: Request) -> Response:
    """The review the page shows, as ``review.json`` holds it; takes the API key header
    (``Authorization: Bearer`` or ``X-API-Key``) or the page's session cookie."""
    if not signed_in(request):
        check_key(_presented_key(request), keyring(request).digests(), enabled=True)
    try:
        built, current = await _cache(request).get(_model(request))
    except PageUnavailable as exc:
        return error_response(exc.status, "pipeline_unavailable", exc.reason)
    return Response(built.json, media_type="application/json",
                    headers={"Cache-Control": "no-store",
                             "X-Review-Data": "current" if current else "stale"})


def review_settings_for(settings: ScoringSettings) -> ReviewSettings:
    """The review's settings from the environment, scoring's fields as the server has them."""
    return get_review_settings(**{k: getattr(settings, k) for k in ScoringSettings.model_fields})


def create_app(
    settings: ServingSettings, *, review_settings: ReviewSettings | None = None,
    **kwargs: Any,
) -> FastAPI:
    """The scoring API (``serving.app.create_app``, same arguments) with the pipeline
    review's routes; the review of ``settings.data_dir`` starts building at startup once a
    deal model is loaded."""
    app = create_scoring_app(settings, **kwargs)
    folder = settings.data_dir
    cache = None if folder is None else ReviewCache(
        Path(folder), review_settings or review_settings_for(settings))
    app.state.review_cache = cache
    app.state.sign_in_limiter = RateLimiter(settings.sign_in_attempts_per_minute)
    app.include_router(page)
    inner: Callable[..., Any] = app.router.lifespan_context

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> Any:
        async with inner(a) as state:
            model = app.state.store.get(TASK)
            if cache is not None and model is not None:
                try:
                    cache.refresh(model)
                except PageUnavailable as exc:
                    log.warning("pipeline review not built", extra={"error": exc.reason})
            yield state

    app.router.lifespan_context = lifespan
    return app
