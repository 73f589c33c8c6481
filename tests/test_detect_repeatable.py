"""The same night, detected twice, gives the same findings (seeded models see the same rows in the same order)."""

from __future__ import annotations

import math

import duckdb
import polars as pl

from tests.helpers import run


def test_detection_is_repeatable(small_inbox, tmp_path):
    outs = []
    for k in (1, 2):
        run(small_inbox, tmp_path / f"w{k}.duckdb", tmp_path / f"o{k}")
        con = duckdb.connect(str(tmp_path / f"w{k}.duckdb"), read_only=True)
        outs.append(
            con.sql(
                "SELECT source, setl_id, round(score, 9) AS score, reason FROM findings ORDER BY source, setl_id"
            ).pl()
        )
        con.close()
    assert outs[0].height > 100
    assert outs[0].equals(outs[1])
    a1, a2 = (pl.read_csv(tmp_path / f"o{k}" / "anomalies.csv", infer_schema=False) for k in (1, 2))
    assert a1.equals(a2)


def test_rules_over_person_slices_find_what_the_whole_window_finds(small_night, monkeypatch, tmp_path):
    """The big-window path (lines read in slices of whole persons) gives the same findings as one slice."""
    import shutil
    from datetime import date

    from detectors.config import load
    from pipelines.detect import window
    from pipelines.detect.run import detect

    db, summary, _ = small_night
    db = shutil.copy(db, tmp_path / "w.duckdb")  # the window keeps its per-visit amounts in the warehouse
    cfg = load()
    as_of = date.fromisoformat(summary["as_of"])
    found = []
    for per_part in (10**9, 2_000):
        monkeypatch.setattr(window, "LINES_PER_PART", per_part)
        con = duckdb.connect(str(db))
        w = window.load_window(con, as_of, cfg["window"]["days"])
        counts = "SELECT (SELECT count(*) FROM fee), (SELECT count(*) FROM setl)"
        fee_rows, setl_rows = con.execute(counts).fetchall()[0]
        # as many slices as the window's visits need at the warehouse's lines per visit
        assert w.parts == max(1, math.ceil(w.visits.height * (fee_rows / setl_rows) / per_part))
        assert (w.parts == 1 if per_part > 10**6 else w.parts >= 3) and w.n_lines > 10_000
        assert sum(w.person_part(i).height for i in range(w.parts)) == w.n_lines
        found.append(
            detect(w, cfg)
            .findings.filter(pl.col("kind") == "规则")
            .sort("source", "setl_id")
            .select("source", "setl_id", "amount", "reason")
        )
        w.close()
        con.close()
    assert found[0].height > 100 and found[0].equals(found[1])
