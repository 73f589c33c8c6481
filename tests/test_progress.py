"""A night shows how far it has come on a terminal (every step, the load's batches, detection's slices, the
notices) and says nothing when its output is not a terminal; the summaries it ends with read right."""

from __future__ import annotations

import re
import unicodedata

from pipelines.nightly import STEPS, NightlyParams, run_nightly
from pipelines.progress import Progress, counted, padded


class Recorder(Progress):
    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.lines: list[tuple[str, str]] = []

    def say(self, msg: str) -> None:
        self.lines.append((self._step, msg))


def test_a_night_reports_each_step_and_its_parts(inbox_copy, tmp_path, capsys):
    rec = Recorder()
    summary = run_nightly(NightlyParams(inbox_copy, tmp_path / "w.duckdb", tmp_path / "out", seed=7), progress=rec)
    assert capsys.readouterr().err == ""  # not on a terminal: nothing but the caller's own summary
    said: dict[str, list[str]] = {}
    for step, msg in rec.lines:
        said.setdefault(step, []).append(msg)
    assert list(said) == [name for name, _ in STEPS]

    assert said["ingest"][1] == "looking for new and corrected uploads"
    f = summary["files"]
    unnamed = sum(r["reason"].startswith(("bad_file_name", "not_a_file")) for r in f["rejected"])
    to_read = f["seen"] - f["unchanged"] - unnamed
    assert said["ingest"][2] == f"{to_read} new or corrected files of {f['seen']} to read, in 2 batches"
    written = [m for m in said["ingest"] if "written" in m]
    batch = r"batch \d+/\d+, (setl|fee): [\d,]+ rows from \d+ files written"
    assert written and all(re.match(batch, m) for m in written)
    tonight = [re.search(r"\(([\d,]+) fee rows tonight\)", m) for m in written if "fee:" in m]
    fee_so_far = [int(m[1].replace(",", "")) for m in tonight]
    assert fee_so_far == sorted(fee_so_far) and fee_so_far[-1] > 0

    detect = said["detect"]
    assert detect[1:2] == ["which persons' lines changed since the last detection"]
    assert detect[2].startswith("reading the window ")
    assert any(m.startswith("high_cost over ") for m in detect)
    assert any(re.match(r"rules over the persons' lines, slice 1/\d+ \([\d,]+ lines in all\)", m) for m in detect)
    assert detect[-1].startswith("storing ")

    notices = said["notices"]
    drafted = [m for m in notices if m.startswith("drafting notice ")]
    assert drafted and drafted[0].startswith("drafting notice 1 (of up to ")
    assert notices[-1].startswith("waiting for LibreOffice to turn ")


def test_progress_rewrites_one_terminal_line_and_clears_it(capsys):
    p = Progress(enabled=True)
    p.step("detect")
    p.say("rules over the persons' lines, slice 2/10")
    p.done()
    err = capsys.readouterr().err
    line = r"\r\x1b\[K\[ *\d+\.\ds\] detect: "
    assert re.fullmatch(f"{line}…{line}rules over the persons' lines, slice 2/10\\r\\x1b\\[K", err)


def test_counts_take_the_number_of_their_noun():
    assert counted(1, "institution") == "1 institution"
    assert counted(0, "institution") == "0 institutions"
    assert counted(12_943, "batch", "batches") == "12,943 batches"


def test_padded_lines_up_chinese_and_latin_text_by_terminal_columns():
    rows = [padded(s, 10) + "|" for s in ("初审", "调查核实", "closed", "")]
    widths = {sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in r) for r in rows}
    assert widths == {11} and rows[0] == "初审      |"
    assert padded("超过十个字符宽的文字", 4) == "超过十个字符宽的文字"  # never cut


def _night_summary(**parts) -> dict:
    """The least a night's summary holds, with `parts` (draw, notices …) added."""
    return {
        "run_id": "r",
        "as_of": "2026-12-05",
        "timings_s": {"ingest": 1.0},
        "files": {"seen": 1, "loaded": 1, "unchanged": 0, "rejected": []},
        "rows": {},
        "outputs": {"folder": "out"},
        **parts,
    }


def test_the_prefect_summary_says_how_an_amended_draw_changed_its_groups():
    from pipelines.flows.artifacts import summary_markdown

    summary = _night_summary(
        draw={
            "draw_id": "2026-12-v2",
            "status": "amended",
            "targets": 13,
            "groups": 5,
            "unassigned": {},
            "refilled": {3: ["JC007"], 4: []},
            "regrouped": {"H13030200001": 1, "H13030200009": None},
        },
    )
    md = summary_markdown(summary)
    assert "本周期抽取已调整" in md
    assert "| 检查组调整(回避、人员变动) | 第3组补抽 JC007; 第4组撤销; H13030200001 改派第1组 |" in md
    summary["draw"] |= {"refilled": {}, "regrouped": {}, "formed": {1: ["JC001", "JC004"]}, "assigned": {"P001": 1}}
    assert "| 检查组调整(回避、人员变动) | 组建第1组 JC001、JC004; P001 分配第1组 |" in summary_markdown(summary)
    summary["files"] |= {"newest_upload": "2026-10-31", "behind": [{"fixmedins_code": "H1", "days_behind": 12}]}
    md = summary_markdown(summary)
    assert "| **数据不全** | 全区最新上传 2026-10-31, 比数据截至日早 35 天 |" in md
    assert "| **上传滞后的机构** | H1(滞后12天) |" in md
    summary["draw"] = {"cycle": "2026-12", "draw_id": None, "status": "none"}
    assert "| 抽检 2026-12 | 本晚未抽取: 审核窗口内没有就诊, 也没有待查的举报; " in summary_markdown(summary)


def test_the_prefect_summary_names_the_notices_proposed_for_referral():
    from pipelines.flows.artifacts import summary_markdown

    summary = _night_summary(notices={"notices": 3, "pdf": 3, "referred": ["H13030200004", "P13030200002"]})
    assert "| 拟移交(涉嫌欺诈骗保或金额达标) | H13030200004, P13030200002 |" in summary_markdown(summary)
    summary["notices"]["referred"] = []
    assert "拟移交" not in summary_markdown(summary)
