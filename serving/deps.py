"""What routes receive by injection: settings, models, the clock, the caller's key check.

Tests swap any of these with ``app.dependency_overrides`` (a fixed clock for parity)
without touching the routes. The scoring routes and the key check read the settings, the
metrics and the model store from ``app.state`` instead: each dependency solved costs a
few percent of a one-lead request, and only the clock is ever swapped. All are
``async def``: FastAPI runs a plain ``def`` dependency in the threadpool, a hop that costs
more than the work.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.auth import KeyRing, check_key, check_rate
from serving.metrics import Metrics
from serving.models import ModelStore
from serving.monitoring import Monitor
from serving.settings import ServingSettings

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


async def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


async def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


async def get_now() -> datetime:
    """The snapshot time of a request: now, in UTC."""
    return datetime.now(UTC)


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
NowDep = Annotated[datetime, Depends(get_now)]
MonitorDep = Annotated[Monitor, Depends(get_monitor)]


async def require_api_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key)],
) -> None:
    """401 without a key, 403 with a wrong one; nothing when keys are off (dev only).

    The settings are read from the app rather than injected: every dependency FastAPI
    solves costs a few percent of a one-lead request."""
    settings: ServingSettings = request.app.state.settings
    key = bearer.credentials.strip() if bearer is not None and bearer.credentials else None
    if not key and header_key and header_key.strip():
        key = header_key.strip()
    check_key(key or None, keyring(request).digests(), enabled=not settings.insecure_no_auth)
    check_rate(request.app.state.rate_limiter, key or None)


def keyring(request: Request) -> KeyRing:
    """The app's accepted key digests (its settings' and its key file's)."""
    ring: KeyRing = request.app.state.keyring
    return ring
