"""An MLflow tracking server on PostgreSQL, for more than one machine or API replica.

The embedded SQLite store (``modeling.registry``) is one file on one disk: one machine's
training and serving can share it, replicas on several machines cannot. This starts what
they can share: ``mlflow server`` with runs and the model registry in PostgreSQL (the
backend store) and the models' files in an artifact destination it serves itself
(``--serve-artifacts``), so clients need only its HTTP address in ``MLFLOW_TRACKING_URI``.

``leadscore tracking-server`` (and ``make tracking-server``) creates the database when it
is missing, runs ``mlflow db upgrade`` once, then replaces itself with ``mlflow server``.
The upgrade runs before the server because every server worker opens the store at start:
on a new database they would race to create the tables, and on an older schema they
refuse to start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_BACKEND_STORE_URI = "postgresql://postgres@127.0.0.1:5432/leadscore"
DEFAULT_ARTIFACTS_DESTINATION = "models/server-artifacts"
DRIVER = "psycopg2"
"""The driver the ``[server]`` extra installs. SQLAlchemy 2.1 reads a bare
``postgresql://`` as psycopg 3, so bare URIs are given this driver explicitly."""

QUIET_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""MLflow 3 starts seven job-runner processes beside the server for its GenAI jobs
(trace roll-ups, evaluations); leadscore logs no traces, so they are off unless the
environment turns them on."""


class TrackingServerSettings(BaseSettings):
    """Where the server keeps what, and where it listens (``LEADSCORE_TRACKING_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_TRACKING_", extra="ignore",
                                      hide_input_in_errors=True)

    backend_store_uri: str = DEFAULT_BACKEND_STORE_URI
    """Runs, metrics, parameters, tags and the model registry (versions, aliases)."""
    artifacts_destination: str = DEFAULT_ARTIFACTS_DESTINATION
    """The models' files and the runs' reports: a folder (relative to the current
    directory) or any URI MLflow writes to (``s3://...``, ``gs://...``)."""
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=1, le=65535)
    workers: int = Field(2, ge=1, le=64)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Host headers accepted besides ``127.0.0.1:PORT`` and ``localhost:PORT``: the name
    or address (with the port) the replicas and trainers use to reach the server."""

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("backend_store_uri")
    @classmethod
    def _sql_store(cls, value: str) -> str:
        if "://" not in value or value.startswith("file:"):
            raise ValueError("the backend store is a database URI "
                             "(postgresql://USER@HOST:PORT/DATABASE)")
        return value


def get_tracking_server_settings(**overrides: Any) -> TrackingServerSettings:
    """The settings from the environment, with explicit overrides (the CLI's) on top."""
    return TrackingServerSettings(**{k: v for k, v in overrides.items() if v is not None})


def with_driver(uri: str) -> str:
    """``uri`` naming the ``[server]`` extra's driver when it names none."""
    for scheme in ("postgresql://", "postgres://"):
        if uri.startswith(scheme):
            return f"postgresql+{DRIVER}://" + uri[len(scheme):]
    return uri


def artifacts_uri(destination: str, cwd: Path | None = None) -> str:
    """A folder as an absolute path (the server resolves nothing against the clients'
    directories); any other URI as given."""
    if "://" in destination:
        return destination
    return str(((cwd or Path.cwd()) / destination).resolve())


def allowed_hosts(settings: TrackingServerSettings) -> str:
    """The Host headers the server answers: loopback on its port, and the ones given.
    MLflow refuses any other, which keeps a web page from reaching it through a DNS name
    that points at this machine."""
    own = [f"127.0.0.1:{settings.port}", f"localhost:{settings.port}"]
    if settings.host not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
        own.append(f"{settings.host}:{settings.port}")
    return ",".join(dict.fromkeys([*own, *settings.allowed_hosts]))


def mlflow_command() -> list[str]:
    """MLflow's command line, from this interpreter's installation."""
    return [sys.executable, "-m", "mlflow"]


def upgrade_command(settings: TrackingServerSettings) -> list[str]:
    return [*mlflow_command(), "db", "upgrade", with_driver(settings.backend_store_uri)]


def server_command(settings: TrackingServerSettings, cwd: Path | None = None) -> list[str]:
    """``mlflow server``'s arguments; the backend store's URI goes in the environment
    (:func:`server_env`), where a password in it stays out of the process list."""
    return [
        *mlflow_command(), "server",
        "--host", settings.host,
        "--port", str(settings.port),
        "--workers", str(settings.workers),
        "--serve-artifacts",
        "--artifacts-destination", artifacts_uri(settings.artifacts_destination, cwd),
        "--allowed-hosts", allowed_hosts(settings),
    ]


def server_env(settings: TrackingServerSettings,
               environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    for key, value in QUIET_ENV.items():
        env.setdefault(key, value)
    env["MLFLOW_BACKEND_STORE_URI"] = with_driver(settings.backend_store_uri)
    return env


def ensure_database(uri: str) -> bool:
    """Create the PostgreSQL database ``uri`` names when it does not exist (connecting
    to the server's ``postgres`` database to do so); True when it was created. Other
    databases are left to ``mlflow db upgrade``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(with_driver(uri))
    if url.get_backend_name() != "postgresql" or not url.database:
        return False
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as db:
            found = db.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                               {"name": url.database}).first()
            if found is not None:
                return False
            quoted = db.dialect.identifier_preparer.quote(url.database)
            db.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        engine.dispose()


def run(settings: TrackingServerSettings, echo: Any = print) -> None:
    """Create the database if needed, upgrade its schema, then become ``mlflow server``
    (``os.execvpe``: its signals and exit code are the server's own)."""
    from modeling.registry import redact

    store = redact(settings.backend_store_uri)
    if ensure_database(settings.backend_store_uri):
        echo(f"created the database of {store}")
    echo(f"upgrading the schema of {store} (mlflow db upgrade)")
    subprocess.run(upgrade_command(settings), check=True)
    command = server_command(settings)
    echo(f"MLflow tracking server on http://{settings.host}:{settings.port}: backend store "
         f"{store}, artifacts in {artifacts_uri(settings.artifacts_destination)}")
    os.execvpe(command[0], command, server_env(settings))
