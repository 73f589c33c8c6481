"""How the shipped `notice.docx` was made (run once: `python reports/templates/make_notice_template.py`).

The bureau edits `notice.docx` in Word: wording, layout, fonts, the seal block. The `{{ … }}` fields and
`{%tr for … %}` table rows are filled by claimwatch (docxtpl / Jinja2); keep their names when editing.
Field names are listed in `pipelines/notices/compose.py`.
"""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

BODY_FONT, TITLE_FONT = "仿宋", "黑体"


def _font(run, name: str, size: float, bold: bool = False) -> None:
    run.font.name = name
    run.font.size = Pt(size)
    run.font.bold = bold
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), name)


def para(doc, text: str = "", size: float = 12, bold: bool = False, align=None, indent: bool = False, font=BODY_FONT):
    p = doc.add_paragraph()
    if align is not None:
        p.alignment = align
    if indent:
        p.paragraph_format.first_line_indent = Pt(size * 2)
    p.paragraph_format.space_after = Pt(3)
    _font(p.add_run(text), font, size, bold)
    return p


def table(doc, headers: list[str], row: list[str], widths: list[float], loop: str | None = None, size: float = 10.5):
    """A table with a header row and one templated row (repeated by `{%tr for %}` when `loop` is given)."""
    blank = [""] * (len(headers) - 1)
    rows = [headers, [f"{{%tr for {loop} %}}", *blank], row, ["{%tr endfor %}", *blank]] if loop else [headers, row]
    t = doc.add_table(rows=len(rows), cols=len(headers))
    t.style = "Table Grid"
    t.alignment = WD_TABLE_ALIGNMENT.CENTER
    for r, values in enumerate(rows):
        for c, text in enumerate(values):
            p = t.cell(r, c).paragraphs[0]
            _font(p.add_run(text), BODY_FONT, size, bold=(r == 0))
    fix_widths(t, widths)
    return t


def kv_table(doc, pairs: list[tuple[str, str]], widths: list[float], size: float) -> None:
    """A two-column label/value table (the institution block, the receipt)."""
    t = doc.add_table(rows=len(pairs), cols=2)
    t.style = "Table Grid"
    for r, (k, v) in enumerate(pairs):
        _font(t.cell(r, 0).paragraphs[0].add_run(k), BODY_FONT, size, True)
        _font(t.cell(r, 1).paragraphs[0].add_run(v), BODY_FONT, size)
    fix_widths(t, widths)


def fix_widths(t, widths: list[float]) -> None:
    """Column widths Word and LibreOffice both keep: fixed layout, grid and every cell."""
    t.autofit = False
    for c, w in enumerate(widths):
        t.columns[c].width = Cm(w)
        for cell in t.columns[c].cells:
            cell.width = Cm(w)


