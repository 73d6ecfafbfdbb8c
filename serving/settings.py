"""Settings of the scoring API, read from the environment under ``LEADSCORE_``.

One object per entry point, built by :func:`get_serving_settings` when the server (or a
test) starts, never at import. It refuses to build without API keys unless the insecure
development flag is set explicitly, so a forgotten variable cannot open the API.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from features.tasks import TASKS as REGISTERED
from features.tasks import task_names
from modeling.grading import FIXED_CUTOFFS
from serving.auth import SHA256_HEX, read_key_file

TASKS: tuple[str, ...] = tuple(REGISTERED)
"""Every registered task, served unless ``LEADSCORE_TASKS`` names fewer."""


class ScoringSettings(BaseSettings):
    """What scoring needs, over HTTP or from a file: where models are, grades, risk rules."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore",
                                      hide_input_in_errors=True)

    tracking_uri: str | None = None
    """MLflow tracking URI; None means MLFLOW_TRACKING_URI or the embedded default."""
    model_alias: str = "champion"
    tasks: Annotated[tuple[str, ...], NoDecode] = TASKS
    """The tasks to serve (comma-separated): each needs a model before ``/readyz`` says
    ready; a route whose model is not served answers 503."""
    lead_model_uri: str | None = None
    """Instead of the alias: ``models:/lead_qualification@<alias>``, a pinned
    ``models:/lead_qualification/<version>``, or a saved-model folder (no reload)."""
    deal_model_uri: str | None = None
    model_uris: dict[str, str] = Field(default_factory=dict)
    """Per task, as JSON (``LEADSCORE_MODEL_URIS='{"deal_close": "models:/deal_close/3"}'``):
    the same forms as ``lead_model_uri``, for any task. The two fields above win for theirs."""

    def model_uri(self, task: str) -> str | None:
        """The model URI settings give for a task (None: follow the registry alias)."""
        legacy = {"lead_qualification": self.lead_model_uri, "deal_close": self.deal_model_uri}
        return legacy.get(task) or self.model_uris.get(task)

    grade_cutoffs: tuple[int, int, int] = FIXED_CUTOFFS
    """Minimum score for grades A, B and C (anything lower is D) of a model saved without
    learned cut-offs; every model trained since learns its own (``training.grades``)."""

    stale_data_days: int = Field(30, ge=0)
    """Warn when the scoring time is more than this many days after the newest event the
    score reads: per entity in the API's ``warnings``, once for ``leadscore score
    --as-of``; 0 turns the warning off."""

    risk_no_activity_days: int = Field(14, ge=1)
    risk_probability_ratio: float = Field(0.5, gt=0.0, lt=1.0)
    """A deal is flagged when its probability is below this share of its stage's win rate."""
    risk_amount_cut_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    """A deal is flagged when its amount fell by more than this share since it was created."""

    trend_steady_points: int = Field(5, ge=1, le=100)
    """A trend is steady while the score moved fewer points than this over its span."""

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks(cls, value: Any) -> Any:
        return task_names(value, "serve")

    @field_validator("grade_cutoffs")
    @classmethod
    def _check_cutoffs(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        a, b, c = value
        if not 100 >= a > b > c > 0:
            raise ValueError("grade cut-offs must be decreasing scores in (0, 100]: A > B > C")
        return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (a name, or an address of 127.0.0.0/8 or ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServingSettings(ScoringSettings):
    """Everything the API reads from its environment."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: str = "info"

    api_key_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """SHA-256 hex digests of the accepted API keys (comma-separated in the environment)."""
    api_key_hashes_file: Path | None = None
    """A file of accepted key digests, one per line (``#`` comments), read again when it
    changes: keys rotate without a restart (``LEADSCORE_API_KEY_HASHES_FILE``)."""
    rate_limit_per_minute: int = Field(0, ge=0)
    """Requests a minute each API key may send to /v1 (429 with Retry-After past it);
    0: no limit."""
    insecure_no_auth: bool = False
    """Development only: serve /v1 without keys. Never set this in production."""

    reload_interval_s: float = Field(30.0, ge=0.0)
    """How often to poll the registry alias; 0 turns hot reload off."""
    startup_wait_s: float = Field(5.0, ge=0.0)
    """How long startup waits for the first load of the models before the port opens;
    they go on loading after it (``/readyz`` answers 503 "loading" meanwhile), so an
    unreachable registry never keeps the server from starting or from stopping."""
    registry_timeout_s: float = Field(5.0, gt=0.0, le=300.0)
    """Seconds one registry request may take (MLflow's ``MLFLOW_HTTP_REQUEST_TIMEOUT``,
    unless that is set)."""
    registry_retries: int = Field(1, ge=0, le=10)
    """Retries of a failed registry request (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, unless set)."""
    registry_warn_polls: int = Field(3, ge=1)
    """``/readyz`` says the registry is unreachable after this many failed polls in a row."""

    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    inline_max_rows: int = Field(256, ge=0)
    """Requests of up to this many records in all (entities, activities, history, signals,
    context) are scored on the event loop; larger ones in a thread."""
    inline_max_bytes: int = Field(64 * 1024, ge=0)
    """Bodies up to this size are parsed and validated on the event loop; larger ones in a
    thread, so a big request never holds the others."""

    monitor_window_rows: int = Field(10_000, ge=0, le=1_000_000)
    """Rows scored per task that ``/metrics`` and ``GET /v1/monitoring`` hold against the
    model's reference profile (the newest; 0 turns the window off)."""
    monitor_window_bytes: int = Field(16 * 1024 * 1024, ge=0)
    """At most this much memory per task's window (8 bytes a feature and score per row):
    fewer rows than ``monitor_window_rows`` when the feature set is wide."""
    monitor_min_rows: int = Field(200, ge=1)
    """Below this many rows in a task's window it reports "too few rows", not a PSI: on a
    few rows PSI is mostly noise."""
    psi_warn: float = Field(0.1, gt=0.0)
    """PSI from which a feature or the score reads "warn"."""
    psi_alert: float = Field(0.25, gt=0.0)
    """PSI from which it reads "alert"."""

    @model_validator(mode="after")
    def _psi_order(self) -> ServingSettings:
        if self.psi_warn >= self.psi_alert:
            raise ValueError("LEADSCORE_PSI_WARN must be below LEADSCORE_PSI_ALERT")
        return self

    data_dir: Path | None = None
    """The CRM folder whose pipeline review ``/pipeline`` and ``/v1/pipeline`` show
    (``LEADSCORE_DATA_DIR``); none: those routes answer 404, saying so."""
    session_ttl_s: int = Field(8 * 3600, ge=60, le=30 * 24 * 3600)
    """How long a sign-in to the pipeline page lasts (the session cookie's Max-Age)."""
    session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)))
    """The key that signs session cookies (``LEADSCORE_SESSION_SECRET``). By default a new
    random one each time the settings are built: sign-ins end when the server restarts,
    and the workers of one server share it. Set it to keep sign-ins across restarts."""
    session_cookie_secure: bool = False
    """Mark the session cookie ``Secure`` (sent over HTTPS only): set it behind TLS."""
    sign_in_attempts_per_minute: int = Field(10, ge=0)
    """Sign-in attempts a minute one client address may make on the pipeline page (429
    past it, with Retry-After); 0: no limit."""

    @model_validator(mode="after")
    def _no_open_door(self) -> ServingSettings:
        if self.insecure_no_auth and not is_loopback(self.host):
            raise ValueError(
                "LEADSCORE_INSECURE_NO_AUTH=true serves /v1 without API keys, so it binds only "
                f"to a loopback host (127.0.0.1, ::1, localhost), not {self.host!r}")
        return self

    @field_validator("session_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("the session secret must be at least 32 characters")
        return value

    @field_validator("api_key_hashes", mode="before")
    @classmethod
    def _split_hashes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [str(part).strip().lower() for part in value]
        return value

    @field_validator("api_key_hashes")
    @classmethod
    def _check_hashes(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not SHA256_HEX.match(v)]
        if bad:
            raise ValueError(f"{len(bad)} entries are not SHA-256 hex digests (64 hex chars)")
        return value

    @model_validator(mode="after")
    def _refuse_open_api(self) -> ServingSettings:
        if self.api_key_hashes_file is not None:
            if not self.api_key_hashes_file.is_file():
                raise ValueError(f"LEADSCORE_API_KEY_HASHES_FILE: no file "
                                 f"{self.api_key_hashes_file}")
            file_keys = read_key_file(self.api_key_hashes_file)
        else:
            file_keys = []
        if not self.api_key_hashes and not file_keys and not self.insecure_no_auth:
            raise ValueError(
                "no API keys: set LEADSCORE_API_KEY_HASHES to comma-separated SHA-256 digests "
                "of your keys (or LEADSCORE_API_KEY_HASHES_FILE to a file of them), or "
                "LEADSCORE_INSECURE_NO_AUTH=true for local development only"
            )
        return self


def get_serving_settings(**overrides: Any) -> ServingSettings:
    """Build the API's settings from the environment, with explicit overrides on top."""
    return ServingSettings(**overrides)


def get_scoring_settings(**overrides: Any) -> ScoringSettings:
    """Build batch scoring's settings (no HTTP, no keys) from the environment."""
    return ScoringSettings(**overrides)
