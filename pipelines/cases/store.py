"""Cases and rectifications in the warehouse: open (idempotently), advance (checked, append-only), read."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl

from pipelines.cases.lifecycle import CHECKED, RECT_EVENTS, START, TERMINAL, check, check_rectification
from pipelines.targeting.config import load as targeting_config
from pipelines.targeting.cycle import cycle_of

STATUS_SQL = """
    SELECT c.*, e.to_status AS status, e.event_at AS status_at, e.actor AS status_by, e.note AS status_note
    FROM cases c
    JOIN (SELECT * FROM case_events QUALIFY row_number() OVER (PARTITION BY case_id ORDER BY seq DESC) = 1) e
      USING (case_id)
"""
RECT_SQL = """
    SELECT r.*, coalesce(e.event, 'open') AS status, e.event_at AS status_at, e.actor AS status_by,
           e.note AS status_note
    FROM rectifications r
    LEFT JOIN (SELECT * FROM rectification_events
               QUALIFY row_number() OVER (PARTITION BY rect_id ORDER BY event_at DESC, rowid DESC) = 1) e
      USING (rect_id)
"""


class UnknownCase(KeyError):
    pass


def open_case(
    con: duckdb.DuckDBPyConnection,
    case_id: str,
    kind: str,
    code: str,
    title: str,
    source_ref: str,
    draw_id: str | None,
    amount: float | None,
    opened_on: date,
    due_on: date | None,
    run_id: str,
) -> bool:
    """Open a case at 初审 unless it exists; True when it was opened now."""
    if con.execute("SELECT count(*) FROM cases WHERE case_id = ?", [case_id]).fetchall()[0][0]:
        return False
    con.execute(
        "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [case_id, kind, code, title, source_ref, draw_id, amount, opened_on, due_on, run_id],
    )
    con.execute(
        "INSERT INTO case_events VALUES (?, 1, ?, 'claimwatch', NULL, ?, ?)",
        [case_id, datetime.now(), START, f"由夜间运行 {run_id} 立为线索"],
    )
    return True


def status_of(con: duckdb.DuckDBPyConnection, case_id: str) -> str:
    rows = con.execute(
        "SELECT to_status FROM case_events WHERE case_id = ? ORDER BY seq DESC LIMIT 1", [case_id]
    ).fetchall()
    if not rows:
        raise UnknownCase(f"no case {case_id}")
    return rows[0][0]


def advance(con: duckdb.DuckDBPyConnection, case_id: str, to: str, actor: str, note: str) -> str:
    """Move a case to `to` if the procedure allows it; the event records who, when and why."""
    if not actor.strip() or not note.strip():
        raise ValueError("say who advances the case (--by) and why (--note)")
    current = status_of(con, case_id)
    check(current, to)
    seq = con.execute("SELECT max(seq) + 1 FROM case_events WHERE case_id = ?", [case_id]).fetchall()[0][0]
    con.execute(
        "INSERT INTO case_events VALUES (?, ?, ?, ?, ?, ?, ?)", [case_id, seq, datetime.now(), actor, current, to, note]
    )
    return current


def cases(con: duckdb.DuckDBPyConnection, as_of: date) -> pl.DataFrame:
    """Every case with its status, whether it is closed, and whether it is overdue on `as_of`."""
    frame = con.sql(STATUS_SQL).pl()
    return frame.with_columns(
        closed=pl.col("status").is_in(list(TERMINAL)),
        overdue=pl.col("due_on").is_not_null()
        & (pl.col("due_on") < as_of)
        & ~pl.col("status").is_in(list(CHECKED) + list(TERMINAL)),
    ).sort("case_id")


def open_rectification(
    con: duckdb.DuckDBPyConnection,
    rect_id: str,
    case_id: str,
    code: str,
    doc_no: str,
    opened: date,
    due: date,
    run_id: str,
) -> bool:
    if con.execute("SELECT count(*) FROM rectifications WHERE rect_id = ?", [rect_id]).fetchall()[0][0]:
        return False
    con.execute(
        "INSERT INTO rectifications VALUES (?, ?, ?, ?, ?, ?, ?)", [rect_id, case_id, code, doc_no, opened, due, run_id]
    )
    return True


def record_rectification(con: duckdb.DuckDBPyConnection, rect_id: str, event: str, actor: str, note: str) -> str:
    """Record `event` on an item if its state allows it (cases.toml `[rectification]`); returns the state before."""
    if event not in RECT_EVENTS:
        raise ValueError(f"a rectification event is {', '.join(RECT_EVENTS)}")
    if not actor.strip():
        raise ValueError("say who records it (--by)")
    if event == "failed" and not note.strip():
        raise ValueError("say why the rectification failed (--note): the next cycle's notice follows it up")
    rows = con.execute(f"SELECT status FROM ({RECT_SQL}) WHERE rect_id = ?", [rect_id]).fetchall()
    if not rows:
        raise UnknownCase(f"no rectification item {rect_id}")
    check_rectification(rows[0][0], event)
    con.execute(
        "INSERT INTO rectification_events VALUES (?, ?, ?, ?, ?)", [rect_id, datetime.now(), actor, event, note]
    )
    return rows[0][0]


# the first later cycle whose draw, made after the item lapsed (its deadline passed, or it failed), sent
# inspectors to the institution to follow it up: that visit was the follow-up, so the item calls it back no
# more. A visit for another reason (a complaint outranks a follow-up) told the inspectors nothing of the item,
# so it does not count. Draws of the cycle being drawn do not count, so that drawing it again gives the same list.
FOLLOWED_UP_SQL = f"""
    WITH r AS ({RECT_SQL}),
    lapsed AS (
        SELECT r.*, d0.cycle AS rect_cycle,
               CASE r.status WHEN 'failed' THEN CAST(r.status_at AS DATE) WHEN 'open' THEN r.due_on + 1 END
                   AS lapsed_on  -- a report received or accepted never lapsed
        FROM r LEFT JOIN cases c USING (case_id) LEFT JOIN draws d0 ON d0.draw_id = c.draw_id)
    SELECT l.*, (SELECT min(d.cycle) FROM draws d JOIN draw_targets t USING (draw_id)
                 WHERE d.status = 'current' AND t.fixmedins_code = l.fixmedins_code
                   AND t.selection_reason = 'follow_up'
                   AND d.cycle > l.rect_cycle AND d.cycle < $cycle AND d.as_of >= l.lapsed_on) AS followed_up_in
    FROM lapsed l
"""


def rectifications(con: duckdb.DuckDBPyConnection, as_of: date) -> pl.DataFrame:
    """Every rectification item on `as_of`. `overdue`: its deadline passed with nothing received; `follow_up`:
    overdue or failed, and not yet followed up by a later cycle's visit (`followed_up_in`, that cycle), so it
    puts the institution on the list of the cycle `as_of` falls in."""
    cycle = cycle_of(as_of, targeting_config()["cycle"]["length"])
    frame = con.sql(FOLLOWED_UP_SQL, params={"cycle": cycle}).pl()
    return (
        frame.with_columns(
            # a report received (even late) awaits assessment: only silence past the deadline is overdue
            overdue=(pl.col("due_on") < as_of) & (pl.col("status") == "open"),
        )
        .with_columns(
            follow_up=(pl.col("overdue") | (pl.col("status") == "failed")) & pl.col("followed_up_in").is_null()
        )
        .sort("rect_id")
    )