def build(path: Path) -> None:
    doc = Document()
    sec = doc.sections[0]
    sec.page_height, sec.page_width = Cm(29.7), Cm(21.0)
    sec.top_margin = sec.bottom_margin = Cm(2.5)
    sec.left_margin = sec.right_margin = Cm(2.4)
    normal = doc.styles["Normal"]
    normal.font.name = BODY_FONT
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), BODY_FONT)

    para(doc, "{{ issuer }}", 14, True, WD_ALIGN_PARAGRAPH.CENTER, font=TITLE_FONT)
    para(doc, "现场监督检查违约通知单", 20, True, WD_ALIGN_PARAGRAPH.CENTER, font=TITLE_FONT)
    para(doc, "{{ doc_no }}", 12, align=WD_ALIGN_PARAGRAPH.RIGHT)
    para(doc, "（草稿，经检查人员核实、签字并加盖印章后生效）", 10.5, align=WD_ALIGN_PARAGRAPH.CENTER)

    para(doc, "一、被检查单位", 14, True, font=TITLE_FONT)
    kv_table(
        doc,
        [
            ("单位名称", "{{ name }}"),
            ("机构编码", "{{ code }}"),
            ("地址", "{{ address }}"),
            ("法定代表人（负责人）", "{{ legal_rep }}"),
            ("服务协议", "{{ agreement }}（协议编号：{{ agreement_no }}）"),
            ("机构类别", "{{ kind }}"),
        ],
        [4.2, 12],
        10.5,
    )

    para(doc, "二、检查情况", 14, True, font=TITLE_FONT)
    para(doc, "检查日期：{{ inspection_date }}　　检查依据：{{ agreement }}及{{ regulation }}", indent=True)
    para(doc, "检查人员：{{ inspectors }}", indent=True)
    para(
        doc,
        "根据医疗保障基金监管工作安排（抽检编号 {{ draw_id }}，入选原因：{{ selection }}），经对你单位"
        "{{ period }}期间的医保结算数据进行智能审核并结合现场检查，发现你单位存在以下违反服务协议约定的行为：",
        indent=True,
    )

    para(doc, "三、违约事实", 14, True, font=TITLE_FONT)
    table(
        doc,
        ["序号", "违约情形", "人次", "涉及金额（元）", "认定方式", "示例结算（结算ID、日期）"],
        [
            "{{ f.no }}",
            "{{ f.name }}",
            "{{ f.visits }}",
            "{{ f.amount }}",
            "{{ f.established_by }}",
            "{{ f.examples }}",
        ],
        [1.0, 2.6, 1.5, 3.0, 2.0, 6.1],
        loop="f in facts",
    )
    para(
        doc,
        "以上合计 {{ total_visits }} 人次，涉及医保基金 {{ total_amount }} 元（大写：{{ total_amount_zh }}）。"
        "每一笔明细见附件《违约事实明细表》及电子明细表《{{ code }}_evidence.xlsx》，同一结算涉及多项情形的分别列示。",
        indent=True,
    )

    para(doc, "四、认定依据", 14, True, font=TITLE_FONT)
    table(
        doc,
        ["违约情形", "服务协议条款", "法规依据"],
        ["{{ b.name }}", "{{ b.clause }}", "{{ b.basis }}"],
        [3.6, 7.2, 5.6],
        loop="b in basis",
    )

    para(doc, "五、处理意见", 14, True, font=TITLE_FONT)
    para(doc, "依据{{ agreement }}及本机构违约处理裁量基准（违约金额{{ tier_text }}），拟作如下处理：", indent=True)
    para(doc, "{%p for m in measures %}", 12)
    para(doc, "{{ loop.index }}. {{ m }}", indent=True)
    para(doc, "{%p endfor %}", 12)
    para(
        doc,
        "应退回医保基金 {{ total_amount }} 元{% if penalty_amount %}，支付违约金 {{ penalty_amount }} 元"
        "{% endif %}，合计 {{ repay_amount }} 元，请于收到本通知之日起 {{ repay_days }} 日内退回至{{ fund_account }}。",
        indent=True,
    )
    para(
        doc,
        "{% if referred %}鉴于{{ referral_reason }}，本案拟移交{{ supervisor }}依法处理。"
        "{% else %}本案暂不移交。{% endif %}",
        indent=True,
    )

    para(doc, "六、整改与陈述申辩", 14, True, font=TITLE_FONT)
    para(
        doc,
        "请你单位自收到本通知之日起 {{ rectify_days }} 日内完成整改，并向本机构书面报送整改报告（含问题清单、"
        "整改措施、责任人及完成时限）。逾期未整改或整改不到位的，将纳入下一周期重点检查。",
        indent=True,
    )
    para(
        doc,
        "你单位对上述事实和处理意见有异议的，可自收到本通知之日起 {{ objection_days }} 日内向本机构提出书面陈述、"
        "申辩，并提交相关证据材料；逾期未提出的，视为放弃陈述申辩权利。{{ appeal }}",
        indent=True,
    )
    para(doc, "联系方式：{{ contact }}", indent=True)

    para(doc, "")
    para(doc, "检查人员（签字）：＿＿＿＿＿＿　＿＿＿＿＿＿　　执法证号：{{ cert_numbers }}")
    para(doc, "被检查单位负责人（签字）：＿＿＿＿＿＿　　　　日期：　　　年　　月　　日")
    para(doc, "{{ issuer }}（盖章）", align=WD_ALIGN_PARAGRAPH.RIGHT)
    para(doc, "{{ draft_date }}", align=WD_ALIGN_PARAGRAPH.RIGHT)
    para(doc, "附件：违约事实明细表（共 {{ evidence_rows }} 条，合计 {{ total_amount }} 元）")

    # 送达回证 (receipt) on its own page
    doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    para(doc, "送 达 回 证", 20, True, WD_ALIGN_PARAGRAPH.CENTER, font=TITLE_FONT)
    kv_table(
        doc,
        [
            ("送达文书名称及文号", "现场监督检查违约通知单 {{ doc_no }}"),
            ("受送达单位", "{{ name }}（{{ code }}）"),
            ("送达地点", "{{ address }}"),
            ("送达方式", "□直接送达　□邮寄送达　□电子送达　□留置送达"),
            ("受送达人（签字或盖章）", "\n\n　　　　　　　　　　　　　　　年　　月　　日"),
            (
                "拒收情况记录",
                "受送达人拒绝签收的，由送达人记明拒收事由和日期：\n\n见证人（签字）：＿＿＿＿＿＿　　　年　　月　　日",
            ),
            ("送达人（签字）", "\n　　　　　　　　　　　　　　　年　　月　　日"),
            ("备注", ""),
        ],
        [4.5, 11.7],
        12,
    )

    # appendix: the evidence lines (all of them, or the largest when there are many; the workbook has all), on
    # landscape pages: eight columns of ids, dates and reasons do not fit the width of a portrait page
    wide = doc.add_section(WD_SECTION.NEW_PAGE)
    wide.orientation = WD_ORIENT.LANDSCAPE
    wide.page_width, wide.page_height = Cm(29.7), Cm(21.0)
    para(doc, "附件　违约事实明细表", 14, True, WD_ALIGN_PARAGRAPH.CENTER, font=TITLE_FONT)
    para(doc, "{{ name }}（{{ code }}）　{{ doc_no }}", 10.5, align=WD_ALIGN_PARAGRAPH.CENTER)
    table(
        doc,
        ["序号", "违约情形", "结算ID", "日期", "人员编号", "姓名", "金额（元）", "说明"],
        [
            "{{ e.no }}",
            "{{ e.name }}",
            "{{ e.setl_id }}",
            "{{ e.date }}",
            "{{ e.psn_no }}",
            "{{ e.psn_name }}",
            "{{ e.amount }}",
            "{{ e.reason }}",
        ],
        [1.3, 2.4, 4.1, 2.4, 4.4, 1.3, 2.1, 6.9],
        loop="e in appendix",
        size=9,
    )
    para(doc, "合计：{{ evidence_rows }} 条，{{ total_amount }} 元。{{ appendix_note }}", 10.5)
    doc.save(path)


if __name__ == "__main__":
    build(Path(__file__).with_name("notice.docx"))
