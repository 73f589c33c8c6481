"""Defective and varied input, injected into the generated uploads with the outcome each must get.

Every defect names the file, the spreadsheet row (header = row 1, first data row = 2), the record id
and the rule the loader must report, so tests can compare the loader's quarantine to this list exactly.
Rule ids are the loader's own (`pipelines/ingest/rules.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl


@dataclass
class UploadFile:
    """One upload file to write: its rows (all text) and how it is encoded on disk."""

    frame: pl.DataFrame
    fmt: str = "csv"  # csv, xlsx, parquet
    encoding: str = "utf-8"  # utf-8, utf-8-sig, gb18030
    chinese_headers: bool = False
    raw: bytes | None = None  # written verbatim instead of the frame
    name: str | None = None  # a file name other than the standard one


@dataclass
class Expected:
    files: list[dict] = field(default_factory=list)  # file, expected (loaded/rejected), rule
    rows: list[dict] = field(default_factory=list)  # file, table, row_number, record_id, expected, rule

    def row(self, file: str, table: str, frame: pl.DataFrame, idx: int, outcome: str, rule: str) -> None:
        key = "setl_id" if table == "setl" else "feedetl_sn"
        self.rows.append(
            {
                "file": file,
                "table": table,
                "row_number": idx + 2,
                "record_id": frame[key][idx],
                "expected": outcome,
                "rule": rule,
            }
        )


def file_name(code: str, day: str, table: str, fmt: str = "csv") -> str:
    return f"{code}_{day}_{table}.{fmt}"


def _set(frame: pl.DataFrame, idx: int, **values: str) -> pl.DataFrame:
    mask = pl.int_range(pl.len()) == idx
    return frame.with_columns([pl.when(mask).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in values.items()])


def _shift(ts: str, **delta: float) -> str:
    return (datetime.strptime(ts, "%Y-%m-%d %H:%M:%S") + timedelta(**delta)).strftime("%Y-%m-%d %H:%M:%S")


def inject(
    rng: np.random.Generator, files: dict[tuple[str, str, str], UploadFile], labelled: set[str], inst: pl.DataFrame
) -> tuple[Expected, dict[str, UploadFile]]:
    """Alter a few files in place; return what the loader must do and the next delivery (resends)."""
    exp = Expected()
    kinds = dict(inst.select("fixmedins_code", "fixmedins_type").iter_rows())
    levels = dict(inst.select("fixmedins_code", "hosp_lv").iter_rows())
    keys = sorted({(c, d) for c, d, _ in files})
    used: set[tuple[str, str]] = set()

    def pick(pred) -> tuple[str, str]:
        cands = [
            k
            for k in keys
            if k not in used
            and pred(*k)
            and (*k, "fee") in files
            and (*k, "setl") in files
            and files[(*k, "setl")].frame.height >= 8
        ]
        k = cands[int(rng.integers(len(cands)))]
        used.add(k)
        return k

    def clean_rows(key, table: str, n: int) -> list[int]:
        """n rows of distinct, unlabelled visits that are neither refunds nor refunded."""
        fee = files[(*key, "fee")].frame
        refunded = set(fee.filter(pl.col("init_feedetl_sn") != "")["init_feedetl_sn"]) | set(
            fee.filter(pl.col("init_feedetl_sn") != "")["feedetl_sn"]
        )
        frame = files[(*key, table)].frame
        seen: set[str] = set()
        out = []
        for i, (sid, rid) in enumerate(
            frame.select("setl_id", pl.col("feedetl_sn" if table == "fee" else "setl_id").alias("rid")).iter_rows()
        ):
            if sid in labelled or sid in seen or rid in refunded:
                continue
            seen.add(sid)
            out.append(i)
        chosen = rng.choice(out, n, replace=False)
        return [int(i) for i in chosen]

    def cascade(key, setl_ids: list[str], table_file: str) -> None:
        fee = files[(*key, "fee")].frame
        for i, sid in enumerate(fee["setl_id"]):
            if sid in setl_ids:
                exp.row(table_file, "fee", fee, i, "quarantine", "setl_missing")

    hosp3 = lambda c, d: levels[c] == "3"  # noqa: E731
    hosp2 = lambda c, d: levels[c] == "2"  # noqa: E731
    hosp1 = lambda c, d: levels[c] == "1"  # noqa: E731
    pharm = lambda c, d: kinds[c] == "2"  # noqa: E731

    # --- row defects in one hospital's fee file --------------------------------------------------
    key = pick(hosp3)
    f = files[(*key, "fee")]
    name = file_name(*key, "fee")
    original_fee = f.frame
    fr = f.frame
    r = clean_rows(key, "fee", 9)
    fr = _set(fr, r[0], det_item_fee_sumamt="12.3a")
    exp.row(name, "fee", fr, r[0], "quarantine", "bad_decimal:det_item_fee_sumamt")
    amt = float(fr["det_item_fee_sumamt"][r[1]]) + 1
    fr = _set(fr, r[1], det_item_fee_sumamt=f"{amt:.2f}")
    exp.row(name, "fee", fr, r[1], "quarantine", "amount_mismatch")
    fr = _set(fr, r[2], fee_ocur_time=fr["fee_ocur_time"][r[2]][:5] + "02-30 10:00:00")
    exp.row(name, "fee", fr, r[2], "quarantine", "bad_datetime:fee_ocur_time")
    fr = _set(fr, r[3], cnt="0", det_item_fee_sumamt="0.00")
    exp.row(name, "fee", fr, r[3], "quarantine", "zero_quantity")
    neg = f"{-float(fr['pric'][r[4]]):.2f}"
    fr = _set(fr, r[4], cnt="-1", det_item_fee_sumamt=neg)
    exp.row(name, "fee", fr, r[4], "quarantine", "negative_without_refund")
    neg = f"{-float(fr['pric'][r[5]]):.2f}"
    fr = _set(fr, r[5], cnt="-1", det_item_fee_sumamt=neg, init_feedetl_sn="F00000NOSUCHLINE")
    exp.row(name, "fee", fr, r[5], "quarantine", "refund_unmatched")
    fr = _set(fr, r[6], fee_ocur_time=_shift(fr["fee_ocur_time"][r[6]], days=1))
    exp.row(name, "fee", fr, r[6], "quarantine", "after_file_date")
    fr = pl.concat([fr, fr[r[7]]])  # an exact duplicate line
    exp.row(name, "fee", fr, fr.height - 1, "duplicate", "duplicate")
    conflict = _set(fr[r[8]], 0, bilg_dr_codg="DXXXXX")  # same feedetl_sn, different content
    fr = pl.concat([fr, conflict])
    exp.row(name, "fee", fr, fr.height - 1, "quarantine", "key_conflict")
    f.frame = fr
    corrected = (name, UploadFile(original_fee))

    # --- row defects in one hospital's setl file (their fee lines cascade) --------------------------
    key = pick(hosp2)
    f = files[(*key, "setl")]
    name = file_name(*key, "setl")
    fr = f.frame
    corrected_setl = (name, UploadFile(fr))  # sent again put right: its fee lines, refused meanwhile, then load
    r = clean_rows(key, "setl", 5)
    fr = _set(fr, r[0], medfee_sumamt="12O.50")
    exp.row(name, "setl", fr, r[0], "quarantine", "bad_decimal:medfee_sumamt")
    fr = _set(fr, r[1], endtime=_shift(fr["begntime"][r[1]], hours=-1))
    exp.row(name, "setl", fr, r[1], "quarantine", "end_before_begin")
    fund = float(fr["medfee_sumamt"][r[2]]) + 100
    fr = _set(fr, r[2], fund_pay_sumamt=f"{fund:.2f}")
    exp.row(name, "setl", fr, r[2], "quarantine", "fund_exceeds_total")
    fr = _set(fr, r[3], age="150")
    exp.row(name, "setl", fr, r[3], "quarantine", "out_of_range:age")
    fr = _set(fr, r[4], gend="3")
    exp.row(name, "setl", fr, r[4], "quarantine", "bad_code:gend")
    f.frame = fr
    cascade(key, [fr["setl_id"][i] for i in r], file_name(*key, "fee"))

    # --- a row claiming another institution ---------------------------------------------------------
    key = pick(pharm)
    f = files[(*key, "setl")]
    name = file_name(*key, "setl")
    other = next(c for c in sorted(kinds) if kinds[c] == "2" and c != key[0])
    i = clean_rows(key, "setl", 1)[0]
    f.frame = _set(f.frame, i, fixmedins_code=other)
    exp.row(name, "setl", f.frame, i, "quarantine", "institution_mismatch")
    cascade(key, [f.frame["setl_id"][i]], file_name(*key, "fee"))

    # --- an institution that is not designated ------------------------------------------------------
    key = pick(hosp1)
    sid = files[(*key, "setl")].frame["setl_id"][0]
    unknown = "H13030299999"
    s1 = files[(*key, "setl")].frame.head(1).with_columns(fixmedins_code=pl.lit(unknown))
    f1 = files[(*key, "fee")].frame.filter(pl.col("setl_id") == sid).with_columns(fixmedins_code=pl.lit(unknown))
    files[(unknown, key[1], "setl")] = UploadFile(s1)
    files[(unknown, key[1], "fee")] = UploadFile(f1)
    exp.row(file_name(unknown, key[1], "setl"), "setl", s1, 0, "quarantine", "unknown_institution")
    for j in range(f1.height):
        exp.row(file_name(unknown, key[1], "fee"), "fee", f1, j, "quarantine", "unknown_institution")

    # --- whole-file rejections -----------------------------------------------------------------------
    key = pick(hosp1)
    files[(*key, "fee")].frame = files[(*key, "fee")].frame.drop("pric")
    exp.files.append({"file": file_name(*key, "fee"), "expected": "rejected", "rule": "missing_column"})
    key = pick(lambda c, d: kinds[c] == "1")
    garbage = bytes(rng.integers(0x80, 0xFF, 300, dtype=np.uint8)) + b"\xff\xff\n"
    files[(*key, "fee")].raw = b"feedetl_sn,setl_id\n" + garbage
    exp.files.append({"file": file_name(*key, "fee"), "expected": "rejected", "rule": "unreadable"})
    key = pick(lambda c, d: True)
    bad = f"{key[0]}_{key[1][:4]}-{key[1][4:6]}-{key[1][6:]}_fee.csv"
    files[("__badname__", key[1], "fee")] = UploadFile(files[(*key, "fee")].frame, name=bad)
    exp.files.append({"file": bad, "expected": "rejected", "rule": "bad_file_name"})

    # --- valid variants: encodings, Chinese headers, formats, extra columns ------------------------
    key = pick(hosp2)
    files[(*key, "setl")].encoding = "gb18030"
    files[(*key, "fee")].encoding = "gb18030"
    files[(*key, "fee")].chinese_headers = True
    key = pick(lambda c, d: True)
    files[(*key, "fee")].encoding = "utf-8-sig"
    files[(*key, "setl")].chinese_headers = True
    files[(*key, "setl")].frame = files[(*key, "setl")].frame.with_columns(备注=pl.lit("无"))
    key = pick(pharm)
    files[(*key, "setl")].fmt = files[(*key, "fee")].fmt = "xlsx"
    key = pick(hosp1)
    files[(*key, "setl")].fmt = files[(*key, "fee")].fmt = "parquet"

    # --- the next delivery: an identical resend, a corrected fee file and a corrected settlement file --
    resend_key = pick(lambda c, d: True)
    nxt = {
        file_name(*resend_key, "setl"): files[(*resend_key, "setl")],
        corrected[0]: corrected[1],
        corrected_setl[0]: corrected_setl[1],
    }
    return exp, nxt
