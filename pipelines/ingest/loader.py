"""Load a night's uploads into the warehouse: manifest, resends, corrections, row checks, dedupe.

Files are grouped by table (`setl` before `fee`, since a fee line needs its settlement) and loaded in
batches of whole files. Each batch is read, parsed and checked in polars, then judged against the
batch itself and the warehouse in DuckDB (duplicates, reused keys, refunds, missing settlements),
and written: good rows to the table, refused rows to `quarantine`, one `manifest` row per file.
Reading and checking (`_prepare`) touch no database, so they run on worker threads ahead of the writing
(`_commit`), which stays on the caller's thread and in file order.
The caller owns the transaction boundary (see `warehouse/session.py`): a run is all or nothing.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import duckdb
import polars as pl

from data_contracts.contract import Table, rule_specs, upload_tables
from data_contracts.gx_validation import ContractValidator
from pipelines.ingest.hashing import HASH_THREADS, HashAhead, list_uploads
from pipelines.ingest.naming import BadFileName, UploadName, parse
from pipelines.ingest.reader import read_batch
from pipelines.ingest.rules import parse_and_check, upload_row_checks
from pipelines.warehouse.schema import SQL_TYPES, has_table, ident, key_hash

BATCH_BYTES = 128 * 1024 * 1024  # files per batch at most, by size on disk (bounds memory; each batch is one GX run)
TABLE_ORDER = ("setl", "fee")
AHEAD = 2  # batches read and checked ahead of the one being written


@dataclass
class RowCounts:
    received: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicate: int = 0

    def add(self, other: RowCounts) -> None:
        for k in ("received", "loaded", "quarantined", "duplicate"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class IngestResult:
    seen: int = 0
    loaded: int = 0
    unchanged: int = 0
    corrected: int = 0
    rejected: list[dict] = field(default_factory=list)
    rows: dict[str, RowCounts] = field(default_factory=lambda: {t: RowCounts() for t in TABLE_ORDER})

    def files_summary(self) -> dict:
        return {
            "seen": self.seen,
            "loaded": self.loaded,
            "unchanged": self.unchanged,
            "corrected": self.corrected,
            "rejected": self.rejected,
        }


@dataclass
class Incoming:
    path: Path
    name: UploadName
    sha256: str
    size: int
    mtime_ns: int
    supersedes: list[str]  # file names of the earlier loaded version(s) of the same stem


class Seen(NamedTuple):
    """The last version of a stem the manifest holds."""

    name: str
    sha256: str
    size: int | None
    mtime_ns: int | None  # None for files recorded before mtimes were kept


def _reject(
    con, run_id: str, result: IngestResult, name: str, rule: str, message: str, meta: dict | None = None
) -> None:
    result.rejected.append({"file": name, "rule": rule, "reason": message})
    m = meta or {}
    con.execute(
        "INSERT INTO manifest (file_name, stem, fixmedins_code, file_date, table_name, sha256, size_bytes, mtime_ns, "
        "status, reason, rows_received, rows_loaded, rows_quarantined, rows_duplicate, run_id, seen_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'rejected', ?, 0, 0, 0, 0, ?, ?)",
        [
            name,
            m.get("stem"),
            m.get("code"),
            m.get("day"),
            m.get("table"),
            m.get("sha"),
            m.get("size"),
            m.get("mtime"),
            f"{rule}: {message}",
            run_id,
            datetime.now(),
        ],
    )
    con.execute(
        "INSERT INTO quarantine VALUES (?, ?, ?, NULL, NULL, ?, ?, ?, NULL)",
        [run_id, name, m.get("table"), m.get("code"), rule, message],
    )


def plan(
    con, uploads: Path, run_id: str, result: IngestResult, hashes: HashAhead | None = None
) -> list[list[Incoming]]:
    """Sort the folder into rounds of new files (a stem appears once per round); reject bad names. `hashes`:
    the uploads' hashes, if started ahead."""
    hashes = hashes or HashAhead()
    latest = {
        stem: Seen(*seen)
        for stem, *seen in con.execute(
            "SELECT stem, arg_max(file_name, seen_at), arg_max(sha256, seen_at), arg_max(size_bytes, seen_at), "
            "arg_max(mtime_ns, seen_at) FROM manifest WHERE stem IS NOT NULL AND status <> 'superseded' GROUP BY stem"
        ).fetchall()
    }
    loaded_names: dict[str, list[str]] = {}
    for stem, name in con.execute("SELECT stem, file_name FROM manifest WHERE status = 'loaded'").fetchall():
        loaded_names.setdefault(stem, []).append(name)
    by_stem: dict[str, list[Incoming]] = {}
    remember: list[tuple[str, str, int]] = []  # unchanged files seen at a new mtime: (name, sha256, mtime_ns)
    to_hash: list[tuple[Path, UploadName, os.stat_result, Seen | None]] = []
    for path in list_uploads(uploads):
        result.seen += 1
        try:
            st = os.lstat(path)  # one call: a link is refused, not followed
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            _reject(con, run_id, result, path.name, "not_a_file", "not a regular file (folder or link): not read")
            continue
        try:
            name = parse(path.name)
        except BadFileName as e:
            _reject(con, run_id, result, path.name, "bad_file_name", str(e))
            continue
        prev = latest.get(name.stem)
        if prev and (prev.name, prev.size, prev.mtime_ns) == (path.name, st.st_size, st.st_mtime_ns):
            # the very file seen before, untouched since (rewriting it changes its mtime): no need to hash it
            result.unchanged += 1
            continue
        to_hash.append((path, name, st, prev))
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        shas = list(pool.map(hashes.sha256, [path for path, *_ in to_hash], [st for _, _, st, _ in to_hash]))
    for (path, name, st, prev), sha in zip(to_hash, shas, strict=True):
        if prev and prev.sha256 == sha:
            result.unchanged += 1
            if prev.name == path.name:  # touched or copied again, or recorded before mtimes were kept
                remember.append((path.name, sha, st.st_mtime_ns))
            continue
        by_stem.setdefault(name.stem, []).append(
            Incoming(path, name, sha, st.st_size, st.st_mtime_ns, loaded_names.get(name.stem, []))
        )
    if remember:  # so that tomorrow the same file is known without hashing it again
        con.register("seen_again", pl.DataFrame(remember, schema=["name", "sha", "mtime"], orient="row").to_arrow())
        con.execute(
            "UPDATE manifest SET mtime_ns = s.mtime FROM seen_again s "
            "WHERE manifest.file_name = s.name AND manifest.sha256 = s.sha"
        )
        con.unregister("seen_again")
    rounds: list[list[Incoming]] = []
    for versions in by_stem.values():
        versions.sort(key=lambda f: (f.mtime_ns, f.path.name))
        for k, inc in enumerate(versions):
            if k > 0:  # a later version in the same night corrects the earlier one
                inc.supersedes = [versions[k - 1].path.name]
            while len(rounds) <= k:
                rounds.append([])
            rounds[k].append(inc)
    return rounds


