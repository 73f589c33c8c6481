"""The targeting step: the cycle's draw (made once, reused by later nights of the cycle, amended when
new complaints arrive), its claim samples, all kept in the warehouse; the files are written from there.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import polars as pl

from detectors.config import load as load_detector_config
from pipelines import __version__
from pipelines.cases.complaints import open_complaints
from pipelines.cases.step import follow_up_targets
from pipelines.detect.window import day_span, window_start
from pipelines.targeting.claim_sample import COMPLAINT, draw_claim_sample, frame_sha256
from pipelines.targeting.config import load as load_config
from pipelines.targeting.cycle import cycle_of, previous_cycle
from pipelines.targeting.draw import (
    SCHEMAS,
    STREAM_SAMPLE,
    DrawInputs,
    DrawResult,
    amend_draw,
    code_key,
    make_draw,
    sha256_text,
    stream,
    unchanged,
)
from pipelines.targeting.selection import complaints_in
from pipelines.targeting.verify import recorded_draw
from pipelines.warehouse.schema import has_table, insert_frame, ref_table

DRAW_SECTIONS = ("cycle", "selection", "inspectors", "claim_sample")


@dataclass
class DrawRecord:
    draw_id: str
    cycle: str
    version: int
    seed: int
    params_sha256: str
    run_id: str


def _frame(con: duckdb.DuckDBPyConnection, table: str, sql: str, params: list, schema: dict) -> pl.DataFrame:
    if not has_table(con, table):
        return pl.DataFrame(schema=schema)
    return con.sql(sql, params=params).pl().cast(schema).select(list(schema))


def gather_inputs(con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, cfg: dict) -> DrawInputs:
    candidates = con.sql(
        "SELECT fixmedins_code, fixmedins_type, region, risk_score FROM institution_scores WHERE run_id = ?",
        params=[run_id],
    ).pl()
    complaints = open_complaints(con, as_of).cast(SCHEMAS["complaints"]).select(list(SCHEMAS["complaints"]))
    # complaint targets without claims in the window are still visited: give them their type and region
    known = _frame(
        con,
        "ref_institutions",
        "SELECT fixmedins_code, fixmedins_type, region, NULL AS risk_score FROM ref_institutions",
        [],
        SCHEMAS["candidates"],
    )
    extra = known.filter(
        pl.col("fixmedins_code").is_in(complaints["fixmedins_code"].to_list())
        & ~pl.col("fixmedins_code").is_in(candidates["fixmedins_code"].to_list())
    )
    candidates = pl.concat([candidates.cast(SCHEMAS["candidates"]), extra])
    last = previous_cycle(as_of, cfg["cycle"]["length"])
    last_cycle = con.sql(
        """SELECT DISTINCT g.inspector_id, t.fixmedins_code FROM draws d
           JOIN draw_targets t USING (draw_id)
           JOIN draw_groups g ON g.draw_id = t.draw_id AND g.inspection_group = t.inspection_group
           WHERE d.cycle = ? AND d.status = 'current'""",
        params=[last],
    ).pl()
    return DrawInputs(
        candidates=candidates,
        complaints=complaints,
        follow_up=follow_up_targets(con, as_of).cast(SCHEMAS["follow_up"]).select(list(SCHEMAS["follow_up"])),
        inspectors=_frame(
            con, "ref_inspectors", "SELECT inspector_id, region FROM ref_inspectors", [], SCHEMAS["inspectors"]
        ),
        conflicts=_frame(
            con, "ref_conflicts", "SELECT fixmedins_code, inspector_id FROM ref_conflicts", [], SCHEMAS["conflicts"]
        ),
        last_cycle=last_cycle.cast(SCHEMAS["last_cycle"]).select(list(SCHEMAS["last_cycle"])),
    )


def current_draw(con: duckdb.DuckDBPyConnection, cycle: str) -> DrawRecord | None:
    rows = con.execute(
        "SELECT draw_id, cycle, version, seed, params_sha256, run_id FROM draws WHERE cycle = ? AND status = 'current'",
        [cycle],
    ).fetchall()
    return DrawRecord(*rows[0]) if rows else None


def _store(
    con: duckdb.DuckDBPyConnection,
    rec: DrawRecord,
    result: DrawResult,
    as_of: date,
    cfg: dict,
    inputs: DrawInputs,
    based_on: str | None,
) -> None:
    con.execute("UPDATE draws SET status = 'superseded' WHERE cycle = ? AND status = 'current'", [rec.cycle])
    inputs_json = inputs.to_json()
    con.execute(
        "INSERT INTO draws VALUES (?, ?, ?, 'current', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            rec.draw_id,
            rec.cycle,
            rec.version,
            rec.seed,
            as_of,
            rec.run_id,
            datetime.now(),
            __version__,
            rec.params_sha256,
            sha256_text(inputs_json),
            json.dumps({k: cfg[k] for k in DRAW_SECTIONS}, ensure_ascii=False),
            inputs_json,
            based_on,
            json.dumps(result.assignment.unassigned, ensure_ascii=False),
        ],
    )
    a = result.assignment
    targets = result.targets.with_columns(
        draw_id=pl.lit(rec.draw_id),
        inspection_group=pl.col("fixmedins_code").replace_strict(a.target_group, default=None, return_dtype=pl.Int32),
    )
    scores = con.sql(
        "SELECT fixmedins_code, risk_score, flagged_visits, flagged_amount, top_reasons FROM institution_scores "
        "WHERE run_id = ?",
        params=[rec.run_id],
    ).pl()
    insert_frame(con, "draw_targets", targets.join(scores, on="fixmedins_code", how="left"))
    if a.groups:
        members = pl.DataFrame(
            [{"inspection_group": g, "inspector_id": i} for g, ids in sorted(a.groups.items()) for i in ids],
            schema={"inspection_group": pl.Int32, "inspector_id": pl.String},
        )
        named = members.join(
            con.sql(f"SELECT inspector_id, inspector_name, cert_no, region FROM {ref_table(con, 'inspectors')}").pl(),
            on="inspector_id",
            how="left",
        )
        insert_frame(con, "draw_groups", named.with_columns(draw_id=pl.lit(rec.draw_id)))


def _named_by_complaints(con: duckdb.DuckDBPyConnection, as_of: date) -> list[str]:
    """`<fixmedins_code>|<psn_no>` of each person an open complaint names at an institution."""
    ids = open_complaints(con, as_of)["complaint_id"].to_list()
    if not ids:
        return []
    rows = con.execute(
        "SELECT DISTINCT fixmedins_code || '|' || psn_no FROM ref_complaints "
        "WHERE list_contains(?, complaint_id) AND psn_no IS NOT NULL",
        [ids],
    ).fetchall()
    return sorted(r[0] for r in rows)


def _sample_claims(con: duckdb.DuckDBPyConnection, rec: DrawRecord, codes: list[str], as_of: date, cfg: dict) -> int:
    days = load_detector_config()["window"]["days"]
    lo, hi = day_span(window_start(as_of, days), as_of)
    frames = con.sql(
        f"""SELECT s.fixmedins_code, s.setl_id, CAST(s.medfee_sumamt AS DOUBLE) AS amount,
                  CASE WHEN list_contains(?, s.fixmedins_code || '|' || s.psn_no) THEN '{COMPLAINT}'
                       WHEN bool_or(f.result_type = '明确违规') THEN '明确违规'
                       WHEN count(f.setl_id) > 0 THEN '可疑' ELSE '未标记' END AS result_class
           FROM setl s LEFT JOIN findings f
             ON f.run_id = ? AND f.fixmedins_code = s.fixmedins_code AND f.setl_id = s.setl_id
           WHERE list_contains(?, s.fixmedins_code) AND s.setl_time >= ? AND s.setl_time < ?
           GROUP BY s.fixmedins_code, s.setl_id, s.medfee_sumamt, s.psn_no ORDER BY s.fixmedins_code, s.setl_id""",
        params=[_named_by_complaints(con, as_of), rec.run_id, codes, lo, hi],
    ).pl()
    parts = []
    for code in sorted(codes):
        frame = frames.filter(pl.col("fixmedins_code") == code)
        sample = draw_claim_sample(frame, cfg["claim_sample"], stream(rec.seed, STREAM_SAMPLE, code_key(code)))
        parts.append(
            sample.with_columns(
                draw_id=pl.lit(rec.draw_id),
                fixmedins_code=pl.lit(code),
                seed=pl.lit(rec.seed, pl.Int64),
                frame_sha256=pl.lit(frame_sha256(frame)),
                software_version=pl.lit(__version__),
            )
        )
    rows = pl.concat(parts) if parts else pl.DataFrame()
    if rows.height:
        insert_frame(con, "claim_samples", rows)
    return rows.height


def _claims_to_redraw(
    con: duckdb.DuckDBPyConnection, base: DrawRecord, noted: dict[str, str], as_of: date
) -> list[str]:
    """Of the earlier targets a complaint has come about, those whose claims to pull are drawn again so that the
    visits of a person it names are among them: the complaint names someone, and no audit outcome has come back
    for the institution since the draw (an audited sample stays as it was audited)."""
    if not noted:
        return []
    named = {key.split("|", 1)[0] for key in _named_by_complaints(con, as_of)}
    drawn_on = con.execute("SELECT as_of FROM draws WHERE draw_id = ?", [base.draw_id]).fetchall()[0][0]
    audited = set()
    if has_table(con, "ref_audit_outcomes"):
        audited = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT fixmedins_code FROM ref_audit_outcomes WHERE audited_on >= ?", [drawn_on]
            ).fetchall()
        }
    return sorted(code for code in noted if code in named and code not in audited)


def _copy_draw(con: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    for table in ("draw_targets", "draw_groups", "claim_samples"):
        cols = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            if c != "draw_id"
        ]
        con.execute(
            f"INSERT INTO {table} (draw_id, {', '.join(cols)}) SELECT ?, {', '.join(cols)} FROM {table} "
            "WHERE draw_id = ?",
            [new, old],
        )


def _same_params(con: duckdb.DuckDBPyConnection, draw_id: str, params: dict) -> bool:
    """Whether a draw was made with `params`, settings only one of the two versions has left aside: upgrading
    claimwatch mid-cycle must not draw the cycle again. One this version no longer has cannot have made the draw
    differ (`selection.complaint_days` moved to cases.toml); one it added since (`claim_sample.complaint_visits`)
    applies from the next cycle's draw."""
    (stored,) = con.execute("SELECT params FROM draws WHERE draw_id = ?", [draw_id]).fetchall()[0]
    old, now = json.loads(stored), json.loads(json.dumps(params))
    shared = {s: set(old.get(s, {})) & set(keys) for s, keys in now.items()}
    return all({k: old.get(s, {})[k] for k in ks} == {k: now[s][k] for k in ks} for s, ks in shared.items())


