"""Resends are harmless, corrections replace, a killed run leaves the warehouse as it was."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import duckdb
import polars as pl

from tests.conftest import table_digest
from tests.helpers import run


def test_loading_the_same_inbox_twice_changes_nothing(inbox_copy, tmp_path):
    db = tmp_path / "w.duckdb"
    first = run(inbox_copy, db)
    before = table_digest(db)
    second = run(inbox_copy, db)
    assert table_digest(db) == before
    # the unreadable and the column-less file are known by their hash too; only the misnamed file
    # (which has no identity) is reported again, every night until the institution fixes it
    assert second["files"]["unchanged"] == first["files"]["loaded"] + 2
    assert second["files"]["loaded"] == 0
    truth = pl.read_csv(inbox_copy.parent / "inbox.truth" / "files.csv")
    misnamed = truth.filter(pl.col("rule") == "bad_file_name")["file"].to_list()
    assert [r["file"] for r in second["files"]["rejected"]] == misnamed
    assert all(c["received"] == 0 for c in second["rows"].values())


def test_on_a_night_with_nothing_to_validate_gx_is_imported_before_detection_imports_its_libraries(
    small_night, small_inbox, tmp_path, monkeypatch
):
    """GX is imported on a background thread while the run reads its files. When nothing is new, no check waits
    for that import, and detection's own imports (scikit-learn) ran beside it: both import narwhals.stable, from
    either end, and Python's module locks deadlocked (_DeadlockError, a failed night). The import ends first."""
    import data_contracts.gx_validation as gx_validation
    import pipelines.nightly as nightly

    shutil.copy(small_night[0], tmp_path / "w.duckdb")
    imported = threading.Event()

    def slow_import() -> None:  # an import slower than a night with nothing to load
        time.sleep(3)
        imported.set()

    before_detection: list[bool] = []

    def step_detect(ctx) -> None:
        before_detection.append(imported.is_set())
        detect(ctx)

    detect = nightly.step_detect
    monkeypatch.setattr(gx_validation, "_import_gx", slow_import)
    monkeypatch.setattr(nightly, "STEPS", [(n, step_detect if n == "detect" else f) for n, f in nightly.STEPS])
    s = nightly.run_nightly(nightly.NightlyParams(small_inbox, tmp_path / "w.duckdb", tmp_path / "out"))
    assert s["files"]["loaded"] == 0 and s["reference"]["loaded"] == []
    assert before_detection == [True]


def test_identical_resend_is_unchanged_and_corrected_resend_replaces_rows(inbox_copy, tmp_path):
    db = tmp_path / "w.duckdb"
    run(inbox_copy, db)
    truth = inbox_copy.parent / "inbox.truth"
    later = sorted((truth / "next_delivery" / "uploads").iterdir())
    corrected = next(p for p in later if p.name.endswith("_fee.csv"))
    # the settlement file sent again put right (the other is byte for byte what was sent before)
    sent = inbox_copy / "uploads"
    changed = [p for p in later if p.read_bytes() != (sent / p.name).read_bytes()]
    setl_fixed = next(p for p in changed if p.name.endswith("_setl.csv"))
    rows = pl.read_csv(truth / "rows.csv", infer_schema=False)
    its_fee = setl_fixed.name.replace("_setl", "_fee")
    waiting = rows.filter((pl.col("file") == its_fee) & (pl.col("rule") == "setl_missing"))
    con = duckdb.connect(str(db), read_only=True)
    before = con.execute("SELECT count(*) FROM fee WHERE source_file = ?", [corrected.name]).fetchall()[0][0]
    con.close()
    for p in later:
        shutil.copy(p, inbox_copy / "uploads" / p.name)
    s = run(inbox_copy, db, tmp_path / "out2")
    # two corrections, and the fee file of the corrected settlements read again for its waiting lines
    assert s["files"]["loaded"] == 3 and s["files"]["corrected"] == 2
    assert s["files"]["waiting_lines_loaded"] == waiting.height > 0
    con = duckdb.connect(str(db), read_only=True)
    after = con.execute("SELECT count(*) FROM fee WHERE source_file = ?", [corrected.name]).fetchall()[0][0]
    rows_in_file = pl.read_csv(corrected, infer_schema=False).height
    # the defective version loaded all but 8 refused lines (+1 duplicate); the correction loads every line
    assert before == rows_in_file - 7
    assert after == rows_in_file
    n = rows_in_file + waiting.height
    assert s["rows"]["fee"] == {"received": n, "loaded": n, "quarantined": 0, "duplicate": 0}
    statuses = con.execute(
        "SELECT status FROM manifest WHERE file_name = ? ORDER BY seen_at", [corrected.name]
    ).fetchall()
    assert [x[0] for x in statuses] == ["superseded", "loaded"]
    con.close()


