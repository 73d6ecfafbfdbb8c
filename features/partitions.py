"""Training-set builds by partitions of whole accounts: the same rows, in a fraction of the memory.

A snapshot's features read its entity's rows and those of its account (the account's
deals, activities, signals, contracts), never another account's, but for one thing: the
deal owner's record (a rep owns deals in many accounts). So the CRM is cut into
partitions of whole accounts, each a folder of the contract's tables that the validating
loader reads on its own, and the owners' record is gathered from every partition first
and handed to each (``features.build.DealOwners``).

Which rows go together: accounts, leads and deals are the nodes of a graph whose edges
are every reference between them (a lead's account and deal, a deal's account and lead,
an activity's account, lead and deal); a partition holds whole connected parts, so every
row a row refers to is in its partition. A part is placed by a stable hash of its first
account's id (of its first lead's or deal's where it has no account): a lead without an
account goes by its own id, and its activities and deal follow it. History, field
history and signal rows follow their deal, lead or account. Rows keep their order, so
each partition's loader keeps and rejects what the whole folder's loader would: the
duplicate of a lead, deal or account id lands beside its first occurrence, a rejected
parent takes its children with it.

A build runs in two passes over the partitions, each partition in one task (sequentially,
in a process pool, or on a Dask cluster's workers, through any
``concurrent.futures.Executor``): the first validates and reports what the data's end is
and what each owner did; the second builds the snapshots as of that common end, with
the owners' whole record, and writes them. The outputs are put in the single pass's
order: its entities' order in their table, then time.

Limits: the tables must be Parquet files, and an activity id repeated under two accounts
that share nothing else is checked for duplicates only within its own partition.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from features import point_in_time as pit
from features.build import DealOwners, Step
from features.columns import equals, floats, keys, times
from features.contracts import RENEWAL_PRODUCT
from features.declarations import FeatureSet
from features.keys import text_hashes
from features.loader import load_crm
from features.reading import DataContractError, find_table_files
from features.schema import FIELD_HISTORIES
from features.snapshots import data_end_of
from features.tasks import task_spec
from features.training_set import TrainingSetSummary, build_training_set

BATCH_ROWS = 1 << 20
"""Rows read and routed at a time while a folder is cut into partitions."""
OUT_BATCH_ROWS = 1 << 18
"""Rows of the training set written at a time when the partitions' outputs are merged."""
ENTITY_TABLE = {"lead_id": "leads", "opportunity_id": "opportunities", "account_id": "accounts"}
"""The table that lists the entities of a feature set's key, in the single pass's order."""

_NODE_TABLES = ("accounts", "leads", "opportunities")
_NODE_KEY = {"accounts": "account_id", "leads": "lead_id", "opportunities": "opportunity_id"}
# Each table's references to the nodes: how its rows are routed (first known reference).
_ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "accounts": (("account_id", "accounts"),),
    "leads": (("lead_id", "leads"),),
    "opportunities": (("opportunity_id", "opportunities"),),
    "opportunity_history": (("opportunity_id", "opportunities"),),
    "activities": (("account_id", "accounts"), ("lead_id", "leads"),
                   ("opportunity_id", "opportunities")),
    "account_signals": (("account_id", "accounts"),),
    **{name: ((str(entity.key), entity.name),) for name, entity in FIELD_HISTORIES.items()},
}


class PartitionError(DataContractError):
    """A folder that cannot be built by partitions (its tables are not Parquet)."""


def _text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr if arr.type == pa.string() else pc.cast(arr, pa.string())


def _parquet_files(data_dir: Path) -> dict[str, Path]:
    files = find_table_files(Path(data_dir))
    text = [p.name for p in files.values() if p.suffix != ".parquet"]
    if text:
        raise PartitionError(f"{data_dir}: a build by partitions reads Parquet tables; "
                             f"{', '.join(text)} is not (build it whole, --partitions 1)")
    return files


@dataclass
class _Nodes:
    """Accounts, leads and deals as graph nodes: the ids of each table, and node offsets."""

    ids: dict[str, pa.Array]
    offset: dict[str, int]

    @classmethod
    def read(cls, files: dict[str, Path]) -> _Nodes:
        ids, offset, at = {}, {}, 0
        for name in _NODE_TABLES:
            ids[name] = _text(pq.read_table(files[name], columns=[_NODE_KEY[name]]).column(0))
            offset[name] = at
            at += len(ids[name])
        return cls(ids, offset)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.ids.values())

    def text(self, node: int) -> str:
        for name in reversed(_NODE_TABLES):
            if node >= self.offset[name]:
                return str(self.ids[name][node - self.offset[name]])
        raise IndexError(node)


