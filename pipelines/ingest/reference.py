"""Load the bureau's reference lists (`INBOX/reference/*.csv`) into `ref_<name>` tables.

A list is replaced whole when its content changes. A list that breaks its contract is refused with
the first failing rows named, and the version already in the warehouse stays in force.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.contract import Table, reference_tables, upload_tables
from data_contracts.gx_validation import ContractValidator
from pipelines.ingest.hashing import sha256_of
from pipelines.ingest.in_transfer import is_in_transfer, load_marks
from pipelines.ingest.judge import by_key
from pipelines.ingest.loader import known_codes
from pipelines.ingest.reader import FileRejected, canonical, decode, not_well_formed, numbered
from pipelines.ingest.rules import listed_check, parse_and_check
from pipelines.progress import counted
from pipelines.warehouse.schema import SQL_TYPES, has_table, ident


@dataclass
class ReferenceResult:
    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    not_read: list[dict] = field(default_factory=list)  # files in reference/ that are none of the lists

    def merge(self, other: ReferenceResult) -> None:
        for k in ("loaded", "unchanged", "absent", "rejected", "not_read"):
            getattr(self, k).extend(getattr(other, k))


def read_reference(
    path: Path, table: Table, validator: ContractValidator | None = None, lists: dict[str, list[str]] | None = None
) -> pl.DataFrame:
    """Typed rows of one reference file, or FileRejected naming the rows and rules that fail. `lists`: the keys
    of the lists in force that columns declared `listed_in` must name (a list not given is not checked)."""
    text, _ = decode(path.read_bytes())
    try:
        frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    except pl.exceptions.PolarsError as e:
        raise not_well_formed(text, e, table) from None
    frame = canonical(frame, table, *numbered(frame, 0)).frame.drop("extra")  # a list's extra columns are not kept
    listed = [
        listed_check(f"unknown_{c.listed_in.removesuffix('s')}", c.code, lists[c.listed_in])
        for c in table.columns
        if c.listed_in and (lists or {}).get(c.listed_in) is not None
    ]
    typed, failures = parse_and_check(frame, table, listed, validator=validator)
    dup = typed.filter(pl.struct(list(table.key)).is_duplicated())
    if not dup.is_empty():
        failures = pl.concat(
            [
                failures,
                dup.select(
                    "_fi", "_row", rule=pl.lit("duplicate_key"), value=pl.concat_str(list(table.key), separator="/")
                ),
            ]
        )
    _refuse_if_any(failures)
    return typed.select(table.codes)


def _refuse_if_any(failures: pl.DataFrame) -> None:
    """FileRejected naming the first failing rows (`_row`, `rule`, `value`) of a list, if it has any."""
    if failures.is_empty():
        return
    shown = "; ".join(
        f"row {r}: {rule} ({v})"
        for r, rule, v in failures.sort("_row").head(3).select("_row", "rule", "value").iter_rows()
    )
    rows = failures["_row"].n_unique()
    # a row may break several rules: count the rows, and the failures when they are more
    of = f" ({failures.height} failures)" if failures.height > rows else ""
    more = f" and {counted(failures.height - 3, 'more failure')}" if failures.height > 3 else ""
    raise FileRejected("contract", f"{counted(rows, 'failing row')}{of}: {shown}{more}")


def load_references(
    con: duckdb.DuckDBPyConnection,
    ref_dir: Path,
    run_id: str,
    validator: ContractValidator | None = None,
    say: Callable[[str], None] = lambda _: None,
    after_uploads: bool = False,
) -> ReferenceResult:
    """Load the lists that changed: before the uploads those the uploads are checked against, after them
    (`after_uploads`) those that name uploaded rows (`key_in`), which may be tonight's."""
    result = ReferenceResult(not_read=[] if after_uploads else not_read(ref_dir, list(reference_tables())))
    previous = dict(
        con.execute("SELECT name, arg_max(sha256, loaded_at) FROM reference_files GROUP BY name").fetchall()
    )
    for name, table in reference_tables().items():
        if bool(table.key_in) != after_uploads:
            continue
        path = ref_dir / f"{name}.csv"
        if not path.is_file():
            result.absent.append(name)
            continue
        sha = sha256_of(path)
        if previous.get(name) == sha:
            result.unchanged.append(name)
            continue
        say(f"checking {path.name} against its contract")
        try:
            load_reference_file(con, path, name, run_id, validator, sha)
        except FileRejected as e:
            result.rejected.append({"file": f"reference/{path.name}", "rule": e.rule, "reason": e.message})
            continue
        result.loaded.append(name)
    return result


