"""Which persons tonight's per-person rules must look at again, and last night's findings for the others.

Every rule of the `lines` scope judges one person's lines in the window and nothing else (the catalogue,
the item pairs and the rules' own parameters aside). A person none of whose rows was loaded since the last
detection or withdrawn by a corrected upload (the loader records whose they were in `withdrawn`), and none
of whose visits entered or left the window since, has the same lines as last night, so last night's
findings of those rules for that person still hold. Only the others are rechecked; on a new day that is a
few per cent of a district's persons instead of all of them.

Detection runs in full instead when there is no earlier detection to build on, or when anything else the
rules read changed (rules, config, catalogue, item pairs, software version: one fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

from detectors.base import FINDING_SCHEMA
from detectors.rules.engine import RULES_PATH, load_rules, scope_of
from pipelines import __version__
from pipelines.detect.window import day_span
from pipelines.warehouse.schema import has_table, ref_table


@dataclass(frozen=True)
class Scope:
    mode: str  # full / incremental
    reason: str  # why, in words for the run summary
    previous: str | None = None  # the detection run whose per-person findings carry over
    persons: int | None = None  # persons rechecked (incremental only)


def fingerprint(con: duckdb.DuckDBPyConnection, cfg: dict) -> str:
    """One hash over everything besides the lines that the per-person rules' findings depend on."""
    h = hashlib.sha256()
    h.update(__version__.encode())
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    h.update(RULES_PATH.read_bytes())
    for name in ("catalog", "item_pairs"):
        if has_table(con, f"ref_{name}"):
            content = con.execute(f"SELECT count(*), sum(hash(t)::HUGEINT) FROM {ref_table(con, name)} t").fetchall()
            h.update(repr(content).encode())
    return h.hexdigest()


def plan(con: duckdb.DuckDBPyConnection, start: date, as_of: date, current: str) -> Scope:
    """Decide full or incremental; for incremental, fill the temp table `w_recheck(psn_no)`."""
    last = con.execute(
        """SELECT d.run_id, d.as_of, d.window_start, d.fingerprint, r.started_at
           FROM detect_state d LEFT JOIN runs r USING (run_id) ORDER BY d.recorded_at DESC LIMIT 1"""
    ).fetchall()
    if not last:
        return Scope("full", "no earlier detection in this warehouse")
    run_id, prev_end, prev_start, prev_print, started = last[0]
    if started is None:
        return Scope("full", "the earlier detection's run is not recorded as completed")
    if prev_print != current:
        return Scope("full", "rules, config, catalogue or item pairs changed since the last detection")
    (new_lo, new_hi), (old_lo, old_hi) = day_span(start, as_of), day_span(prev_start, prev_end)
    in_new = "(setl_time >= $new_lo AND setl_time < $new_hi)"
    in_old = "(setl_time >= $old_lo AND setl_time < $old_hi)"
    # rows loaded by a run that had not started when the last detection ran are new to it (tonight's included)
    fresh = "run_id NOT IN (SELECT run_id FROM runs WHERE started_at <= $started)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE w_recheck AS
        SELECT psn_no FROM (
            SELECT psn_no FROM setl WHERE {fresh} OR ({in_new} <> {in_old})
            UNION
            SELECT s.psn_no FROM fee f JOIN setl s USING (fixmedins_code, setl_id) WHERE f.{fresh}
            UNION
            SELECT psn_no FROM withdrawn WHERE {fresh}
        ) WHERE psn_no IS NOT NULL  -- one NULL would make every `NOT IN w_recheck` unknown
        """,
        {
            "new_lo": new_lo,
            "new_hi": new_hi,
            "old_lo": old_lo,
            "old_hi": old_hi,
            "started": started,
        },
    )
    persons = con.execute("SELECT count(*) FROM w_recheck").fetchall()[0][0]
    return Scope("incremental", "per-person rules rechecked where lines changed", run_id, persons)


def per_person_sources() -> list[str]:
    """The ids of the enabled rules that look at one person's lines at a time, in rules.yaml order."""
    return [r.id for r in load_rules() if r.enabled and scope_of(r) == "lines"]


def carried_findings(con: duckdb.DuckDBPyConnection, scope: Scope) -> pl.DataFrame | None:
    """Last night's per-person rule findings of the persons not rechecked, each visit's in rules.yaml order."""
    if scope.mode != "incremental":
        return None
    sources = per_person_sources()
    cols = ", ".join(FINDING_SCHEMA)
    return (
        con.sql(
            f"""SELECT {cols} FROM findings
                WHERE run_id = $run AND list_contains($sources, source)
                  AND psn_no NOT IN (SELECT psn_no FROM w_recheck)
                ORDER BY fixmedins_code, setl_id, list_position($sources, source)""",
            params={"run": scope.previous, "sources": sources},
        )
        .pl()
        .cast(FINDING_SCHEMA)
    )


def record(con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, start: date, current: str, scope: Scope) -> None:
    con.execute(
        """INSERT INTO detect_state (run_id, as_of, window_start, fingerprint, mode, persons_rechecked, recorded_at)
           VALUES (?, ?, ?, ?, ?, ?, now())""",
        [run_id, as_of, start, current, scope.mode, scope.persons],
    )
