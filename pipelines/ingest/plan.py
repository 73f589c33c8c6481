"""Which uploads a night loads: the new files and corrections of `uploads/`, in rounds (a stem appears once
per round, so a file and its correction sent the same night load in turn). A file that is not a regular
file, or whose name breaks the convention, is rejected whole with its reason, in the manifest and the
quarantine; one still being transferred (`in_transfer.py`) is left for the next night. A file the manifest
knows by name, size and modification time is not read again.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import polars as pl

from pipelines.ingest.hashing import HASH_THREADS, HashAhead, list_uploads
from pipelines.ingest.in_transfer import entry, is_in_transfer, load_marks
from pipelines.ingest.naming import BadFileName, UploadName, parse
from pipelines.ingest.result import IngestResult


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


def reject_file(
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
    con,
    uploads: Path,
    run_id: str,
    result: IngestResult,
    hashes: HashAhead | None = None,
    institutions: list[str] | None = None,
) -> list[list[Incoming]]:
    """Sort the folder into rounds of new files (a stem appears once per round); reject bad names. `hashes`:
    the uploads' hashes, if started ahead; `institutions`: the codes known, to whom a misnamed file is sent back."""
    hashes = hashes or HashAhead()
    today = date.today()
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
    marks = load_marks()
    for path in list_uploads(uploads):
        try:
            st = os.lstat(path)  # one call: a link is refused, not followed
        except OSError:
            st = None
        if is_in_transfer(path.name, marks):
            result.in_transfer.append(entry(path.name, st))
            continue
        result.seen += 1
        if st is None or not stat.S_ISREG(st.st_mode):
            reject_file(con, run_id, result, path.name, "not_a_file", "not a regular file (folder or link): not read")
            continue
        try:
            name = parse(path.name)
        except BadFileName as e:
            # sent back to the institution its name begins with, if that is one the bureau knows
            meta = {"code": e.code} if e.code is not None and e.code in (institutions or ()) else None
            reject_file(con, run_id, result, path.name, "bad_file_name", str(e), meta)
            continue
        if name.day > today + timedelta(days=1):  # a day's grace for an institution whose clock runs ahead
            # a mistyped year: loaded, the night would run as of that day (the newest upload), its window empty.
            # No stem is recorded, so the file is judged again each night, as a misnamed one is
            message = f"the date in the name, {name.day}, is after today ({today}): check the year and resend"
            meta = {"code": name.code, "table": name.table}
            reject_file(con, run_id, result, path.name, "future_file_date", message, meta)
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
