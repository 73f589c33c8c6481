"""The detection window nets refunds against the lines they refund before any detector sees the lines."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl
import pytest

from pipelines.detect import window
from pipelines.detect.window import load_window
from tests.helpers import fee_row, load_uploads, make_inbox, setl_totalling


def test_refunds_are_netted_against_their_lines_and_a_fully_refunded_line_disappears(tmp_path):
    exam = {"med_list_codg": "XE01", "med_chrgitm_type": "03", "pric": "5.00", "prd_days": ""}
    lines = [
        fee_row(feedetl_sn="F1", pric="12.00", cnt="3", det_item_fee_sumamt="36.00", prd_days="9"),
        fee_row(feedetl_sn="F2", init_feedetl_sn="F1", pric="12.00", cnt="-1", det_item_fee_sumamt="-12.00"),
        fee_row(feedetl_sn="F3", cnt="1", det_item_fee_sumamt="5.00", **exam),
        fee_row(feedetl_sn="F4", init_feedetl_sn="F3", cnt="-1", det_item_fee_sumamt="-5.00", **exam),
        # another visit's line, refunded by nothing: kept whole
        fee_row(feedetl_sn="F5", setl_id="S2", mdtrt_id="M2", pric="12.00", cnt="1", det_item_fee_sumamt="12.00"),
    ]
    visits = [setl_totalling(24), setl_totalling(12, setl_id="S2", mdtrt_id="M2")]
    inbox = make_inbox(
        tmp_path / "inbox",
        {"H13030200001_20261015_setl.csv": visits, "H13030200001_20261015_fee.csv": lines},
    )
    db = tmp_path / "w.duckdb"
    result = load_uploads(inbox, db)
    assert result.rows["fee"].loaded == 5
    con = duckdb.connect(str(db))
    w = load_window(con, date(2026, 10, 31), 90)
    got = w.person_part(0).sort("feedetl_sn").select("feedetl_sn", "setl_id", "cnt", "amt", "prd_days").rows()
    assert got == [("F1", "S1", 2.0, 24.0, 6), ("F5", "S2", 1.0, 12.0, 6)]
    amounts = w.visits.sort("setl_id").select("setl_id", "n_lines", "drug_amt", "exam_amt").rows()
    assert amounts == [("S1", 1, 24.0, 0.0), ("S2", 1, 12.0, 0.0)]
    w.close()
    con.close()


def test_trace_lines_are_those_of_codes_settled_more_than_once_and_find_what_all_trace_lines_find(tmp_path):
    from detectors.rules.checks import RuleInputs
    from detectors.rules.engine import run_rules

    def drug(sn, setl, code, minute):
        return fee_row(
            feedetl_sn=sn,
            setl_id=setl,
            mdtrt_id=f"M{setl}",
            drug_trac_codg=code,
            fee_ocur_time=f"2026-10-15 09:{minute}:00",
        )

    lines = [
        drug("F1", "S1", "1" * 20, 10),  # one code twice, in one settlement: no reuse
        drug("F2", "S1", "1" * 20, 11),
        drug("F3", "S1", "2" * 20, 12),  # one code in two settlements: reused
        drug("F4", "S2", "2" * 20, 13),
        drug("F5", "S3", "3" * 20, 14),  # one code once
        drug("F6", "S2", "", 15),  # no code
    ]
    visits = [setl_totalling(24 * n, setl_id=s, mdtrt_id=f"M{s}") for s, n in (("S1", 3), ("S2", 2), ("S3", 1))]
    inbox = make_inbox(
        tmp_path / "inbox", {"H13030200001_20261015_setl.csv": visits, "H13030200001_20261015_fee.csv": lines}
    )
    db = tmp_path / "w.duckdb"
    assert load_uploads(inbox, db).rows["fee"].loaded == 6
    con = duckdb.connect(str(db))
    w = load_window(con, date(2026, 10, 31), 90)
    trace = w.trace_lines()
    assert sorted(trace["feedetl_sn"]) == ["F3", "F4"]
    every_coded = w.person_part(0).filter(pl.col("drug_trac_codg").is_not_null())
    assert every_coded.height == 5
    found = [run_rules(RuleInputs(f, w.visits, w.catalog, w.pairs), scopes=("trace",)) for f in (trace, every_coded)]
    assert found[0]["setl_id"].to_list() == ["S2"] and found[0].equals(found[1])
    w.close()
    con.close()


def test_a_recheck_window_holds_of_the_other_persons_only_the_lines_of_codes_settled_more_than_once(tmp_path):
    def drug(sn, setl, code):
        return fee_row(feedetl_sn=sn, setl_id=setl, mdtrt_id=f"M{setl}", drug_trac_codg=code)

    lines = [
        drug("F1", "S1", "1" * 20),  # the rechecked person's: code 1 settled again by P2 (S2)
        drug("F2", "S2", "1" * 20),
        drug("F3", "S2", "2" * 20),  # P2's code 2, settled once: nothing to compare it with
        drug("F4", "S2", "3" * 20),  # code 3 at P2 and P3, neither rechecked: still the trace rule's
        drug("F5", "S3", "3" * 20),
        drug("F6", "S3", ""),  # P3's uncoded line
    ]
    visits = [
        setl_totalling(24 * n, setl_id=s, mdtrt_id=f"M{s}", psn_no=p)
        for s, n, p in (("S1", 1, "P1"), ("S2", 3, "P2"), ("S3", 2, "P3"))
    ]
    inbox = make_inbox(
        tmp_path / "inbox", {"H13030200001_20261015_setl.csv": visits, "H13030200001_20261015_fee.csv": lines}
    )
    db = tmp_path / "w.duckdb"
    assert load_uploads(inbox, db).rows["fee"].loaded == 6
    con = duckdb.connect(str(db))
    con.execute("CREATE TEMP TABLE w_recheck AS SELECT 'P1' AS psn_no")
    w = load_window(con, date(2026, 10, 31), 90, recheck=True)
    assert w.person_part(0)["feedetl_sn"].to_list() == ["F1"]
    others = con.sql("SELECT feedetl_sn FROM w_lines WHERE part < 0 ORDER BY ALL").fetchall()
    assert [r[0] for r in others] == ["F2", "F4", "F5"]
    assert sorted(w.trace_lines()["feedetl_sn"]) == ["F1", "F2", "F4", "F5"]
    w.close()
    con.close()


@pytest.mark.parametrize("by_text", [False, True], ids=["visit_by_hash", "visit_by_text"])
def test_two_institutions_may_use_the_same_setl_id(tmp_path, monkeypatch, by_text):
    """SPEC makes `setl_id` unique per institution only: the same id at two institutions is two visits, and a
    finding of one never lands on the other."""
    from detectors.config import load
    from pipelines.detect.run import detect

    pharmacy = {"fixmedins_code": "P13030200001"}
    trace = "4" * 20
    inbox = make_inbox(
        tmp_path / "inbox",
        {
            "H13030200001_20261015_setl.csv": [setl_totalling(48)],
            # the same item twice at the same minute: a duplicate charge; its trace code settled again at the other
            "H13030200001_20261015_fee.csv": [fee_row(feedetl_sn="F1", drug_trac_codg=trace), fee_row(feedetl_sn="F2")],
            "P13030200001_20261015_setl.csv": [setl_totalling(24, med_type="41", **pharmacy)],
            "P13030200001_20261015_fee.csv": [fee_row(feedetl_sn="F1", drug_trac_codg=trace, **pharmacy)],
        },
    )
    db = tmp_path / "w.duckdb"
    assert load_uploads(inbox, db).rows["fee"].loaded == 3
    con = duckdb.connect(str(db))
    if by_text:  # as when two of the window's visits share a key hash
        monkeypatch.setattr(window, "_visit_on", lambda visits: ("fixmedins_code", "setl_id"))
    w = load_window(con, date(2026, 10, 31), 90)
    assert w.visits.height == 2
    d = detect(w, load())
    w.close()
    con.close()
    dup = d.findings.filter(pl.col("source") == "DUP_SAME_ITEM")
    assert dup.select("fixmedins_code", "setl_id", "amount").rows() == [("H13030200001", "S1", 24.0)]
    reuse = d.findings.filter(pl.col("source") == "TRACE_CODE_REUSE")
    assert reuse.select("fixmedins_code", "setl_id").rows() == [("P13030200001", "S1")]
    flagged = d.visits.filter(pl.col("detectors").str.contains("DUP_SAME_ITEM"))
    assert flagged.select("fixmedins_code", "setl_id").rows() == [("H13030200001", "S1")]
    # last night's findings carried into an incremental night get the window's keys, and lose them on the way out
    keyed = w.keyed(dup)
    assert keyed["setl_id"].to_list() == ["S1@H13030200001"] and w.unkeyed(keyed).equals(dup)


def test_each_line_carries_its_own_visits_person_columns_and_its_items_limits(small_inbox, tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    load_uploads(small_inbox, db)
    con = duckdb.connect(str(db))
    as_of = con.execute("SELECT max(file_date) FROM manifest WHERE status = 'loaded'").fetchall()[0][0]

    def read() -> list[pl.DataFrame]:
        w = load_window(con, as_of, 90)
        frames = [w.person_part(i) for i in range(w.parts)] + [w.trace_lines()]
        visits, catalog = w.visits, w.catalog
        w.close()
        return frames, visits, catalog

    by_hash, visits, catalog = read()
    lines = pl.concat(by_hash[:-1])
    assert lines.height > 1000 and lines.columns == window.LINE_COLUMNS
    person = ["psn_no", "gend", "age", "med_type", "begntime", "endtime"]
    expected = lines.select("fixmedins_code", "setl_id").join(
        visits.select("fixmedins_code", "setl_id", *person), on=["fixmedins_code", "setl_id"], how="left"
    )
    assert lines.select(person).equals(expected.select(person))
    ceiling = lines.select("med_list_codg").join(catalog, on="med_list_codg", how="left")["pric_uplmt_amt"]
    assert lines["pric_uplmt_amt"].equals(ceiling, check_names=False) and ceiling.null_count() < lines.height
    # the text key finds the same visits as the hash
    monkeypatch.setattr(window, "_visit_on", lambda visits: ("fixmedins_code", "setl_id"))
    by_text, _, _ = read()
    assert len(by_text) == len(by_hash) and all(a.equals(b) for a, b in zip(by_hash, by_text, strict=True))
    con.close()
