"""Case management: the procedure's transitions, deadlines, idempotent outcome import, confirmed rates and
the repeat-offender uplift on hand examples, and cases through two nights."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import duckdb
import polars as pl
import pytest

from detectors.scoring import repeat_offender_uplift
from pipelines.cases.deadlines import add_days, deadline
from pipelines.cases.lifecycle import RECT_EVENTS, RECT_STATUS_ZH, START, TERMINAL, TransitionRefused, check, load
from pipelines.cases.store import (
    UnknownCase,
    advance,
    cases,
    open_case,
    open_rectification,
    record_rectification,
    rectifications,
)
from pipelines.warehouse.schema import create_all

CFG = load()
ALL = sorted(set(CFG["transitions"]) | set(TERMINAL))
ALLOWED = [(s, t) for s, ts in CFG["transitions"].items() for t in ts]
REFUSED = [(s, t) for s in ALL for t in ALL if (s, t) not in ALLOWED]


@pytest.mark.parametrize(("src", "to"), ALLOWED)
def test_every_allowed_transition(src, to):
    check(src, to)


@pytest.mark.parametrize(("src", "to"), REFUSED)
def test_every_other_transition_is_refused_with_the_allowed_ones_named(src, to):
    with pytest.raises(TransitionRefused) as e:
        check(src, to)
    msg = str(e.value)
    assert ("closed" in msg) if src in TERMINAL else all(t in msg for t in CFG["transitions"][src])


def test_the_full_procedure_reaches_closure():
    path = [START, "复审", "申诉", "调查核实", "处理", "结案"]
    for a, b in pairwise(path):
        check(a, b)


def test_deadlines_calendar_and_working_days():
    fri = date(2026, 10, 30)
    assert add_days(fri, 30) == date(2026, 11, 29)  # weekends are not special unless configured
    assert add_days(fri, 5, working_days=True) == date(2026, 11, 6)
    assert add_days(fri, 5, working_days=True, holidays=frozenset({date(2026, 11, 2)})) == date(2026, 11, 9)
    assert deadline(date(2026, 10, 6), 30, CFG) == date(2026, 11, 5)  # a complaint received 10-06


def test_a_complaint_is_open_until_the_end_of_its_deadline_day(monkeypatch):
    """The draw, the risk score and the report all ask `open_complaints`: received by the day, and the day is
    its deadline or before; the deadline counts working days when cases.toml says so."""
    import copy

    from pipelines.cases import complaints

    con = duckdb.connect()
    con.execute("CREATE TABLE ref_complaints (complaint_id VARCHAR, fixmedins_code VARCHAR, received_date DATE)")
    as_of, days = date(2026, 10, 31), CFG["deadlines"]["complaint_days"]
    received = {
        "due-today": as_of - timedelta(days=days),
        "due-yesterday": as_of - timedelta(days=days + 1),
        "tomorrow": as_of + timedelta(days=1),
    }
    con.executemany("INSERT INTO ref_complaints VALUES (?, 'H1', ?)", list(received.items()))
    opened = complaints.open_complaints(con, as_of)
    assert opened["complaint_id"].to_list() == ["due-today"]
    assert opened["deadline"].to_list() == [as_of]

    working = copy.deepcopy(CFG)
    working["deadlines"]["working_days"] = True
    monkeypatch.setattr(complaints, "load_config", lambda: working)
    opened = complaints.open_complaints(con, as_of)
    assert opened["complaint_id"].to_list() == ["due-yesterday", "due-today"]  # working days reach further
    assert all(d == add_days(r, days, working_days=True) for r, d in opened.select("received_date", "deadline").rows())
    assert complaints.open_complaints(duckdb.connect(), as_of).is_empty()  # no complaints list: none open


@pytest.fixture
def con():
    c = duckdb.connect()
    create_all(c)
    yield c
    c.close()


def test_complaint_case_is_overdue_until_checked(con):
    assert open_case(con, "TS-1", "complaint", "H1", "举报", "1", None, None, date(2026, 10, 6), date(2026, 11, 5), "r")
    assert not open_case(
        con, "TS-1", "complaint", "H1", "举报", "1", None, None, date(2026, 10, 6), date(2026, 11, 5), "r"
    )  # never twice
    assert not cases(con, date(2026, 11, 5))["overdue"][0]
    assert cases(con, date(2026, 11, 6))["overdue"][0]
    advance(con, "TS-1", "复审", "张三", "材料齐全")
    advance(con, "TS-1", "调查核实", "张三", "现场核查")
    assert not cases(con, date(2026, 11, 6))["overdue"][0]
    with pytest.raises(TransitionRefused):
        advance(con, "TS-1", "结案", "张三", "跳过处理")
    ev = con.execute("SELECT seq, actor, from_status, to_status FROM case_events ORDER BY seq").fetchall()
    assert ev == [(1, "claimwatch", None, "初审"), (2, "张三", "初审", "复审"), (3, "张三", "复审", "调查核实")]
    with pytest.raises(ValueError, match="who"):
        advance(con, "TS-1", "处理", " ", "x")


def test_rectification_follow_up(con):
    open_rectification(con, "ZG-1", "XS-1", "H1", "文号1", date(2026, 11, 1), date(2026, 12, 1), "r")
    open_rectification(con, "ZG-2", "XS-2", "H2", "文号2", date(2026, 11, 1), date(2026, 12, 1), "r")
    open_rectification(con, "ZG-3", "XS-3", "H3", "文号3", date(2026, 11, 1), date(2026, 12, 1), "r")
    record_rectification(con, "ZG-2", "report_received", "李四", "按期报送")
    record_rectification(con, "ZG-3", "failed", "李四", "整改不到位")
    r = rectifications(con, date(2026, 12, 1)).select("rect_id", "status", "follow_up").rows()
    assert r == [("ZG-1", "open", False), ("ZG-2", "report_received", False), ("ZG-3", "failed", True)]
    r = rectifications(con, date(2026, 12, 2)).select("rect_id", "follow_up").rows()
    assert r == [("ZG-1", True), ("ZG-2", False), ("ZG-3", True)]


RECT_STATES = list(RECT_STATUS_ZH)
RECT_ALLOWED = [(s, e) for s, es in CFG["rectification"].items() for e in es]


@pytest.mark.parametrize(("state", "event"), [(s, e) for s in RECT_STATES for e in RECT_EVENTS])
def test_a_rectification_event_is_recorded_only_where_the_procedure_allows_it(con, state, event):
    open_rectification(con, "ZG-1", "XS-1", "H1", "文号1", date(2026, 11, 1), date(2026, 12, 1), "r")
    path = {"open": [], "report_received": ["report_received"], "accepted": ["report_received", "accepted"]}
    for e in path.get(state, ["failed"]):
        record_rectification(con, "ZG-1", e, "李四", "说明")
    assert rectifications(con, date(2026, 11, 2))["status"].to_list() == [state]
    if (state, event) in RECT_ALLOWED:
        assert record_rectification(con, "ZG-1", event, "李四", "说明") == state
        assert rectifications(con, date(2026, 11, 2))["status"].to_list() == [event]
    else:
        with pytest.raises(TransitionRefused) as e:
            record_rectification(con, "ZG-1", event, "李四", "说明")
        assert ("final" in str(e.value)) if state in ("accepted", "failed") else "allowed: " in str(e.value)
        assert rectifications(con, date(2026, 11, 2))["status"].to_list() == [state]  # nothing written


def test_a_rectification_event_says_who_and_a_failure_why(con):
    open_rectification(con, "ZG-1", "XS-1", "H1", "文号1", date(2026, 11, 1), date(2026, 12, 1), "r")
    with pytest.raises(ValueError, match="who"):
        record_rectification(con, "ZG-1", "report_received", " ", "")
    with pytest.raises(ValueError, match="why"):
        record_rectification(con, "ZG-1", "failed", "李四", " ")
    with pytest.raises(UnknownCase):
        record_rectification(con, "ZG-9", "failed", "李四", "未整改")
    assert con.execute("SELECT count(*) FROM rectification_events").fetchall() == [(0,)]


def test_a_lapsed_rectification_calls_its_institution_back_once(con):
    """Overdue in 2026-12 and followed up by that cycle's draw: it does not bring the institution back in
    2027-01, and drawing 2026-12 again still sees it; one the 2026-12 draw did not follow up still comes back."""
    for code in ("H1", "H2"):
        con.execute("INSERT INTO cases (case_id, fixmedins_code, draw_id) VALUES (?, ?, 'D10')", [f"XS-{code}", code])
        open_rectification(con, f"ZG-{code}", f"XS-{code}", code, "文号", date(2026, 11, 1), date(2026, 12, 1), "r")
    con.execute(
        """INSERT INTO draws (draw_id, cycle, version, status, as_of) VALUES
           ('D10', '2026-10', 1, 'current', DATE '2026-10-31'),
           ('D12a', '2026-12', 1, 'superseded', DATE '2026-12-05'),
           ('D12', '2026-12', 2, 'current', DATE '2026-12-05')"""
    )
    con.execute(
        """INSERT INTO draw_targets (draw_id, fixmedins_code, selection_reason) VALUES
           ('D12a', 'H2', 'follow_up'), ('D12', 'H1', 'follow_up'), ('D12', 'H3', 'complaint')"""
    )
    con.execute("INSERT INTO cases (case_id, fixmedins_code, draw_id) VALUES ('XS-H3', 'H3', 'D10')")
    open_rectification(con, "ZG-H3", "XS-H3", "H3", "文号", date(2026, 11, 1), date(2026, 12, 1), "r")
    cols = ["rect_id", "overdue", "follow_up", "followed_up_in"]
    assert rectifications(con, date(2026, 12, 5)).select(cols).rows() == [
        ("ZG-H1", True, True, None),
        ("ZG-H2", True, True, None),
        ("ZG-H3", True, True, None),
    ]
    assert rectifications(con, date(2027, 1, 10)).select(cols).rows() == [
        ("ZG-H1", True, False, "2026-12"),
        ("ZG-H2", True, True, None),  # only a superseded draw of 2026-12 held it
        ("ZG-H3", True, True, None),  # visited for a complaint, not to follow the item up
    ]
    # a draw made before the item lapsed was no follow-up of it
    con.execute("UPDATE draws SET as_of = DATE '2026-11-30' WHERE draw_id = 'D12'")
    assert rectifications(con, date(2027, 1, 10))["follow_up"].to_list() == [True, True, True]


def test_repeat_offender_uplift_on_a_hand_example():
    inst = pl.DataFrame({"fixmedins_code": ["A", "B"], "risk_score": [50.0, 95.0], "top_reasons": ["x", "y"]})
    hist = pl.DataFrame({"fixmedins_code": ["B"], "confirmed": [3], "last_audited": [date(2026, 11, 14)]})
    cfg = {"scoring": {"repeat_offender_points": 10.0}}
    out = repeat_offender_uplift(inst, hist, cfg)
    assert out.rows() == [("B", 100.0, "y; 既往现场核实确认违规3人次(最近2026-11-14), 风险加10分"), ("A", 50.0, "x")]
