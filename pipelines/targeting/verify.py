"""Replay a recorded draw from the inputs, parameters and seed stored with it, and compare with what was
recorded: anyone can show that a cycle's list and groups came from the draw, not from a choice."""

from __future__ import annotations

import json
from dataclasses import replace

import duckdb
import polars as pl

from pipelines.targeting.config import load as load_config
from pipelines.targeting.draw import DrawInputs, DrawResult, amend_draw, amended_targets, make_draw, sha256_text
from pipelines.targeting.selection import complaints_in


def recorded_draw(con: duckdb.DuckDBPyConnection, draw_id: str) -> tuple[pl.DataFrame, dict[int, list[str]]]:
    targets = con.sql(
        "SELECT rank, fixmedins_code, selection_reason, selection_detail, inspection_group FROM draw_targets "
        "WHERE draw_id = ? ORDER BY rank",
        params=[draw_id],
    ).pl()
    groups: dict[int, list[str]] = {}
    for g, i in con.execute(
        "SELECT inspection_group, inspector_id FROM draw_groups WHERE draw_id = ? ORDER BY ALL", [draw_id]
    ).fetchall():
        groups.setdefault(g, []).append(i)
    return targets, groups


def _as_rows(result: DrawResult) -> pl.DataFrame:
    return result.targets.with_columns(
        inspection_group=pl.col("fixmedins_code").replace_strict(
            result.assignment.target_group, default=None, return_dtype=pl.Int32
        )
    )


def amendment(con: duckdb.DuckDBPyConnection, draw_id: str) -> str | None:
    """What an amended draw changed in the draw it amends (institutions added, members drawn into or out of a
    group, institutions given another group), for anyone reading the record; None for a draw of its own."""
    row = con.execute(
        "SELECT a.based_on FROM draws a JOIN draws b ON b.draw_id = a.based_on AND b.seed = a.seed WHERE a.draw_id = ?",
        [draw_id],
    ).fetchall()
    if not row:
        return None
    based_on = row[0][0]
    (t0, g0), (t1, g1) = recorded_draw(con, based_on), recorded_draw(con, draw_id)
    before = dict(t0.select("fixmedins_code", "inspection_group").iter_rows())
    changes = [f"+{code}" for code in t1["fixmedins_code"] if code not in before]
    for g in sorted(set(g0) | set(g1)):
        out, into = sorted(set(g0.get(g, [])) - set(g1.get(g, []))), sorted(set(g1.get(g, [])) - set(g0.get(g, [])))
        if g not in g1:
            changes.append(f"group {g} dissolved")
        elif g not in g0:
            changes.append(f"group {g} formed: {','.join(into)}")
        elif out or into:
            changes.append(f"group {g}: {','.join(out) or '-'} -> {','.join(into) or '-'}")
    details = dict(t0.select("fixmedins_code", "selection_detail").iter_rows())
    for code, detail in t1.select("fixmedins_code", "selection_detail").iter_rows():
        if code in details and (ids := complaints_in(detail, details[code])):
            changes.append(f"{code}: complaint {', '.join(ids)} added")
    for code, g in t1.select("fixmedins_code", "inspection_group").iter_rows():
        if code in before and before[code] != g:
            if before[code] is None:
                changes.append(f"{code}: unassigned -> group {g}")
            else:
                changes.append(f"{code}: group {before[code]} -> {g if g is not None else 'unassigned'}")
    return f"amends {based_on}: " + ("; ".join(changes) or "no change")


def verify_draw(con: duckdb.DuckDBPyConnection, draw_id: str) -> list[str]:
    """What differs between the recorded draw and its replay (empty when it replays exactly)."""
    row = con.execute(
        "SELECT seed, version, params, inputs, inputs_sha256, based_on FROM draws WHERE draw_id = ?", [draw_id]
    ).fetchall()
    if not row:
        return [f"no draw {draw_id}"]
    seed, version, params, inputs_json, inputs_sha, based_on = row[0]
    problems = []
    if sha256_text(inputs_json) != inputs_sha:
        problems.append("stored inputs do not match their fingerprint")
    cfg = {**load_config(), **json.loads(params)}
    inputs = DrawInputs.from_json(inputs_json)
    targets, groups = recorded_draw(con, draw_id)
    amended = based_on is not None and con.execute(
        "SELECT seed = ? FROM draws WHERE draw_id = ?", [seed, based_on]
    ).fetchall() == [(True,)]
    if amended:
        base_targets, base_groups = recorded_draw(con, based_on)
        result = amend_draw(inputs, cfg, seed, version, base_targets, base_groups)
        replay = amended_targets(base_targets, result)
        if result.noted and not replay.cast(targets.schema).equals(targets):
            # recorded before an amendment put a complaint on the row of a target it names: replay it as made then
            replay = amended_targets(base_targets, replace(result, noted={}))
        replay_groups = result.groups if result.groups is not None else base_groups  # {}: every group dissolved
    else:
        result = make_draw(inputs, cfg, seed)
        replay, replay_groups = _as_rows(result), result.assignment.groups
    if not replay.cast(targets.schema).equals(targets):
        problems.append("the selected institutions or their groups differ from the replay")
    if {g: sorted(m) for g, m in replay_groups.items()} != {g: sorted(m) for g, m in groups.items()}:
        problems.append("the inspection groups differ from the replay")
    return problems
