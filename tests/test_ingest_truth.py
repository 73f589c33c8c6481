"""The loader against the generator's ground truth: every injected defect gets exactly its outcome."""

from __future__ import annotations

import duckdb
import polars as pl


def test_every_injected_row_defect_is_quarantined_with_its_rule_and_nothing_else(small_night, small_inbox):
    _db, _summary, out = small_night
    truth = pl.read_csv(small_inbox.parent / "inbox.truth" / "rows.csv", infer_schema=False)
    expected = {
        (r["file"], int(r["row_number"]), r["rule"])
        for r in truth.filter(pl.col("expected") == "quarantine").iter_rows(named=True)
    }
    q = pl.read_csv(out / "quarantine.csv", infer_schema=False).filter(pl.col("row_number").is_not_null())
    got = {(r["file"], int(r["row_number"]), r["rule"]) for r in q.iter_rows(named=True)}
    assert got == expected
    # the truth really holds every kind of row defect, cascades included
    assert {rule.split(":")[0] for _, _, rule in expected} == {
        "bad_decimal",
        "amount_mismatch",
        "bad_datetime",
        "zero_quantity",
        "negative_without_refund",
        "refund_unmatched",
        "after_file_date",
        "key_conflict",
        "end_before_begin",
        "fund_exceeds_total",
        "out_of_range",
        "bad_code",
        "institution_mismatch",
        "unknown_institution",
        "setl_missing",
    }


def test_every_rejected_file_is_reported_with_its_rule(small_night, small_inbox):
    _, summary, out = small_night
    truth = pl.read_csv(small_inbox.parent / "inbox.truth" / "files.csv")
    rejected = {r["file"]: r["reason"].split(":")[0] for r in summary["files"]["rejected"]}
    assert rejected == dict(truth.select("file", "rule").iter_rows())
    q = pl.read_csv(out / "quarantine.csv", infer_schema=False).filter(pl.col("row_number").is_null())
    assert set(q["file"]) == set(truth["file"])


def test_row_counts_balance_and_the_duplicate_is_counted(small_night, small_inbox):
    db, summary, _ = small_night
    truth = pl.read_csv(small_inbox.parent / "inbox.truth" / "rows.csv", infer_schema=False)
    for table in ("setl", "fee"):
        c = summary["rows"][table]
        assert c["received"] == c["loaded"] + c["quarantined"] + c["duplicate"]
        t = truth.filter(pl.col("table") == table)
        assert c["quarantined"] == t.filter(pl.col("expected") == "quarantine").height
        assert c["duplicate"] == t.filter(pl.col("expected") == "duplicate").height
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == c["loaded"]
        con.close()
    assert summary["rows"]["fee"]["duplicate"] == 1


def test_encodings_formats_and_headers_all_load_completely(small_night, small_inbox):
    """GB18030, BOM, Chinese headers, xlsx and parquet files load every row; extra columns are kept aside."""
    db, _, _ = small_night
    con = duckdb.connect(str(db), read_only=True)
    manifest = dict(con.execute("SELECT file_name, rows_loaded FROM manifest WHERE status='loaded'").fetchall())
    up = small_inbox / "uploads"
    variants = {"xlsx": [], "parquet": [], "gb18030": [], "bom": []}
    for p in up.iterdir():
        if p.suffix in (".xlsx", ".parquet"):
            variants[p.suffix[1:]].append(p.name)
        elif p.suffix == ".csv":
            head = p.read_bytes()[:3]
            if head == b"\xef\xbb\xbf":
                variants["bom"].append(p.name)
            else:
                try:
                    p.read_bytes().decode("utf-8")
                except UnicodeDecodeError:
                    variants["gb18030"].append(p.name)
    assert all(len(v) >= 1 for k, v in variants.items()), variants
    for names in variants.values():
        for name in names:
            if name in manifest:  # the undecodable file is rejected, tested elsewhere
                assert manifest[name] > 0, name
    extra = con.execute("SELECT count(*), any_value(extra) FROM setl WHERE extra IS NOT NULL").fetchall()[0]
    assert extra[0] > 0 and "备注" in extra[1]
    con.close()


def test_summary_has_the_spec_fields(small_night):
    _, s, out = small_night
    assert set(s["files"]) >= {"seen", "loaded", "unchanged", "rejected"}
    assert all({"file", "reason"} <= set(r) for r in s["files"]["rejected"])
    assert s["as_of"] == "2026-10-31"
    assert set(s["timings_s"]) >= {"ingest"}
    assert (out / "run_summary.json").stat().st_mode & 0o077 == 0