WORKBOOK_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".et", ".ods")


def not_read(ref_dir: Path, names: list[str]) -> list[dict]:
    """The files in `ref_dir` that the night does not read, each with why ({file, reason}): a list saved as a
    workbook or under another name would otherwise go unnoticed while the version in force (or none) is used.
    Dot files and folders are left alone, as in uploads/."""
    if not ref_dir.is_dir():
        return []
    marks = load_marks()
    wanted = {f"{n}.csv" for n in names}
    found = []
    for p in sorted(ref_dir.iterdir()):
        if p.name.startswith(".") or p.name in wanted or p.is_dir():
            continue
        low = p.name.lower()
        meant = max((n for n in names if low.startswith(n)), key=len, default=None)
        if is_in_transfer(p.name, marks):
            why = "still being transferred, or the lock file of a workbook someone has open"
        elif low in wanted:
            why = f"the list's name is {low}, in lower case"
        elif meant and p.suffix.lower() in WORKBOOK_SUFFIXES:
            why = f"reference lists are read as CSV only: save it as {meant}.csv (UTF-8 or GB18030)"
        elif meant:
            why = f"only {meant}.csv is read as that list"
        else:
            why = f"not a reference list (they are {', '.join(f'{n}.csv' for n in names)})"
        found.append({"file": f"reference/{p.name}", "reason": why})
    return found


def _check_key_in(con: duckdb.DuckDBPyConnection, typed: pl.DataFrame, table: Table) -> None:
    """FileRejected unless every row's key names a row of the upload table `table.key_in` (looked up by its
    stored key hash, so the night does not scan the warehouse's visits)."""
    upload = upload_tables()[table.key_in]
    keys = typed.select(table.key).with_row_index("_row", offset=2)
    found = by_key(con, upload, keys.select(table.key), ", ".join(f"t.{ident(k)}" for k in table.key))
    missing = keys.join(found.unique(), on=list(table.key), how="anti")
    _refuse_if_any(
        missing.select(
            "_row",
            rule=pl.lit(f"unknown_{table.key_in}"),
            value=pl.concat_str([pl.col(k).cast(pl.String) for k in table.key], separator="/"),
        )
    )


def load_reference_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    run_id: str,
    validator: ContractValidator | None = None,
    sha: str | None = None,
) -> int:
    """Check one reference list and put it in `ref_<name>` (replaced, or merged by key); rows taken."""
    tables = reference_tables()
    table = tables[name]
    lists = {
        c.listed_in: known_codes(con, f"ref_{c.listed_in}", tables[c.listed_in].key[0])
        for c in table.columns
        if c.listed_in
    }
    typed = read_reference(path, table, validator, {k: v for k, v in lists.items() if v is not None})
    if table.key_in:
        _check_key_in(con, typed, table)
    cols = ", ".join(f"CAST({ident(c.code)} AS {SQL_TYPES[c.type]}) AS {ident(c.code)}" for c in table.columns)
    con.register("ref_rows", typed.to_arrow())
    if table.merge and has_table(con, f"ref_{name}"):
        keys = ", ".join(ident(k) for k in table.key)
        con.execute(f"DELETE FROM ref_{name} WHERE ({keys}) IN (SELECT {keys} FROM ref_rows)")
        con.execute(f"INSERT INTO ref_{name} SELECT {cols} FROM ref_rows")
    else:
        con.execute(f"CREATE OR REPLACE TABLE ref_{name} AS SELECT {cols} FROM ref_rows")
    con.unregister("ref_rows")
    con.execute(
        "INSERT INTO reference_files VALUES (?, ?, ?, ?, ?)",
        [name, sha or sha256_of(path), typed.height, run_id, datetime.now()],
    )
    return typed.height
