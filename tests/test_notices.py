"""Draft breach notices: every required field in the Word document, amounts that add up to the evidence,
handling chosen by the 裁量基准, and no notice for an institution without established breaches."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import polars as pl
import pytest
from docx import Document
from openpyxl import load_workbook

from pipelines.notices.compose import NoticeInputs, compose, yuan_zh
from pipelines.notices.config import load
from pipelines.targeting.selection import REASON_ZH


def evidence(rows: list[tuple]) -> pl.DataFrame:
    """(source, source_name, setl_id, fen[, kind]) per line; kind (the rule or detector) defaults to the source."""
    return pl.DataFrame(
        {
            "source": [r[0] for r in rows],
            "source_name": [r[1] for r in rows],
            "kind": [r[4] if len(r) > 4 else r[0] for r in rows],
            "setl_id": [r[2] for r in rows],
            "occurred_on": [date(2026, 10, 1 + i % 28) for i in range(len(rows))],
            "fen": [r[3] for r in rows],
            "reason": ["说明"] * len(rows),
            "basis": ["《医疗保障基金使用监督管理条例》第十五条、第三十八条"] * len(rows),
            "clause": ["服务协议第三十二条(不得重复收费)"] * len(rows),
            "established_by": ["智能审核规则"] * len(rows),
            "psn_no": ["130302000000000001"] * len(rows),
            "psn_name_masked": ["王*"] * len(rows),
        }
    )


def inputs(ev: pl.DataFrame, kind: str = "1") -> NoticeInputs:
    return NoticeInputs(
        institution={"fixmedins_code": "H1", "fixmedins_name": "测试医院", "fixmedins_type": kind},
        evidence=ev,
        inspectors=[("张三", "冀医保执001"), ("李四", "冀医保执002")],
        doc_no="X〔2026〕1号",
        draw_id="2026-10-v1",
        selection="高风险",
        period=(date(2026, 8, 3), date(2026, 10, 31)),
        inspection_date=None,
        draft_date=date(2026, 11, 27),
    )


def test_facts_and_total_add_up_to_the_evidence_in_fen():
    ev = evidence([("DUP", "重复收费", "S1", 10), ("DUP", "重复收费", "S2", 20), ("OVER", "超标准收费", "S1", 333)])
    c = compose(inputs(ev), load())
    assert c["total_amount"] == "3.63" and c["total_fen"] == 363
    assert [f["amount"] for f in c["facts"]] == ["3.33", "0.30"]  # largest first
    assert c["total_visits"] == 2 and c["evidence_rows"] == 3
    assert sum(Decimal(e["amount"]) for e in c["evidence"]) == Decimal("3.63")
    assert c["basis"][0]["clause"].startswith("《医疗保障定点医疗机构服务协议》第三十二条")
    assert compose(inputs(ev, "2"), load())["basis"][0]["clause"].startswith("《医疗保障定点零售药店服务协议》")


def test_long_appendix_lists_the_largest_lines_and_points_to_the_workbook():
    rows = [("DUP", "重复收费", f"S{i}", 100 + i) for i in range(10)]
    cfg = load()
    cfg["document"]["appendix_max_lines"] = 4
    c = compose(inputs(evidence(rows)), cfg)
    assert c["evidence_rows"] == 10 and len(c["evidence"]) == 10  # the workbook keeps every line
    assert [e["amount"] for e in c["appendix"]] == ["1.06", "1.07", "1.08", "1.09"]
    shown = {e["no"]: e["amount"] for e in c["appendix"]}
    assert all(e["amount"] == shown[e["no"]] for e in c["evidence"] if e["no"] in shown)  # same 序号 as the workbook
    assert "金额最大的 4 条" in c["appendix_note"] and "全部 10 条见《H1_evidence.xlsx》" in c["appendix_note"]
    cfg["document"]["appendix_max_lines"] = 10
    complete = compose(inputs(evidence(rows)), cfg)
    assert len(complete["appendix"]) == 10 and complete["appendix_note"] == ""


@pytest.mark.parametrize(
    ("fen", "penalty", "referred", "suspend"),
    [(500_000, "", False, False), (2_000_000, "20,000.00", False, False), (6_000_000, "120,000.00", True, True)],
)
def test_handling_follows_the_discretion_tiers(fen, penalty, referred, suspend):
    c = compose(inputs(evidence([("DUP", "重复收费", "S1", fen)])), load())
    assert c["penalty_amount"] == penalty
    assert c["referred"] is referred
    assert any("暂停" in m for m in c["measures"]) is suspend
    assert "限期整改" in "".join(c["measures"])


def test_fraud_like_findings_are_referred_whatever_the_amount():
    c = compose(inputs(evidence([("TRACE_CODE_REUSE", "药品追溯码重复结算", "S1", 100)])), load())
    assert c["referred"] and "药品追溯码重复结算" in c["referral_reason"]


def test_each_violation_type_the_inspectors_confirmed_is_a_fact_of_its_own():
    """Visits confirmed on site all come from the audit outcomes (source AUDIT); the facts table must list each
    violation type with its own visits and amount, as the appendix does, not all of them under the first."""
    ev = evidence(
        [
            ("AUDIT", "过度诊疗", "S1", 500, None),
            ("AUDIT", "分解住院", "S2", 300, "SPLIT_ADMISSION"),
            ("AUDIT", "过度诊疗", "S3", 400, None),
            ("DUP", "重复收费", "S4", 100),
        ]
    )
    c = compose(inputs(ev), load())
    assert [(f["name"], f["visits"], f["amount"]) for f in c["facts"]] == [
        ("过度诊疗", 2, "9.00"),
        ("分解住院", 1, "3.00"),
        ("重复收费", 1, "1.00"),
    ]
    assert [b["name"] for b in c["basis"]] == ["过度诊疗", "分解住院", "重复收费"]
    assert not c["referred"]
    # the appendix and the workbook list one type's lines together
    assert [e["name"] for e in c["evidence"]] == ["分解住院", "过度诊疗", "过度诊疗", "重复收费"]


def test_a_confirmed_violation_type_is_cited_under_its_rule_and_referred_when_it_points_to_fraud():
    from detectors.rules.engine import load_rules
    from pipelines.notices.evidence import audit_kinds

    cfg = load()
    kinds = audit_kinds(cfg, load_rules())
    assert kinds["分解住院"] == "SPLIT_ADMISSION" and kinds["提前开药"] == "EARLY_REFILL"  # "提前开药(重复开药)"
    assert kinds["虚构就诊"] == "FREQUENCY" and "过度诊疗" not in kinds
    assert kinds["重复收费"] == "DUP_SAME_ITEM" and kinds["重复收费(项目内涵)"] == "DUP_PAIR"
    known = {r.id for r in load_rules()} | {"FREQUENCY", "HIGH_COST"}
    assert set(cfg["audit_types"].values()) <= known and set(cfg["referral"]["sources"]) <= known
    c = compose(inputs(evidence([("AUDIT", "虚构就诊", "S1", 100, "FREQUENCY")])), cfg)
    assert c["referred"] and c["referral_reason"] == "存在虚构就诊等涉嫌欺诈骗保情形"


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "零元整"),
        (123450, "壹仟贰佰叁拾肆元伍角整"),
        (1000500, "壹万零伍元整"),
        (200000107, "贰佰万零壹元零柒分"),
        (99, "玖角玖分"),
    ],
)
def test_amount_in_chinese_capitals(fen, text):
    assert yuan_zh(fen) == text


def docx_text(path) -> str:
    d = Document(path)
    parts = [p.text for p in d.paragraphs]
    for t in d.tables:
        for row in t.rows:
            parts.extend(c.text for c in row.cells)
    return "\n".join(parts)


def test_generated_notices_carry_every_required_field(small_night):
    _, summary, out = small_night
    listed = pl.read_csv(out / "sampling_list.csv", infer_schema=False)
    notices = sorted((out / "notices").glob("*.docx"))
    assert len(notices) == summary["notices"]["notices"] > 0
    for path in notices:
        code = path.stem
        text = docx_text(path)
        row = listed.filter(pl.col("fixmedins_code") == code).row(0, named=True)
        for needle in [
            "现场监督检查违约通知单",
            "号",
            row["fixmedins_name"],
            code,
            "法定代表人",
            "协议编号",
            "检查日期",
            "违约事实",
            "《医疗保障基金使用监督管理条例》第",
            "服务协议》第",
            "处理意见",
            "限期整改",
            "陈述、申辩",
            "行政复议",
            "日内退回",
            "移交",
            "（签字）",
            "（盖章）",
            "送 达 回 证",
            "拒收情况记录",
        ]:
            assert needle in text, (code, needle)
        why = re.search(r"入选原因：(.+?)）", text.replace("\n", "")).group(1)
        zh = REASON_ZH[row["selection_reason"]]
        assert row["selection_detail"] in why and zh in why and f"{zh}: {zh}" not in why, (code, why)
        for name_cert in row["inspectors"].split("; "):
            name, cert = re.match(r"(.+)\((.+)\)", name_cert).groups()
            assert name in text and cert in text
        assert "{{" not in text and "{%" not in text


def test_notice_totals_equal_the_evidence(small_night):
    _, summary, out = small_night
    for path in sorted((out / "notices").glob("*.docx")):
        d = Document(path)
        facts = next(t for t in d.tables if t.rows[0].cells[1].text == "违约情形" and t.rows[0].cells[2].text == "人次")
        fact_total = sum(Decimal(r.cells[3].text.replace(",", "")) for r in facts.rows[1:])
        for r in facts.rows[1:]:  # example settlements one per line, each with its date
            examples = r.cells[5].text.split("\n")
            assert all(re.fullmatch(r"\S+ \(\d\d-\d\d\)", e) for e in examples), examples
        appendix = d.tables[-1]
        lines = {int(r.cells[0].text): Decimal(r.cells[6].text.replace(",", "")) for r in appendix.rows[1:]}
        text = docx_text(path)
        stated = Decimal(re.search(r"涉及医保基金 ([\d,]+\.\d\d) 元", text).group(1).replace(",", ""))
        assert fact_total == stated, path.name
        assert summary["notices"]["totals"][path.stem] == f"{stated:,.2f}"
        # the evidence workbook holds every line; the Word appendix all of them or the largest, by the same 序号
        wb = load_workbook(path.with_name(f"{path.stem}_evidence.xlsx"))
        ws = wb.active
        header = next(i for i, r in enumerate(ws.iter_rows(values_only=True)) if r[0] == "序号")
        book = {r[0]: r[6] for r in list(ws.iter_rows(values_only=True))[header + 1 :] if r[0] is not None}
        assert Decimal(str(round(sum(book.values()), 2))) == stated
        assert all(Decimal(str(book[no])) == amount for no, amount in lines.items())
        if len(lines) == len(book):
            assert sum(lines.values()) == stated
            # each fact's visits are the appendix's lines of that 违约情形
            per_type: dict[str, set[str]] = {}
            for r in appendix.rows[1:]:
                per_type.setdefault(r.cells[1].text, set()).add(r.cells[2].text)
            assert {r.cells[1].text: int(r.cells[2].text) for r in facts.rows[1:]} == {
                k: len(v) for k, v in per_type.items()
            }, path.name
        else:
            assert f"全部 {len(book)} 条见《{path.stem}_evidence.xlsx》" in text
            assert min(lines.values()) >= sorted(map(Decimal, map(str, book.values())))[-len(lines)]
        # patients appear by psn_no and masked name only
        names = [r.cells[5].text for r in appendix.rows[1:]]
        assert all(re.fullmatch(r".\*", n) or n == "" for n in names)


def test_a_notice_proposing_referral_says_so_in_the_summary_and_in_its_case(small_night):
    """The analyst deciding a case (初审) must see that its notice proposes to refer it on (移交), and why."""
    import duckdb

    db, summary, out = small_night
    proposed = {p.stem for p in (out / "notices").glob("*.docx") if "本案拟移交" in docx_text(p)}
    assert proposed, "the small inbox holds a fraud-like finding (药品追溯码重复结算)"
    assert set(summary["notices"]["referred"]) == proposed
    con = duckdb.connect(str(db), read_only=True)
    titles = dict(con.execute("SELECT fixmedins_code, title FROM cases WHERE kind = 'finding'").fetchall())
    con.close()
    assert {code for code, title in titles.items() if "拟移交" in title} == proposed
    assert all("涉嫌欺诈骗保" in titles[code] for code in proposed)


def test_selected_institution_without_breaches_gets_no_notice(small_night):
    _, summary, out = small_night
    listed = pl.read_csv(out / "sampling_list.csv", infer_schema=False)
    scores = pl.read_csv(out / "institution_scores.csv", infer_schema=False)
    clean = scores.filter(pl.col("flagged_visits") == "0")["fixmedins_code"].to_list()
    on_list_clean = [c for c in listed["fixmedins_code"] if c in clean]
    assert on_list_clean, "the demo list should hold a randomly drawn institution with no findings"
    for code in on_list_clean:
        assert not (out / "notices" / f"{code}.docx").exists()
    assert summary["notices"]["without_findings"] >= len(on_list_clean)


def test_each_notice_has_a_pdf_in_a_cjk_font(small_night):
    import shutil
    import subprocess

    _, summary, out = small_night
    assert shutil.which("soffice") and shutil.which("pdftotext"), "setup.sh installs LibreOffice and poppler"
    docs = sorted((out / "notices").glob("*.docx"))
    assert summary["notices"]["pdf"] == len(docs) > 0
    pdf = docs[0].with_suffix(".pdf")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = "".join(text.split())
    assert "现场监督检查违约通知单" in flat and "送达回证" in flat and "拒收情况记录" in flat
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "CJK" in fonts or "Hei" in fonts or "Song" in fonts, fonts


def test_pdf_conversion_reports_why_it_made_no_pdf_and_leaves_nothing_behind(tmp_path, monkeypatch):
    import tempfile

    from pipelines.notices import render

    doc = tmp_path / "H13030200001.docx"
    doc.write_bytes(b"not a document")
    monkeypatch.setattr(render, "soffice", lambda: None)
    assert render.start_pdf([doc])() == (
        [],
        "LibreOffice not installed: PDF notices skipped (set-up installs libreoffice-writer)",
    )
    # an executable that cannot be started: the error surfaces and no profile folder is left in the temp dir
    monkeypatch.setattr(render, "soffice", lambda: str(tmp_path / "no-such-soffice"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with pytest.raises(FileNotFoundError):
        render.start_pdf([doc])
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_inspection_date_is_that_of_a_check_under_the_notices_own_draw(small_night, tmp_path):
    """The notice names this draw's inspectors: the date beside them is of a sampled visit of this draw audited
    after it was drawn, never an earlier check by another group, nor of a visit outside the sample."""
    import shutil
    from datetime import timedelta

    import duckdb

    from pipelines.ingest.reference import load_reference_file
    from pipelines.notices.step import inspected_on

    db, summary, _ = small_night
    copy = tmp_path / "w.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    draw_id = summary["draw"]["draw_id"]
    (drawn_on,) = con.execute("SELECT as_of FROM draws WHERE draw_id = ?", [draw_id]).fetchall()[0]
    sampled = con.execute(
        "SELECT fixmedins_code, any_value(setl_id) FROM claim_samples WHERE draw_id = ? GROUP BY ALL ORDER BY 1",
        [draw_id],
    ).fetchall()
    (a, a_visit), (b, b_visit) = sampled[:2]
    (outside,) = con.execute(
        "SELECT setl_id FROM setl WHERE fixmedins_code = ? AND setl_id NOT IN "
        "(SELECT setl_id FROM claim_samples WHERE draw_id = ? AND fixmedins_code = ?) LIMIT 1",
        [b, draw_id, b],
    ).fetchall()[0]
    rows = [
        (a, a_visit, drawn_on + timedelta(days=10)),  # checked under this draw
        (b, b_visit, drawn_on - timedelta(days=5)),  # an earlier check, by another group
        (b, outside, drawn_on + timedelta(days=12)),  # a visit outside this draw's sample
    ]
    path = tmp_path / "audit_outcomes.csv"
    path.write_text(
        "fixmedins_code,setl_id,audited_on,finding,violation_type,overpaid_amt\n"
        + "".join(f"{c},{s},{d},confirmed,串换项目,10.00\n" for c, s, d in rows),
        encoding="utf-8",
    )
    load_reference_file(con, path, "audit_outcomes", "outcomes")
    assert inspected_on(con, draw_id) == {a: drawn_on + timedelta(days=10)}
    con.close()


def test_a_notice_says_what_institutions_csv_does_not_give_and_the_night_names_its_blanks(
    small_night, tmp_path, capsys
):
    """An institution drawn while on the list and removed from it since (its agreement ended), or listed without
    a legal representative: its notice shows （未登记） in those fields, not its code as its name, and the night
    names the blanks the inspectors must fill in before it is issued."""
    import shutil

    import duckdb

    from pipelines.cli import _print_summary
    from pipelines.notices.step import run_notices

    db, summary, _ = small_night
    copy = tmp_path / "w.duckdb"
    shutil.copy(db, copy)
    gone, partial, *_ = sorted(summary["notices"]["totals"])
    con = duckdb.connect(str(copy))
    con.execute("DELETE FROM ref_institutions WHERE fixmedins_code = ?", [gone])
    con.execute("UPDATE ref_institutions SET legal_rep = NULL WHERE fixmedins_code = ?", [partial])
    as_of = date.fromisoformat(summary["as_of"])
    result = run_notices(con, summary["run_id"], as_of, summary["draw"]["draw_id"], tmp_path / "out")
    con.close()
    assert result["blanks"] == {gone: ["单位名称", "服务协议编号", "法定代表人", "地址"], partial: ["法定代表人"]}
    assert result["notices"] == summary["notices"]["notices"]
    d = Document(tmp_path / "out" / "notices" / f"{gone}.docx")
    unit = {r.cells[0].text: r.cells[1].text for r in d.tables[0].rows}
    assert unit["单位名称"] == "（未登记）" and unit["机构编码"] == gone and unit["地址"] == "（未登记）", unit
    assert "（未登记）" not in docx_text(
        tmp_path / "out" / "notices" / f"{sorted(summary['notices']['totals'])[2]}.docx"
    )
    _print_summary({**summary, "notices": result}, tmp_path / "out", copy)
    printed = capsys.readouterr().out
    assert (
        f"  NOTE notice {partial} has blanks to fill in by hand (not in reference/institutions.csv): 法定代表人\n"
        in printed
    )
