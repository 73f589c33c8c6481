"""The single-writer session: a whole run either commits to the warehouse file or leaves it untouched.

A run works on a staging copy of the warehouse beside it and, only when every step has succeeded,
atomically renames the copy over the original (`os.replace`). A failure or a killed process leaves the
original exactly as it was; the stale copy is simply overwritten by the next run. An advisory lock
(`fcntl.flock`, released by the OS if the process dies) lets only one run write at a time; readers
(notebooks, `claimwatch` read-only commands) open the original read-only and are never blocked.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from pipelines.warehouse.schema import create_all

# DuckDB may otherwise take 80% of the machine; past this it spills joins, sorts and the detection window's
# temp table to disk beside the warehouse, which keeps the whole run's peak within a few GB at district scale.
MEMORY_LIMIT = "1GB"
# DuckDB's allocator otherwise keeps what a big statement freed (GBs after the detection window's sort) until
# it is busy again, while the detectors work in polars beside it: hand it back to the system promptly
ALLOCATOR = {
    "allocator_background_threads": True,
    "allocator_flush_threshold": "8MB",
    "allocator_bulk_deallocation_flush_threshold": "8MB",
}


# the connection of the step or command running now, so that Ctrl-C can interrupt its query from another thread
_CURRENT: list[duckdb.DuckDBPyConnection] = []
# the warehouses this process has published a session to, in order (a stop signal's message says whether any)
PUBLISHED: list[Path] = []


def _current(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    _CURRENT[:] = [con]  # one at a time: a step or command closes its connection before the next opens one
    return con


def connect_writer(stage: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to a run's staging copy, with the run's memory limit."""
    return _current(duckdb.connect(str(stage), config={"memory_limit": MEMORY_LIMIT, **ALLOCATOR}))


# the stop signals this process received, the first first (recorded by the command line's handler and its
# watcher thread): what stopped a run, which DuckDB's own error for an interrupted query does not say
STOPPED_BY: list[int] = []


def interrupt_current() -> None:
    """Interrupt whatever query the current connection runs (safe from any thread, and when closed)."""
    for con in list(_CURRENT):
        with suppress(duckdb.Error):
            con.interrupt()


class WarehouseBusy(RuntimeError):
    """Another run holds the warehouse."""


class NotAWarehouse(RuntimeError):
    """`--db` names a file that is not claimwatch's warehouse: it is never written."""


def _open_checked(path: Path, db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to `path` (the warehouse `db` or its staging copy), if it is a warehouse claimwatch made or
    a new one; another application's DuckDB database, or a file that is not one, raises NotAWarehouse."""
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        if "not a valid DuckDB database" not in str(e):
            raise
        raise NotAWarehouse(f"{db} is not a DuckDB database: give --db claimwatch's warehouse or a new file") from None
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    if tables and not tables & {"manifest", "warehouse_meta"}:
        con.close()
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise NotAWarehouse(
            f"{db} is a DuckDB database claimwatch did not create (tables {shown}): give --db claimwatch's "
            "warehouse or a new file"
        )
    return con


def staging_path(db: Path) -> Path:
    return db.parent / f".{db.name}.staging"


@contextmanager
def writer_lock(db: Path) -> Iterator[None]:
    lock_path = db.parent / f".{db.name}.lock"
    db.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise WarehouseBusy(
                f"the warehouse {db} is being written by {holder}; wait for that run to finish and retry"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"claimwatch run (pid {os.getpid()})".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def write_session(db: Path) -> Iterator[Path]:
    """Yield the path of a staging copy to write; publish it over `db` only if the block succeeds."""
    db = db.resolve()
    with writer_lock(db):
        stage = staging_path(db)
        for leftover in (stage, stage.with_name(stage.name + ".wal")):
            leftover.unlink(missing_ok=True)
        if db.exists():
            shutil.copyfile(db, stage)
        try:
            con = _open_checked(stage, db)
        except NotAWarehouse:
            stage.unlink(missing_ok=True)
            raise
        try:
            create_all(con)
        finally:
            con.close()
        try:
            yield stage
        except BaseException:
            stage.unlink(missing_ok=True)
            stage.with_name(stage.name + ".wal").unlink(missing_ok=True)
            raise
        # a clean close has checkpointed; make sure before the file becomes the warehouse
        con = duckdb.connect(str(stage))
        con.execute("CHECKPOINT")
        con.close()
        with open(stage, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(stage, 0o600)  # medical and personal data: owner only
        os.replace(stage, db)
        PUBLISHED.append(db)
        dir_fd = os.open(db.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def connect_readonly(db: Path) -> duckdb.DuckDBPyConnection:
    if not db.exists():
        raise FileNotFoundError(f"no warehouse at {db}: run `claimwatch nightly` first")
    return _current(_open_checked(db, db, read_only=True))
