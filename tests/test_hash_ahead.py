"""The night hashes its new uploads ahead of the ingest step: each is read once, a file changed after it was
hashed is hashed again, and a file the manifest already knows is not read at all."""

from __future__ import annotations

import hashlib

import pipelines.ingest.hashing as hashing
from data_contracts.gx_validation import ContractValidator
from pipelines.ingest.hashing import HashAhead
from pipelines.ingest.loader import ingest
from pipelines.ingest.reference import load_references
from pipelines.warehouse.session import connect_writer, write_session


def _night(inbox, db, hashed: list[str]) -> dict[str, str]:
    """Start hashing, let it finish, then load; the manifest's sha256 per loaded file."""
    with write_session(db) as stage:
        con = connect_writer(stage)
        ahead = HashAhead.start(con, inbox / "uploads")
        for pending in list(ahead._ahead.values()):
            pending.result()
        ahead_hashed = list(hashed)
        touched = inbox / "uploads" / "changed.marker"
        if touched.exists():  # the test's cue to change a file after it was hashed ahead
            target = inbox / "uploads" / touched.read_text()
            target.write_bytes(target.read_bytes().replace(b"\n", b"\r\n"))
            touched.unlink()
        validator = ContractValidator()
        load_references(con, inbox / "reference", "run", validator)
        ingest(con, inbox, "run", validator=validator, hashes=ahead)
        ahead.close()
        shas = dict(con.execute("SELECT file_name, sha256 FROM manifest WHERE status = 'loaded'").fetchall())
        con.close()
    hashed[:] = [*ahead_hashed, "|", *hashed[len(ahead_hashed) :]]
    return shas


def test_uploads_hashed_ahead_are_read_once_and_a_file_changed_since_is_hashed_again(inbox_copy, tmp_path, monkeypatch):
    hashed: list[str] = []
    real = hashing.sha256_of
    monkeypatch.setattr(hashing, "sha256_of", lambda p: hashed.append(p.name) or real(p))
    uploads = sorted(p.name for p in (inbox_copy / "uploads").iterdir() if p.is_file())
    changed = next(n for n in uploads if n.endswith("_fee.csv"))
    (inbox_copy / "uploads" / "changed.marker").write_text(changed)  # not an upload's name: refused, never read

    shas = _night(inbox_copy, tmp_path / "w.duckdb", hashed)
    before, after = hashed[: hashed.index("|")], hashed[hashed.index("|") + 1 :]
    named = [n for n in uploads if not n.startswith("H13030200002_2026-")]  # one is refused by its name unread
    assert sorted(before) == sorted(named) and len(named) == len(uploads) - 1  # each once, ahead of the load
    assert after == [changed]  # only the file changed since it was hashed is read again
    for name, sha in shas.items():
        assert sha == hashlib.sha256((inbox_copy / "uploads" / name).read_bytes()).hexdigest()
    assert changed in shas

    hashed.clear()
    _night(inbox_copy, tmp_path / "w.duckdb", hashed)
    assert hashed == ["|"]  # known by name, size and time: nothing is read on the next night


def test_a_run_without_hashing_ahead_hashes_in_the_planner(inbox_copy, tmp_path, monkeypatch):
    hashed: list[str] = []
    real = hashing.sha256_of
    monkeypatch.setattr(hashing, "sha256_of", lambda p: hashed.append(p.name) or real(p))
    with write_session(tmp_path / "w.duckdb") as stage:
        con = connect_writer(stage)
        validator = ContractValidator()
        load_references(con, inbox_copy / "reference", "run", validator)
        result = ingest(con, inbox_copy, "run", validator=validator)
        con.close()
    uploads = [p for p in (inbox_copy / "uploads").iterdir() if p.is_file()]
    named = [p.name for p in uploads if not p.name.startswith("H13030200002_2026-")]  # refused by its name unread
    assert sorted(hashed) == sorted(named) and len(named) == len(uploads) - 1
    assert result.loaded + len(result.rejected) == len(uploads)
