"""`claimwatch cases …`: list and show cases, advance one, record a rectification, import audit outcomes.

Reads open the warehouse read-only; writes go through the single-writer session, so a refused or failed
command leaves the warehouse as it was.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import polars as pl

from pipelines.cases.lifecycle import RECT_EVENTS, RECT_STATUS_ZH, TransitionRefused, allowed, rect_allowed, statuses
from pipelines.cases.step import OUTCOMES_SQL, open_case_table
from pipelines.cases.store import UnknownCase, advance, record_rectification, rectifications, status_of
from pipelines.progress import counted, padded
from pipelines.warehouse.schema import ref_table


class CaseError(Exception):
    """Something the user can fix; reported in one line."""


def add_parser(sub, default_db: Path, iso_date: Callable[[str], date]) -> None:
    """The `cases` command and its actions; `iso_date` parses a date option with the command line's message."""
    c = sub.add_parser("cases", help="case management: list, show, advance, rectification, import audit outcomes")
    c.add_argument("--db", type=Path, default=default_db, help=f"warehouse file (default {default_db})")
    cs = c.add_subparsers(dest="action", required=True)
    # --db after the action too (`claimwatch cases list --db W`), where users put it; given there, it wins
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, default=argparse.SUPPRESS, help=f"warehouse file (default {default_db})")
    ls = cs.add_parser("list", parents=[db], help="cases with their status (open ones unless --all)")
    ls.add_argument("--institution", default=None)
    ls.add_argument("--status", default=None, help="e.g. 初审")
    ls.add_argument("--inspector", default=None, help="inspector id or name")
    ls.add_argument("--overdue", action="store_true")
    ls.add_argument("--all", action="store_true", help="closed cases too")
    ls.add_argument("--as-of", type=iso_date, default=None, help="judge deadlines on this day (default today)")
    sh = cs.add_parser("show", parents=[db], help="one case, or one rectification item, and its history")
    sh.add_argument("case_id", metavar="ID", help="a case (TS-…, XS-…) or a rectification item (ZG-…)")
    adv = cs.add_parser("advance", parents=[db], help="move a case to its next status")
    adv.add_argument("case_id")
    adv.add_argument("--to", required=True, help="the new status, e.g. 复审")
    adv.add_argument("--by", required=True, help="who decides")
    adv.add_argument("--note", required=True, help="why")
    rc = cs.add_parser(
        "rectification", parents=[db], help="record an institution's rectification report or its assessment"
    )
    rc.add_argument("rect_id", metavar="ID", help="the item, ZG-<cycle>-<code> (cases.xlsx, sheet 整改跟踪)")
    rc.add_argument(
        "--event",
        required=True,
        choices=RECT_EVENTS,
        help="report_received (整改报告已报送), then accepted (验收通过) or failed (整改不合格)",
    )
    rc.add_argument("--by", required=True, help="who records it")
    rc.add_argument("--note", default="", help="required with failed: why")
    im = cs.add_parser(
        "import-outcomes", parents=[db], help="merge an audit_outcomes.csv (SPEC §1.4) into the warehouse"
    )
    im.add_argument("file", type=Path)


def _read(db: Path):
    from pipelines.warehouse.session import connect_readonly

    try:
        return connect_readonly(db)
    except FileNotFoundError as e:
        raise CaseError(str(e)) from None


def _write(db: Path, fn) -> object:
    from pipelines.warehouse.session import connect_writer, write_session

    if not db.exists():
        raise CaseError(f"no warehouse at {db}: run `claimwatch nightly` first")
    with write_session(db) as stage:
        con = connect_writer(stage)
        try:
            return fn(con)
        finally:
            con.close()


def run(args: argparse.Namespace) -> None:
    try:
        {"list": _list, "show": _show, "advance": _advance, "rectification": _rect, "import-outcomes": _import}[
            args.action
        ](args)
    except (TransitionRefused, UnknownCase, ValueError) as e:
        raise CaseError(str(e).strip("'\"")) from None


def _list(args) -> None:
    if args.status and args.status not in (known := statuses()):
        raise CaseError(f"no status {args.status!r}: a case is in one of {'、'.join(known)}")
    con = _read(args.db)
    try:
        if args.institution:
            _known_institution(con, args.institution)
        ids = _inspector_ids(con, args.inspector) if args.inspector else None
        frame = open_case_table(con, args.as_of or date.today(), closed_too=args.all)
    finally:
        con.close()
    if args.institution:
        frame = frame.filter(pl.col("fixmedins_code") == args.institution)
    if ids is not None:
        frame = frame.filter(pl.col("inspector_ids").list.eval(pl.element().is_in(ids)).list.any())
    if args.status:
        frame = frame.filter(pl.col("status") == args.status)
    if args.overdue:
        frame = frame.filter(pl.col("overdue"))
    if frame.is_empty():
        print("no cases match" + ("" if args.all else " (closed cases are listed with --all)"))
        return
    for r in frame.iter_rows(named=True):
        late = " 逾期" if r["overdue"] else ""
        due = f"  核查期限 {r['due_on']}" if r["due_on"] else ""
        print(f"{r['case_id']:<28} {padded(r['status'], 10)} {r['fixmedins_code']:<14} {r['title']}{due}{late}")
    print(counted(frame.height, "case"))


