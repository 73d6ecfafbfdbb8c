"""How long `leadscore import` takes, and how much memory, on a large Salesforce-shaped export.

    python -P benchmarks/import_export.py --leads 100000 --work /tmp/leadscore-bench

(``-P``: this folder holds scripts named like the project's packages, e.g. ``features``.)

Generates a CRM once per size (as ``leadscore generate`` does), writes it as a Salesforce
export would (Account, Lead, Opportunity, OpportunityHistory, Task, Event as ``<Object>.csv``,
API names, Salesforce's own stage, source and industry labels, 18-character-style ids with
the object's prefix, ISO times with milliseconds; the activities a row group at a time),
then imports it with the `salesforce` preset in a fresh process, so that the peak RSS is
the import's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

STAGES = {"prospecting": "Prospecting", "qualification": "Qualification",
          "meeting_demo": "Value Proposition", "proposal": "Proposal/Price Quote",
          "negotiation": "Negotiation/Review", "closed_won": "Closed Won",
          "closed_lost": "Closed Lost", "post_purchase": "Closed Won"}
SOURCES = {"inbound_web_form": "Web", "webinar": "Seminar - Internal",
           "referral": "Employee Referral", "paid_search": "Advertisement",
           "cold_outbound": "Purchased List", "event": "Trade Show", "partner": "Partner"}
INDUSTRIES = {"software": "Technology", "financial_services": "Banking",
              "healthcare": "Healthcare", "manufacturing": "Manufacturing", "retail": "Retail",
              "education": "Education", "government": "Government", "media": "Media",
              "telecom": "Telecommunications", "energy": "Energy",
              "professional_services": "Consulting", "logistics": "Transportation"}
# Tasks by Type; marketing touches as a marketing-automation sync logs them.
TASK_TYPES = {"email_sent": "Email", "call": "Call", "email_opened": "Email Opened",
              "email_clicked": "Email Clicked", "email_replied": "Email Reply",
              "web_visit": "Web Visit", "pricing_page_visit": "Pricing Page",
              "content_download": "Content Download", "form_submitted": "Form Fill",
              "webinar_attended": "Webinar"}
EVENT_TYPES = {"meeting": "Meeting", "demo": "Demo"}

MAPPING = """\
preset: salesforce
tables:
  activities:
    tasks:
      source: Task
      fields:
        type:
          column: Type
          values:
            Email Opened: email_opened
            Email Clicked: email_clicked
            Email Reply: email_replied
            Web Visit: web_visit
            Pricing Page: pricing_page_visit
            Content Download: content_download
            Form Fill: form_submitted
            Webinar: webinar_attended
        direction:
          column: Direction__c
          values: {Inbound: inbound, Outbound: outbound}
    events:
      source: Event
      fields:
        direction:
          column: Direction__c
          values: {Inbound: inbound, Outbound: outbound}
