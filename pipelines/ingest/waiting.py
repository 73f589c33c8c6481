"""Fee lines refused only because what they name had not arrived (their settlement: `setl_missing`; a refund's
original line: `refund_unmatched`) are loaded on the night it has, from the file they came in.

The institution is told to send the missing settlement; the fee file itself was right, so it is not sent
again, or comes again unchanged and is skipped as a resend. Without this, its waiting lines would stay out of
the warehouse for good. Only those lines of the file are read in again: the rest of it was loaded or refused
for reasons of its own when it came.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.contract import upload_tables
from pipelines.ingest.hashing import sha256_of
from pipelines.ingest.judge import by_key
from pipelines.ingest.naming import parse
from pipelines.ingest.plan import Incoming
from pipelines.ingest.prepare import Known, Prepared, prepare
from pipelines.ingest.result import IngestResult
from pipelines.ingest.write import commit

WAITING_RULES = ("setl_missing", "refund_unmatched")

# the refused lines of each file's current version whose last judgement was that they wait for a settlement or an
# original line (a line read again and refused for another reason is not read a third time)
WAITING_SQL = f"""
    WITH w AS (SELECT DISTINCT file, row_number FROM quarantine WHERE table_name = 'fee' AND rule IN {WAITING_RULES}),
    latest AS (
        SELECT q.file, m.sha256, m.size_bytes, m.mtime_ns, m.run_id AS loaded_by, q.row_number, q.rule, q.row_json
        FROM quarantine q SEMI JOIN w USING (file, row_number)
        JOIN manifest m ON m.file_name = q.file AND m.run_id = q.run_id
        WHERE q.table_name = 'fee' AND m.status = 'loaded'
        QUALIFY row_number() OVER (PARTITION BY q.file, q.row_number ORDER BY m.seen_at DESC) = 1)
    SELECT file, sha256, size_bytes, mtime_ns, loaded_by, row_number, rule,
           json_extract_string(row_json, '$.fixmedins_code') AS fixmedins_code,
           json_extract_string(row_json, '$.feedetl_sn') AS feedetl_sn,
           json_extract_string(row_json, '$.setl_id') AS setl_id,
           json_extract_string(row_json, '$.init_feedetl_sn') AS init_feedetl_sn,
           json_extract_string(row_json, '$.mdtrt_id') AS mdtrt_id
    FROM latest WHERE rule IN {WAITING_RULES}
