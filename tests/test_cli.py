"""The command line as a user meets it: one clear line on errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys

from pipelines.warehouse.session import writer_lock


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_missing_inbox_is_one_line(tmp_path):
    r = cli("nightly", "--inbox", str(tmp_path / "nope"), "--db", str(tmp_path / "w.duckdb"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "inbox folder not found" in r.stderr
    assert "Traceback" not in r.stderr


def test_folder_that_is_not_an_inbox(tmp_path):
    (tmp_path / "x").mkdir()
    r = cli("nightly", "--inbox", str(tmp_path / "x"), "--db", str(tmp_path / "w.duckdb"))
    assert r.returncode == 2 and "is not an inbox" in r.stderr and "Traceback" not in r.stderr


def test_bad_date_option_is_one_line(tmp_path):
    r = cli("nightly", "--inbox", str(tmp_path), "--as-of", "2026-13-01")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "2026-13-01" in r.stderr


def test_second_writer_gets_a_clear_message(tmp_path):
    from tests.helpers import make_inbox

    inbox = make_inbox(tmp_path / "inbox", {})
    db = tmp_path / "w.duckdb"
    with writer_lock(db.resolve()):
        r = cli("nightly", "--inbox", str(inbox), "--db", str(db), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "being written by" in r.stderr and "Traceback" not in r.stderr
    assert not db.exists()


def test_generate_writes_truth_beside_the_inbox(tmp_path):
    r = cli("generate", "--out", str(tmp_path / "inbox"), "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "inbox" / "uploads").is_dir() and (tmp_path / "inbox" / "reference").is_dir()
    assert (tmp_path / "inbox.truth" / "labels.csv").is_file()
    assert not any("truth" in p.name or "label" in p.name for p in (tmp_path / "inbox").rglob("*"))
