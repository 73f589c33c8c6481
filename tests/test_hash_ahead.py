"""The night hashes its new uploads ahead of the ingest step: each is read once, a file changed after it was
hashed is hashed again, and a file the manifest already knows is not read at all."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pipelines.ingest.hashing as hashing
from data_contracts.gx_validation import ContractValidator
from pipelines.ingest.hashing import HashAhead
from pipelines.ingest.loader import ingest
from pipelines.ingest.reference import load_references
from pipelines.warehouse.session import connect_writer, write_session

REFUSED_BY_NAME = "H13030200002_2026-"  # the small inbox's upload with a malformed date in its name


def _counting(monkeypatch) -> list[str]:
    hashed: list[str] = []
    real = hashing.sha256_of
    monkeypatch.setattr(hashing, "sha256_of", lambda p: hashed.append(p.name) or real(p))
    return hashed


def _night(inbox: Path, db: Path, hashed: list[str], change: str | None = None) -> tuple[list[str], dict[str, str]]:
    """Hash ahead and let it finish, change the upload `change` (CRLF line ends), then load. Returns the files
    hashed ahead (those hashed while loading stay in `hashed`) and the manifest's sha256 per loaded file."""
    with write_session(db) as stage:
        con = connect_writer(stage)
        ahead = HashAhead.start(con, inbox / "uploads")
        for pending in list(ahead._ahead.values()):
            pending.result()
        before = hashed[:]
        hashed.clear()
        if change:
            target = inbox / "uploads" / change
            target.write_bytes(target.read_bytes().replace(b"\n", b"\r\n"))
        validator = ContractValidator()
        load_references(con, inbox / "reference", "run", validator)
        ingest(con, inbox, "run", validator=validator, hashes=ahead)
        ahead.close()
        shas = dict(con.execute("SELECT file_name, sha256 FROM manifest WHERE status = 'loaded'").fetchall())
        con.close()
    return before, shas


def test_uploads_hashed_ahead_are_read_once_and_a_file_changed_since_is_hashed_again(inbox_copy, tmp_path, monkeypatch):
    hashed = _counting(monkeypatch)
    uploads = sorted(p.name for p in (inbox_copy / "uploads").iterdir() if p.is_file())
    named = [n for n in uploads if not n.startswith(REFUSED_BY_NAME)]  # refused by its name, never read
    assert len(named) == len(uploads) - 1
    changed = next(n for n in uploads if n.endswith("_fee.csv"))

    before, shas = _night(inbox_copy, tmp_path / "w.duckdb", hashed, change=changed)
    assert sorted(before) == named  # every upload, each once, ahead of the load
    assert hashed == [changed]  # only the file changed since it was hashed is read again
    assert changed in shas
    for name, sha in shas.items():
        assert sha == hashlib.sha256((inbox_copy / "uploads" / name).read_bytes()).hexdigest()

    hashed.clear()
    before, _ = _night(inbox_copy, tmp_path / "w.duckdb", hashed)
    assert before == [] and hashed == []  # known by name, size and time: nothing is read on the next night


def test_a_run_without_hashing_ahead_hashes_in_the_planner(inbox_copy, tmp_path, monkeypatch):
    hashed = _counting(monkeypatch)
    with write_session(tmp_path / "w.duckdb") as stage:
        con = connect_writer(stage)
        validator = ContractValidator()
        load_references(con, inbox_copy / "reference", "run", validator)
        result = ingest(con, inbox_copy, "run", validator=validator)
        con.close()
    uploads = [p.name for p in (inbox_copy / "uploads").iterdir() if p.is_file()]
    assert sorted(hashed) == sorted(n for n in uploads if not n.startswith(REFUSED_BY_NAME))
    assert result.loaded + len(result.rejected) == len(uploads)
