"""Load a night's uploads into the warehouse: manifest, resends, corrections, row checks, dedupe.

Files are grouped by table (`setl` before `fee`, since a fee line needs its settlement) and loaded in
batches of whole files. Each batch is read, parsed and checked in polars, then judged against the
batch itself and the warehouse in DuckDB (duplicates, reused keys, refunds, missing settlements),
and written: good rows to the table, refused rows to `quarantine`, one `manifest` row per file.
The caller owns the transaction boundary (see `warehouse/session.py`): a run is all or nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.contract import Table, upload_tables
from pipelines.ingest.naming import BadFileName, UploadName, parse
from pipelines.ingest.reader import FileRejected, RawFile, read_upload
from pipelines.ingest.rules import parse_and_check, upload_row_rules
from pipelines.warehouse.schema import SQL_TYPES, ident

BATCH_BYTES = 192 * 1024 * 1024  # files per batch, by size on disk (bounds memory)
TABLE_ORDER = ("setl", "fee")


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
    supersedes: list[str]  # file names of the earlier loaded version(s) of the same stem


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_uploads(uploads: Path) -> list[Path]:
    """Every entry of the uploads folder except hidden files (editor and OS droppings)."""
    if not uploads.is_dir():
        return []
    return sorted((p for p in uploads.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _reject(
    con, run_id: str, result: IngestResult, name: str, rule: str, message: str, meta: dict | None = None
) -> None:
    result.rejected.append({"file": name, "rule": rule, "reason": message})
    m = meta or {}
    con.execute(
        "INSERT INTO manifest VALUES (?, ?, ?, ?, ?, ?, ?, 'rejected', ?, 0, 0, 0, 0, ?, ?)",
        [
            name,
            m.get("stem"),
            m.get("code"),
            m.get("day"),
            m.get("table"),
            m.get("sha"),
            m.get("size"),
            f"{rule}: {message}",
            run_id,
            datetime.now(),
        ],
    )
    con.execute(
        "INSERT INTO quarantine VALUES (?, ?, ?, NULL, NULL, ?, ?, ?, NULL)",
        [run_id, name, m.get("table"), m.get("code"), rule, message],
    )


def plan(con, uploads: Path, run_id: str, result: IngestResult) -> list[list[Incoming]]:
    """Sort the folder into rounds of new files (a stem appears once per round); reject bad names."""
    latest = {
        stem: (name, sha, status)
        for stem, name, sha, status in con.execute(
            "SELECT stem, arg_max(file_name, seen_at), arg_max(sha256, seen_at), arg_max(status, seen_at) "
            "FROM manifest WHERE stem IS NOT NULL AND status <> 'superseded' GROUP BY stem"
        ).fetchall()
    }
    loaded_names: dict[str, list[str]] = {}
    for stem, name in con.execute("SELECT stem, file_name FROM manifest WHERE status = 'loaded'").fetchall():
        loaded_names.setdefault(stem, []).append(name)
    by_stem: dict[str, list[Incoming]] = {}
    for path in list_uploads(uploads):
        result.seen += 1
        if path.is_symlink() or not path.is_file():
            _reject(con, run_id, result, path.name, "not_a_file", "not a regular file (folder or link): not read")
            continue
        try:
            name = parse(path.name)
        except BadFileName as e:
            _reject(con, run_id, result, path.name, "bad_file_name", str(e))
            continue
        sha = sha256_of(path)
        prev = latest.get(name.stem)
        if prev and prev[1] == sha:
            result.unchanged += 1
            continue
        by_stem.setdefault(name.stem, []).append(
            Incoming(path, name, sha, path.stat().st_size, loaded_names.get(name.stem, []))
        )
    rounds: list[list[Incoming]] = []
    for versions in by_stem.values():
        versions.sort(key=lambda f: (f.path.stat().st_mtime_ns, f.path.name))
        for k, inc in enumerate(versions):
            if k > 0:  # a later version in the same night corrects the earlier one
                inc.supersedes = [versions[k - 1].path.name]
            while len(rounds) <= k:
                rounds.append([])
            rounds[k].append(inc)
    return rounds


def _content_equal(table: Table, a: str, b: str) -> str:
    parts = []
    for c in table.columns:
        q = ident(c.code)
        left = f"{a}.{q}" if c.type in ("text", "datetime", "int") else f"CAST({a}.{q} AS {SQL_TYPES[c.type]})"
        parts.append(f"{left} IS NOT DISTINCT FROM {b}.{q}")
    return " AND ".join(parts)


def _judge(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Give every checked row of `batch` a status: new, duplicate, key_conflict (, setl_missing, refund_unmatched)."""
    t, key = table.name, [ident(k) for k in table.key]
    content = ", ".join(ident(c) for c in table.codes)
    on = " AND ".join(f"w.{k} = c.{k}" for k in key)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE judged AS
        WITH c AS (
            SELECT *, row_number() OVER (PARTITION BY {content} ORDER BY _fi, _row) AS dup_n FROM batch
        ), w AS (
            SELECT * FROM {t} WHERE ({", ".join(key)}) IN (SELECT ({", ".join(key)}) FROM batch)
        )
        SELECT c.*, CASE
            WHEN c.dup_n > 1 THEN 'duplicate'
            WHEN w.{key[1]} IS NOT NULL AND {_content_equal(table, "c", "w")} THEN 'duplicate'
            WHEN w.{key[1]} IS NOT NULL THEN 'key_conflict'
            WHEN row_number() OVER (PARTITION BY {", ".join(f"c.{k}" for k in key)}, c.dup_n = 1
                                    ORDER BY c._fi, c._row) > 1 THEN 'key_conflict'
            ELSE 'new' END AS status
        FROM c LEFT JOIN w ON {on}
    """)
    if t == "fee":
        con.execute("""
            UPDATE judged SET status = 'setl_missing' WHERE status = 'new' AND NOT EXISTS (
                SELECT 1 FROM setl s WHERE s.fixmedins_code = judged.fixmedins_code AND s.setl_id = judged.setl_id)
        """)
        bad = con.execute("""
            SELECT r._fi, r._row FROM judged r
            WHERE r.status = 'new' AND r.cnt < 0
              AND NOT EXISTS (SELECT 1 FROM judged o WHERE o.status = 'new' AND o.cnt > 0
                              AND o.fixmedins_code = r.fixmedins_code AND o.feedetl_sn = r.init_feedetl_sn
                              AND o.mdtrt_id = r.mdtrt_id)
              AND NOT EXISTS (SELECT 1 FROM fee f WHERE f.fixmedins_code = r.fixmedins_code
                              AND f.feedetl_sn = r.init_feedetl_sn AND f.mdtrt_id = r.mdtrt_id)
        """).fetchall()
        if bad:
            con.register("refund_bad", pl.DataFrame(bad, schema={"_fi": pl.Int32, "_row": pl.Int32}, orient="row"))
            con.execute(
                "UPDATE judged SET status = 'refund_unmatched' "
                "WHERE (_fi, _row) IN (SELECT (_fi, _row) FROM refund_bad)"
            )
            con.unregister("refund_bad")


_VALUE_OF = {"key_conflict": None, "setl_missing": "setl_id", "refund_unmatched": "init_feedetl_sn"}


def _load_batch(
    con,
    table: Table,
    files: list[Incoming],
    run_id: str,
    institutions: list[str] | None,
    result: IngestResult,
    say: Callable[[str], None],
) -> None:
    raws: list[tuple[int, Incoming, RawFile]] = []
    for inc in files:
        meta = {
            "stem": inc.name.stem,
            "code": inc.name.code,
            "day": inc.name.day,
            "table": table.name,
            "sha": inc.sha256,
            "size": inc.size,
        }
        try:
            raws.append((len(raws), inc, read_upload(inc.path, table, inc.name.ext)))
        except FileRejected as e:
            _reject(con, run_id, result, inc.path.name, e.rule, e.message, meta)
    # a corrected file replaces every row its earlier version loaded
    for _, inc, _ in raws:
        if inc.supersedes:
            names = list(inc.supersedes)
            con.execute(f"DELETE FROM {table.name} WHERE source_file IN (SELECT unnest(?))", [names])
            con.execute(
                "UPDATE manifest SET status = 'superseded' WHERE file_name IN (SELECT unnest(?)) AND status = 'loaded'",
                [names],
            )
            result.corrected += 1
    if not raws:
        return
    batch = pl.concat(
        [
            r.frame.with_columns(_fi=pl.lit(i, pl.Int32), _fcode=pl.lit(inc.name.code), _fday=pl.lit(inc.name.day))
            for i, inc, r in raws
        ]
    )
    typed, failures = parse_and_check(batch, table, upload_row_rules(table, institutions))
    failed = failures.select("_fi", "_row").unique()
    checked = typed.join(failed, on=["_fi", "_row"], how="anti").drop("_fcode", "_fday")
    con.register("batch", checked.to_arrow())
    _judge(con, table)
    con.unregister("batch")
    names = pl.DataFrame(
        {"_fi": [i for i, _, _ in raws], "source_file": [inc.path.name for _, inc, _ in raws]},
        schema={"_fi": pl.Int32, "source_file": pl.String},
    )
    con.register("batch_files", names.to_arrow())
    casts = ", ".join(f"CAST(j.{ident(c.code)} AS {SQL_TYPES[c.type]}) AS {ident(c.code)}" for c in table.columns)
    con.execute(
        f"""INSERT INTO {table.name} BY NAME
        SELECT {casts}, j.extra, f.source_file, j._row AS source_row, ? AS run_id
        FROM judged j JOIN batch_files f USING (_fi) WHERE j.status = 'new' ORDER BY j._fi, j._row""",
        [run_id],
    )
    # refused rows: contract failures (rules joined per row) and cross-row judgements
    id_col = table.key[1]
    shown = " ".join(
        f"WHEN '{rule}' THEN {ident(col or id_col)}"
        for rule, col in _VALUE_OF.items()
        if col is None or col in table.codes
    )
    later = con.sql(f"""SELECT _fi, _row, status AS rule, CASE status {shown} END AS value
                            FROM judged WHERE status NOT IN ('new', 'duplicate')""").pl()
    refused = pl.concat(
        [
            failures.select("_fi", "_row", "rule", "value"),
            later.with_columns(pl.col("_fi").cast(pl.Int32), pl.col("_row").cast(pl.Int32)),
        ]
    )
    refused = refused.group_by("_fi", "_row", maintain_order=True).agg(
        rule=pl.col("rule").str.join("; "), value=pl.col("value").str.join("; ")
    )
    uploaded = batch.select(
        "_fi",
        "_row",
        pl.col(id_col).alias("record_id"),
        "fixmedins_code",
        pl.struct(table.codes).struct.json_encode().alias("row_json"),
    )
    q = (
        refused.join(uploaded, on=["_fi", "_row"])
        .join(names, on="_fi")
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
    con.register("q", q.to_arrow())
    con.execute("INSERT INTO quarantine BY NAME SELECT * FROM q")
    con.unregister("q")
    # per-file counts for the manifest and the run summary
    status_counts = con.execute("SELECT _fi, status, count(*) FROM judged GROUP BY ALL").fetchall()
    per = {i: RowCounts(received=r.frame.height) for i, _, r in raws}
    for fi, status, n in status_counts:
        if status == "new":
            per[fi].loaded += n
        elif status == "duplicate":
            per[fi].duplicate += n
    for fi, n in refused.group_by("_fi").len().iter_rows():
        per[fi].quarantined += n
    now = datetime.now()
    for i, inc, _ in raws:
        c = per[i]
        con.execute(
            "INSERT INTO manifest VALUES (?, ?, ?, ?, ?, ?, ?, 'loaded', NULL, ?, ?, ?, ?, ?, ?)",
            [
                inc.path.name,
                inc.name.stem,
                inc.name.code,
                inc.name.day,
                table.name,
                inc.sha256,
                inc.size,
                c.received,
                c.loaded,
                c.quarantined,
                c.duplicate,
                run_id,
                now,
            ],
        )
        result.rows[table.name].add(c)
        result.loaded += 1
    con.unregister("batch_files")
    con.execute("DROP TABLE IF EXISTS judged")
    say(f"{table.name}: {sum(per[i].received for i, _, _ in raws):,} rows from {len(raws)} files")


def _batches(files: list[Incoming]) -> list[list[Incoming]]:
    out: list[list[Incoming]] = [[]]
    size = 0
    for f in files:
        if out[-1] and size + f.size > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(f)
        size += f.size
    return [b for b in out if b]


def known_institutions(con) -> list[str] | None:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ref_institutions'"
    ).fetchall()
    if not exists[0][0]:
        return None
    return [r[0] for r in con.execute("SELECT DISTINCT fixmedins_code FROM ref_institutions").fetchall()]


def ingest(
    con: duckdb.DuckDBPyConnection, inbox: Path, run_id: str, say: Callable[[str], None] = lambda _: None
) -> IngestResult:
    """Load every new or corrected upload under `inbox/uploads`; the caller commits or rolls back."""
    result = IngestResult()
    rounds = plan(con, inbox / "uploads", run_id, result)
    institutions = known_institutions(con)
    tables = upload_tables()
    for files in rounds:
        for t in TABLE_ORDER:
            for batch in _batches([f for f in files if f.name.table == t]):
                _load_batch(con, tables[t], batch, run_id, institutions, result, say)
    return result