def _index_in(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    at = pc.index_in(values, value_set=value_set)
    return np.asarray(at.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _codes(nodes: _Nodes, values: pa.Array, table: str) -> np.ndarray:
    at = _index_in(values, nodes.ids[table])
    return np.where(at >= 0, at + nodes.offset[table], -1)


def _batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def _components(nodes: _Nodes, files: dict[str, Path]) -> np.ndarray:
    """Connected part of each node: accounts, leads and deals joined by every reference."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges: list[tuple[np.ndarray, np.ndarray]] = []
    # The same id twice is one node (its first row); every reference is an edge.
    for name in _NODE_TABLES:
        refs = [(c, t) for c, t in _ROUTES["activities"] if c != _NODE_KEY[name]]
        cols = [_NODE_KEY[name]] + [c for c, _ in refs
                                    if c in pq.ParquetFile(files[name]).schema_arrow.names]
        tbl = pq.read_table(files[name], columns=cols)
        me = _codes(nodes, _text(tbl.column(_NODE_KEY[name])), name)
        for column, target in refs:
            if column in tbl.column_names:
                other = _codes(nodes, _text(tbl.column(column)), target)
                ok = (me >= 0) & (other >= 0)
                edges.append((me[ok], other[ok]))

    def parts(extra: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        src = np.concatenate([e[0] for e in extra] or [np.zeros(0, np.int64)])
        dst = np.concatenate([e[1] for e in extra] or [np.zeros(0, np.int64)])
        graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)),
                           shape=(nodes.size, nodes.size))
        return np.asarray(connected_components(graph, directed=False)[1], dtype=np.int64)

    label = parts(edges)
    # Activities join what they refer to: only the pairs not joined already are kept.
    more: list[tuple[np.ndarray, np.ndarray]] = []
    for batch in _batches(files["activities"], [c for c, _ in _ROUTES["activities"]]):
        to = [_codes(nodes, _text(batch.column(c)), t) for c, t in _ROUTES["activities"]]
        for a, b in ((0, 1), (0, 2), (1, 2)):
            ok = (to[a] >= 0) & (to[b] >= 0)
            ok[ok] = label[to[a][ok]] != label[to[b][ok]]
            if ok.any():
                more.append((to[a][ok], to[b][ok]))
    return parts(edges + more) if more else label


@dataclass(frozen=True)
class Split:
    """A folder cut into partitions: one sub-folder of tables each."""

    folders: tuple[Path, ...]
    rows: dict[str, int] = field(default_factory=dict)
    """Rows read per table."""


def partition_of_parts(nodes: _Nodes, label: np.ndarray, n: int) -> np.ndarray:
    """Partition of each node: a stable hash of its part's first node's id (accounts
    come first, so a part with accounts goes by its first account's id)."""
    first = np.full(int(label.max()) + 1 if len(label) else 0, np.iinfo(np.int64).max)
    np.minimum.at(first, label, np.arange(len(label)))
    ids = pa.array([nodes.text(int(node)) for node in first], type=pa.string())
    part = (text_hashes(ids) % np.uint64(n)).astype(np.int64) if len(ids) else first
    return part[label]


def split_crm(data_dir: Path, partitions: int, out_dir: Path) -> Split:
    """Cut the CRM folder ``data_dir`` into ``partitions`` folders of whole accounts under
    ``out_dir`` (``part-000`` ...), each the contract's tables in Parquet, rows in order."""
    files = _parquet_files(Path(data_dir))
    nodes = _Nodes.read(files)
    node_part = partition_of_parts(nodes, _components(nodes, files), partitions)
    folders = tuple(Path(out_dir) / f"part-{p:03d}" for p in range(partitions))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for name, path in files.items():
        pf = pq.ParquetFile(path)
        writers = [pq.ParquetWriter(folder / f"{name}.parquet", pf.schema_arrow)
                   for folder in folders]
        rows[name] = 0
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS):
                part = _route(batch, name, nodes, node_part, partitions)
                rows[name] += batch.num_rows
                for p, writer in enumerate(writers):
                    mine = part == p
                    if mine.any():
                        writer.write_batch(batch.filter(pa.array(mine)))
        finally:
            for writer in writers:
                writer.close()
    return Split(folders=folders, rows=rows)


def _route(batch: pa.RecordBatch, name: str, nodes: _Nodes, node_part: np.ndarray,
           n: int) -> np.ndarray:
    """Partition of each row: that of the first node it refers to; a row referring to
    none that exists goes by a hash of its first reference (it is rejected anywhere)."""
    part = np.full(batch.num_rows, -1, dtype=np.int64)
    names = batch.schema.names
    for column, target in _ROUTES[name]:
        if column not in names:
            continue
        code = _codes(nodes, _text(batch.column(column)), target)
        todo = (part < 0) & (code >= 0)
        part[todo] = node_part[code[todo]]
    if (part < 0).any():
        column = _ROUTES[name][0][0]
        values = _text(batch.column(column)) if column in names else None
        if values is None:
            part[part < 0] = 0
        else:
            hashed = (text_hashes(values.fill_null("")) % np.uint64(n)).astype(np.int64)
            part = np.where(part < 0, hashed, part)
    return part


# -- the work of one partition (runs in a worker: arguments and results are picklable) --


@dataclass(frozen=True)
class PartitionCheck:
    """What the first pass learns of a partition: its data end, rejected rows, owners."""

    data_end: pd.Timestamp | None
    rejected_rows: int
    owners: OwnersPart


@dataclass(frozen=True)
class OwnersPart:
    """A partition's share of :class:`~features.build.DealOwners`, by owner id."""

    ids: np.ndarray
    owner: np.ndarray
    created: np.ndarray
    closed: np.ndarray
    won: np.ndarray
    renewal: np.ndarray
    activity_owner: np.ndarray | None
    activity_time: np.ndarray | None


def check_partition(folder: Path, now: pd.Timestamp, with_activities: bool) -> PartitionCheck:
    """First pass: load and validate one partition; its data end, rejections and owners."""
    loaded = load_crm(Path(folder), now=now)
    tables = loaded.tables
    try:
        end: pd.Timestamp | None = data_end_of(tables)
    except ValueError:
        end = None
    opps = tables.opportunities
    ids, owner = _factor(keys(opps, "owner_id"))
    activity_owner = activity_time = None
    if with_activities:
        acts = tables.activities
        deal = pit.codes(keys(acts, "opportunity_id"), keys(opps, "opportunity_id"))
        on_deal = deal >= 0
        activity_owner = np.where(on_deal, owner[np.where(on_deal, deal, 0)], -1) \
            if len(owner) else np.full(len(acts), -1)
        keep = activity_owner >= 0
        activity_owner = activity_owner[keep].astype(np.int32)
        activity_time = times(acts, "occurred_at")[keep]
    part = OwnersPart(ids=ids, owner=owner, created=times(opps, "created_at"),
                      closed=times(opps, "closed_at"), won=floats(opps, "is_won"),
                      renewal=equals(opps, "product", RENEWAL_PRODUCT),
                      activity_owner=activity_owner, activity_time=activity_time)
    rejected = int(loaded.rejections[["table", "row"]].drop_duplicates().shape[0])
    return PartitionCheck(data_end=end, rejected_rows=rejected, owners=part)


def _factor(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return np.asarray(uniques, dtype=object), codes.astype(np.int64)


def gather_owners(parts: list[OwnersPart]) -> DealOwners:
    """Every partition's owners as one record: codes into the sorted owner ids."""
    ids = np.asarray(sorted({i for p in parts for i in p.ids}), dtype=object)
    vocab = pd.Index(ids)

    def recode(p: OwnersPart, codes: np.ndarray) -> np.ndarray:
        mine = vocab.get_indexer(p.ids) if len(p.ids) else np.zeros(0, np.int64)
        return np.where(codes >= 0, mine[np.maximum(codes, 0)] if len(mine) else -1, -1)

    acts = [p for p in parts if p.activity_owner is not None]
    return DealOwners(
        ids=ids,
        owner=np.concatenate([recode(p, p.owner) for p in parts]),
        created=np.concatenate([p.created for p in parts]),
        closed=np.concatenate([p.closed for p in parts]),
        won=np.concatenate([p.won for p in parts]),
        renewal=np.concatenate([p.renewal for p in parts]),
        activity_owner=np.concatenate([recode(p, p.activity_owner) for p in acts
                                       if p.activity_owner is not None])
        if acts else None,
        activity_time=np.concatenate([p.activity_time for p in acts
                                      if p.activity_time is not None]) if acts else None,
    )


@dataclass(frozen=True)
class BuildJob:
    """The second pass's work on one partition."""

    folder: Path
    task: str
    out: Path
    now: pd.Timestamp
    data_end: pd.Timestamp
    owners: DealOwners
    horizon_days: int | None = None
    every_days: int | None = None
    max_per_entity: int | None = None


def build_partition(job: BuildJob) -> int:
    """Second pass: the partition's training set as of the common data end, written as an
    Arrow file (``job.out``); how many rows."""
    tables = load_crm(job.folder, now=job.now).tables
    frame = build_training_set(tables, job.task, horizon_days=job.horizon_days,
                               every_days=job.every_days, max_per_entity=job.max_per_entity,
                               data_end=job.data_end, owners=job.owners)
    del tables
    table = pa.Table.from_pandas(frame, preserve_index=False)
    del frame
    with ipc.new_file(job.out, table.schema) as writer:
        writer.write_table(table, max_chunksize=OUT_BATCH_ROWS)
    return table.num_rows


# -- the whole build --


def _mapper(executor: Executor | None) -> Callable[..., list]:
    if executor is None:
        return lambda fn, *args: list(map(fn, *args))
    return lambda fn, *args: list(executor.map(fn, *args))


@dataclass(frozen=True)
class PartitionedBuild:
    """A training set built by partitions, as Arrow files in the single pass's order."""

    parts: tuple[Path, ...]
    """Each partition's output (Arrow IPC files), in the single pass's order within it."""
    source: np.ndarray
    """Per row of the training set, in order: the partition it comes from (the rows of
    one partition come in that partition's order)."""
    rejected_rows: int
    rows: int

    def batches(self, rows: int = OUT_BATCH_ROWS) -> Iterator[pa.Table]:
        """The training set in the single pass's order, ``rows`` at a time."""
        readers = [ipc.open_file(pa.OSFile(str(path))) for path in self.parts]
        pending: list[list[pa.RecordBatch]] = [[] for _ in self.parts]
        next_batch = [0] * len(self.parts)
        held = [0] * len(self.parts)

        def take(p: int, k: int) -> pa.Table:
            while held[p] < k:
                batch = readers[p].get_batch(next_batch[p])
                next_batch[p] += 1
                pending[p].append(batch)
                held[p] += batch.num_rows
            got = pa.Table.from_batches(pending[p], schema=readers[p].schema)
            out, rest = got.slice(0, k), got.slice(k)
            pending[p] = rest.to_batches()
            held[p] -= k
            return out

        for start in range(0, self.rows, rows):
            src = self.source[start:start + rows]
            counts = np.bincount(src, minlength=len(self.parts))
            pieces = [take(p, int(k)) for p, k in enumerate(counts) if k]
            # The pieces come partition after partition, each in its order: row j of
            # them is row by_part[j] of the block.
            by_part = np.argsort(src, kind="stable")
            at = np.empty_like(by_part)
            at[by_part] = np.arange(len(by_part))
            yield pa.concat_tables(pieces).take(pa.array(at))

    def frame(self) -> pd.DataFrame:
        """The whole training set as a DataFrame (as ``build_training_set`` returns it)."""
        tables = list(self.batches())
        if not tables:
            schema = ipc.open_file(pa.OSFile(str(self.parts[0]))).schema
            return schema.empty_table().to_pandas()
        return pa.concat_tables(tables).to_pandas()

    def write_parquet(self, out: Path, feature_set: FeatureSet) -> TrainingSetSummary:
        """Write the training set as one Parquet file, a block at a time, and summarize
        it as ``features.training_set.summarize`` does the whole."""
        schema = ipc.open_file(pa.OSFile(str(self.parts[0]))).schema
        key = feature_set.entity_key
        rows = labelled = positives = entities = 0
        missing = dict.fromkeys(feature_set.names, 0)
        last: object = None
        with pq.ParquetWriter(out, schema) as writer:
            for table in self.batches():
                writer.write_table(table)
                block = table.select([key, "label", *feature_set.names]).to_pandas()
                label = block["label"].dropna().astype(bool)
                rows += len(block)
                labelled += len(label)
                positives += int(label.sum())
                ids = block[key].to_numpy(dtype=object)
                # Rows come entity by entity: a new entity wherever the id changes.
                entities += int((ids[1:] != ids[:-1]).sum()) + int(ids[0] != last)
                last = ids[-1]
                for name in feature_set.names:
                    missing[name] += int(block[name].isna().sum())
            if not rows:
                writer.write_table(schema.empty_table())
        return TrainingSetSummary(
            rows=rows, entities=entities, labelled=labelled, unlabelled=rows - labelled,
            label_rate=positives / labelled if labelled else float("nan"), missing=missing)


def build_by_partitions(
    data_dir: Path,
    task: str,
    *,
    partitions: int,
    work_dir: Path,
    executor: Executor | None = None,
    horizon_days: int | None = None,
    every_days: int | None = None,
    max_per_entity: int | None = None,
    now: pd.Timestamp | None = None,
    on_step: Step | None = None,
) -> PartitionedBuild:
    """Build ``task``'s training set from the CRM folder ``data_dir`` by ``partitions``
    partitions of whole accounts, each partition's work a task of ``executor`` (None: one
    after the other, here). Partition tables and outputs go under ``work_dir`` (which
    every worker must be able to read and write). The rows equal ``build_training_set``'s
    on the folder's validated tables, in its order."""
    step = on_step or (lambda _: None)
    spec = task_spec(task)
    key = spec.entity_key
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    run = _mapper(executor)
    split = split_crm(data_dir, partitions, Path(work_dir) / "tables")
    step("partitioned")
    with_activities = key == "account_id"
    checks = run(check_partition, split.folders, [now] * partitions,
                 [with_activities] * partitions)
    step("validated")
    ends = [c.data_end for c in checks if c.data_end is not None]
    if not ends:
        raise ValueError("the tables hold no timestamps; cannot place a data end")
    owners = gather_owners([c.owners for c in checks])
    jobs = [BuildJob(folder=folder, task=task, out=Path(work_dir) / f"out-{p:03d}.arrow",
                     now=now, data_end=max(ends), owners=owners, horizon_days=horizon_days,
                     every_days=every_days, max_per_entity=max_per_entity)
            for p, folder in enumerate(split.folders)]
    counts = run(build_partition, jobs)
    step("built")
    rejected = sum(c.rejected_rows for c in checks)
    return _ordered(jobs, counts, data_dir, key, rejected)


def _ordered(jobs: list[BuildJob], counts: list[int], data_dir: Path, key: str,
             rejected: int) -> PartitionedBuild:
    """The single pass's order of the partitions' rows: by the entity's first row in its
    table, then time (a sort that keeps each partition's own order)."""
    table = ENTITY_TABLE[key]
    ids = _text(pq.read_table(_parquet_files(Path(data_dir))[table], columns=[key]).column(0))
    positions, as_of, source = [], [], []
    for p, (job, n) in enumerate(zip(jobs, counts, strict=True)):
        if not n:
            continue
        reader = ipc.open_file(pa.OSFile(str(job.out)))
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            positions.append(_index_in(_text(batch.column(key)), ids))
            as_of.append(batch.column("as_of").cast(pa.int64()).to_numpy())
        source.append(np.full(n, p, dtype=np.int64))
    if positions:
        pos, t, src = np.concatenate(positions), np.concatenate(as_of), np.concatenate(source)
        order = np.lexsort((t, pos))
    else:
        src, order = np.zeros(0, np.int64), np.zeros(0, np.int64)
    return PartitionedBuild(parts=tuple(j.out for j in jobs), source=src[order],
                            rejected_rows=rejected, rows=len(order))


def temporary_work_dir(parent: Path | None = None) -> tempfile.TemporaryDirectory[str]:
    """A work folder for a build by partitions, removed when done."""
    return tempfile.TemporaryDirectory(prefix="leadscore-partitions-",
                                       dir=None if parent is None else str(parent))



def training_set_by_partitions(
    data_dir: Path,
    task: str,
    *,
    partitions: int,
    executor: Executor | None = None,
    work_dir: Path | None = None,
    horizon_days: int | None = None,
    every_days: int | None = None,
    max_per_entity: int | None = None,
    on_step: Step | None = None,
) -> tuple[pd.DataFrame, int]:
    """``task``'s training set from the CRM folder ``data_dir``, built by partitions
    (:func:`build_by_partitions`) as ``build_training_set`` returns it, and how many rows
    the loader rejected. ``work_dir``: where the partitions go (default: a temporary
    folder, removed after)."""
    with temporary_work_dir(work_dir) as tmp:
        built = build_by_partitions(data_dir, task, partitions=partitions, work_dir=Path(tmp),
                                    executor=executor, horizon_days=horizon_days,
                                    every_days=every_days, max_per_entity=max_per_entity,
                                    on_step=on_step)
        return built.frame(), built.rejected_rows
