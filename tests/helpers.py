"""Build tiny inboxes by hand for focused loader tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl

INSTITUTIONS = (
    "fixmedins_code,fixmedins_name,fixmedins_type,hosp_lv,region,agreement_no,legal_rep,address\n"
    "H13030200001,测试医院,1,2,文化路街道,XY-1,张三,海港区1号\n"
    "P13030200001,测试药房,2,0,文化路街道,XY-2,李四,海港区2号\n"
)

SETL = {
    "setl_id": "S1",
    "mdtrt_id": "M1",
    "psn_no": "130302000000000001",
    "psn_name": "王伟",
    "gend": "1",
    "age": "45",
    "insutype": "310",
    "fixmedins_code": "H13030200001",
    "med_type": "11",
    "begntime": "2026-10-15 09:00:00",
    "endtime": "2026-10-15 09:30:00",
    "setl_time": "2026-10-15 09:30:00",
    "dept_codg": "A03",
    "dept_name": "内科",
    "chfpdr_code": "D1",
    "dscg_maindiag_code": "J06.900",
    "dscg_maindiag_name": "急性上呼吸道感染",
    "medfee_sumamt": "34.00",
    "fulamt_ownpay_amt": "0.00",
    "inscp_scp_amt": "34.00",
    "hifp_pay": "17.00",
    "fund_pay_sumamt": "17.00",
    "acct_pay": "8.50",
    "psn_cash_pay": "8.50",
}
FEE = {
    "feedetl_sn": "F1",
    "init_feedetl_sn": "",
    "setl_id": "S1",
    "mdtrt_id": "M1",
    "psn_no": "130302000000000001",
    "fixmedins_code": "H13030200001",
    "fee_ocur_time": "2026-10-15 09:10:00",
    "med_list_codg": "XJ01CAA001",
    "med_list_name": "阿莫西林胶囊",
    "med_chrgitm_type": "09",
    "chrgitm_lv": "01",
    "pric": "12.00",
    "cnt": "2",
    "det_item_fee_sumamt": "24.00",
    "prd_days": "6",
    "bilg_dept_codg": "A03",
    "bilg_dr_codg": "D1",
    "drug_trac_codg": "",
}


def setl_row(**kw) -> dict:
    return {**SETL, **kw}


def setl_totalling(total: float, **kw) -> dict:
    """A settlement row whose amounts agree with a visit total of `total` yuan (half of it paid by the fund)."""
    amounts = {"medfee_sumamt": total, "inscp_scp_amt": total, "hifp_pay": total / 2, "fund_pay_sumamt": total / 2}
    amounts |= {"acct_pay": total / 4, "psn_cash_pay": total / 4}
    return setl_row(**{k: f"{v:.2f}" for k, v in amounts.items()}, **kw)


def fee_row(**kw) -> dict:
    return {**FEE, **kw}


def make_inbox(root: Path, files: dict[str, list[dict] | bytes], institutions: bool = True) -> Path:
    """Write uploads (rows as dicts, or raw bytes) and a minimal institutions list; return the inbox."""
    up = root / "uploads"
    up.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (up / name).write_bytes(content)
        else:
            pl.DataFrame(content).write_csv(up / name)
    if institutions:
        (root / "reference").mkdir(exist_ok=True)
        (root / "reference" / "institutions.csv").write_text(INSTITUTIONS, encoding="utf-8")
    return root


def run(inbox: Path, db: Path, out: Path | None = None) -> dict:
    from pipelines.nightly import NightlyParams, run_nightly

    return run_nightly(NightlyParams(inbox, db, out or db.parent / "out"))


def load_uploads(inbox: Path, db: Path, run_id: str = "run"):
    """Only the reference lists and the uploads into `db` (no detection or outputs); the IngestResult."""
    from data_contracts.gx_validation import ContractValidator
    from pipelines.ingest.loader import ingest
    from pipelines.ingest.reference import load_references
    from pipelines.warehouse.session import connect_writer, write_session

    validator = ContractValidator()
    with write_session(db) as stage:
        con = connect_writer(stage)
        load_references(con, inbox / "reference", run_id, validator)
        result = ingest(con, inbox, run_id, validator=validator)
        con.close()
    return result


def quarantine(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / "quarantine.csv", infer_schema=False)