def _same_content(table: Table, suffix: str) -> pl.Expr:
    """Every non-key column equal to its joined twin (the key columns were the join)."""
    return pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}{suffix}")) for c in table.codes if c not in table.key)


def _judge(con: duckdb.DuckDBPyConnection, table: Table, checked: pl.DataFrame) -> pl.DataFrame:
    """Status of the rows of `checked` that are not simply new: duplicate, key_conflict, setl_missing,
    refund_unmatched. Returns [_fi, _row, status]; every other row is new.

    Exact duplicates share their key, so only rows whose key repeats (in the batch or the warehouse)
    are compared column by column.
    """
    key = list(table.key)
    statuses: list[pl.DataFrame] = []
    # 1. keys repeated inside the batch: the first occurrence stands, later ones are duplicates or conflicts
    rep = checked.filter(pl.struct(key).is_duplicated()).sort(KEY_ORDER)
    if not rep.is_empty():
        first = rep.unique(key, keep="first", maintain_order=True)
        later = rep.join(first.select(KEY_ORDER), on=KEY_ORDER, how="anti").join(first, on=key, suffix="_first")
        statuses.append(
            later.select(
                *KEY_ORDER,
                status=pl.when(_same_content(table, "_first"))
                .then(pl.lit("duplicate"))
                .otherwise(pl.lit("key_conflict")),
            )
        )
    # 2. keys already in the warehouse
    cols = ", ".join(f"CAST(t.{ident(c.code)} AS {_POLARS_SQL[c.type]}) AS {ident(c.code)}" for c in table.columns)
    existing = _by_key(con, table, checked.select(key), cols)
    if not existing.is_empty():
        hit = checked.join(existing, on=key, suffix="_wh")
        statuses.append(
            hit.select(
                *KEY_ORDER,
                status=pl.when(_same_content(table, "_wh")).then(pl.lit("duplicate")).otherwise(pl.lit("key_conflict")),
            )
        )
    judged = pl.concat(statuses).unique(KEY_ORDER, keep="first") if statuses else _EMPTY_STATUS
    if table.name == "fee":
        link = [*KEY_ORDER, "fixmedins_code", "setl_id", "cnt", "feedetl_sn", "init_feedetl_sn", "mdtrt_id"]
        new = _without(checked.select(link), judged)
        statuses = [judged, *_fee_links(con, new)]
        judged = pl.concat(statuses).unique(KEY_ORDER, keep="first")
    return judged