def _known_institution(con, code: str) -> None:
    """Refuse a code that is neither on the institutions list nor the subject of a case: a typo, not 'no cases'."""
    names = ref_table(con, "institutions")
    known = con.execute(
        f"SELECT count(*) FROM (SELECT fixmedins_code FROM {names} UNION SELECT fixmedins_code FROM cases) "
        "WHERE fixmedins_code = ?",
        [code],
    ).fetchall()[0][0]
    if not known:
        raise CaseError(f"no institution {code!r} on institutions.csv or in any case")


def _inspector_ids(con, who: str) -> list[str]:
    """The ids of the inspector named `who` (an id, or a name exactly as on inspectors.csv), on the roster or in
    any draw's groups; an unknown one is refused rather than matching no case."""
    roster = ref_table(con, "inspectors")
    ids = [
        r[0]
        for r in con.execute(
            f"""SELECT DISTINCT inspector_id FROM (
                    SELECT inspector_id, inspector_name FROM {roster}
                    UNION ALL SELECT inspector_id, inspector_name FROM draw_groups)
                WHERE inspector_id = $1 OR inspector_name = $1 ORDER BY 1""",
            [who],
        ).fetchall()
    ]
    if not ids:
        raise CaseError(f"no inspector {who!r} on inspectors.csv or in any draw: give an inspector_id or a full name")
    return ids


def _show(args) -> None:
    con = _read(args.db)
    try:
        items = rectifications(con, date.today())
        rect = items.filter(pl.col("rect_id") == args.case_id)
        if rect.height:
            _show_rectification(con, rect.row(0, named=True))
            return
        status = status_of(con, args.case_id)
        case = con.sql("SELECT * FROM cases WHERE case_id = ?", params=[args.case_id]).pl().row(0, named=True)
        events = con.execute(
            "SELECT seq, event_at, actor, from_status, to_status, note FROM case_events WHERE case_id = ? ORDER BY seq",
            [args.case_id],
        ).fetchall()
        outcome = con.execute(
            "SELECT audited, confirmed, confirmed_amount, last_audited_on FROM case_outcomes WHERE case_id = ?",
            [args.case_id],
        ).fetchall()
        rects = items.filter(pl.col("case_id") == args.case_id)
    finally:
        con.close()
    print(f"{case['case_id']}  {case['title']}  机构 {case['fixmedins_code']}  当前环节 {status}")
    print(
        f"  立案 {case['opened_on']}"
        + (f"  核查期限 {case['due_on']}" if case["due_on"] else "")
        + (f"  金额 {case['amount']:,.2f}" if case["amount"] is not None else "")
    )
    if outcome:
        a, c, amt, last = outcome[0]
        print(f"  现场核实: 核查{a}人次, 确认{c}人次, 确认金额{amt:,.2f}元 (最近 {last})")
    for r in rects.iter_rows(named=True):
        print(f"  整改 {r['rect_id']}: {RECT_STATUS_ZH[r['status']]}, 期限 {r['due_on']}{_late(r)}")
    for seq, at, actor, frm, to, note in events:
        print(f"  {seq}. {at:%Y-%m-%d %H:%M} {actor}: {frm or '—'} → {to}  {note or ''}")
    if nxt := allowed(status):
        print(f"  next: {'、'.join(nxt)}")


def _late(rect: dict) -> str:
    if rect["follow_up"]:
        return ("  逾期未报送" if rect["overdue"] else "") + ", 列入下周期跟踪检查"
    if rect["followed_up_in"]:
        return f"  已于{rect['followed_up_in']}周期跟踪检查"
    return ""


def _show_rectification(con, r: dict) -> None:
    events = con.execute(
        "SELECT event_at, actor, event, note FROM rectification_events WHERE rect_id = ? ORDER BY event_at, rowid",
        [r["rect_id"]],
    ).fetchall()
    print(f"{r['rect_id']}  整改 {r['doc_no']}  机构 {r['fixmedins_code']}  状态 {RECT_STATUS_ZH[r['status']]}")
    print(f"  下达 {r['opened_on']}  整改期限 {r['due_on']}  案件 {r['case_id']}{_late(r)}")
    for n, (at, actor, event, note) in enumerate(events, 1):
        print(f"  {n}. {at:%Y-%m-%d %H:%M} {actor}: {event} ({RECT_STATUS_ZH[event]})  {note or ''}")
    if nxt := rect_allowed(r["status"]):
        print(f"  next: {', '.join(nxt)}")


def _advance(args) -> None:
    before = _write(args.db, lambda con: advance(con, args.case_id, args.to, args.by, args.note))
    print(f"{args.case_id}: {before} → {args.to} ({args.by}: {args.note})")


def _rect(args) -> None:
    before = _write(args.db, lambda con: record_rectification(con, args.rect_id, args.event, args.by, args.note))
    note = f": {args.note}" if args.note else ""
    print(f"{args.rect_id}: {before} → {args.event} ({RECT_STATUS_ZH[args.event]}; {args.by}{note})")


def _import(args) -> None:
    from pipelines.ingest.reader import FileRejected
    from pipelines.ingest.reference import load_reference_file

    if not args.file.is_file():
        raise CaseError(f"file not found: {args.file}")
    run_id = f"{datetime.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}-import"

    def work(con):
        try:
            n = load_reference_file(con, args.file, "audit_outcomes", run_id)
        except FileRejected as e:
            raise CaseError(f"{args.file}: {e.rule}: {e.message}") from None
        con.execute(OUTCOMES_SQL)
        total = con.execute("SELECT count(*) FROM ref_audit_outcomes").fetchall()[0][0]
        return n, total

    n, total = _write(args.db, work)
    print(f"{args.file}: {n} outcome rows merged; the warehouse holds {total} audit outcomes")
