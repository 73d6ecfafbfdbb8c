"""The rendered answers for 20 fixed leads and 20 fixed deals of data/sample, against a
golden file a person has read (``golden/reasons_sample.txt``).

A small model per task is trained here on the sample (quick settings, one thread, fixed
seed), and the leads and deals still open at the sample's end are scored there through
serving's own result builders. After a deliberate change of the reasons, the models or
the sample, rewrite the file with ``LEADSCORE_UPDATE_GOLDEN=1`` and read it again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.loader import load_crm
from features.reasons import words
from features.schema import CRMTables
from features.sets import DEAL_V1, LEAD_V1
from features.training_set import build_training_set
from serving.endpoints import suggest
from serving.models import LoadedModel
from serving.results import Grading, deal_results, lead_results, risk_rules
from serving.schemas import DealResult, LeadResult
from serving.scoring import TREND_DAYS, score_tables
from serving.settings import get_scoring_settings
from tests.model.conftest import QUICK
from tests.unit.test_reasons import PLURAL_SLIP
from training.evaluate import stage_win_rates, won_stage_days_p75_from_history
from training.fit import fit_scoring_model
from training.split import time_split

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
GOLDEN = Path(__file__).parent / "golden" / "reasons_sample.txt"
PICKS = 20


def _train(tables: CRMTables, task: str) -> LoadedModel:
    fs = LEAD_V1 if task == "lead_qualification" else DEAL_V1
    frame = build_training_set(tables, task)
    frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
    split = time_split(frame, fs.entity_key)
    metadata: dict[str, Any] = {}
    if task == "deal_close":
        metadata["stage_win_rates"] = stage_win_rates(split.train, fs.entity_key)
        metadata["won_stage_days_p75"] = won_stage_days_p75_from_history(
            tables, split.validation_start)
    fitted = fit_scoring_model(task, fs, split.train, split.validation, QUICK, seed=7,
                               metadata=metadata)
    return LoadedModel(task=task, model=fitted.model, name=task, version="1",
                       alias="champion", metadata=fitted.model.metadata)


def _data_end(tables: CRMTables) -> pd.Timestamp:
    return max(tables.activities["occurred_at"].max(),
               tables.opportunity_history["changed_at"].max(), tables.leads["created_at"].max())


def _spread(ids: list[str], n: int) -> list[str]:
    """``n`` ids spread evenly over the sorted list: a fixed pick that survives a new
    sample with other ids."""
    ids = sorted(ids)
    return [ids[round(i * (len(ids) - 1) / (n - 1))] for i in range(n)] if len(ids) > n else ids


def _open(frame: pd.DataFrame, key: str, closed: tuple[str, ...], at: pd.Timestamp) -> list[str]:
    keep = frame["created_at"] < at
    for column in closed:
        keep &= ~(frame[column] <= at).fillna(False)
    return frame.loc[keep, key].astype(str).tolist()


def _render(result: LeadResult | DealResult, key: str) -> list[str]:
    head = f"{getattr(result, key)}  score {result.score}"
    if isinstance(result, DealResult):
        head += f"  {words(result.stage)}  risk {result.risk.level}"
    lines = [head]
    if isinstance(result, DealResult):
        lines += [f"  ! {f.reason}" for f in result.risk.flags]
    for sign, reasons in (("+", result.reasons.up), ("-", result.reasons.down)):
        lines += [f"  {sign} {r.text}{'' if r.actionable else '  [fact]'}" for r in reasons]
    lines += [f"  ? {w}" for w in result.warnings]
    if result.trend is not None:
        t = result.trend
        then = [f"{'-' if s is None else s} {when}" for s, when in
                ((t.score_28d_ago, "four weeks ago"), (t.score_7d_ago, "a week ago"))]
        lines.append(f"  ~ trend: {', '.join(then)}, {result.score} now: "
                     f"{t.direction or 'no earlier score'}")
    for w in result.what_if or []:
        lines.append(f"  > {w.text}: {result.score} -> {w.score}")
    return lines


def rendered() -> str:
    tables = load_crm(SAMPLE).tables
    at = _data_end(tables)
    settings = get_scoring_settings()
    out = [f"# data/sample as of {at:%Y-%m-%d %H:%M} UTC. Per entity: flags (!), reasons for (+)",
           "# and against (-), [fact] where a rep cannot act on it, warnings (?), the trend (~)",
           "# and what would raise the score (>).", ""]
    lead_model = _train(tables, "lead_qualification")
    leads = _spread(_open(tables.leads, "lead_id", ("qualified_at", "disqualified_at"), at),
                    PICKS)
    scored = score_tables(lead_model, tables, leads, at, trend_days=TREND_DAYS)
    lead_answers = lead_results(lead_model, scored, Grading())
    suggest(lead_answers, lead_model, tables, scored, at.to_pydatetime(), settings)
    for r in lead_answers:
        out += [*_render(r, "lead_id"), ""]
    deal_model = _train(tables, "deal_close")
    deals = _spread(_open(tables.opportunities, "opportunity_id", ("closed_at",), at), PICKS)
    scored = score_tables(deal_model, tables, deals, at, trend_days=TREND_DAYS)
    deal_answers = deal_results(deal_model, scored, scored.amounts(), Grading(),
                                risk_rules(settings))
    suggest(deal_answers, deal_model, tables, scored, at.to_pydatetime(), settings)
    for d in deal_answers:
        out += [*_render(d, "opportunity_id"), ""]
    return "\n".join(out)


@pytest.fixture(scope="module")
def text() -> str:
    if not (SAMPLE / "leads.parquet").exists() and not (SAMPLE / "leads.csv").exists():
        pytest.skip("no data/sample")
    return rendered()


def test_rendered_answers_match_the_golden_file(text: str) -> None:
    if os.environ.get("LEADSCORE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text + "\n")
    assert text + "\n" == GOLDEN.read_text(), (
        "the rendered answers changed: if on purpose, rerun with LEADSCORE_UPDATE_GOLDEN=1 "
        f"and read {GOLDEN.name} again")


def test_the_golden_answers_read_cleanly(text: str) -> None:
    entities = [block for block in text.split("\n\n") if block and not block.startswith("#")]
    assert len(entities) == 2 * PICKS
    for line in text.splitlines():
        if line.startswith(("  +", "  -", "  >")):
            assert "not known" not in line and "_" not in line, line
        assert not PLURAL_SLIP.search(line), line