def _by_key(con: duckdb.DuckDBPyConnection, table: Table, keys: pl.DataFrame, cols: str) -> pl.DataFrame:
    """`cols` (SQL over alias t) of the warehouse rows of `table` whose key hash equals that of a row of `keys`
    (a frame of the table's key columns). A hash match only makes a candidate: callers join on the keys."""
    con.register("lookup_keys", keys.to_arrow())
    try:
        return con.sql(
            f"SELECT {cols} FROM {table.name} t WHERE t.key_hash IN (SELECT {key_hash(table)} FROM lookup_keys)"
        ).pl()
    finally:
        con.unregister("lookup_keys")


def _fee_links(con: duckdb.DuckDBPyConnection, new: pl.DataFrame) -> list[pl.DataFrame]:
    """Fee lines whose settlement is not loaded, and refunds that name no line of their visit."""
    tables = upload_tables()
    visit = ["fixmedins_code", "setl_id"]
    loaded = _by_key(con, tables["setl"], new.select(visit), "t.fixmedins_code, t.setl_id")
    missing = new.join(loaded, on=visit, how="anti").select(*KEY_ORDER, status=pl.lit("setl_missing"))
    out = [missing]
    refunds = new.filter(pl.col("cnt") < 0).join(missing, on=KEY_ORDER, how="anti")
    if refunds.is_empty():
        return out
    link = ["fixmedins_code", "init_feedetl_sn", "mdtrt_id"]
    originals = new.filter(pl.col("cnt") > 0).select(
        "fixmedins_code", pl.col("feedetl_sn").alias("init_feedetl_sn"), "mdtrt_id"
    )
    pending = refunds.join(originals, on=link, how="anti")
    if pending.is_empty():
        return out
    named = pending.select("fixmedins_code", feedetl_sn="init_feedetl_sn")
    earlier = _by_key(con, tables["fee"], named, "t.fixmedins_code, t.feedetl_sn AS init_feedetl_sn, t.mdtrt_id")
    out.append(pending.join(earlier, on=link, how="anti").select(*KEY_ORDER, status=pl.lit("refund_unmatched")))
    return out


KEY_ORDER = ["_fi", "_row"]


