"""Request benchmark: what parsing, validating and serialising a scoring request costs.

Two steps, so that a JSON library not among the project's dependencies (msgspec) can be
measured from another virtualenv:

1. `prepare OUT --data DIR` (project virtualenv; the lead champion of
   `LEADSCORE_TRACKING_URI`): the body of a `--leads` (100) lead request, open leads of
   the CRM in `DIR` with their activities as the API takes them, and the response
   `POST /v1/leads/score` gives for it (reasons and trend), both as JSON files.
2. `measure OUT` (the project virtualenv, msgspec optional): median and fastest
   microseconds, the cases taking turns, of decoding the body (the standard library,
   the exact way with its duplicate-key hook, orjson, orjson with the repeated-key
   count the routes use, msgspec), of validating it (the models a record at a time, the
   whole ``validate_body`` both ways), of turning it
   into column tables, of validating it other ways (`LeadBatch.model_validate` of
   decoded JSON as FastAPI does, `model_validate_json` of the bytes, one `TypeAdapter`
   over all the activities), and of serialising the response (`json.dumps` as Starlette's
   `JSONResponse` renders, orjson, msgspec, pydantic's `model_dump_json`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def prepare(out: Path, data: Path, n: int) -> None:
    import pandas as pd

    from features.loader import load_crm
    from features.schema import ACTIVITIES, LEADS
    from features.snapshots import data_end_of
    from serving.endpoints import LEADS as LEAD_ENDPOINT
    from serving.endpoints import Ask
    from serving.models import source_from_settings
    from serving.schemas import LeadBatch
    from serving.settings import get_scoring_settings

    tables = load_crm(data).tables
    as_of = data_end_of(tables)
    leads = tables.leads
    open_ = ((leads["created_at"] < as_of) & ~(leads["qualified_at"] <= as_of).fillna(False)
             & ~(leads["disqualified_at"] <= as_of).fillna(False))
    chosen = leads.loc[open_].head(n)
    acts = tables.activities
    acts = acts.loc[acts["lead_id"].isin(set(chosen["lead_id"])) & (acts["occurred_at"] < as_of)]

    def records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
        rows = frame[columns].astype(object).where(frame[columns].notna(), None)
        return [{k: v.isoformat() if isinstance(v, pd.Timestamp) else v for k, v in r.items()}
                for r in rows.to_dict(orient="records")]

    by_lead: dict[str, list[dict[str, Any]]] = {}
    for rec in records(acts, ACTIVITIES.column_names):
        by_lead.setdefault(rec["lead_id"], []).append(rec)
    body = {"leads": [dict(rec, activities=by_lead.get(rec["lead_id"], []))
                      for rec in records(chosen, LEADS.column_names)]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "body.json").write_text(json.dumps(body))
    model = source_from_settings(get_scoring_settings()).load("lead_qualification")
    batch = LeadBatch.model_validate(body)
    ids = [lead.lead_id for lead in batch.leads]
    answer = LEAD_ENDPOINT.respond(batch, [model], LEAD_ENDPOINT.tables(batch), ids,
                                   as_of.to_pydatetime(), Ask(), get_scoring_settings())
    (out / "response.json").write_text(answer.model_dump_json())
    print(f"{len(ids)} leads, {sum(len(v) for v in by_lead.values())} activities, "
          f"body {len((out / 'body.json').read_bytes()) / 1e3:.0f} KB, response "
          f"{len((out / 'response.json').read_bytes()) / 1e3:.0f} KB")


def measure(out: Path, reps: int) -> None:
    from unittest import mock

    from pydantic import TypeAdapter

    from serving import body as body_module
    from serving.requests import lead_tables
    from serving.schemas import ActivityIn, LeadBatch, LeadIn, LeadScores

    raw = (out / "body.json").read_bytes()
    body = json.loads(raw)
    response = LeadScores.model_validate_json((out / "response.json").read_bytes())
    plain = response.model_dump(mode="json")
    batch = body_module.validate_body(LeadBatch, raw)
    decoded = body_module._decoded(raw)
    assert decoded is not None, "the body should take the fast path"

    def exact_way() -> object:
        with mock.patch.object(body_module, "_decoded", lambda _: None):
            return body_module.validate_body(LeadBatch, raw)

    cases: dict[str, Callable[[], object]] = {
        "decode body: json.loads": lambda: json.loads(raw),
        "decode body: parse_json (json.loads, duplicate-key hook; the exact way)":
            lambda: body_module.parse_json(raw),
        "decode body: orjson + repeated-key count (the fast way)":
            lambda: body_module._decoded(raw),
        "validate: the models, a record at a time (the exact way)":
            lambda: LeadBatch.model_validate(
                {"leads": [LeadIn.model_validate(r, context=body_module.JSON_CONTEXT)
                           for r in decoded["leads"]]}, context=body_module.JSON_CONTEXT),
        "validate_body, the exact way (before)": exact_way,
        "validate_body (what a route runs)": lambda: body_module.validate_body(LeadBatch, raw),
        "request -> column tables (lead_tables)": lambda: lead_tables(batch),
    }
    try:
        import orjson

        cases["decode body: orjson.loads"] = lambda: orjson.loads(raw)
    except ImportError:
        orjson = None  # type: ignore[assignment]
    try:
        import msgspec

        decoder = msgspec.json.Decoder()
        cases["decode body: msgspec"] = lambda: decoder.decode(raw)
    except ImportError:
        msgspec = None  # type: ignore[assignment]
    activities = [a for lead in body["leads"] for a in lead["activities"]]
    every_activity = TypeAdapter(list[ActivityIn])
    cases.update({
        "validate: LeadBatch.model_validate(decoded) (what FastAPI does)":
            lambda: LeadBatch.model_validate(body),
        "validate: LeadBatch.model_validate_json(bytes)":
            lambda: LeadBatch.model_validate_json(raw),
        "validate: json.loads + model_validate": lambda: LeadBatch.model_validate(json.loads(raw)),
        "validate: activities only, one TypeAdapter over all":
            lambda: every_activity.validate_python(activities),
        "validate: activities only, ActivityIn one by one":
            lambda: [ActivityIn.model_validate(a) for a in activities],
        "serialise: model_dump(mode=json) + json.dumps (JSONResponse)":
            lambda: json.dumps(response.model_dump(mode="json"), ensure_ascii=False,
                               allow_nan=False, indent=None, separators=(",", ":")).encode(),
        "serialise: json.dumps of the dumped dict only":
            lambda: json.dumps(plain, ensure_ascii=False, allow_nan=False, indent=None,
                               separators=(",", ":")).encode(),
        "serialise: model_dump_json (pydantic-core)": lambda: response.model_dump_json(),
    })
    if orjson is not None:
        cases["serialise: model_dump(mode=json) + orjson.dumps"] = (
            lambda: orjson.dumps(response.model_dump(mode="json")))
    if msgspec is not None:
        encoder = msgspec.json.Encoder()
        cases["serialise: model_dump(mode=json) + msgspec"] = (
            lambda: encoder.encode(response.model_dump(mode="json")))
    print(f"body {len(raw) / 1e3:.0f} KB, {len(body['leads'])} leads, {len(activities)} "
          f"activities; response {len(response.model_dump_json()) / 1e3:.0f} KB")
    # The cases take turns, a call each per round, so that load from other work on a
    # shared machine falls on every case alike.
    times: dict[str, list[float]] = {label: [] for label in cases}
    for fn in cases.values():
        fn()
    for _ in range(reps):
        for label, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t)
    print("| step | median µs | fastest µs |")
    print("| --- | ---: | ---: |")
    for label, spent in times.items():
        print(f"| {label} | {statistics.median(spent) * 1e6:,.0f} | {min(spent) * 1e6:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--leads", type=int, default=100)
    m = sub.add_parser("measure")
    m.add_argument("out", type=Path)
    m.add_argument("--reps", type=int, default=100)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.out, args.data, args.leads)
    else:
        measure(args.out, args.reps)


if __name__ == "__main__":
    main()