"""


def prepare(n_leads: int, work: Path, seed: int = 7) -> Path:
    from leadscore.generator import generate_crm, write_crm

    folder = work / f"crm_{n_leads}_parquet"
    if not (folder / "activities.parquet").exists():
        t0 = time.perf_counter()
        write_crm(generate_crm(n_leads, seed=seed), folder)
        print(f"generated {n_leads:,} leads in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def _sf_time(col: pa.ChunkedArray) -> pa.Array:
    seconds = pc.cast(col, pa.timestamp("s", tz="UTC"), safe=False)
    return pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%S.000Z")


def _relabel(col: pa.ChunkedArray, labels: dict[str, str]) -> pa.Array:
    keys = pa.array(list(labels))
    return pc.take(pa.array(list(labels.values())), pc.index_in(col, value_set=keys))


def _prefixed(col: pa.ChunkedArray, prefix: str) -> pa.Array:
    return pc.binary_join_element_wise(prefix, col, "")


def to_salesforce(src: Path, dst: Path) -> Path:
    """The generated tables as a Salesforce data export's files."""
    dst.mkdir(parents=True, exist_ok=True)
    if (dst / "Event.csv").exists():
        return dst
    t0 = time.perf_counter()
    read = {n: pq.read_table(src / f"{n}.parquet") for n in
            ("accounts", "leads", "opportunities", "opportunity_history")}
    a = read["accounts"]
    files = {"Account.csv": pa.table({
        "Id": _prefixed(a["account_id"], "001"), "Name": a["name"],
        "Industry": _relabel(a["industry"], INDUSTRIES), "NumberOfEmployees": a["employees"],
        "AnnualRevenue": a["annual_revenue"], "BillingCountryCode": a["country"],
        "CreatedDate": _sf_time(a["created_at"])})}
    le = read["leads"]
    converted = pc.is_valid(le["qualified_at"])
    status = pc.if_else(converted, "Closed - Converted",
                        pc.if_else(pc.is_valid(le["disqualified_at"]), "Closed - Not Converted",
                                   "Working - Contacted"))
    files["Lead.csv"] = pa.table({
        "Id": _prefixed(le["lead_id"], "00Q"), "CreatedDate": _sf_time(le["created_at"]),
        "LeadSource": _relabel(le["source"], SOURCES), "Title": le["title"],
        "CountryCode": le["country"], "Industry": _relabel(le["industry"], INDUSTRIES),
        "NumberOfEmployees": le["employees"], "Status": status,
        "ConvertedDate": _sf_time(le["qualified_at"]),
        "ConvertedAccountId": pc.if_else(converted, _prefixed(le["account_id"], "001"), None),
        "ConvertedOpportunityId": _prefixed(le["opportunity_id"], "006")})
    files["LeadHistory.csv"] = pa.table({
        "LeadId": _prefixed(le["lead_id"], "00Q").filter(pc.is_valid(le["disqualified_at"])),
        "Field": pa.array(["Status"] * int(pc.sum(pc.is_valid(le["disqualified_at"])).as_py()
                                          or 0)),
        "NewValue": pa.array(["Closed - Not Converted"]
                             * int(pc.sum(pc.is_valid(le["disqualified_at"])).as_py() or 0)),
        "CreatedDate": _sf_time(le["disqualified_at"].filter(pc.is_valid(le["disqualified_at"])))})
    o = read["opportunities"]
    last_stage = pc.if_else(pc.is_valid(o["is_won"]),
                            pc.if_else(pc.fill_null(o["is_won"], False), "Closed Won",
                                       "Closed Lost"), "Prospecting")
    files["Opportunity.csv"] = pa.table({
        "Id": _prefixed(o["opportunity_id"], "006"), "AccountId": _prefixed(o["account_id"], "001"),
        "OwnerId": _prefixed(o["owner_id"], "005"), "CreatedDate": _sf_time(o["created_at"]),
        "Type": o["product"], "Amount": o["amount"],
        "CloseDate": pc.strftime(pc.fill_null(pc.coalesce(o["closed_at"], o["close_date"]),
                                              pa.scalar(0, pa.timestamp("ns", "UTC"))),
                                 format="%Y-%m-%d"),
        "StageName": last_stage})
    h = read["opportunity_history"]
    files["OpportunityHistory.csv"] = pa.table({
        "OpportunityId": _prefixed(h["opportunity_id"], "006"),
        "CreatedDate": _sf_time(h["changed_at"]), "StageName": _relabel(h["stage"], STAGES),
        "Amount": h["amount"], "CloseDate": pc.strftime(h["close_date"], format="%Y-%m-%d")})
    for name, tbl in files.items():
        pacsv.write_csv(tbl, dst / name)
    del read, files
    # The activities by row group (tens of millions of rows at 1M leads), so that writing
    # the export does not hold them all at once.
    n_acts = 0
    writers: dict[str, tuple[pacsv.CSVWriter, pa.Schema]] = {}
    for batch in pq.ParquetFile(src / "activities.parquet").iter_batches(batch_size=1_000_000):
        acts = pa.Table.from_batches([batch])
        who = pc.coalesce(_prefixed(acts["lead_id"], "00Q"),
                          _prefixed(acts["contact_id"], "003"))
        cols = {
            "Id": _prefixed(acts["activity_id"], "00T"), "WhoId": who,
            "WhatId": _prefixed(acts["opportunity_id"], "006"),
            "AccountId": _prefixed(acts["account_id"], "001"),
            "CreatedDate": _sf_time(acts["occurred_at"]),
            "Direction__c": pc.if_else(pc.equal(acts["direction"], "inbound"), "Inbound",
                                       "Outbound"),
        }
        is_event = pc.is_in(acts["type"], value_set=pa.array(list(EVENT_TYPES)))
        task = pa.table({**cols, "Type": _relabel(acts["type"], TASK_TYPES)}).filter(
            pc.invert(is_event))
        event = pa.table({**{("StartDateTime" if k == "CreatedDate" else k): v
                             for k, v in cols.items()},
                          "Type": _relabel(acts["type"], EVENT_TYPES)}).filter(is_event)
        for name, tbl in (("Task.csv", task), ("Event.csv", event)):
            if name not in writers:
                writers[name] = (pacsv.CSVWriter(dst / name, tbl.schema), tbl.schema)
            writer, schema = writers[name]
            writer.write_table(tbl.cast(schema))
        n_acts += acts.num_rows
    for writer, _ in writers.values():
        writer.close()
    print(f"wrote the Salesforce export ({n_acts:,} activities) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return dst


# What the import's time is split into under --profile (cumulative seconds of each).
PARTS = {
    "reading the activity blocks": "importing.py:_csv_chunks",
    "checking them (LeafChecker.check)": "loader.py:check",
    "converting them (ActivityStream.chunk)": "convert.py:chunk",
    "reading the other tables": "importing.py:read_sources",
    "converting the other tables": "convert.py:convert",
    "checking the other tables": "loader.py:validate_checked",
}


def child(export: Path, out: Path, mapping: Path, profile: Path | None = None) -> None:
    from features.mapping.importing import import_settings, run_import
    from leadscore.memory import reuse_freed_memory

    reuse_freed_memory()  # as `leadscore import` does
    settings = import_settings(mapping=mapping, source=export, out=out)
    t0 = time.perf_counter()
    if profile is None:
        result = run_import(settings)
    else:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(run_import, settings)
        prof.dump_stats(profile)
        stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
        for what, where in PARTS.items():
            file, name = where.split(":")
            spent = sum(v[3] for (f, _, fn), v in stats.items()
                        if f.endswith(f"/{file}") and fn == name)
            print(f"{what}: {spent:.1f} s", flush=True)
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    rows = {r["table"]: r["read"] for r in result.load.summary().to_dict("records")}
    print(json.dumps({"seconds": round(seconds, 1), "peak_gb": round(peak_gb, 2),
                      "rows": rows, "rejected": int(len(result.rejections))}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/leadscore-bench"))
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the import under cProfile, write its stats here, and "
                        "print where the time went")
    parser.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, profile=args.profile)
        return 0
    for n in args.leads:
        src = prepare(n, args.work)
        export = to_salesforce(src, args.work / f"salesforce_{n}")
        mapping = args.work / "salesforce_mapping.yaml"
        mapping.write_text(MAPPING, encoding="utf-8")
        profile = ["--profile", str(args.profile)] if args.profile else []
        out = subprocess.run(
            [sys.executable, "-P", __file__, "--child", str(export),
             str(args.work / f"imported_{n}"), str(mapping), *profile],
            capture_output=True, text=True, check=False, timeout=1800,
        )
        if out.returncode:
            print(out.stderr[-3000:])
            return 1
        *parts, last = out.stdout.strip().splitlines()
        for line in parts:
            print(f"  {line}")
        print(f"{n:,} leads: {last}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
