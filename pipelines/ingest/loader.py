"""Load a night's uploads into the warehouse: manifest, resends, corrections, row checks, dedupe.

The night's new files (`plan.py`) are grouped by table (`setl` before `fee`, since a fee line needs its
settlement) and loaded in batches of whole files. Each batch is read, parsed and checked against the contract
in polars (`prepare.py`), judged against itself and the warehouse in DuckDB (duplicates, reused keys,
refunds, missing settlements: `judge.py`), and written: good rows to the table, refused rows to
`quarantine`, one `manifest` row per file (`write.py`). This module cuts the batches and runs them as a
pipeline: preparing touches no database, so it runs on worker threads ahead of the writing, which stays on
the caller's thread and in file order.
The caller owns the transaction boundary (see `warehouse/session.py`): a run is all or nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.contract import Table, upload_tables
from data_contracts.gx_validation import ContractValidator
from pipelines.ingest.behind import behind_uploads, newest_upload
from pipelines.ingest.hashing import HashAhead
from pipelines.ingest.plan import Incoming, plan
from pipelines.ingest.prepare import Known, prepare
from pipelines.ingest.result import TABLE_ORDER, IngestResult
from pipelines.ingest.waiting import load_waiting, still_waiting
from pipelines.ingest.write import commit
from pipelines.progress import counted
from pipelines.warehouse.schema import has_table, ident

BATCH_BYTES = 128 * 1024 * 1024  # files per batch at most, by size on disk (bounds memory; each batch is one GX run)
AHEAD = 2  # batches read and checked ahead of the one being written


def _submit(pool: ThreadPoolExecutor, table: Table, files: list[Incoming], known: Known, say) -> Future:
    say(f"{table.name}: reading and checking {len(files)} files ({sum(f.size for f in files) / 2**20:.0f} MB)")
    return pool.submit(prepare, table, files, known)


def _numbered(say: Callable[[str], None], k: int, n: int) -> Callable[[str], None]:
    """`say` with the batch's place in the night, so a long load shows how far it has come."""
    return (lambda msg: say(f"batch {k}/{n}, {msg}")) if n > 1 else say


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
# fee lines already loaded that name a settlement tonight's corrections withdrew and did not bring back
SETL_WITHDRAWN_WARNINGS = """
INSERT INTO contract_warnings
SELECT ?, f.source_file, 'fee', f.source_row, f.feedetl_sn, f.fixmedins_code, 'setl_withdrawn',
       format('setl_id={}', f.setl_id), NULL
FROM fee f SEMI JOIN (SELECT DISTINCT fixmedins_code, setl_id FROM withdrawn WHERE run_id = ? AND table_name = 'setl')
     USING (fixmedins_code, setl_id)
ANTI JOIN setl USING (fixmedins_code, setl_id)
"""
# those lines per file
WITHDRAWN_SQL = """
    SELECT fixmedins_code, file, count(*) AS lines FROM contract_warnings
    WHERE run_id = ? AND rule = 'setl_withdrawn' GROUP BY ALL ORDER BY fixmedins_code, file
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
    say("looking for new and corrected uploads")
    institutions = known_codes(con, "ref_institutions", "fixmedins_code")
    rounds = plan(con, inbox / "uploads", run_id, result, hashes, institutions)
    known = Known(
        institutions,
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
    n = len(jobs)
    new = counted(sum(len(r) for r in rounds), "new or corrected file")
    say(f"{new} of {result.seen:,} to read, in {counted(n, 'batch', 'batches')}")
    with ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="ingest-prepare") as pool:
        queued = iter(enumerate(jobs, 1))
        ahead: list[tuple[int, Future]] = [
            (k, _submit(pool, *job, known, _numbered(say, k, n))) for k, job in islice(queued, AHEAD)
        ]
        while ahead:  # on an error the pool still lets the (at most two) batches being prepared finish
            k, future = ahead.pop(0)
            current = future.result()
            ahead += [(j, _submit(pool, *job, known, _numbered(say, j, n))) for j, job in islice(queued, 1)]
            commit(con, current, run_id, result, _numbered(say, k, n))
    if rounds:  # a settlement can only have come with tonight's files
        load_waiting(con, inbox / "uploads", run_id, result, known, say)
        for statement in CROSS_TABLE_WARNINGS.strip().split(";\n"):
            if statement.strip():
                con.execute(statement, [run_id] * statement.count("?"))
        withdrew = "SELECT count(*) FROM withdrawn WHERE run_id = ? AND table_name = 'setl'"
        if con.execute(withdrew, [run_id]).fetchall()[0][0]:  # else no need to scan `fee`
            con.execute(SETL_WITHDRAWN_WARNINGS, [run_id, run_id])
            result.settlement_withdrawn = con.sql(WITHDRAWN_SQL, params=[run_id]).pl().to_dicts()
    still_waiting(con, inbox / "uploads", result)
    result.newest_upload = newest_upload(con)
    behind = behind_uploads(con, result.newest_upload)
    result.behind = behind.with_columns(pl.col("last_file_date").cast(pl.String)).to_dicts()
    return result
