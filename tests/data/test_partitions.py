"""A build by partitions of whole accounts gives the single pass's training set, row for row.

Sequentially, in a pool of two processes and on a Dask ``LocalCluster`` of two workers,
for every task; and no partition's entity reads another partition's rows: every
reference resolves inside its partition, a lead without an account follows the account
its activities name, and cutting an account in two (or leaving out the owners' record
gathered from every partition) changes the features.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from features.build import deal_owners
from features.loader import load_crm
from features.partitions import build_by_partitions, split_crm, training_set_by_partitions
from features.schema import TABLES
from features.snapshots import data_end_of
from features.tasks import TASKS
from features.training_set import build_training_set
from leadscore.cluster import dask_client
from leadscore.generator import generate_crm, write_crm

NOW = pd.Timestamp("2030-01-01", tz="UTC")


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crm")
    write_crm(generate_crm(800, seed=5, months=24), folder)
    return folder


@pytest.fixture(scope="module")
def whole(crm: Path) -> dict[str, pd.DataFrame]:
    """Every task's training set from the single pass over the whole folder."""
    tables = load_crm(crm, now=NOW).tables
    return {task: build_training_set(tables, task) for task in TASKS}


def _by_partitions(crm: Path, task: str, work: Path, executor: object = None) -> pd.DataFrame:
    built = build_by_partitions(crm, task, partitions=3, work_dir=work, now=NOW,
                                executor=executor)  # type: ignore[arg-type]
    assert len(built.parts) == 3
    return built.frame()


@pytest.mark.parametrize("task", list(TASKS))
def test_partitions_one_after_another_equal_the_single_pass(
    crm: Path, whole: dict[str, pd.DataFrame], task: str, tmp_path: Path
) -> None:
    assert len(whole[task]) > 100
    pd.testing.assert_frame_equal(_by_partitions(crm, task, tmp_path), whole[task])


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


@pytest.mark.parametrize("task", ["lead_qualification", "deal_close", "account_renewal"])
def test_partitions_in_a_process_pool_equal_the_single_pass(
    crm: Path, whole: dict[str, pd.DataFrame], task: str, tmp_path: Path,
    pool: ProcessPoolExecutor,
) -> None:
    pd.testing.assert_frame_equal(_by_partitions(crm, task, tmp_path, pool), whole[task])


