"""For the demo: what the bureau's staff do between two nights — work the cases opened by the first night
through the procedure, and record one institution's accepted rectification (the others stay overdue)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.cases.store import advance, record_rectification
from pipelines.warehouse.session import write_session


def follow_through(db: Path) -> str:
    with write_session(db) as stage:
        con = duckdb.connect(str(stage))
        try:
            ids = [c for (c,) in con.execute("SELECT case_id FROM cases ORDER BY case_id").fetchall()]
            worked = [c for i, c in enumerate(ids) if i % 3 != 2]  # a third of the cases are still waiting at 初审
            for case_id in worked:
                advance(con, case_id, "复审", "稽核科 王明", "初审: 疑点清楚, 转复审")
                advance(con, case_id, "调查核实", "稽核科 王明", "复审: 列入现场核查")
            rects = [r for (r,) in con.execute("SELECT rect_id FROM rectifications ORDER BY rect_id").fetchall()]
            if rects:
                record_rectification(con, rects[0], "report_received", "稽核科 王明", "机构按期报送整改报告")
                record_rectification(con, rects[0], "accepted", "稽核科 王明", "整改到位")
        finally:
            con.close()
    return (
        f"{len(worked)} of {len(ids)} cases worked to 调查核实, "
        f"{min(1, len(rects))} of {len(rects)} rectifications reported and accepted"
    )
