"""The same night, detected twice, gives the same findings (seeded models see the same rows in the same order)."""

from __future__ import annotations

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