def test_partitions_on_a_dask_cluster_equal_the_single_pass(
    crm: Path, whole: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    with dask_client("local", n_workers=2, threads_per_worker=1) as client:
        executor = client.get_executor()
        for task in ("lead_qualification", "deal_close"):
            got = _by_partitions(crm, task, tmp_path / task, executor)
            pd.testing.assert_frame_equal(got, whole[task])


def test_the_file_of_a_build_by_partitions_equals_the_single_pass_file(
    crm: Path, tmp_path: Path
) -> None:
    from leadscore.build_cmd import build_training_file

    one = build_training_file(crm, "deal_close", tmp_path / "one.parquet")
    three = build_training_file(crm, "deal_close", tmp_path / "three.parquet", partitions=3,
                                workers=2)
    pd.testing.assert_frame_equal(pd.read_parquet(three.out), pd.read_parquet(one.out))
    assert three.summary == one.summary
    assert three.rejected_rows == one.rejected_rows == 0


def test_every_reference_resolves_inside_its_partition(crm: Path, tmp_path: Path) -> None:
    split = split_crm(crm, 3, tmp_path)
    loaded = [load_crm(folder, now=NOW) for folder in split.folders]
    # The loader would reject a row whose account, lead or deal is in another partition.
    assert all(part.rejections.empty for part in loaded)
    for name in TABLES:
        assert sum(len(part.tables.get(name)) for part in loaded) == split.rows.get(name, 0)
    assert all(len(part.tables.accounts) for part in loaded)
    # The partitions hold disjoint accounts: whole accounts, each in one.
    accounts = [set(part.tables.accounts["account_id"]) for part in loaded]
    assert sum(map(len, accounts)) == len(set().union(*accounts))


def _edit(folder: Path, name: str, **columns: pa.Array) -> None:
    path = folder / f"{name}.parquet"
    table = pq.read_table(path)
    for column, values in columns.items():
        table = table.set_column(table.schema.get_field_index(column), column, values)
    pq.write_table(table, path)


def test_a_lead_without_an_account_follows_its_activities_account(
    crm: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "crm"
    folder.mkdir()
    for path in crm.glob("*.parquet"):
        (folder / path.name).write_bytes(path.read_bytes())
    leads = pq.read_table(folder / "leads.parquet")
    acts = pq.read_table(folder / "activities.parquet", columns=["lead_id", "account_id"])
    # Leads with activities and no deal lose their account; their activities keep it.
    active = set(pc.unique(acts.column("lead_id").drop_null()).to_pylist())
    no_deal = pc.is_null(leads.column("opportunity_id")).to_numpy(zero_copy_only=False)
    ids = leads.column("lead_id").to_pylist()
    chosen = [i for i, lead in enumerate(ids) if lead in active and no_deal[i]][:40]
    account = leads.column("account_id").to_pylist()
    orphaned = [None if i in set(chosen) else a for i, a in enumerate(account)]
    _edit(folder, "leads", account_id=pa.array(orphaned, pa.string()))
    split = split_crm(folder, 3, tmp_path / "parts")
    found = 0
    for part in split.folders:
        loaded = load_crm(part, now=NOW)
        assert loaded.rejections.empty
        here = loaded.tables
        for lead in set(here.leads["lead_id"]) & {ids[i] for i in chosen}:
            found += 1
            mine = here.activities.loc[here.activities["lead_id"] == lead]
            assert len(mine)
            assert set(mine["account_id"]) <= set(here.accounts["account_id"])
    assert found == len(chosen) > 0
    whole = build_training_set(load_crm(folder, now=NOW).tables, "lead_qualification")
    got = build_by_partitions(folder, "lead_qualification", partitions=3,
                              work_dir=tmp_path / "work", now=NOW).frame()
    pd.testing.assert_frame_equal(got, whole)


def test_an_account_cut_in_two_changes_its_features(crm: Path, tmp_path: Path) -> None:
    """What the partitions keep together matters: a lead whose account's activities are
    half elsewhere has other engagement features than in the whole CRM."""
    tables = load_crm(crm, now=NOW).tables
    whole = build_training_set(tables, "lead_qualification")
    acts = tables.activities
    busiest = acts["account_id"].value_counts().index[0]
    mine = acts["account_id"] == busiest
    cut = acts.loc[~mine | (np.arange(len(acts)) % 2 == 0)]
    half = build_training_set(
        type(tables)(**{**{n: tables.get(n) for n in TABLES}, "activities": cut}),
        "lead_qualification", data_end=data_end_of(tables))
    leads = set(tables.leads.loc[tables.leads["account_id"] == busiest, "lead_id"])
    rows = whole["lead_id"].isin(leads).to_numpy()
    assert not whole.loc[rows].reset_index(drop=True).equals(
        half.loc[rows].reset_index(drop=True))


def test_a_partition_without_the_owners_record_reads_other_owner_figures(
    crm: Path, tmp_path: Path
) -> None:
    """The deal owner is the one thing read beyond an account: a partition's own deals
    alone give other owner win rates than the record gathered from every partition."""
    split = split_crm(crm, 3, tmp_path)
    tables = load_crm(crm, now=NOW).tables
    end = data_end_of(tables)
    part = load_crm(split.folders[0], now=NOW).tables
    alone = build_training_set(part, "deal_close", data_end=end)
    shared = build_training_set(part, "deal_close", data_end=end, owners=deal_owners(tables))
    assert not alone["owner_closed_deals"].equals(shared["owner_closed_deals"])
    whole = build_training_set(tables, "deal_close")
    mine = whole.loc[whole["opportunity_id"].isin(set(shared["opportunity_id"]))]
    pd.testing.assert_frame_equal(shared, mine.reset_index(drop=True))


def test_the_training_set_by_partitions_for_train(
    crm: Path, whole: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    frame, rejected = training_set_by_partitions(crm, "lead_qualification", partitions=2,
                                                 work_dir=tmp_path)
    pd.testing.assert_frame_equal(frame, whole["lead_qualification"])
    assert rejected == 0
    assert list(tmp_path.iterdir()) == []  # its work folder is gone


def test_build_command_needs_partitions_for_workers_and_a_cluster_address(
    crm: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from leadscore.cli import app

    base = ["build", "--task", "deal_close", "--data", str(crm), "--out",
            str(tmp_path / "out.parquet")]
    runner = CliRunner()
    alone = runner.invoke(app, [*base, "--workers", "2"])
    assert alone.exit_code == 2 and "--partitions N" in alone.output
    bad = runner.invoke(app, [*base, "--partitions", "2", "--cluster", "nowhere"])
    assert bad.exit_code == 2 and "tcp://HOST:PORT" in bad.output
    ok = runner.invoke(app, [*base, "--partitions", "2"])
    assert ok.exit_code == 0, ok.output
    assert "snapshots of" in ok.output