def _row_id() -> pl.Expr:
    """One Int64 per uploaded row (file index and row packed), so a batch's rows can be picked out by a
    membership test instead of a join that hashes and gathers every column of the whole batch."""
    return pl.col("_fi").cast(pl.Int64) * 2**32 + pl.col("_row").cast(pl.Int64)


def _in(rows: pl.DataFrame) -> pl.Expr:
    """True for the batch rows named (by _fi, _row) in `rows`."""
    return _row_id().is_in(rows.select(_row_id()).to_series().unique().implode())


def _without(frame: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """`frame` less the rows named in `rows` (the frame itself, uncopied, when `rows` is empty)."""
    return frame.filter(~_in(rows)) if not rows.is_empty() else frame


_EMPTY_STATUS = pl.DataFrame(schema={"_fi": pl.Int32, "_row": pl.Int32, "status": pl.String})
# warehouse values read back in the types the parser produces, for exact comparison
_POLARS_SQL = {
    "text": "VARCHAR",
    "int": "BIGINT",
    "decimal2": "DOUBLE",
    "decimal4": "DOUBLE",
    "datetime": "TIMESTAMP",
    "date": "DATE",
}


def _record(
    con, target: str, found: pl.DataFrame, batch: pl.DataFrame, info: pl.DataFrame, table: Table, run_id: str
) -> None:
    """Write rule hits (one row per uploaded row, rules joined) to `quarantine` or `contract_warnings`."""
    found = found.group_by("_fi", "_row", maintain_order=True).agg(
        rule=pl.col("rule").str.join("; "), value=pl.col("value").str.join("; ")
    )
    uploaded = batch.filter(_in(found)).select(
        "_fi",
        "_row",
        pl.col(table.key[1]).alias("record_id"),
        # the institution that sent the file gets the row back, whatever code the row itself claims
        pl.col("_fcode").alias("fixmedins_code"),
        pl.struct(table.codes).struct.json_encode().alias("row_json"),
    )
    rows = (
        found.join(uploaded, on=["_fi", "_row"])
        .join(info.select("_fi", "source_file"), on="_fi")
        .select(
            pl.lit(run_id).alias("run_id"),
            pl.col("source_file").alias("file"),
            pl.lit(table.name).alias("table_name"),
            pl.col("_row").alias("row_number"),
            "record_id",
            "fixmedins_code",
            "rule",
            "value",
            "row_json",
        )
    )
    con.register("hits", rows.to_arrow())
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM hits")
    con.unregister("hits")


@dataclass
class Known:
    """What the checks compare against: reference lists, and the validator that runs the GX suites."""

    institutions: list[str] | None
    catalog: list[str] | None
    validator: ContractValidator


def _withdraw(con: duckdb.DuckDBPyConnection, run_id: str, table: str, files: list[str]) -> None:
    """Record whose visits the rows of `files` were before they are deleted: the next detection rechecks them
    (a fee line's person is its visit's, as the detection window joins them)."""
    person, join = (
        ("t.psn_no", "")
        if table == "setl"
        else ("coalesce(s.psn_no, t.psn_no)", "LEFT JOIN setl s USING (fixmedins_code, setl_id)")
    )
    con.execute(
        f"""INSERT INTO withdrawn
            SELECT DISTINCT ?, '{table}', t.fixmedins_code, t.setl_id, {person}
            FROM {table} t {join} WHERE t.source_file IN (SELECT unnest(?))""",
        [run_id, files],
    )


@dataclass
class Prepared:
    """One batch read, parsed and checked against the contract: everything `_commit` needs but the database."""

    table: Table
    files: list[Incoming]
    rejected: dict  # file index -> the read error that rejected the whole file
    read: list[int]  # indexes of the files that were read
    info: pl.DataFrame | None = None  # per file: _fi, source_file, _fcode, _fday
    batch: pl.DataFrame | None = None  # the rows as uploaded
    typed: pl.DataFrame | None = None
    found: pl.DataFrame | None = None  # contract failures: _fi, _row, rule, value


def _prepare(table: Table, files: list[Incoming], known: Known) -> Prepared:
    """Read a batch of files and run the contract over its rows. Touches no database, so later batches
    are prepared on worker threads while an earlier one is written (see `ingest`)."""
    raws, rejected = read_batch([(i, f.path, f.name.ext) for i, f in enumerate(files)], table)
    read = [i for i in range(len(files)) if i not in rejected]
    prepared = Prepared(table, files, rejected, read)
    if not read:
        return prepared
    prepared.info = pl.DataFrame(
        {
            "_fi": read,
            "source_file": [files[i].path.name for i in read],
            "_fcode": [files[i].name.code for i in read],
            "_fday": [files[i].name.day for i in read],
        },
        schema={"_fi": pl.Int32, "source_file": pl.String, "_fcode": pl.String, "_fday": pl.Date},
    )
    prepared.batch = pl.concat([r.frame for r in raws]).join(prepared.info.drop("source_file"), on="_fi", how="left")
    checks = upload_row_checks(table, known.institutions, known.catalog)
    prepared.typed, prepared.found = parse_and_check(prepared.batch, table, checks, known.validator)
    return prepared


def _commit(con, prepared: Prepared, run_id: str, result: IngestResult, say: Callable[[str], None]) -> None:
    """Write a prepared batch: rejected files, withdrawn earlier versions, judged rows, quarantine, manifest."""
    table, files, read = prepared.table, prepared.files, prepared.read
    for i, e in sorted(prepared.rejected.items()):
        inc = files[i]
        meta = {
            "stem": inc.name.stem,
            "code": inc.name.code,
            "day": inc.name.day,
            "table": table.name,
            "sha": inc.sha256,
            "size": inc.size,
            "mtime": inc.mtime_ns,
        }
        _reject(con, run_id, result, inc.path.name, e.rule, e.message, meta)
    # a corrected file replaces every row its earlier version loaded
    for i in read:
        if files[i].supersedes:
            names = list(files[i].supersedes)
            _withdraw(con, run_id, table.name, names)
            con.execute(f"DELETE FROM {table.name} WHERE source_file IN (SELECT unnest(?))", [names])
            con.execute(
                "UPDATE manifest SET status = 'superseded' WHERE file_name IN (SELECT unnest(?)) AND status = 'loaded'",
                [names],
            )
            result.corrected += 1
    if not read:
        return
    info, batch, typed, found = prepared.info, prepared.batch, prepared.typed, prepared.found
    severity = {name: spec.severity for name, spec in rule_specs().items()}
    found = found.with_columns(
        sev=pl.col("rule").str.split(":").list.first().replace_strict(severity, default="reject")
    )
    failures = found.filter(pl.col("sev") == "reject").drop("sev")
    warnings = found.filter(pl.col("sev") == "warn").drop("sev")
    checked = _without(typed, failures)
    checked = checked.drop("_fcode", "_fday")
    judged = _judge(con, table, checked)
    rows_new = _without(checked, judged)
    con.register("rows_new", rows_new.to_arrow())
    con.register("batch_files", info.select("_fi", "source_file").to_arrow())
    casts = ", ".join(f"CAST(j.{ident(c.code)} AS {SQL_TYPES[c.type]}) AS {ident(c.code)}" for c in table.columns)
    con.execute(
        f"""INSERT INTO {table.name} BY NAME
        SELECT {casts}, j.extra, f.source_file, j._row AS source_row, ? AS run_id, {key_hash(table, "j.")} AS key_hash
        FROM rows_new j JOIN batch_files f USING (_fi)""",
        [run_id],
    )
    con.unregister("rows_new")
    con.unregister("batch_files")
    # refused rows: contract failures (rules joined per row) and cross-row judgements
    id_col = table.key[1]
    value_of = {"key_conflict": id_col, "setl_missing": "setl_id", "refund_unmatched": "init_feedetl_sn"}
    refusals = judged.filter(pl.col("status") != "duplicate")
    later = refusals.join(checked.filter(_in(refusals)), on=KEY_ORDER).select(
        *KEY_ORDER,
        pl.col("status").alias("rule"),
        value=pl.coalesce(
            pl.when(pl.col("status") == r).then(pl.col(c).cast(pl.String))
            for r, c in value_of.items()
            if c in table.codes
        ),
    )
    refused = pl.concat([failures.select("_fi", "_row", "rule", "value"), later])
    refused = refused.group_by("_fi", "_row", maintain_order=True).agg(
        rule=pl.col("rule").str.join("; "), value=pl.col("value").str.join("; ")
    )
    _record(con, "quarantine", refused, batch, info, table, run_id)
    if not warnings.is_empty():
        _record(con, "contract_warnings", warnings, batch, info, table, run_id)
    # per-file counts, for the manifest (one insert for the batch) and the run summary
    per_file = judged.group_by("_fi").agg(duplicate=(pl.col("status") == "duplicate").sum())
    counts = (
        batch.group_by("_fi")
        .len("received")
        .join(rows_new.group_by("_fi").len("loaded"), on="_fi", how="left")
        .join(per_file, on="_fi", how="left")
        .join(refused.group_by("_fi").len("quarantined"), on="_fi", how="left")
    )
    counts = info.join(counts, on="_fi", how="left").fill_null(0)
    manifest = counts.select(
        file_name="source_file",
        stem=pl.Series([files[i].name.stem for i in read]),
        fixmedins_code="_fcode",
        file_date="_fday",
        table_name=pl.lit(table.name),
        sha256=pl.Series([files[i].sha256 for i in read]),
        size_bytes=pl.Series([files[i].size for i in read]),
        mtime_ns=pl.Series([files[i].mtime_ns for i in read], dtype=pl.Int64),
        status=pl.lit("loaded"),
        reason=pl.lit(None, pl.String),
        rows_received="received",
        rows_loaded="loaded",
        rows_quarantined="quarantined",
        rows_duplicate="duplicate",
        run_id=pl.lit(run_id),
        seen_at=pl.lit(datetime.now()),
    )
    con.register("m", manifest.to_arrow())
    con.execute("INSERT INTO manifest BY NAME SELECT * FROM m")
    con.unregister("m")
    total = RowCounts(*(int(counts[c].sum()) for c in ("received", "loaded", "quarantined", "duplicate")))
    result.rows[table.name].add(total)
    result.loaded += len(read)
    say(f"{table.name}: {total.received:,} rows from {len(read)} files")


def _submit(pool: ThreadPoolExecutor, table: Table, files: list[Incoming], known: Known, say) -> Future:
    say(f"{table.name}: reading and checking {len(files)} files ({sum(f.size for f in files) / 2**20:.0f} MB)")
    return pool.submit(_prepare, table, files, known)


def _batches(files: list[Incoming]) -> list[list[Incoming]]:
    """`files` in order, cut into as few batches of at most BATCH_BYTES (or one larger file) as that takes, of
    about equal size. Filling each batch to the cap instead leaves a short last one, prepared while the writer
    waits on the others and then written alone: the medium inbox's 172 MB of fee uploads went as 128 + 44 MB,
    and as 86 + 86 MB its ingest step took 6.05 s instead of 6.30 s (mean of 5 alternating runs)."""
    total = sum(f.size for f in files)
    share = total / max(1, math.ceil(total / BATCH_BYTES))
    out: list[list[Incoming]] = []
    batch: list[Incoming] = []
    size = done = 0  # bytes in `batch`, and in the batches before it
    for f in files:
        # a file opens the next batch if this one is full, or if more of it would lie past this batch's share
        # of the total than before it
        if batch and (size + f.size > BATCH_BYTES or done + size + f.size / 2 > share * (len(out) + 1)):
            out.append(batch)
            done += size
            batch, size = [], 0
        batch.append(f)
        size += f.size
    return [*out, batch] if batch else out


def known_codes(con, table: str, column: str) -> list[str] | None:
    """The distinct values of a reference list's column, or None when that list was never received."""
    if not has_table(con, table):
        return None
    return [r[0] for r in con.execute(f"SELECT DISTINCT {ident(column)} FROM {ident(table)}").fetchall()]


# warnings that need a visit and its lines together: checked once all of the night's rows are in
CROSS_TABLE_WARNINGS = """
INSERT INTO contract_warnings
WITH touched AS (SELECT fixmedins_code, setl_id FROM setl WHERE run_id = ?
                 UNION SELECT fixmedins_code, setl_id FROM fee WHERE run_id = ?),
f AS (SELECT fixmedins_code, setl_id, sum(det_item_fee_sumamt) AS total
      FROM fee SEMI JOIN touched USING (fixmedins_code, setl_id) GROUP BY ALL)
SELECT ?, s.source_file, 'setl', s.source_row, s.setl_id, s.fixmedins_code, 'setl_sum_mismatch',
       format('medfee_sumamt={} 明细合计={}', s.medfee_sumamt, coalesce(f.total, 0)), NULL
FROM setl s SEMI JOIN touched USING (fixmedins_code, setl_id) LEFT JOIN f USING (fixmedins_code, setl_id)
WHERE s.medfee_sumamt IS DISTINCT FROM coalesce(f.total, 0);
INSERT INTO contract_warnings
SELECT ?, f.source_file, 'fee', f.source_row, f.feedetl_sn, f.fixmedins_code, 'fee_outside_visit',
       format('fee_ocur_time={} 就诊{}至{}', f.fee_ocur_time, CAST(s.begntime AS DATE), CAST(s.endtime AS DATE)), NULL
FROM fee f JOIN setl s USING (fixmedins_code, setl_id)
WHERE f.run_id = ? AND (CAST(f.fee_ocur_time AS DATE) < CAST(s.begntime AS DATE)
                        OR CAST(f.fee_ocur_time AS DATE) > CAST(s.endtime AS DATE));
"""


def ingest(
    con: duckdb.DuckDBPyConnection,
    inbox: Path,
    run_id: str,
    say: Callable[[str], None] = lambda _: None,
    validator: ContractValidator | None = None,
    hashes: HashAhead | None = None,
) -> IngestResult:
    """Load every new or corrected upload under `inbox/uploads`; the caller commits or rolls back."""
    result = IngestResult()
    rounds = plan(con, inbox / "uploads", run_id, result, hashes)
    known = Known(
        known_codes(con, "ref_institutions", "fixmedins_code"),
        known_codes(con, "ref_catalog", "med_list_codg"),
        validator or ContractValidator(),
    )
    tables = upload_tables()
    jobs = [
        (tables[t], batch)
        for files in rounds
        for t in TABLE_ORDER
        for batch in _batches([f for f in files if f.name.table == t])
    ]
    # Both cores: while this thread writes batch k to DuckDB, two worker threads each read and check a later
    # batch; GX runs one suite at a time, so one thread's reading overlaps the other's checking. Only this
    # thread touches the connection, batches are written in order, at most three are in memory.
    with ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="ingest-prepare") as pool:
        queued = iter(jobs)
        ahead: list[Future] = [_submit(pool, *job, known, say) for job in islice(queued, AHEAD)]
        while ahead:  # on an error the pool still lets the (at most two) batches being prepared finish
            current = ahead.pop(0).result()
            ahead += [_submit(pool, *job, known, say) for job in islice(queued, 1)]
            _commit(con, current, run_id, result, say)
    if rounds:
        for statement in CROSS_TABLE_WARNINGS.strip().split(";\n"):
            if statement.strip():
                con.execute(statement, [run_id] * statement.count("?"))
    return result