def _nightly_cmd(inbox, db, out):
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "nightly",
        "--inbox",
        str(inbox),
        "--db",
        str(db),
        "--out",
        str(out),
        "--orchestrator",
        "none",
    ]


def test_a_process_killed_mid_load_leaves_the_warehouse_untouched_and_a_rerun_equals_a_clean_run(inbox_copy, tmp_path):
    env = {**os.environ, "CI": "1"}
    clean_db = tmp_path / "clean.duckdb"
    t0 = time.perf_counter()
    subprocess.run(_nightly_cmd(inbox_copy, clean_db, tmp_path / "c"), env=env, check=True, capture_output=True)
    run_time = time.perf_counter() - t0
    clean = table_digest(clean_db)
    db = tmp_path / "w.duckdb"
    killed_mid_run = 0
    # ten kills at seeded random instants across the run
    for fraction in sorted(random.Random(2026).uniform(0.05, 0.95) for _ in range(10)):
        proc = subprocess.Popen(
            _nightly_cmd(inbox_copy, db, tmp_path / "o"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(run_time * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # whatever instant the kill hit, the warehouse is absent or a complete run, never half of one
        if db.exists():
            assert table_digest(db) == clean
        else:
            killed_mid_run += 1
    assert killed_mid_run >= 5, "the kills should land while the run is still working"
    assert subprocess.run(_nightly_cmd(inbox_copy, db, tmp_path / "o"), env=env, capture_output=True).returncode == 0
    assert table_digest(db) == clean
    # and the outputs of the run that finished are complete
    spec = [
        "sampling_list.xlsx",
        "sampling_list.csv",
        "institution_scores.csv",
        "anomalies.csv",
        "claim_samples.csv",
        "report.html",
        "quarantine.csv",
        "run_summary.json",
    ]
    assert all((tmp_path / "o" / f).is_file() for f in spec)
    assert any((tmp_path / "o" / "notices").glob("*.docx"))


def test_a_failing_step_leaves_the_warehouse_as_it_was(inbox_copy, tmp_path, monkeypatch):
    from pipelines import nightly

    db = tmp_path / "w.duckdb"
    run(inbox_copy, db)
    before = table_digest(db)
    shutil.copy(
        inbox_copy.parent
        / "inbox.truth"
        / "next_delivery"
        / "uploads"
        / sorted((inbox_copy.parent / "inbox.truth" / "next_delivery" / "uploads").iterdir())[0].name,
        inbox_copy / "uploads",
    )
    for p in (inbox_copy.parent / "inbox.truth" / "next_delivery" / "uploads").iterdir():
        shutil.copy(p, inbox_copy / "uploads" / p.name)

    def boom(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(nightly, "STEPS", [*nightly.STEPS[:2], ("outputs", boom)])
    out = tmp_path / "failed"
    try:
        run(inbox_copy, db, out)
        raise AssertionError("the run should have failed")
    except RuntimeError:
        pass
    assert table_digest(db) == before
    import json

    s = json.loads((out / "run_summary.json").read_text())
    assert s["status"] == "failed" and "disk on fire" in s["error"]


def test_a_file_seen_before_is_known_by_name_size_and_mtime_without_hashing_it_again(inbox_copy, tmp_path, monkeypatch):
    import pipelines.ingest.hashing as hashing
    from tests.helpers import load_uploads

    db = tmp_path / "w.duckdb"
    first = load_uploads(inbox_copy, db)
    hashed: list[str] = []
    real_sha = hashing.sha256_of
    monkeypatch.setattr(hashing, "sha256_of", lambda p: hashed.append(p.name) or real_sha(p))
    again = load_uploads(inbox_copy, db)
    assert again.unchanged == first.loaded + 2 and again.loaded == 0
    assert hashed == []  # untouched since the last night: recognised without reading a byte
    # the same content copied again (new mtime) is hashed once, found unchanged, and remembered
    touched = next(p for p in sorted((inbox_copy / "uploads").iterdir()) if p.name.endswith("_fee.csv"))
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = load_uploads(inbox_copy, db)
    assert hashed == [touched.name] and third.loaded == 0 and third.unchanged == again.unchanged
    hashed.clear()
    load_uploads(inbox_copy, db)
    assert hashed == []
    # new content under the same name is hashed and loaded as a correction
    touched.write_bytes(touched.read_bytes().replace(b"\n", b"\r\n"))
    fourth = load_uploads(inbox_copy, db)
    assert hashed == [touched.name] and fourth.loaded == 1 and fourth.corrected == 1


def test_a_folder_or_a_link_among_the_uploads_is_refused_and_the_files_beside_it_load(tmp_path):
    from tests.helpers import fee_row, load_uploads, make_inbox, setl_row

    setl, fee = "H13030200001_20261015_setl.csv", "H13030200001_20261015_fee.csv"
    inbox = make_inbox(tmp_path / "inbox", {setl: [setl_row()], fee: [fee_row()]})
    up = inbox / "uploads"
    (up / "H13030200001_20261016_setl.csv").mkdir()
    (up / "H13030200001_20261017_setl.csv").symlink_to(up / setl)  # would load the same rows twice if followed
    result = load_uploads(inbox, tmp_path / "w.duckdb")
    refused = {r["file"]: r["rule"] for r in result.rejected}
    assert refused == {"H13030200001_20261016_setl.csv": "not_a_file", "H13030200001_20261017_setl.csv": "not_a_file"}
    assert result.loaded == 2 and result.rows["setl"].loaded == 1 and result.rows["fee"].loaded == 1


def test_fee_lines_waiting_for_their_settlement_load_the_night_it_comes(tmp_path):
    """A fee file that came before its settlements: its lines are refused (setl_missing) and the institution is
    told to send the settlements. The fee file was right, so it is not sent again; its waiting lines load the
    night their settlement comes, once, and the others keep waiting."""
    from tests.helpers import fee_row, load_uploads, make_inbox, setl_totalling

    fee = [
        fee_row(),  # F1 of visit S1
        fee_row(feedetl_sn="F2"),
        fee_row(feedetl_sn="F4", init_feedetl_sn="F1", cnt="-1", det_item_fee_sumamt="-12.00"),  # refund of F1
        fee_row(feedetl_sn="F3", setl_id="S2", mdtrt_id="M2"),  # visit S2, whose settlement comes last
        # a refund of S1 naming a line of S2: refused once its settlement is there, and not read again after
        fee_row(feedetl_sn="F5", init_feedetl_sn="F3", cnt="-1", det_item_fee_sumamt="-12.00"),
    ]
    inbox = make_inbox(tmp_path / "inbox", {"H13030200001_20261015_fee.csv": fee})
    db = tmp_path / "w.duckdb"
    first = load_uploads(inbox, db, "night-1")
    assert first.rows["fee"].quarantined == 5 and first.waiting_loaded == 0
    assert (first.waiting_still, first.waiting_institutions, first.waiting_file_gone) == (5, 1, 0)

    make_inbox(inbox, {"H13030200001_20261015_setl.csv": [setl_totalling(36.0)]})
    second = load_uploads(inbox, db, "night-2")
    assert second.waiting_loaded == 3 and second.waiting_still == 2  # F3, and F5 refused again
    assert second.seen == second.loaded + second.unchanged + len(second.rejected) == 2
    fee_counts = second.rows["fee"]
    assert (fee_counts.received, fee_counts.loaded, fee_counts.quarantined) == (4, 3, 1)
    con = duckdb.connect(str(db), read_only=True)
    loaded = con.execute("SELECT feedetl_sn, source_file, source_row, run_id FROM fee ORDER BY 1").fetchall()
    refused = con.execute("SELECT record_id, rule FROM quarantine WHERE run_id = 'night-2'").fetchall()
    con.close()
    assert refused == [("F5", "refund_unmatched")]
    assert loaded == [
        ("F1", "H13030200001_20261015_fee.csv", 2, "night-2"),
        ("F2", "H13030200001_20261015_fee.csv", 3, "night-2"),
        ("F4", "H13030200001_20261015_fee.csv", 4, "night-2"),
    ]

    # an identical resend of the fee file and a new file of another day: nothing loads twice, F3 still waits
    (inbox / "uploads" / "H13030200001_20261015_fee.csv").touch()
    make_inbox(inbox, {"H13030200001_20261016_setl.csv": [setl_totalling(34.0, setl_id="S9", mdtrt_id="M9")]})
    third = load_uploads(inbox, db, "night-3")
    assert third.waiting_loaded == 0 and third.rows["fee"].received == 0 and third.unchanged == 2

    make_inbox(inbox, {"H13030200001_20261017_setl.csv": [setl_totalling(24.0, setl_id="S2", mdtrt_id="M2")]})
    fourth = load_uploads(inbox, db, "night-4")
    assert fourth.waiting_loaded == 1 and fourth.rows["fee"].received == 1  # F3; F5's original is of another visit
    assert fourth.waiting_still == 1 and fourth.waiting_file_gone == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT feedetl_sn) FROM fee").fetchall() == [(4, 4)]
    con.close()

    # the fee file leaves the uploads: F5 can now only come in a new upload, and the count says so
    (inbox / "uploads" / "H13030200001_20261015_fee.csv").unlink()
    fifth = load_uploads(inbox, db, "night-5")
    assert (fifth.waiting_still, fifth.waiting_institutions, fifth.waiting_file_gone) == (1, 1, 1)


def test_a_settlement_corrected_the_same_night_lets_its_waiting_lines_load_that_night(tmp_path):
    """The settlement file and its correction come the same night (the correction loads in a later round than the
    fee file); the fee lines that waited for it load that night, and each file is counted once."""
    from tests.helpers import fee_row, load_uploads, make_inbox, setl_totalling

    inbox = make_inbox(
        tmp_path / "inbox",
        {
            "H13030200001_20261015_fee.csv": [fee_row(), fee_row(feedetl_sn="F2")],
            "H13030200001_20261015_setl.csv": [setl_totalling(48.0, age="150")],  # refused: out of range
        },
    )
    fixed = inbox / "uploads" / "H13030200001_20261015_setl.parquet"
    pl.DataFrame([setl_totalling(48.0)]).write_parquet(fixed)
    later = time.time_ns() + 10**9
    os.utime(fixed, ns=(later, later))
    result = load_uploads(inbox, tmp_path / "w.duckdb", "night-1")
    assert result.waiting_loaded == 2 and result.corrected == 1
    assert result.seen == 3 and (result.loaded, result.unchanged, len(result.rejected)) == (3, 0, 0)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM fee").fetchall() == [(2,)]
    con.close()


def test_fee_lines_whose_settlement_a_correction_leaves_out_are_named_not_left_in_silence(tmp_path):
    """A corrected settlement file without S2 withdraws S2, whose two fee lines stay loaded: the night names them
    (a setl_withdrawn warning per line, per file in the result). When the fee file is corrected the same night
    without them, or S2 comes back, nothing is left to name."""
    from tests.helpers import fee_row, load_uploads, make_inbox, setl_totalling

    fee = "H13030200001_20261015_fee.csv"
    setl = "H13030200001_20261015_setl.csv"
    lines = [
        fee_row(),
        fee_row(feedetl_sn="F2", setl_id="S2", mdtrt_id="M2"),
        fee_row(feedetl_sn="F3", setl_id="S2", mdtrt_id="M2"),
    ]
    both = [setl_totalling(24.0), setl_totalling(48.0, setl_id="S2", mdtrt_id="M2")]
    inbox = make_inbox(tmp_path / "inbox", {fee: lines, setl: both})
    db = tmp_path / "w.duckdb"
    assert load_uploads(inbox, db, "night-1").settlement_withdrawn == []

    def night(run_id: str, files: dict) -> tuple[list[dict], list[tuple]]:
        for name, rows in files.items():
            pl.DataFrame(rows).write_csv(inbox / "uploads" / name)
            later = time.time_ns() + 10**9
            os.utime(inbox / "uploads" / name, ns=(later, later))
        result = load_uploads(inbox, db, run_id)
        con = duckdb.connect(str(db), read_only=True)
        warned = con.execute(
            "SELECT file, record_id, value FROM contract_warnings WHERE run_id = ? AND rule = 'setl_withdrawn' "
            "ORDER BY record_id",
            [run_id],
        ).fetchall()
        con.close()
        return result.settlement_withdrawn, warned

    withdrawn, warned = night("night-2", {setl: both[:1]})
    assert withdrawn == [{"fixmedins_code": "H13030200001", "file": fee, "lines": 2}]
    assert warned == [(fee, "F2", "setl_id=S2"), (fee, "F3", "setl_id=S2")]
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM fee").fetchall() == [(3,)]  # kept, for S2 may come again
    con.close()
    assert night("night-3", {setl: both}) == ([], [])  # S2 back: its lines have their visit again
    assert night("night-4", {setl: both[:1], fee: lines[:1]}) == ([], [])  # both put right together
