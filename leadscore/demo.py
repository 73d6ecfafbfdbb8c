"""`leadscore demo`: the sample end to end, from validation to a registered model per task."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import shlex
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table

from features.loader import load_crm
from features.tasks import TASKS
from leadscore.funnel import funnel_summary
from leadscore.generate_cmd import run_generate
from modeling.registry import CHAMPION, DEFAULT_TRACKING_URI, resolve_alias, resolve_tracking_uri
from training.commands import run_train
from training.train import TrainResult, train_settings


def run_demo(
    data: Path = Path("data/sample"),
    tracking_uri: str | None = None,
    console: Console | None = None,
    sample_leads: int = 5000,
    seed: int = 7,
) -> dict[str, TrainResult]:
    """Generate or load the sample, validate it, show the funnel, train and register every
    task."""
    console = console or Console()
    if not (data / "leads.parquet").exists() and not (data / "leads.csv").exists():
        console.print(f"no sample in {data}: generating {sample_leads:,} leads (seed {seed})")
        run_generate(out=data, n_leads=sample_leads, seed=seed, start="2023-01-01", months=36,
                     console=console)
    with console.status(f"validating {data}"):
        loaded = load_crm(data)
    summary = loaded.summary()
    table = Table(title=f"validation of {data}")
    for name in ("table", "read", "valid", "rejected"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for rec in summary.to_dict("records"):
        table.add_row(str(rec["table"]), *(f"{rec[k]:,}" for k in ("read", "valid", "rejected")))
    console.print(table)
    f = funnel_summary(loaded.tables)
    console.print(
        f"{f.leads:,} leads, {f.qualification_rate:.1%} qualified; {f.opportunities:,} deals, "
        f"win rate {f.win_rate:.1%} of {f.closed:,} closed; median won cycle "
        f"{f.median_won_cycle_days:.0f} days"
    )
    funnel = Table(title="deals reaching each stage (renewals open at proposal), and median "
                   "days in it")
    for name in ("stage", "deals", "median days"):
        funnel.add_column(name, justify="left" if name == "stage" else "right")
    for stage, n in f.reached.items():
        funnel.add_row(stage, f"{n:,}", f"{f.median_days_in_stage.get(stage, math.nan):.1f}")
    console.print(funnel)
    results = {}
    with quiet_mlflow():
        for task in TASKS:
            settings = train_settings(task=task, data=data, tracking_uri=tracking_uri, seed=seed)
            results[task] = run_train(settings, console)
        console.print(served_table(results, tracking_uri))
        served = [task for task in results if resolve_alias(task, CHAMPION, tracking_uri)]
    print_next_steps(console, served, tracking_uri)
    return results


MLFLOW_PRINTS = re.compile(
    r"^(Successfully registered model '.*'\.|Created version '.*' of model '.*'\.)$"
)
"""What MLflow prints (not logs) on registering a version: the demo says it in its words."""


class _WithoutLines(io.TextIOBase):
    """A text stream passing every whole line to ``target`` except those ``pattern`` matches."""

    def __init__(self, target: TextIO, pattern: re.Pattern[str]) -> None:
        self._target, self._pattern, self._pending = target, pattern, ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if not self._pattern.match(line):
                self._target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def close_pending(self) -> None:
        if self._pending and not self._pattern.match(self._pending):
            self._target.write(self._pending)
        self._pending = ""
        self._target.flush()


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's INFO lines and its "registered model" prints out of the demo's output (the
    demo says what it registered); MLflow's warnings, and everything else, still show."""
    import mlflow  # noqa: F401  (importing it configures its loggers: quiet them after)

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    stream = _WithoutLines(sys.stderr, MLFLOW_PRINTS)
    try:
        with contextlib.redirect_stderr(stream):
            yield
    finally:
        stream.close_pending()
        logger.setLevel(level)


def _here(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return shlex.quote(str(path))


def _command(name: str, module: str) -> str:
    """How to run one of this environment's scripts from here (``.venv/bin/leadscore``), or
    its module with this Python when the script is not installed."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return _here(script)
    return f"{_here(Path(sys.executable))} -m {module}"


def _store_uri(tracking_uri: str | None) -> str:
    """The tracking store as ``mlflow ui`` takes it; the embedded default as it is spelled."""
    uri = resolve_tracking_uri(tracking_uri)
    return DEFAULT_TRACKING_URI if uri == resolve_tracking_uri(DEFAULT_TRACKING_URI) else uri


def next_steps(served: list[str], tracking_uri: str | None = None,
               now: datetime | None = None) -> list[str]:
    """The commands to try next: serve, score an example with curl, browse MLflow."""
    from serving.examples import route_examples
    from serving.settings import ServingSettings

    fields = ServingSettings.model_fields
    base = f"http://{fields['host'].default}:{fields['port'].default}"
    python = _here(Path(sys.executable))
    lines = [
        "next steps",
        "  serve the champions above, in the background of this shell (the server keeps only",
        "  SHA-256 digests of API keys and refuses to start without one):",
        f"    export API_KEY=$({python} -c 'import secrets; print(secrets.token_urlsafe(24))')",
        "    export LEADSCORE_API_KEY_HASHES=$(printf %s \"$API_KEY\" | sha256sum | cut -d' ' -f1)",
        f"    {_command('leadscore', 'leadscore.cli')} serve &",
    ]
    examples = route_examples(now or datetime.now(UTC))
    routes = list(dict.fromkeys(TASKS[t].route for t in served if TASKS[t].route in examples))
    if routes:
        route = routes[0]
        body = min((e["value"] for e in examples[route].values()), key=lambda v: len(str(v)))
        lines += [
            f"  once {base}/readyz answers \"ready\":true (a few seconds), score with {route}:",
            f"    curl -s -X POST {base}{route} \\",
            "      -H \"Authorization: Bearer $API_KEY\" -H 'content-type: application/json' \\",
            f"      -d {shlex.quote(json.dumps(body, separators=(',', ':')))} \\",
            f"      | {python} -m json.tool",
            f"  {base}/docs has a working example of every route (Try it out, with API_KEY as the",
            "  bearer token under Authorize)",
        ]
    lines += [
        "  stop the server with: kill %1",
        "  browse the runs, their reports (plots, model cards) and the registered versions:",
        f"    {_command('mlflow', 'mlflow')} ui --backend-store-uri {_store_uri(tracking_uri)}",
        "  then open http://127.0.0.1:5000",
    ]
    return lines


def print_next_steps(console: Console, served: list[str], tracking_uri: str | None) -> None:
    """The next steps, unwrapped and as typed (commands copy and paste)."""
    for line in next_steps(served, tracking_uri):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def served_table(results: dict[str, TrainResult], tracking_uri: str | None = None) -> Table:
    """Per task, what `leadscore serve` would serve now and why."""
    table = Table(title="what `leadscore serve` serves", show_lines=True)
    table.add_column("task")
    table.add_column("served")
    table.add_column("why", overflow="fold")
    for task, result in results.items():
        champion = resolve_alias(task, CHAMPION, tracking_uri)
        reason = result.decision.reason if result.decision else ""
        if result.withheld:
            table.add_row(task, "nothing (withheld)", result.withheld)
        elif champion is None:
            table.add_row(task, "nothing", "no version is registered as champion")
        elif champion == result.version:
            why = reason or "trained on the same data, settings and code as before"
            table.add_row(task, f"version {champion}", why)
        else:
            table.add_row(task, f"version {champion} (kept)",
                          f"the new version {result.version} is challenger: {reason}")
    return table