def run_targeting(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, seed: int | None, overrides: dict | None = None
) -> dict:
    """Make, reuse or amend the cycle's draw; returns what happened (for the run summary)."""
    cfg = load_config(overrides)
    cycle = cycle_of(as_of, cfg["cycle"]["length"])
    params = {k: cfg[k] for k in DRAW_SECTIONS}
    params_sha = sha256_text(json.dumps(params, sort_keys=True, ensure_ascii=False))
    inputs = gather_inputs(con, run_id, as_of, cfg)
    existing = current_draw(con, cycle)
    if existing is not None and not _has_targets(con, existing.draw_id):
        existing = None  # a draw of nothing (recorded by an earlier version on an empty warehouse) binds nothing
    versions = con.execute("SELECT coalesce(max(version), 0) FROM draws WHERE cycle = ?", [cycle]).fetchall()[0][0]
    same = existing is not None and (
        existing.params_sha256 == params_sha or _same_params(con, existing.draw_id, params)
    )
    noted: dict[str, list[str]] = {}  # listed targets a complaint has come about since the draw -> complaint ids
    redrawn: list[str] = []  # those of them whose claims to pull were drawn again
    moved: dict[str, int | None] = {}  # targets given another group (回避 declared since the draw) -> new group
    refilled: dict[int, list[str]] = {}  # group -> inspectors drawn into it for members who left the list
    # ([] for a group that could not be made whole, its institutions given other groups)
    formed: dict[int, list[str]] = {}  # groups drawn afresh for a draw with no whole group
    assigned: dict[str, int] = {}  # targets without a group given one
    if existing and (seed is None or seed == existing.seed) and same:
        # the draw as `draws --verify` reads it back, so the amendment is made from what its replay will see
        base_targets, groups = recorded_draw(con, existing.draw_id)
        result = amend_draw(inputs, cfg, existing.seed, versions + 1, base_targets, groups)
        if unchanged(result, groups):
            status, rec = "reused", existing
        else:
            status = "amended"
            rec = DrawRecord(f"{cycle}-v{versions + 1}", cycle, versions + 1, existing.seed, params_sha, run_id)
            _copy_draw(con, existing.draw_id, rec.draw_id)
            if result.groups != groups:  # a member left the inspectors' list, or groups were formed
                con.execute("DELETE FROM draw_groups WHERE draw_id = ?", [rec.draw_id])
                now = result.assignment.groups = result.groups or {}
                refilled = {g: sorted(set(m) - set(groups[g])) for g, m in now.items() if g in groups}
                refilled = {g: m for g, m in refilled.items() if m} | {g: [] for g in groups if g not in now}
                formed = {g: m for g, m in now.items() if g not in groups}
            else:
                result.assignment.groups = {}  # carried over with the copy
            moved = {code: result.assignment.target_group.get(code) for code in result.moved}
            assigned = {code: result.assignment.target_group[code] for code in result.assigned}
            for code, group in (moved | assigned).items():  # no group when none is free of 回避 (see `unassigned`)
                con.execute(
                    "UPDATE draw_targets SET inspection_group = ? WHERE draw_id = ? AND fixmedins_code = ?",
                    [group, rec.draw_id, code],
                )
            for code, detail in result.noted.items():
                con.execute(
                    "UPDATE draw_targets SET selection_detail = ? WHERE draw_id = ? AND fixmedins_code = ?",
                    [detail, rec.draw_id, code],
                )
            redrawn = _claims_to_redraw(con, existing, result.noted, as_of)
            base_details = dict(base_targets.select("fixmedins_code", "selection_detail").iter_rows())
            noted = {code: complaints_in(d, base_details[code]) for code, d in result.noted.items()}
            con.execute(
                "DELETE FROM claim_samples WHERE draw_id = ? AND list_contains(?, fixmedins_code)",
                [rec.draw_id, redrawn],
            )
            _store(con, rec, result, as_of, cfg, inputs, based_on=existing.draw_id)
            _sample_claims(con, rec, result.targets["fixmedins_code"].to_list() + redrawn, as_of, cfg)
    else:
        status = "new"
        chosen = seed if seed is not None else secrets.randbelow(2**31)
        rec = DrawRecord(f"{cycle}-v{versions + 1}", cycle, versions + 1, chosen, params_sha, run_id)
        result = make_draw(inputs, cfg, rec.seed)
        if result.targets.is_empty() and existing is None:
            rec = None  # nothing to draw from: nothing recorded
        else:
            _store(con, rec, result, as_of, cfg, inputs, based_on=existing.draw_id if existing else None)
            _sample_claims(con, rec, result.targets["fixmedins_code"].to_list(), as_of, cfg)
    summary = draw_summary(con, rec.draw_id, status) if rec else no_draw(cycle)
    return summary | {
        "regrouped": moved,
        "refilled": refilled,
        "formed": formed,
        "assigned": assigned,
        "complaints_added": noted,
        "claims_redrawn": redrawn,
    }


