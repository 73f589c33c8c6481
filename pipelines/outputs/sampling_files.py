"""The inspectors' files of a draw (SPEC §3): `sampling_list.xlsx` / `.csv` and `claim_samples.csv`.

Written from the warehouse's draw tables, so a night that reuses the cycle's draw writes the same files.
Patients appear only by `psn_no` and masked name.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from pipelines.outputs.safe_text import masked_name, write_csv
from pipelines.outputs.xlsx import Workbook
from pipelines.targeting.selection import NO_DRAW_ZH, REASON_ZH
from pipelines.warehouse.schema import ref_table

LIST_ZH = {
    "rank": "序号",
    "fixmedins_code": "机构编码",
    "fixmedins_name": "机构名称",
    "fixmedins_kind": "类别",
    "region": "片区",
    "risk_score": "风险评分",
    "selection_reason_zh": "入选原因",
    "selection_detail": "入选说明",
    "inspection_group": "检查组",
    "inspectors": "检查人员",
    "flagged_visits": "疑点人次",
    "flagged_amount": "疑点金额(元)",
    "top_reasons": "主要疑点",
}
SAMPLE_ZH = {
    "fixmedins_code": "机构编码",
    "fixmedins_name": "机构名称",
    "role": "用途",
    "stratum": "层",
    "draw_order": "抽取顺序",
    "setl_id": "结算ID",
    "setl_time": "结算时间",
    "med_type": "医疗类别",
    "psn_no": "人员编号",
    "psn_name_masked": "姓名",
    "amount": "医疗费总额(元)",
    "flags": "疑点",
    "weight": "权重",
}


def sampling_list(con: duckdb.DuckDBPyConnection, draw_id: str) -> pl.DataFrame:
    inst = ref_table(con, "institutions")
    return con.sql(
        f"""WITH g AS (
              SELECT inspection_group, string_agg(inspector_name || '(' || cert_no || ')', '; '
                     ORDER BY inspector_id) AS inspectors
              FROM draw_groups WHERE draw_id = ? GROUP BY ALL)
            SELECT t.rank, t.fixmedins_code, i.fixmedins_name, round(t.risk_score, 1) AS risk_score,
                   t.selection_reason, t.inspection_group, g.inspectors,
                   coalesce(t.flagged_visits, 0) AS flagged_visits, coalesce(t.flagged_amount, 0) AS flagged_amount,
                   coalesce(t.top_reasons, '') AS top_reasons, t.selection_detail,
                   CASE i.fixmedins_type WHEN '2' THEN '定点零售药店' WHEN '1' THEN '定点医疗机构' END
                       AS fixmedins_kind,
                   i.region, d.cycle, t.draw_id
            FROM draw_targets t JOIN draws d USING (draw_id) LEFT JOIN g USING (inspection_group)
            LEFT JOIN {inst} i USING (fixmedins_code)
            WHERE t.draw_id = ? ORDER BY t.rank""",
        params=[draw_id, draw_id],
    ).pl()


def claim_samples(con: duckdb.DuckDBPyConnection, draw_id: str | None) -> pl.DataFrame:
    drawn = con.execute("SELECT run_id FROM draws WHERE draw_id = ?", [draw_id]).fetchall()
    d_run = drawn[0][0] if drawn else None  # no draw tonight: no samples
    frame = con.sql(
        """WITH f AS (SELECT fixmedins_code, setl_id,
                             string_agg(DISTINCT source_name, '、' ORDER BY source_name) AS flags
                      FROM findings WHERE run_id = ? GROUP BY ALL)
           SELECT c.fixmedins_code, c.setl_id, c.stratum, round(c.weight, 4) AS weight, c.role, c.draw_order,
                  t.inspection_group, s.psn_no, s.psn_name, s.setl_time, s.med_type,
                  CAST(s.medfee_sumamt AS DOUBLE) AS amount, coalesce(f.flags, '') AS flags
           FROM claim_samples c
           JOIN draw_targets t ON t.draw_id = c.draw_id AND t.fixmedins_code = c.fixmedins_code
           LEFT JOIN setl s ON s.fixmedins_code = c.fixmedins_code AND s.setl_id = c.setl_id
           LEFT JOIN f ON f.fixmedins_code = c.fixmedins_code AND f.setl_id = c.setl_id
           WHERE c.draw_id = ?
           ORDER BY t.rank, c.role DESC, c.stratum, c.draw_order""",
        params=[d_run, draw_id],
    ).pl()
    return frame.with_columns(
        psn_name_masked=masked_name("psn_name"), setl_time=pl.col("setl_time").dt.strftime("%Y-%m-%d %H:%M:%S")
    ).drop("psn_name")


def _zh(frame: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
    return frame.select([pl.col(k).alias(v) for k, v in names.items() if k in frame.columns])


def write_sampling_files(con: duckdb.DuckDBPyConnection, draw_id: str | None, out: Path) -> list[Path]:
    """The draw's files; with no draw (nothing to draw from tonight) the same files with no institution."""
    lst = sampling_list(con, draw_id)
    samples = claim_samples(con, draw_id)
    write_csv(lst, out / "sampling_list.csv")
    write_csv(
        samples.select(
            "fixmedins_code",
            "setl_id",
            "stratum",
            "weight",
            "role",
            "draw_order",
            "inspection_group",
            "psn_no",
            "psn_name_masked",
            "setl_time",
            "med_type",
            "amount",
            "flags",
        ),
        out / "claim_samples.csv",
    )
    path = out / "sampling_list.xlsx"
    if draw_id is None:
        with Workbook(path) as book:
            sheet = book.sheet("抽检名单")
            sheet.title("医保基金现场检查抽检名单")
            sheet.lines([("说明", NO_DRAW_ZH)])
            sheet.table(_zh(lst, LIST_ZH), main=True)
        return [out / "sampling_list.csv", path, out / "claim_samples.csv"]
    draw = con.sql("SELECT * FROM draws WHERE draw_id = ?", params=[draw_id]).pl().row(0, named=True)
    groups = con.sql(
        "SELECT * FROM draw_groups WHERE draw_id = ? ORDER BY inspection_group, inspector_id", params=[draw_id]
    ).pl()
    shown = lst.with_columns(
        selection_reason_zh=pl.col("selection_reason").replace_strict(REASON_ZH, default=pl.col("selection_reason")),
        inspection_group=pl.col("inspection_group").cast(pl.String).fill_null("未分配"),
    )
    unassigned = pl.DataFrame(
        [{"机构编码": k, "原因": v} for k, v in json.loads(draw["unassigned"]).items()],
        schema={"机构编码": pl.String, "原因": pl.String},
    )
    with Workbook(path) as book:
        summary = book.sheet("抽检名单")
        summary.title(f"医保基金现场检查抽检名单 — {draw['cycle']}")
        summary.lines(
            [
                ("抽取编号", draw["draw_id"]),
                ("抽取时间", f"{draw['drawn_at']:%Y-%m-%d %H:%M}"),
                ("随机种子", draw["seed"]),
                ("数据截至", draw["as_of"]),
                ("输入指纹", draw["inputs_sha256"][:16]),
                ("软件版本", draw["software_version"]),
                ("说明", "同一种子与输入可复现本次抽取(claimwatch draws --verify)"),
            ]
        )
        summary.table(_zh(shown, LIST_ZH), main=True)
        if unassigned.height:
            summary.title("未能分配检查组的机构")
            summary.table(unassigned)
        for g, members in groups.partition_by("inspection_group", as_dict=True, maintain_order=True).items():
            ws = book.sheet(f"第{g[0]}组")
            ws.title(f"第{g[0]}检查组 — {draw['cycle']}")
            ws.table(
                members.select(
                    pl.col("inspector_name").alias("检查人员"),
                    pl.col("cert_no").alias("执法证号"),
                    pl.col("region").alias("所属片区"),
                )
            )
            mine = shown.filter(pl.col("inspection_group") == str(g[0]))
            ws.table(_zh(mine, LIST_ZH))
            codes = mine["fixmedins_code"].to_list()
            names = dict(mine.select("fixmedins_code", "fixmedins_name").iter_rows())
            picked = samples.filter(pl.col("fixmedins_code").is_in(codes)).with_columns(
                fixmedins_name=pl.col("fixmedins_code").replace_strict(names, default=None),
            )
            ws.title("现场调取病历清单(用途为“备用”者仅在抽样病历无法调取时依次替补)")
            ws.table(_zh(picked, SAMPLE_ZH))
    return [out / "sampling_list.csv", path, out / "claim_samples.csv"]
