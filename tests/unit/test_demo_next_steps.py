"""`leadscore demo`'s last words: the next steps, and MLflow's chatter kept out."""

from __future__ import annotations

import json
import logging
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlflow.utils.logging_utils import eprint

from leadscore.demo import next_steps, quiet_mlflow
from serving.schemas import AccountBatch, LeadBatch

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _curl_body(lines: list[str]) -> dict[str, object]:
    (data,) = [line for line in lines if line.strip().startswith("-d ")]
    body: dict[str, object] = json.loads(shlex.split(data.strip().removesuffix("\\"))[1])
    return body


def test_next_steps_serve_curl_and_the_mlflow_ui() -> None:
    lines = next_steps(["lead_qualification", "deal_close"], None, now=NOW)
    text = "\n".join(lines)
    assert "LEADSCORE_API_KEY_HASHES=$(printf %s \"$API_KEY\" | sha256sum" in text
    assert any(line.rstrip().endswith(" serve &") and "leadscore" in line for line in lines)
    assert "curl -s -X POST http://127.0.0.1:8000/v1/leads/score" in text
    assert "-H \"Authorization: Bearer $API_KEY\"" in text
    assert "mlflow ui --backend-store-uri sqlite:///models/mlflow.db" in text
    assert "http://127.0.0.1:8000/docs" in text
    lead = LeadBatch.model_validate(_curl_body(lines))  # what the curl posts is a valid body
    assert all(a.occurred_at < NOW for a in lead.leads[0].activities)


def test_next_steps_curl_a_served_route_only(tmp_path: Path) -> None:
    lines = next_steps(["account_expansion"], f"sqlite:///{tmp_path}/mlflow.db", now=NOW)
    AccountBatch.model_validate(_curl_body(lines))
    assert f"--backend-store-uri sqlite:///{tmp_path}/mlflow.db" in "\n".join(lines)
    nothing = next_steps([], None, now=NOW)
    assert not any("curl" in line for line in nothing)
    assert any(line.rstrip().endswith(" serve &") for line in nothing)


def test_quiet_mlflow_keeps_its_info_and_prints_out_and_its_warnings_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = logging.getLogger("mlflow.store.db.utils")
    before = logging.getLogger("mlflow").level
    with quiet_mlflow():
        logger.info("Creating initial MLflow database tables...")
        eprint("Successfully registered model 'lead_qualification'.")
        eprint("Created version '3' of model 'lead_qualification'.")
        logger.warning("the artifact store is read-only")
        eprint("something else MLflow says")
    err = capsys.readouterr().err
    assert "Creating initial" not in err and "Successfully registered" not in err
    assert "Created version" not in err
    assert "the artifact store is read-only" in err and "something else MLflow says" in err
    assert logging.getLogger("mlflow").level == before