def _has_targets(con: duckdb.DuckDBPyConnection, draw_id: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM draw_targets WHERE draw_id = ?", [draw_id]).fetchall()[0][0])


def no_draw(cycle: str) -> dict:
    """The summary of a night with nothing to draw from (no institution with visits in the window, no open
    complaint, no follow-up): nothing is recorded, so the cycle's draw is made on the first night that has some."""
    return {
        "cycle": cycle,
        "draw_id": None,
        "status": "none",
        "drawn_at": None,
        "seed": None,
        "targets": 0,
        "by_reason": {},
        "groups": 0,
        "unassigned": {},
        "claims_sampled": 0,
        "claims_spare": 0,
    }


def draw_summary(con: duckdb.DuckDBPyConnection, draw_id: str, status: str) -> dict:
    cycle, seed, unassigned, drawn_at = con.execute(
        "SELECT cycle, seed, unassigned, drawn_at FROM draws WHERE draw_id = ?", [draw_id]
    ).fetchall()[0]
    reasons = dict(
        con.execute(
            "SELECT selection_reason, count(*) FROM draw_targets WHERE draw_id = ? GROUP BY ALL", [draw_id]
        ).fetchall()
    )
    groups = con.execute(
        "SELECT count(DISTINCT inspection_group) FROM draw_groups WHERE draw_id = ?", [draw_id]
    ).fetchall()[0][0]
    samples = con.execute(
        "SELECT count(*) FILTER (role = '抽样'), count(*) FILTER (role = '备用') FROM claim_samples WHERE draw_id = ?",
        [draw_id],
    ).fetchall()[0]
    return {
        "cycle": cycle,
        "draw_id": draw_id,
        "status": status,
        "drawn_at": drawn_at.isoformat(timespec="seconds"),
        "seed": seed,
        "targets": sum(reasons.values()),
        "by_reason": reasons,
        "groups": groups,
        "unassigned": json.loads(unassigned),
        "claims_sampled": samples[0],
        "claims_spare": samples[1],
    }
