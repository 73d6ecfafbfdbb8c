"""Activities imported a block at a time (as large exports are) give exactly what the
whole file gives: the same tables, the same report, the same rejected rows named by the
same file, row and column, duplicates and orphans found across blocks."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import features.loader as loader
import features.mapping.convert as convert
import features.mapping.importing as importing
from features.mapping.importing import ImportResult, import_settings, run_import
from tests.data.crafted_exports import SALESFORCE, SALESFORCE_BANT, write_export

NOW = "2025-01-01T00:00:00Z"
MAPPING = """\
preset: salesforce
currency:
  rates: {EUR: 1.1}
sources:
  Task: {file: Task.csv, missing: [n/a]}
"""

# Problems planted across the blocks: a task id again in a later block and among the
# events, a lead and a deal no one has, a time that is not one, a 'n/a' that means empty,
# a skipped type, an unmapped type, and a date without a time.
PLANTED = {
    **SALESFORCE,
    "Task.csv": SALESFORCE["Task.csv"] + "".join(
        f"00T{9 + i},00Q1,,,2024-03-{1 + i % 28:02d}T10:00:00.000Z,Email\n" for i in range(40))
    + "00T5,0032,,001B,2024-02-04T10:00:00.000Z,Call\n"
    + "00T90,00Q404,,,2024-02-04T10:00:00.000Z,Call\n"
    + "00T91,0031,006404,,2024-02-04T10:00:00.000Z,Call\n"
    + "00T92,0031,,001A,last tuesday,Call\n"
    + "00T93,n/a,,001A,2024-02-07T10:00:00.000Z,Other\n"
    + "00T94,0031,,001A,2024-02-08,Carrier Pigeon\n",
    "Event.csv": SALESFORCE["Event.csv"] + "00T12,0031,0061,001A,2024-02-07T15:00:00.000Z,Demo\n"
    + "00U1,0031,0061,001A,2024-02-08T15:00:00.000Z,Demo\n",
}


def _both(tmp_path: Path, files: dict[str, str],
          monkeypatch: pytest.MonkeyPatch) -> tuple[ImportResult, ImportResult]:
    export = write_export(tmp_path / "export", files)
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    out = []
    for name, file_bytes in (("whole", 1 << 60), ("streamed", 0)):
        monkeypatch.setattr(importing, "STREAM_FILE_BYTES", file_bytes)
        monkeypatch.setattr(importing, "STREAM_BLOCK_BYTES", 256)  # a few rows a block
        out.append(run_import(import_settings(mapping=tmp_path / "mapping.yaml", source=export,
                                              out=tmp_path / name, now=NOW)))
    return out[0], out[1]


@pytest.mark.parametrize("files", [SALESFORCE, SALESFORCE_BANT, PLANTED],
                         ids=["salesforce", "bant", "planted"])
def test_streamed_activities_give_what_the_whole_file_gives(
    tmp_path: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, streamed = _both(tmp_path, files, monkeypatch)
    assert streamed.load.tables.activities.empty  # written block by block, not held
    for path in sorted(whole.out.iterdir()):
        other = streamed.out / path.name
        if path.suffix == ".parquet":
            a, b = pq.read_table(path), pq.read_table(other)
            assert a.equals(b) and a.schema.equals(b.schema, check_metadata=True), path.name
        else:
            assert path.read_text() == other.read_text(), path.name
    assert whole.summary() == streamed.summary()
    assert whole.rejections.equals(streamed.rejections)


def test_planted_problems_are_found_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, streamed = _both(tmp_path, PLANTED, monkeypatch)
    rej = streamed.rejections
    acts = rej[rej["table"] == "activities"]
    reasons: dict[tuple[str, int], list[str]] = {}
    for f, r, why in zip(acts["file"], acts["row"], acts["reason"], strict=True):
        reasons.setdefault((f, int(r)), []).append(why)
    assert reasons[("Task.csv", 45)] == ["duplicate id: '00T5' first seen at row 3"]  # 00T3
    assert reasons[("Event.csv", 2)] == ["duplicate id: '00T12' first seen at row 7"]
    assert reasons[("Event.csv", 3)] == ["duplicate id: '00U1' first seen at row 49"]
    assert reasons[("Task.csv", 46)] == ["missing required value"]  # no account from 00Q404
    assert reasons[("Task.csv", 47)][1] == (
        "orphan foreign key: no opportunities.opportunity_id '006404'")
    assert reasons[("Task.csv", 48)] == ["bad type: expected timestamp, got 'last tuesday'"]
    assert ("Task.csv", 49) not in reasons  # 'n/a' read as empty; the row skipped (Other)
    summary = streamed.summary()
    assert summary["rejected_rows"] == int(
        streamed.load.rejections.groupby("table")["row"].nunique().sum())
    activities = next(t for t in summary["tables"] if t["table"] == "activities")
    written = pq.read_table(streamed.out / "activities.parquet").num_rows
    assert activities["valid"] == written and activities["read"] == written + activities[
        "rejected"]


# Naive activity times in the mapping's own zone: the blocks' times go through pandas'
# careful localisation (daylight saving), the rest of the block stays in Arrow.
ZONED_MAPPING = MAPPING + "timezone: America/New_York\n"
ZONED = {
    **PLANTED,
    "Event.csv": PLANTED["Event.csv"] + "00U7,0031,0061,001A,2024-03-10 02:30:00,Meeting\n"
    + "00U8,  00Q1 ,,,2024-11-03 01:30:00,webinar\n",
}


@pytest.mark.parametrize(("files", "mapping"), [(SALESFORCE, MAPPING), (PLANTED, MAPPING),
                                                (ZONED, ZONED_MAPPING)],
                         ids=["salesforce", "planted", "zoned"])
def test_blocks_in_arrow_give_what_blocks_as_python_strings_give(
    tmp_path: Path, files: dict[str, str], mapping: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = write_export(tmp_path / "export", files)
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    monkeypatch.setattr(importing, "STREAM_FILE_BYTES", 0)
    monkeypatch.setattr(importing, "STREAM_BLOCK_BYTES", 256)
    results = []
    for name, ready in (("arrow", convert.arrow_ready), ("python", lambda *_: False),
                        ("whole", convert.arrow_ready)):
        monkeypatch.setattr(convert, "arrow_ready", ready)
        if name == "whole":
            monkeypatch.setattr(importing, "STREAM_FILE_BYTES", 1 << 60)
        results.append(run_import(import_settings(mapping=tmp_path / "mapping.yaml",
                                                  source=export, out=tmp_path / name, now=NOW)))
    arrow, python, whole = results
    assert arrow.load.tables.activities.empty and python.load.tables.activities.empty
    for path in sorted(arrow.out.iterdir()):  # the same blocks: the very same bytes
        assert path.read_bytes() == (python.out / path.name).read_bytes(), path.name
        if path.suffix == ".parquet":  # the whole file: one row group, the same table
            a, b = pq.read_table(path), pq.read_table(whole.out / path.name)
            assert a.equals(b) and a.schema.equals(b.schema, check_metadata=True), path.name
        else:
            assert path.read_text() == (whole.out / path.name).read_text(), path.name
    for other in (python, whole):
        assert arrow.summary() == other.summary()
        assert arrow.rejections.equals(other.rejections)
    assert any("put on the one deal" in n for n in arrow.converted.notes)


def test_duplicates_across_blocks_are_found_however_the_seen_keys_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 8 bits every key may have been seen: each block searches the hashes seen before,
    # in runs merged two by two (several levels of them).
    _, fine = _both(tmp_path / "fine", PLANTED, monkeypatch)
    monkeypatch.setattr(loader, "SEEN_BITS", 3)
    monkeypatch.setattr(loader, "MERGED_RUNS", 2)
    _, coarse = _both(tmp_path / "coarse", PLANTED, monkeypatch)
    assert fine.rejections.equals(coarse.rejections)
    assert (fine.rejections["reason"].str.startswith("duplicate id").sum() == 3)
    assert (fine.out / "activities.parquet").read_bytes() == (
        coarse.out / "activities.parquet").read_bytes()
