"""The command line as a user meets it: one clear line on errors, never a traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

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


def test_a_folder_as_db_and_an_output_folder_that_cannot_be_made_are_one_line_not_an_internal_error(tmp_path):
    from tests.helpers import make_inbox

    inbox = make_inbox(tmp_path / "inbox", {})
    (tmp_path / "folder").mkdir()
    r = cli("nightly", "--inbox", str(inbox), "--db", str(tmp_path / "folder"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"claimwatch: error: --db {tmp_path / 'folder'} is a folder: give the warehouse file, e.g. "
        f"{tmp_path / 'folder' / 'claimwatch.duckdb'}"
    )
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "out"
    r = cli("nightly", "--inbox", str(inbox), "--db", str(tmp_path / "w.duckdb"), "--out", str(out))
    assert r.returncode == 1
    assert r.stderr.strip() == f"claimwatch: error: {out}: Not a directory; the warehouse is unchanged"
    assert not (tmp_path / "w.duckdb").exists()


def test_generate_writes_truth_beside_the_inbox(tmp_path):
    r = cli("generate", "--out", str(tmp_path / "inbox"), "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "inbox" / "uploads").is_dir() and (tmp_path / "inbox" / "reference").is_dir()
    assert (tmp_path / "inbox.truth" / "labels.csv").is_file()
    assert not any("truth" in p.name or "label" in p.name for p in (tmp_path / "inbox").rglob("*"))


CTRL_C_DURING_A_QUERY = """
import sys

from pipelines import cli, nightly


def endless(ctx):
    with ctx.connect() as con:
        con.execute("CREATE TEMP TABLE t AS SELECT range AS i FROM range(10000000)")
        print("querying", flush=True)
        # hours of work in many small tasks (DuckDB looks for Ctrl-C between tasks)
        con.execute("SELECT count(*) FROM t a JOIN t b ON a.i % 1000 = b.i % 1000").fetchall()


nightly.STEPS.insert(1, ("endless", endless))  # after the reference step, inside the run
inbox, db, out = sys.argv[1:4]
sys.exit(cli.main(["nightly", "--inbox", inbox, "--db", db, "--out", out, "--orchestrator", "none"]))
"""


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [
        (signal.SIGINT, 130, "claimwatch: interrupted; the warehouse is unchanged"),
        (signal.SIGTERM, 143, "claimwatch: stopped by SIGTERM; the warehouse is unchanged"),
    ],
)
def test_a_stop_signal_while_duckdb_works_stops_the_run_and_changes_nothing(tmp_path, stop, code, said):
    """DuckDB turns Ctrl-C inside a query into its own RuntimeError; the user must still read one line saying
    the run was interrupted (exit 130), and the warehouse must be as before (here: not created). SIGTERM
    (`timeout`, systemd) stops it the same way instead of killing it: no staging copy or work folder is left."""
    from tests.helpers import make_inbox

    inbox = make_inbox(tmp_path / "inbox", {})
    db, out = tmp_path / "w.duckdb", tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_DURING_A_QUERY, str(inbox), str(db), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job starts with Ctrl-C ignored, and a child inherits that: give it a terminal's
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout.readline().strip() == "querying"
        time.sleep(0.5)  # well inside the query
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err.strip() == said
    assert not db.exists() and not any(p.name.startswith(".w.duckdb.staging") for p in tmp_path.iterdir())
    assert [p.name for p in out.iterdir()] == ["run_summary.json"]  # the failed run's summary, no work folder
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    # the signal, not DuckDB's "RuntimeError: Query interrupted" or "InterruptException: … Interrupted!"
    assert (summary["status"], summary["error"]) == ("failed", f"KeyboardInterrupt: stopped by {stop.name}")


STOPPED_AFTER_PUBLISHING = """
import os, signal, sys, time

from pipelines import cli

nightly = cli.cmd_nightly


def then_stopped(args):  # as when Prefect's teardown, after the flow, is what the signal interrupts
    nightly(args)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)


