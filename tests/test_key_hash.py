"""Uploads are matched against the warehouse by a stored hash of their key; a warehouse whose hashes are
missing or stale (made before the column, or under a DuckDB whose `hash()` differs) gets them refilled."""

from __future__ import annotations

import duckdb
import pytest

from tests.helpers import fee_row, load_uploads, make_inbox, setl_totalling

DAY1 = {
    "H13030200001_20261015_setl.csv": [setl_totalling(24)],
    "H13030200001_20261015_fee.csv": [fee_row()],
}
# the next day's file: F1 again (an exact duplicate), F1's refund, a new line, and a line reusing F1's id
DAY2 = {
    "H13030200001_20261016_fee.csv": [
        fee_row(),
        fee_row(feedetl_sn="F2", init_feedetl_sn="F1", cnt="-1", det_item_fee_sumamt="-12.00"),
        fee_row(feedetl_sn="F3", cnt="1", det_item_fee_sumamt="12.00"),
        fee_row(feedetl_sn="F1", cnt="1", det_item_fee_sumamt="12.00"),
    ],
}


def _quarantine(db) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT record_id, rule FROM quarantine ORDER BY ALL").fetchall()


@pytest.mark.parametrize("damage", ["none", "column_dropped", "probe_stale"])
def test_a_second_day_is_judged_against_the_first_whatever_the_state_of_the_key_hashes(tmp_path, damage):
    inbox = make_inbox(tmp_path / "inbox", DAY1)
    db = tmp_path / "w.duckdb"
    assert load_uploads(inbox, db).rows["fee"].loaded == 1
    with duckdb.connect(str(db)) as con:
        if damage == "column_dropped":  # a warehouse from before the column
            con.execute("ALTER TABLE fee DROP COLUMN key_hash")
            con.execute("ALTER TABLE setl DROP COLUMN key_hash")
            con.execute("DROP TABLE warehouse_meta")
        elif damage == "probe_stale":  # as if an upgraded DuckDB hashed differently
            con.execute("UPDATE fee SET key_hash = key_hash + 1")
            con.execute("UPDATE setl SET key_hash = key_hash + 1")
            con.execute("UPDATE warehouse_meta SET value = 'another hash()'")
    make_inbox(tmp_path / "inbox", DAY2)
    second = load_uploads(inbox, db, run_id="run2").rows["fee"]
    assert (second.received, second.loaded, second.duplicate, second.quarantined) == (4, 2, 1, 1)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT feedetl_sn, cnt FROM fee ORDER BY ALL").fetchall()
        assert rows == [("F1", 2), ("F2", -1), ("F3", 1)]
        assert con.execute(
            "SELECT count(*) FROM fee WHERE key_hash IS DISTINCT FROM hash(fixmedins_code, feedetl_sn)"
        ).fetchall() == [(0,)]
    q = _quarantine(db)
    assert q == [("F1", "key_conflict")]
