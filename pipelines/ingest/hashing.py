"""Content hashes of uploads (sha256), the manifest's identity of a file: a resend with the same bytes is
skipped, a changed one corrects its earlier version.

A night's new uploads are hashed ahead (`HashAhead.start`), on a worker thread, while the reference step runs
and GX is imported: file reads and hashlib release the GIL, so they use the core that the import, which holds
it, leaves free (a district's first night: 2.4 GB, 1.7 s of hashing on both cores before the load could
begin). The planner takes a hash from there only if the file's size and modification time are still those it
was hashed at; it hashes any other file, and those not reached yet, itself on both cores.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.ingest.naming import BadFileName, parse

HASH_THREADS = 2  # both cores hash: hashlib releases the GIL


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


def _named(path: Path) -> bool:
    """Whether the file's name is an upload's (a file refused by its name is never read)."""
    try:
        parse(path.name)
    except BadFileName:
        return False
    return True


def _stat_and_hash(path: Path) -> tuple[int, int, str]:
    st = os.lstat(path)  # before reading: a file changed while read has a later mtime by the time it is planned
    return st.st_size, st.st_mtime_ns, sha256_of(path)


@dataclass
class HashAhead:
    """Hashes under way or done, by file name; empty unless started."""

    _pool: ThreadPoolExecutor | None = None
    _ahead: dict[str, Future] = field(default_factory=dict)

    @classmethod
    def start(cls, con: duckdb.DuckDBPyConnection, uploads: Path) -> HashAhead:
        """Start hashing every regular file in `uploads` with an upload's name that the manifest does not know by
        name, size and modification time (those the planner recognises without reading them)."""
        known = set(con.execute("SELECT file_name, size_bytes, mtime_ns FROM manifest").fetchall())
        due = []
        for path in list_uploads(uploads):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (path.name, st.st_size, st.st_mtime_ns) not in known and _named(path):
                due.append(path)
        if not due:
            return cls()
        # one thread: GX's import holds the other core meanwhile, and a second hashing thread would slow it
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash-ahead")
        return cls(pool, {p.name: pool.submit(_stat_and_hash, p) for p in due})

    def sha256(self, path: Path, st: os.stat_result) -> str:
        """The file's hash: from the hashing ahead if the file is as it was hashed, else read now."""
        ahead = self._ahead.pop(path.name, None)
        # a hash not started yet is cancelled and done here instead, on the planner's threads
        if ahead is not None and not ahead.cancel() and ahead.exception() is None:
            size, mtime_ns, sha = ahead.result()
            if (size, mtime_ns) == (st.st_size, st.st_mtime_ns):
                return sha
        return sha256_of(path)

    def close(self) -> None:
        """Drop what is not hashed yet (the run ended or failed before needing it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._ahead.clear()
