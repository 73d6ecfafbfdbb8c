"""The tracking server's command lines: what it is told, and what stays out of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.tracking_server import (
    allowed_hosts,
    get_tracking_server_settings,
    server_command,
    server_env,
    upgrade_command,
    with_driver,
)


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_a_bare_postgresql_uri_names_the_extra_s_driver() -> None:
    assert with_driver("postgresql://u@h:5432/db") == "postgresql+psycopg2://u@h:5432/db"
    assert with_driver("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert with_driver("mysql://u@h/db") == "mysql://u@h/db"


def test_the_server_serves_its_artifacts_from_an_absolute_destination(tmp_path: Path) -> None:
    settings = get_tracking_server_settings(port=5123, artifacts_destination="store/art")
    command = server_command(settings, cwd=tmp_path)
    assert command[command.index("server") - 2:command.index("server")] == ["-m", "mlflow"]
    assert "--serve-artifacts" in command
    assert _flag(command, "--artifacts-destination") == str(tmp_path / "store" / "art")
    assert (_flag(command, "--host"), _flag(command, "--port")) == ("127.0.0.1", "5123")
    s3 = get_tracking_server_settings(artifacts_destination="s3://bucket/models")
    assert _flag(server_command(s3), "--artifacts-destination") == "s3://bucket/models"


def test_the_store_s_password_is_in_the_environment_not_the_process_list() -> None:
    uri = "postgresql://mlflow:s3cret@db.internal:5432/leadscore"
    settings = get_tracking_server_settings(backend_store_uri=uri)
    assert not any("s3cret" in part for part in server_command(settings))
    env = server_env(settings, environ={})
    assert env["MLFLOW_BACKEND_STORE_URI"] == with_driver(uri)
    assert upgrade_command(settings)[-3:] == ["db", "upgrade", with_driver(uri)]


def test_job_runners_stay_off_unless_the_environment_turns_them_on() -> None:
    settings = get_tracking_server_settings()
    assert server_env(settings, environ={})["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    on = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    assert server_env(settings, environ=on)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def test_allowed_hosts_are_loopback_on_its_port_plus_the_names_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADSCORE_TRACKING_ALLOWED_HOSTS", "mlflow.internal:5000, 10.0.0.7:5000")
    settings = get_tracking_server_settings(port=5000)
    assert allowed_hosts(settings).split(",") == [
        "127.0.0.1:5000", "localhost:5000", "mlflow.internal:5000", "10.0.0.7:5000"]
    bound = get_tracking_server_settings(host="10.0.0.7", port=5000)
    assert allowed_hosts(bound).split(",") == [
        "127.0.0.1:5000", "localhost:5000", "10.0.0.7:5000", "mlflow.internal:5000"]


@pytest.mark.parametrize("uri", ["models/mlflow", "file:///srv/mlruns"])
def test_the_backend_store_is_a_database(uri: str) -> None:
    with pytest.raises(ValueError, match="database URI"):
        get_tracking_server_settings(backend_store_uri=uri)


def test_a_database_that_does_not_answer_is_said_before_mlflow_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "tracking-server", "--backend-store-uri",
        "postgresql://leadscore:s3cret@127.0.0.1:1/leadscore",
        "--artifacts-destination", str(tmp_path / "art")])
    assert result.exit_code == 2
    assert "cannot start" in result.output and "is PostgreSQL running" in result.output
    assert "s3cret" not in result.output
    assert not (tmp_path / "art").exists()
