"""The loader works in batches of whole files, each judged against the warehouse as the batches before it
left it: loading an inbox in many batches must give exactly the warehouse that one batch per table gives."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from types import SimpleNamespace

import duckdb
import polars as pl
import pytest

from data_contracts.contract import upload_tables
from pipelines.ingest.reader import read_batch
from tests.conftest import table_digest
from tests.helpers import load_uploads

ROWS = {
    "quarantine": "file, table_name, row_number, record_id, rule, value",
    "contract_warnings": "file, table_name, row_number, record_id, rule, value",
    "manifest": "file_name, status, reason, rows_received, rows_loaded, rows_quarantined, rows_duplicate",
}


def _load(inbox: Path, db: Path) -> dict:
    result = load_uploads(inbox, db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {t: sorted(con.execute(f"SELECT {cols} FROM {t}").fetchall(), key=repr) for t, cols in ROWS.items()}
    finally:
        con.close()
    return {"rows": {t: vars(c) for t, c in result.rows.items()}, "tables": tables, "digest": table_digest(db)}


def test_many_small_batches_load_exactly_what_one_batch_per_table_loads(inbox_copy, tmp_path, monkeypatch):
    import pipelines.ingest.loader as loader

    uploads = [p for p in (inbox_copy / "uploads").iterdir() if p.is_file()]
    total = sum(p.stat().st_size for p in uploads)
    assert total < loader.BATCH_BYTES  # the small inbox is one batch per table and round by default
    one = _load(inbox_copy, tmp_path / "one.duckdb")
    monkeypatch.setattr(loader, "BATCH_BYTES", total // 10)
    batches = []
    real_commit = loader.commit  # batches are read and checked ahead on worker threads, written here in order
    monkeypatch.setattr(loader, "commit", lambda c, p, *a: batches.append(p.table.name) or real_commit(c, p, *a))
    many = _load(inbox_copy, tmp_path / "many.duckdb")
    assert batches.count("fee") >= 5 and batches.count("setl") >= 2
    assert many["rows"] == one["rows"]
    assert many["digest"] == one["digest"]
    for t in ROWS:
        assert many["tables"][t] == one["tables"][t], t
    assert one["tables"]["quarantine"] and one["tables"]["contract_warnings"]  # the comparison has substance


def test_a_rejected_file_keeps_its_reason_but_not_the_batch_alive(tmp_path):
    """The reason of a rejected file must not carry the traceback that raised it: that traceback holds the
    reader's frame with every file of the batch (bytes and frames), in a cycle that held GBs at district scale."""
    table = upload_tables()["setl"]
    good = tmp_path / "H1_20261001_setl.csv"
    good.write_text(",".join(table.codes) + "\n" + ",".join("1" for _ in table.codes) + "\n", encoding="utf-8")
    bad = tmp_path / "H1_20261002_setl.csv"
    bad.write_text("setl_id,nonsense\nS1,x\n", encoding="utf-8")
    gc.disable()  # only reference counting may free the batch, as between two full collections
    try:
        frames, rejected = read_batch([(0, good, "csv"), (1, bad, "csv")], table)
        assert list(rejected) == [1] and rejected[1].rule and rejected[1].__traceback__ is None
        assert rejected[1].__context__ is None and rejected[1].__cause__ is None
        watched = weakref.ref(frames[0].frame)
        assert isinstance(watched(), pl.DataFrame)
        del frames
        assert watched() is None, "the rejected file's reason keeps the batch's frames alive"
    finally:
        gc.enable()


def test_files_read_together_keep_their_rows_and_row_numbers_whatever_their_bytes(tmp_path):
    """CSVs sharing a header are parsed as one buffer of their bodies: a BOM, CRLF line ends, GB18030 text,
    a missing final line end or a header alone must each give exactly the file's own rows and numbers."""
    table = upload_tables()["setl"]
    header = ",".join(table.codes)

    def body(fi: int, n: int) -> str:
        return "".join(",".join(f"张{fi}-{r}-{i}" for i in range(len(table.codes))) + "\n" for r in range(n))

    variants = [
        (b"\xef\xbb\xbf" + (header + "\n" + body(0, 3)).encode("utf-8"), 3),
        ((header + "\n" + body(1, 2)).replace("\n", "\r\n").encode("utf-8"), 2),
        ((header + "\n" + body(2, 2)).encode("gb18030"), 2),
        ((header + "\n" + body(3, 2)).rstrip("\n").encode("utf-8"), 2),
        (b"\xef\xbb\xbf" + (header + "\n" + body(4, 1)).rstrip("\n").replace("\n", "\r\n").encode("utf-8"), 1),
        (header.encode("utf-8"), 0),
        ((header + "\n" + body(6, 2)).encode("utf-8"), 2),
    ]
    files = []
    for fi, (data, _) in enumerate(variants):
        path = tmp_path / f"H1_2026100{fi}_setl.csv"
        path.write_bytes(data)
        files.append((fi, path, "csv"))
    frames, rejected = read_batch(files, table)
    assert not rejected and len(frames) == 1  # all in one group: the fast path, not the file-by-file one
    got = frames[0].frame.select("_fi", "_row", table.codes[0]).rows()
    want = [(fi, r + 2, f"张{fi}-{r}-0") for fi, (_, n) in enumerate(variants) for r in range(n)]
    assert got == want


@pytest.mark.parametrize(
    ("sizes", "want"),
    [
        ([30] * 10, [90, 120, 90]),  # filled to the cap: 120 + 120 + 60
        ([100, 30, 30], [100, 60]),  # 130 + 30
        ([30, 200, 30], [30, 200, 30]),  # a file over the cap goes alone
        ([50], [50]),
        ([], []),
    ],
)
def test_batches_are_as_few_as_the_cap_allows_and_about_equal(monkeypatch, sizes, want):
    import pipelines.ingest.loader as loader

    monkeypatch.setattr(loader, "BATCH_BYTES", 128)
    files = [SimpleNamespace(size=s, n=i) for i, s in enumerate(sizes)]
    batches = loader._batches(files)
    assert [f.n for b in batches for f in b] == list(range(len(sizes)))  # every file once, in order
    assert [sum(f.size for f in b) for b in batches] == want