cli.cmd_nightly = then_stopped
inbox, db, out = sys.argv[1:4]
sys.exit(cli.main(["nightly", "--inbox", inbox, "--db", db, "--out", out, "--orchestrator", "none"]))
"""


def test_a_stop_after_the_warehouse_was_published_does_not_say_it_is_unchanged(tmp_path):
    from tests.helpers import make_inbox

    inbox = make_inbox(tmp_path / "inbox", {})
    db, out = tmp_path / "w.duckdb", tmp_path / "o"
    r = subprocess.run(
        [sys.executable, "-c", STOPPED_AFTER_PUBLISHING, str(inbox), str(db), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 143, r.stderr
    updated = "was already updated by the work that completed before it"
    said = f"claimwatch: stopped by SIGTERM; the warehouse {db} {updated}"
    assert r.stderr.strip() == said
    assert db.exists()


def test_the_read_only_connection_of_a_command_can_be_interrupted_from_another_thread(tmp_path):
    """`cases` and `draws` read through `connect_readonly`; the Ctrl-C watcher must reach its query too."""
    import threading

    import duckdb

    from pipelines.warehouse.session import connect_readonly, interrupt_current

    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    con = connect_readonly(db)
    outcome: list[BaseException | None] = []

    def query() -> None:
        try:
            con.execute("SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3").fetchall()
            outcome.append(None)
        except BaseException as e:  # the interrupt, whatever DuckDB calls it
            outcome.append(e)

    worker = threading.Thread(target=query)
    worker.start()
    time.sleep(0.5)
    interrupt_current()
    worker.join(timeout=20)
    con.close()
    assert not worker.is_alive() and outcome and outcome[0] is not None
    assert "interrupt" in str(outcome[0]).lower()


def test_generate_and_demo_never_replace_a_folder_they_did_not_write(tmp_path):
    real = tmp_path / "bureau"
    (real / "inbox" / "uploads").mkdir(parents=True)
    upload = real / "inbox" / "uploads" / "H13030200001_20261001_setl.csv"
    upload.write_text("a real upload\n", encoding="utf-8")
    (real / "warehouse.duckdb").write_bytes(b"the real warehouse")
    for args in (("generate", "--out", str(real / "inbox")), ("demo", "--out", str(real))):
        r = cli(*args)
        assert r.returncode == 2 and "not replaced" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert upload.read_text(encoding="utf-8") == "a real upload\n"
    assert (real / "warehouse.duckdb").read_bytes() == b"the real warehouse"
    # its own earlier output is replaced
    ours = tmp_path / "synthetic"
    assert cli("generate", "--out", str(ours), "--seed", "3").returncode == 0
    (ours / "uploads" / "extra.csv").write_text("x", encoding="utf-8")
    assert cli("generate", "--out", str(ours), "--seed", "3").returncode == 0
    assert not (ours / "uploads" / "extra.csv").exists()


def test_case_commands_take_the_warehouse_before_or_after_the_action(tmp_path):
    missing = str(tmp_path / "none.duckdb")
    for args in (("cases", "--db", missing, "list"), ("cases", "list", "--db", missing)):
        r = cli(*args)
        assert r.returncode == 2 and f"no warehouse at {missing}" in r.stderr, r.stderr
    r = cli("cases", "show")
    assert r.returncode == 2 and "see `claimwatch cases show --help`" in r.stderr
    r = cli("cases", "list", "--as-of", "2026-13-01", "--db", missing)
    assert r.returncode == 2 and "not a date in YYYY-MM-DD form: '2026-13-01'" in r.stderr, r.stderr


def test_a_database_claimwatch_did_not_create_is_never_written(tmp_path):
    import duckdb

    from tests.helpers import make_inbox

    inbox = make_inbox(tmp_path / "inbox", {})
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database", encoding="utf-8")
    other = tmp_path / "hr.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE staff (name VARCHAR)")
    con.close()
    before = other.read_bytes()
    for db, says in ((text, "is not a DuckDB database"), (other, "claimwatch did not create (tables staff)")):
        for args in (("nightly", "--inbox", str(inbox), "--out", str(tmp_path / "o")), ("cases", "list")):
            r = cli(*args, "--db", str(db))
            assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
    assert text.read_text(encoding="utf-8") == "not a database" and other.read_bytes() == before
    assert not list(tmp_path.glob(".*.staging*"))


def test_an_as_of_whose_window_holds_no_visit_is_refused(small_night, small_inbox, tmp_path):
    import shutil

    db = tmp_path / "w.duckdb"
    shutil.copy(small_night[0], db)
    before = db.read_bytes()
    out = str(tmp_path / "o")
    r = cli("nightly", "--inbox", str(small_inbox), "--db", str(db), "--out", out, "--as-of", "2020-01-01")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "--as-of 2020-01-01: no visit was settled in its window 2019-10-04..2020-01-01" in r.stderr
    assert "the warehouse holds visits settled 2026-" in r.stderr
    assert db.read_bytes() == before


def test_outputs_inside_the_inbox_are_refused(tmp_path):
    from tests.helpers import make_inbox

    inbox = make_inbox(tmp_path / "inbox", {})
    out = inbox / "uploads" / "out"
    r = cli("nightly", "--inbox", str(inbox), "--db", str(tmp_path / "w.duckdb"), "--out", str(out))
    assert r.returncode == 2 and "is inside the inbox's uploads/ folder" in r.stderr, r.stderr
    assert not out.exists() and not (tmp_path / "w.duckdb").exists()


def test_inspection_quotas_are_checked_as_options(tmp_path):
    for args, says in (
        (("--random-share", "2"), "argument --random-share: must lie in 0..1"),
        (("--hospitals", "-3"), "argument --hospitals: cannot be negative: -3"),
        (("--pharmacies", "x"), "argument --pharmacies: not a whole number: 'x'"),
    ):
        r = cli("nightly", "--inbox", str(tmp_path), "--db", str(tmp_path / "w.duckdb"), *args)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_a_seed_the_draw_cannot_take_is_refused_as_an_option(tmp_path):
    """A draw's seed is recorded as a BIGINT and given to numpy, which takes no negative seed: both were internal
    errors after the run had started."""
    for command in ("nightly", "generate", "demo"):
        for seed, says in (("-3", "cannot be negative: -3"), (str(2**64), "must be a whole number from 0 to ")):
            where = ("--inbox", str(tmp_path)) if command == "nightly" else ()
            r = cli(command, *where, "--out", str(tmp_path / "o"), "--seed", seed)
            assert r.returncode == 2 and f"argument --seed: {says}" in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


INTERNAL_ERROR = """
import sys

