"""Reading a batch of upload files and running the contract over its rows. Touches no database, so later
batches are prepared on worker threads while an earlier one is written (see `loader.ingest`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from data_contracts.contract import Table
from data_contracts.gx_validation import ContractValidator
from pipelines.ingest.plan import Incoming
from pipelines.ingest.reader import read_batch
from pipelines.ingest.rules import parse_and_check, upload_row_checks


@dataclass
class Known:
    """What the checks compare against: reference lists, and the validator that runs the GX suites."""

    institutions: list[str] | None
    catalog: list[str] | None
    validator: ContractValidator


@dataclass
class Prepared:
    """One batch read, parsed and checked against the contract: everything `commit` needs but the database."""

    table: Table
    files: list[Incoming]
    rejected: dict  # file index -> the read error that rejected the whole file
    read: list[int]  # indexes of the files that were read
    changing: dict[int, os.stat_result | None] = field(default_factory=dict)  # files that changed while read
    info: pl.DataFrame | None = None  # per file: _fi, source_file, _fcode, _fday
    batch: pl.DataFrame | None = None  # the rows as uploaded
    typed: pl.DataFrame | None = None
    found: pl.DataFrame | None = None  # contract failures: _fi, _row, rule, value


def prepare(table: Table, files: list[Incoming], known: Known) -> Prepared:
    """Read a batch of files and run the contract over its rows. Touches no database, so later batches
    are prepared on worker threads while an earlier one is written (see `ingest`)."""
    raws, rejected = read_batch([(i, f.path, f.name.ext) for i, f in enumerate(files)], table)
    # a file written to under its final name while it was read is still arriving: what was read is part of it
    now = {i: _stat(f.path) for i, f in enumerate(files) if i not in rejected}
    changing = {
        i: st
        for i, st in now.items()
        if st is None or (st.st_size, st.st_mtime_ns) != (files[i].size, files[i].mtime_ns)  # gone, or changed
    }
    read = [i for i in range(len(files)) if i not in rejected and i not in changing]
    prepared = Prepared(table, files, rejected, read, changing)
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
    rows = pl.concat([r.frame for r in raws])
    if changing:  # what was read of a file that changed meanwhile is only part of it
        rows = rows.filter(pl.col("_fi").is_in(read))
    prepared.batch = rows.join(prepared.info.drop("source_file"), on="_fi", how="left")
    checks = upload_row_checks(table, known.institutions, known.catalog)
    prepared.typed, prepared.found = parse_and_check(prepared.batch, table, checks, known.validator)
    return prepared


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)  # as the plan took the size and modification time it was hashed at
    except OSError:
        return None
