"""A new day on a warehouse that already holds the window: only the persons whose lines changed are rechecked
by the per-person rules, and the night finds exactly what a full detection of the same warehouse finds.

The window is cut to 20 days for these tests so that, as the night moves one day on, a day of visits also
leaves the window (the small inbox spans 30 days).
"""

from __future__ import annotations

import copy
import os
import shutil
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from detectors.config import load
from pipelines.detect import incremental
from pipelines.nightly import NightlyParams, run_nightly
from pipelines.synth.days import hold_back_last_day

FINDINGS = """SELECT source, setl_id, psn_no, round(score, 9) AS score, amount, reason, evidence FROM findings
              WHERE run_id = ? ORDER BY source, fixmedins_code, setl_id"""


def _short_window() -> dict:
    cfg = copy.deepcopy(load())
    cfg["window"]["days"] = 20
    return cfg


def _correct_a_flagged_visit(db, run_id: str, inbox) -> None:
    """Resend, corrected, a fee file loaded last night: without the lines of a visit a per-person rule flagged."""
    con = duckdb.connect(str(db), read_only=True)
    flagged = con.sql(
        """SELECT DISTINCT fe.source_file, fe.setl_id FROM findings f
           JOIN fee fe ON fe.fixmedins_code = f.fixmedins_code AND fe.setl_id = f.setl_id
           WHERE f.run_id = ? AND list_contains(?, f.source) AND fe.source_file LIKE '%.csv'
           ORDER BY ALL""",
        params=[run_id, incremental.per_person_sources()],
    ).fetchall()
    con.close()
    for name, setl_id in flagged:
        path = inbox / "uploads" / name
        try:
            lines = pl.read_csv(path, infer_schema=False)
        except pl.exceptions.ComputeError:  # the GB18030 upload
            continue
        kept = lines.filter(pl.col("setl_id") != setl_id)
        if kept.height and kept.height < lines.height:
            kept.write_csv(path)
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            return
    raise AssertionError("no flagged visit found to correct")


def _share_setl_ids(inbox, day: str) -> None:
    """Give the visits of one institution's day the setl_ids of another's: SPEC makes them unique per
    institution only, and the detectors must keep the two institutions' visits apart on both nights."""
    up = inbox / "uploads"
    ids_a = pl.read_csv(up / f"H13030200001_{day}_setl.csv", infer_schema=False)["setl_id"]
    b = {t: pl.read_csv(up / f"H13030200002_{day}_{t}.csv", infer_schema=False) for t in ("setl", "fee")}
    n = min(len(ids_a), b["setl"].height)
    shared = dict(zip(b["setl"]["setl_id"][:n], ids_a[:n], strict=True))
    # and one of them charges a line twice, so that a per-person rule flags a shared id (carried the next night)
    fee = b["fee"].filter(pl.col("setl_id").is_in(list(shared)) & (pl.col("cnt").cast(pl.Float64) > 0))
    b["fee"] = pl.concat([b["fee"], fee.head(1).with_columns(feedetl_sn=pl.col("feedetl_sn") + "X")])
    for t, frame in b.items():
        frame.with_columns(pl.col("setl_id").replace(shared)).write_csv(up / f"H13030200002_{day}_{t}.csv")


@pytest.fixture(scope="module")
def nights(small_inbox, tmp_path_factory):
    """(incremental night's summary and warehouse, full night's summary and warehouse, outputs of both)."""
    root = tmp_path_factory.mktemp("incremental")
    mp = pytest.MonkeyPatch()
    mp.setattr("pipelines.detect.step.load_config", _short_window)
    try:
        inbox = root / "inbox"
        shutil.copytree(small_inbox, inbox)
        _share_setl_ids(inbox, "20261025")
        last = hold_back_last_day(inbox, root / "held")
        first = run_nightly(NightlyParams(inbox, root / "w.duckdb", root / "o1", as_of=last - timedelta(days=1)))
        for f in (root / "held").iterdir():
            shutil.move(f, inbox / "uploads" / f.name)
        _correct_a_flagged_visit(root / "w.duckdb", first["run_id"], inbox)
        inc = run_nightly(NightlyParams(inbox, root / "w.duckdb", root / "o2", as_of=last))
        full = run_nightly(NightlyParams(inbox, root / "full.duckdb", root / "o3", as_of=last))
    finally:
        mp.undo()
    return first, (inc, root / "w.duckdb", root / "o2"), (full, root / "full.duckdb", root / "o3")


def test_a_new_day_rechecks_only_the_persons_whose_lines_changed(nights):
    first, (inc, db, _), (full, _, _) = nights
    assert first["detection"]["mode"] == "full"
    assert full["detection"]["mode"] == "full"
    d = inc["detection"]
    assert d["mode"] == "incremental", d["mode_reason"]
    assert inc["files"]["corrected"] == 1  # the resend withdrew last night's lines of a flagged visit
    con = duckdb.connect(str(db), read_only=True)
    persons = con.execute("SELECT count(DISTINCT psn_no) FROM setl").fetchall()[0][0]
    con.close()
    assert 0 < d["persons_rechecked"] < persons / 2
    assert 0 < d["lines_rechecked"] < d["fee_lines"] / 2


def test_the_incremental_night_finds_what_a_full_detection_finds(nights):
    _, (inc, db_inc, out_inc), (full, db_full, out_full) = nights
    found = []
    for summary, db in ((inc, db_inc), (full, db_full)):
        con = duckdb.connect(str(db), read_only=True)
        found.append(con.sql(FINDINGS, params=[summary["run_id"]]).pl())
        con.close()
    assert found[0].filter(pl.col("source").is_in(incremental.per_person_sources())).height > 50
    con = duckdb.connect(str(db_inc), read_only=True)
    shared = con.sql("SELECT setl_id FROM setl GROUP BY ALL HAVING count(DISTINCT fixmedins_code) > 1").pl()
    con.close()
    on_shared = found[0].filter(pl.col("setl_id").is_in(shared["setl_id"].implode()))  # see _share_setl_ids
    assert on_shared.filter(pl.col("source") == "DUP_SAME_ITEM").height == 1
    assert found[0].equals(found[1])
    for name in ("anomalies.csv", "institution_scores.csv"):
        a, b = (pl.read_csv(o / name, infer_schema=False) for o in (out_inc, out_full))
        assert a.equals(b), name


def test_a_changed_rule_set_or_catalogue_means_a_full_detection(nights, tmp_path):
    _, (inc, db, _), _ = nights
    copy_db = tmp_path / "w.duckdb"
    shutil.copy(db, copy_db)
    con = duckdb.connect(str(copy_db))
    cfg = _short_window()
    as_of = date.fromisoformat(inc["as_of"])
    start = as_of - timedelta(days=19)
    current = incremental.fingerprint(con, cfg)
    assert incremental.plan(con, start, as_of, current).mode == "incremental"
    # nothing loaded since and the same window: nobody to recheck
    assert incremental.plan(con, start, as_of, current).persons == 0
    stricter = copy.deepcopy(cfg)
    stricter["high_cost"]["min_z"] += 1
    assert incremental.plan(con, start, as_of, incremental.fingerprint(con, stricter)).mode == "full"
    con.execute("UPDATE ref_catalog SET pric_uplmt_amt = pric_uplmt_amt + 1 WHERE rowid = 0")
    assert incremental.fingerprint(con, cfg) != current
    con.close()