from pipelines import cli, nightly


def failing(ctx):
    with ctx.connect() as con:
        con.execute("SELECT CAST(99999999999999999999 AS BIGINT)")  # a message of several lines, with a caret


nightly.STEPS.insert(1, ("failing", failing))
inbox, db, out = sys.argv[1:4]
sys.exit(cli.main(["nightly", "--inbox", inbox, "--db", db, "--out", out, "--orchestrator", "none"]))
"""


def test_an_internal_error_is_one_line_whatever_the_message_and_the_log_has_it_all(tmp_path):
    from tests.helpers import make_inbox, setl_row

    inbox = make_inbox(tmp_path / "inbox", {"H13030200001_20261015_setl.csv": [setl_row()]})
    out = tmp_path / "out"
    args = [str(inbox), str(tmp_path / "w.duckdb"), str(out)]
    r = subprocess.run([sys.executable, "-c", INTERNAL_ERROR, *args], capture_output=True, text=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("claimwatch: internal error: ConversionException: Conversion Error: ")
    assert r.stderr.strip().endswith(f"(details in {out / 'claimwatch-error.log'}); the warehouse is unchanged")
    assert "LINE 1: SELECT CAST(99999999999999999999" in (out / "claimwatch-error.log").read_text(encoding="utf-8")