"""


def _not_loaded(con: duckdb.DuckDBPyConnection, waiting: pl.DataFrame) -> pl.DataFrame:
    """The waiting lines not loaded since (from another file, or by an earlier night's retry). Looked up by the
    tables' key hashes, so a night does not scan the warehouse's lines for a handful of refused ones."""
    fee_key = ["fixmedins_code", "feedetl_sn"]
    loaded = by_key(con, upload_tables()["fee"], waiting.select(fee_key), "t.fixmedins_code, t.feedetl_sn")
    return waiting.join(loaded, on=fee_key, how="anti")


def _arrived(con: duckdb.DuckDBPyConnection, waiting: pl.DataFrame) -> pl.DataFrame:
    """The waiting lines whose settlement (or original line) the warehouse now holds."""
    tables = upload_tables()
    waiting = _not_loaded(con, waiting)
    visits = by_key(con, tables["setl"], waiting.select("fixmedins_code", "setl_id"), "t.fixmedins_code, t.setl_id")
    originals = by_key(  # of the same visit, as the loader requires of a refund
        con,
        tables["fee"],
        waiting.select("fixmedins_code", feedetl_sn="init_feedetl_sn").drop_nulls(),
        "t.fixmedins_code, t.feedetl_sn AS init_feedetl_sn, t.mdtrt_id",
    )
    return pl.concat(
        [
            waiting.filter(pl.col("rule") == "setl_missing").join(visits, on=["fixmedins_code", "setl_id"], how="semi"),
            waiting.filter(pl.col("rule") == "refund_unmatched").join(
                originals, on=["fixmedins_code", "init_feedetl_sn", "mdtrt_id"], how="semi"
            ),
        ]
    )


def _still_there(uploads: Path, name: str, sha: str, size: int | None, mtime: int | None) -> Incoming | None:
    """The file as it was loaded, if it is still in the folder unchanged (a changed one is a correction, which
    the night has already loaded in its place)."""
    path = uploads / name
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if (st.st_size, st.st_mtime_ns) != (size, mtime) and sha256_of(path) != sha:
        return None
    return Incoming(path, parse(name), sha, st.st_size, st.st_mtime_ns, [])


def _only(prepared: Prepared, rows: dict[int, list[int]]) -> Prepared:
    """`prepared` cut down to the given rows of each file (file index -> row numbers)."""
    keep = pl.DataFrame(
        [(fi, r) for fi, rs in rows.items() for r in rs], schema={"_fi": pl.Int32, "_row": pl.Int32}, orient="row"
    )

    def cut(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.join(keep.cast({c: frame.schema[c] for c in ("_fi", "_row")}), on=["_fi", "_row"], how="semi")

    prepared.batch, prepared.typed, prepared.found = cut(prepared.batch), cut(prepared.typed), cut(prepared.found)
    return prepared


def load_waiting(
    con: duckdb.DuckDBPyConnection,
    uploads: Path,
    run_id: str,
    result: IngestResult,
    known: Known,
    say: Callable[[str], None] = lambda _: None,
) -> None:
    """Load the waiting fee lines whose settlement or original line has arrived (counted in
    `result.waiting_loaded`)."""
    waiting = con.sql(WAITING_SQL).pl()
    if waiting.is_empty():
        return
    found = (
        _arrived(con, waiting)
        .group_by("file", maintain_order=True)
        .agg(pl.col("sha256", "size_bytes", "mtime_ns", "loaded_by").first(), pl.col("row_number").unique())
        .sort("file")
    )
    files: list[Incoming] = []
    rows: dict[int, list[int]] = {}
    tonight: list[bool] = []  # first loaded tonight (in an earlier round than the settlement it waits for)
    for name, sha, size, mtime, loaded_by, row_numbers in found.iter_rows():
        inc = _still_there(uploads, name, sha, size, mtime)
        if inc is None:
            continue
        rows[len(files)] = row_numbers
        files.append(inc)
        tonight.append(loaded_by == run_id)
    if not files:
        return
    say(f"fee: reading {len(files)} files again for the lines that waited for their settlement")
    before = result.rows["fee"].loaded
    prepared = prepare(upload_tables()["fee"], files, known)
    prepared.rejected = {}  # unreadable now though unchanged: its lines stay where they are, the file as it was
    prepared.changing = {}  # changed while read again: the same, and the night's next look finds the correction
    if not prepared.read:
        return
    commit(con, _only(prepared, rows), run_id, result, say)
    # each file read again is counted once among the night's files: loaded, no longer unchanged
    result.loaded -= sum(tonight[i] for i in prepared.read)
    result.unchanged -= sum(not tonight[i] for i in prepared.read)
    result.waiting_loaded += result.rows["fee"].loaded - before


def still_waiting(con: duckdb.DuckDBPyConnection, uploads: Path, result: IngestResult) -> None:
    """Count the fee lines that still wait for their settlement or original line (in `result.waiting_still`,
    `waiting_institutions`, and `waiting_file_gone` for those whose file has left `uploads/`, so that they can
    only come again in a new upload). A night's quarantine lists only its own refusals; this keeps the lines
    refused on earlier nights in view."""
    waiting = con.sql(WAITING_SQL).pl()
    if waiting.is_empty():
        return
    waiting = _not_loaded(con, waiting)
    result.waiting_still = waiting.height
    result.waiting_institutions = waiting["fixmedins_code"].n_unique()
    per_file = waiting.group_by("file").agg(pl.len(), pl.col("sha256", "size_bytes", "mtime_ns").first())
    result.waiting_file_gone = sum(
        n for name, n, sha, size, mtime in per_file.iter_rows() if _still_there(uploads, name, sha, size, mtime) is None
    )
