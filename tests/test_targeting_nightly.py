"""The cycle's draw through the nightly run: made once, reused, amended by a new complaint, replayable,
re-drawn on a new seed; the inspectors' files; estimates once audit outcomes come back."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from openpyxl import load_workbook

from pipelines.nightly import NightlyParams, run_nightly
from pipelines.synth.audits import audit_outcomes
from tests.test_cli import cli

pytestmark = pytest.mark.slow


def night(inbox: Path, tmp: Path, name: str, seed: int | None = None) -> tuple[dict, Path]:
    out = tmp / name
    return run_nightly(NightlyParams(inbox, tmp / "w.duckdb", out, seed=seed)), out


def test_cycle_draw_is_reused_amended_replayed_and_estimated(inbox_copy, tmp_path):
    s1, o1 = night(inbox_copy, tmp_path, "n1")
    d1 = s1["draw"]
    assert d1["status"] == "new" and d1["draw_id"] == "2026-10-v1" and not d1["unassigned"]
    listed = pl.read_csv(o1 / "sampling_list.csv", infer_schema=False)
    complaints = pl.read_csv(inbox_copy / "reference" / "complaints.csv", infer_schema=False)
    open_ = complaints.filter(pl.col("received_date") > "2026-10-01")["fixmedins_code"]
    assert set(open_) <= set(listed.filter(pl.col("selection_reason") == "complaint")["fixmedins_code"])
    assert (listed["inspectors"].str.count_matches(r"\(") >= 2).all()  # two inspectors with certificate numbers

    # the same night again: the cycle's draw is reused and the files are the same
    s2, o2 = night(inbox_copy, tmp_path, "n2")
    assert s2["draw"]["status"] == "reused" and s2["draw"]["seed"] == d1["seed"]
    for f in ("sampling_list.csv", "claim_samples.csv"):
        assert (o1 / f).read_bytes() == (o2 / f).read_bytes(), f

    # a new complaint against an institution not on the list: the draw is amended, nothing else moves
    outside = pl.read_csv(o1 / "institution_scores.csv", infer_schema=False).filter(
        ~pl.col("fixmedins_code").is_in(listed["fixmedins_code"].to_list())
    )["fixmedins_code"][0]
    with open(inbox_copy / "reference" / "complaints.csv", "a", encoding="utf-8") as fh:
        fh.write(f"TS20269999,2026-10-30,{outside},,12393热线,反映串换药品\n")
    s3, o3 = night(inbox_copy, tmp_path, "n3")
    assert s3["draw"]["status"] == "amended" and s3["draw"]["draw_id"] == "2026-10-v2"
    l3 = pl.read_csv(o3 / "sampling_list.csv", infer_schema=False)
    added = l3.filter(pl.col("fixmedins_code") == outside).row(0, named=True)
    assert added["selection_reason"] == "complaint" and added["inspection_group"] is not None
    keep = ["rank", "fixmedins_code", "selection_reason", "inspection_group", "inspectors"]
    assert l3.filter(pl.col("fixmedins_code") != outside).select(keep).equals(listed.select(keep))

    # every recorded draw replays from its stored inputs
    r = cli("draws", "--db", str(tmp_path / "w.duckdb"), "--verify")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("replay: identical") == 2
    assert f"  amends 2026-10-v1: +{outside}\n" in r.stdout  # what the amendment changed, for anyone to read

    # another seed is a new draw; the earlier one stays on record, superseded
    s4, _ = night(inbox_copy, tmp_path, "n4", seed=d1["seed"] + 1)
    assert s4["draw"]["status"] == "new" and s4["draw"]["draw_id"] == "2026-10-v3"
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    status = dict(con.execute("SELECT draw_id, status FROM draws").fetchall())
    con.close()
    assert status == {"2026-10-v1": "superseded", "2026-10-v2": "superseded", "2026-10-v3": "current"}

    # audit outcomes of the current draw's samples give estimates and confirmation rates
    s4_out = tmp_path / "n4"
    truth = inbox_copy.parent / "inbox.truth" / "labels.csv"
    o = audit_outcomes(s4_out / "claim_samples.csv", truth, date.fromisoformat(s1["as_of"]))
    o.write_csv(inbox_copy / "reference" / "audit_outcomes.csv")
    s5, o5 = night(inbox_copy, tmp_path, "n5")
    est = pl.read_csv(o5 / "overpayment_estimates.csv")
    assert est.height == s4["draw"]["targets"]
    assert (est["lower"] <= est["estimate"]).all() and (est["estimate"] <= est["upper"]).all()
    assert (est["lower"] >= est["observed"]).all()
    assert s5["audit_outcomes"]["confirmed_flags"] > 0


def test_sampling_workbook_is_usable(small_night):
    _, summary, out = small_night
    wb = load_workbook(out / "sampling_list.xlsx")
    first = wb.worksheets[0]
    assert first.title == "抽检名单"
    assert len(wb.worksheets) == 1 + summary["draw"]["groups"]
    header_row = next(r for r in first.iter_rows(values_only=True) if r[0] == "序号")
    assert {"机构名称", "入选原因", "检查组", "检查人员", "主要疑点"} <= set(header_row)
    assert first.freeze_panes is not None
    group = wb.worksheets[1]
    texts = [c for row in group.iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert "执法证号" in texts and "人员编号" in texts
    names = [t for t in texts if t.endswith("*") and len(t) == 2]
    assert names, "patients appear with masked names"
    samples = pl.read_csv(out / "claim_samples.csv", infer_schema=False)
    assert {"fixmedins_code", "setl_id", "stratum", "weight"} <= set(samples.columns)
    assert samples["psn_name_masked"].str.contains(r"^.\*$").all()


def test_a_setting_this_version_no_longer_has_does_not_redraw_the_cycle(small_night, tmp_path):
    """Upgrading claimwatch mid-cycle keeps the cycle's draw when the only difference in its parameters is a
    setting the new version dropped (targeting.toml's complaint_days went to cases.toml) or added; a changed
    setting still makes a new draw."""
    import json
    import shutil

    from pipelines.targeting.step import run_targeting

    db, summary, _ = small_night
    as_of = date.fromisoformat(summary["as_of"])
    draw_id = summary["draw"]["draw_id"]
    cases = (
        ({"complaint_days": 30}, "reused", "dropped"),
        ({}, "reused", "added since"),  # claim_sample.complaint_visits, which the older version did not have
        ({"complaint_days": 30, "hospitals": 99}, "new", "changed"),
    )
    for extra, expected, what in cases:
        copy = tmp_path / f"{what}.duckdb"
        shutil.copy(db, copy)
        con = duckdb.connect(str(copy))
        (params,) = con.execute("SELECT params FROM draws WHERE draw_id = ?", [draw_id]).fetchall()[0]
        older = json.loads(params)
        older["selection"] |= extra
        if what == "added since":
            del older["claim_sample"]["complaint_visits"]
        con.execute(
            "UPDATE draws SET params = ?, params_sha256 = 'made-by-an-older-version' WHERE draw_id = ?",
            [json.dumps(older, ensure_ascii=False), draw_id],
        )
        assert run_targeting(con, "upgraded", as_of, None)["status"] == expected
        con.close()


def test_an_avoidance_declared_after_the_draw_moves_its_target_to_another_group(small_night, tmp_path):
    """回避 is never broken: a conflict added to conflicts.csv mid-cycle naming an inspector of a target's group
    amends the cycle's draw, that target alone changing group (or left unassigned, with the reason, when every
    group has someone to avoid it); the amendment replays, and the next night reuses it."""
    import shutil

    from pipelines.cases.step import open_case_table
    from pipelines.targeting.step import run_targeting
    from pipelines.targeting.verify import amendment, verify_draw

    db, summary, _ = small_night
    as_of = date.fromisoformat(summary["as_of"])
    draw_id = summary["draw"]["draw_id"]

    def groups_of(con: duckdb.DuckDBPyConnection, draw: str) -> dict[str, int | None]:
        sql = "SELECT fixmedins_code, inspection_group FROM draw_targets WHERE draw_id = ?"
        return dict(con.execute(sql, [draw]).fetchall())

    copy = tmp_path / "w.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    before = groups_of(con, draw_id)
    with_case = {c for (c,) in con.execute("SELECT fixmedins_code FROM cases WHERE draw_id = ?", [draw_id]).fetchall()}
    target = sorted(c for c, g in before.items() if g is not None and c in with_case)[0]
    (member,) = con.execute(
        "SELECT min(inspector_id) FROM draw_groups WHERE draw_id = ? AND inspection_group = ?",
        [draw_id, before[target]],
    ).fetchall()[0]
    con.execute("INSERT INTO ref_conflicts VALUES (?, ?, '配偶在该机构任职')", [member, target])
    amended = run_targeting(con, "conflict-night", as_of, None)
    assert amended["status"] == "amended" and amended["draw_id"] != draw_id
    new_group = amended["regrouped"][target]
    after = groups_of(con, amended["draw_id"])
    assert new_group is not None and new_group != before[target] and after[target] == new_group
    assert {c: g for c, g in after.items() if c != target} == {c: g for c, g in before.items() if c != target}
    members = {
        i
        for (i,) in con.execute(
            "SELECT inspector_id FROM draw_groups WHERE draw_id = ? AND inspection_group = ?",
            [amended["draw_id"], new_group],
        ).fetchall()
    }
    assert member not in members
    assert verify_draw(con, amended["draw_id"]) == []
    assert amendment(con, amended["draw_id"]) == f"amends {draw_id}: {target}: group {before[target]} -> {new_group}"
    cases = open_case_table(con, as_of, closed_too=True).filter(pl.col("draw_id") == draw_id)
    moved_case = cases.filter(pl.col("fixmedins_code") == target)
    assert moved_case.height and (moved_case["inspection_group"] == new_group).all()  # who goes now
    assert not moved_case["inspector_ids"].list.contains(member).any()
    assert run_targeting(con, "next-night", as_of, None)["status"] == "reused"

    # every inspector must now avoid it: no group is given, and the reason says why
    con.execute(
        "INSERT INTO ref_conflicts SELECT inspector_id, ?, '回避' FROM ref_inspectors WHERE inspector_id <> ?",
        [target, member],
    )
    blocked = run_targeting(con, "all-conflict-night", as_of, None)
    assert blocked["status"] == "amended" and blocked["regrouped"] == {target: None}
    assert "需回避" in blocked["unassigned"][target] and groups_of(con, blocked["draw_id"])[target] is None
    assert verify_draw(con, blocked["draw_id"]) == []
    con.close()


def test_an_inspector_who_left_the_list_is_replaced_by_one_drawn_at_random(small_night, tmp_path):
    """A member of a group gone from inspectors.csv mid-cycle: the group is made whole by an inspector drawn from
    those in no group, its institutions keep it; with nobody free to draw, the group is dissolved and its
    institutions go to the other groups. Each amendment replays."""
    import shutil

    from pipelines.targeting.step import run_targeting
    from pipelines.targeting.verify import amendment, verify_draw

    db, summary, _ = small_night
    as_of = date.fromisoformat(summary["as_of"])
    draw_id = summary["draw"]["draw_id"]
    copy = tmp_path / "w.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))

    def state(draw: str) -> tuple[dict[int, list[str]], dict[str, int | None]]:
        groups: dict[int, list[str]] = {}
        for g, i in con.execute(
            "SELECT inspection_group, inspector_id FROM draw_groups WHERE draw_id = ? ORDER BY ALL", [draw]
        ).fetchall():
            groups.setdefault(g, []).append(i)
        sql = "SELECT fixmedins_code, inspection_group FROM draw_targets WHERE draw_id = ?"
        return groups, dict(con.execute(sql, [draw]).fetchall())

    groups, targets = state(draw_id)
    group = min(g for g in groups if g in targets.values())
    gone = groups[group][0]
    con.execute("DELETE FROM ref_inspectors WHERE inspector_id = ?", [gone])
    s = run_targeting(con, "left-night", as_of, None)
    assert s["status"] == "amended" and list(s["refilled"]) == [group] and len(s["refilled"][group]) == 1
    (drawn,) = s["refilled"][group]
    after_groups, after_targets = state(s["draw_id"])
    assert gone not in after_groups[group] and drawn in after_groups[group]
    assert drawn not in {i for g, m in groups.items() for i in m}  # from those in no group
    assert {g: m for g, m in after_groups.items() if g != group} == {g: m for g, m in groups.items() if g != group}
    assert after_targets == targets and verify_draw(con, s["draw_id"]) == []
    tampered = tmp_path / "tampered.duckdb"  # a member swapped by hand in the record is caught by the replay
    con.execute("CHECKPOINT")
    shutil.copy(copy, tampered)
    other = duckdb.connect(str(tampered))
    other.execute(
        "UPDATE draw_groups SET inspector_id = ? WHERE draw_id = ? AND inspector_id = ?", [gone, s["draw_id"], drawn]
    )
    assert "the inspection groups differ from the replay" in verify_draw(other, s["draw_id"])
    other.close()
    assert amendment(con, s["draw_id"]) == f"amends {draw_id}: group {group}: {gone} -> {drawn}"
    assert run_targeting(con, "next-night", as_of, None)["status"] == "reused"

    # nobody left to draw: the group is dissolved, its institutions given other groups
    in_groups = {i for m in after_groups.values() for i in m}
    con.execute("DELETE FROM ref_inspectors WHERE NOT list_contains(?, inspector_id)", [sorted(in_groups)])
    con.execute("DELETE FROM ref_inspectors WHERE inspector_id = ?", [drawn])
    s = run_targeting(con, "short-night", as_of, None)
    assert s["refilled"] == {group: []}
    final_groups, final_targets = state(s["draw_id"])
    assert group not in final_groups and f"group {group} dissolved" in amendment(con, s["draw_id"])
    moved = [c for c, g in targets.items() if g == group]
    assert moved and set(s["regrouped"]) == set(moved)
    assert all(final_targets[c] not in (group, None) or c in s["unassigned"] for c in moved)
    assert verify_draw(con, s["draw_id"]) == []

    # one inspector left in all: every group dissolves, every institution is unassigned with the reason
    con.execute("DELETE FROM ref_inspectors WHERE inspector_id <> (SELECT min(inspector_id) FROM ref_inspectors)")
    s = run_targeting(con, "empty-night", as_of, None)
    emptied, unassigned = state(s["draw_id"])
    assert emptied == {} and all(g is None for g in unassigned.values()) and set(s["unassigned"]) >= set(unassigned)
    assert verify_draw(con, s["draw_id"]) == []
    con.close()


def test_audit_outcomes_naming_no_visit_are_refused_with_their_row(small_night, tmp_path):
    """A mistyped setl_id in audit_outcomes.csv, once merged, could never be taken out and would count nowhere
    (estimates, confirmation rates, a notice's confirmed facts): the file is refused naming the row, as
    `cases import-outcomes` does too, and loads once corrected."""
    import shutil

    from pipelines.ingest.reader import FileRejected
    from pipelines.ingest.reference import load_reference_file
    from pipelines.warehouse.schema import has_table

    db, _, _ = small_night
    copy = tmp_path / "w.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    assert not has_table(con, "ref_audit_outcomes")  # the small inbox sends none
    code, setl_id = con.execute("SELECT fixmedins_code, setl_id FROM setl ORDER BY ALL LIMIT 1").fetchall()[0]
    header = "fixmedins_code,setl_id,audited_on,finding,violation_type,overpaid_amt\n"
    good = f"{code},{setl_id},2026-11-02,confirmed,串换项目,12.00\n"
    outcomes, typo = tmp_path / "audit_outcomes.csv", tmp_path / "typo.csv"
    outcomes.write_text(header + good + f"{code},{setl_id}X,2026-11-02,confirmed,串换项目,30.00\n", encoding="utf-8")
    with pytest.raises(FileRejected) as refused:
        load_reference_file(con, outcomes, "audit_outcomes", "outcomes-night")
    assert refused.value.message == f"1 failing row: row 3: unknown_setl ({code}/{setl_id}X)"
    assert not has_table(con, "ref_audit_outcomes")
    outcomes.write_text(header + good, encoding="utf-8")
    assert load_reference_file(con, outcomes, "audit_outcomes", "corrected-night") == 1
    con.close()

    typo.write_text(header + f"{code},{setl_id}Y,2026-11-03,not_confirmed,,\n", encoding="utf-8")
    r = cli("cases", "--db", str(copy), "import-outcomes", str(typo))
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and f"row 2: unknown_setl ({code}/{setl_id}Y)" in r.stderr


def test_a_night_with_nothing_to_draw_records_no_draw_and_a_draw_made_without_inspectors_gets_groups_later(
    inbox_copy, tmp_path
):
    """An empty first night (a new deployment, no upload yet) draws nothing and records no draw, so the cycle's
    draw is made by the first night with data; a draw made before inspectors.csv arrived leaves its targets
    unassigned, and gets its groups the night the list comes (it told the user to update the list)."""
    db, as_of = str(tmp_path / "w.duckdb"), "2026-10-31"
    empty = tmp_path / "empty"
    (empty / "uploads").mkdir(parents=True)
    r = cli("nightly", "--inbox", str(empty), "--db", db, "--out", str(tmp_path / "o0"), "--as-of", as_of)
    assert r.returncode == 0, r.stderr
    assert "draw:      none for 2026-10: no institution has visits in the window" in r.stdout
    assert pl.read_csv(tmp_path / "o0" / "sampling_list.csv").height == 0
    assert load_workbook(tmp_path / "o0" / "sampling_list.xlsx").sheetnames == ["抽检名单"]
    report = (tmp_path / "o0" / "report.html").read_text(encoding="utf-8")
    assert "本晚未抽取" in report and "没有可评分的机构" in report and "<th>规则/模型</th>" not in report
    assert cli("draws", "--db", db).stderr.strip() == f"claimwatch: error: no draws recorded in {db}"

    listed = inbox_copy / "reference" / "inspectors.csv"
    kept = listed.read_bytes()
    listed.unlink()
    r = cli("nightly", "--inbox", str(inbox_copy), "--db", db, "--out", str(tmp_path / "o1"), "--as-of", as_of)
    assert r.returncode == 0, r.stderr
    assert "draw:      2026-10-v1 (new" in r.stdout and "0 inspection groups" in r.stdout
    targets = pl.read_csv(tmp_path / "o1" / "sampling_list.csv", infer_schema=False)
    assert r.stdout.count("  UNASSIGNED ") == targets.height == targets["inspection_group"].null_count()

    listed.write_bytes(kept)
    r = cli("nightly", "--inbox", str(inbox_copy), "--db", db, "--out", str(tmp_path / "o2"), "--as-of", as_of)
    assert r.returncode == 0, r.stderr
    assert "draw:      2026-10-v2 (amended" in r.stdout and "  UNASSIGNED " not in r.stdout
    assert r.stdout.count("  FORMED group ") >= 2 and "(the draw had no whole group left)" in r.stdout
    after = pl.read_csv(tmp_path / "o2" / "sampling_list.csv", infer_schema=False)
    assert after["inspection_group"].null_count() == 0 and (after["inspectors"].str.count_matches(r"\(") >= 2).all()
    keep = ["rank", "fixmedins_code", "selection_reason"]
    assert after.select(keep).equals(targets.select(keep))  # the same institutions, now with groups
    v = cli("draws", "--db", db, "--verify")
    assert v.stdout.count("replay: identical") == 2 and "group 1 formed: " in v.stdout, v.stdout
    assert f"{after['fixmedins_code'][0]}: unassigned -> group " in v.stdout
    r = cli("nightly", "--inbox", str(inbox_copy), "--db", db, "--out", str(tmp_path / "o3"), "--as-of", as_of)
    assert "draw:      2026-10-v2 (reused" in r.stdout


def test_the_visits_of_a_person_a_complaint_names_are_on_the_inspectors_list(inbox_copy, tmp_path):
    """A complaint naming a person (psn_no) at an institution: the inspectors pull that person's visits there,
    every one of them in the window (here fewer than claim_sample.complaint_visits), besides the sample."""
    path = inbox_copy / "reference" / "complaints.csv"
    complaints = pl.read_csv(path, infer_schema=False)
    code = complaints.sort("received_date")["fixmedins_code"][-1]  # the latest complaint: open on the night
    uploads = [pl.read_csv(f, infer_schema=False) for f in (inbox_copy / "uploads").glob(f"{code}_*_setl.csv")]
    counts = pl.concat([u.select("psn_no") for u in uploads])["psn_no"].value_counts(sort=True)
    person = counts["psn_no"][0]  # the one with the most visits there
    complaints.with_columns(
        psn_no=pl.when(pl.col("fixmedins_code") == code).then(pl.lit(person)).otherwise("psn_no")
    ).write_csv(path)
    summary = run_nightly(NightlyParams(inbox_copy, tmp_path / "w.duckdb", tmp_path / "out"))
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    visits = {
        r[0]
        for r in con.execute(
            "SELECT setl_id FROM setl WHERE fixmedins_code = ? AND psn_no = ? AND setl_time >= ?",
            [code, person, summary["detection"]["window"][0]],
        ).fetchall()
    }
    con.close()
    samples = pl.read_csv(tmp_path / "out" / "claim_samples.csv", infer_schema=False)
    named = samples.filter(pl.col("stratum") == "举报涉及人员")
    assert 1 < len(visits) <= 20 and set(named["setl_id"]) == visits
    assert (named["fixmedins_code"] == code).all() and (named["role"] == "抽样").all()
    assert (named["psn_no"] == person).all()


def test_a_complaint_received_after_the_draw_about_a_listed_institution_is_put_on_its_row(inbox_copy, tmp_path):
    """The draw is made before the complaint comes in; the institution is on the list already (for its risk or at
    random), so no target is added, and its row said nothing of the complaint: inspectors went without checking it,
    and the person it names was not among the claims to pull."""
    path = inbox_copy / "reference" / "complaints.csv"
    header = path.read_text(encoding="utf-8").splitlines()[0]
    path.write_text(header + "\n", encoding="utf-8")  # no complaint yet
    _, o1 = night(inbox_copy, tmp_path, "n1")
    listed = pl.read_csv(o1 / "sampling_list.csv", infer_schema=False)
    first, second = listed.filter(pl.col("selection_reason") == "risk")["fixmedins_code"][:2]
    visits = pl.concat(
        [pl.read_csv(f, infer_schema=False) for f in (inbox_copy / "uploads").glob(f"{first}_*_setl.csv")]
    )
    person = visits["psn_no"].value_counts(sort=True)["psn_no"][0]
    path.write_text(
        f"{header}\nTS20269998,2026-10-30,{first},{person},12393热线,反映虚开检查\n"
        f"TS20269997,2026-10-29,{second},,来信,反映串换项目\n",
        encoding="utf-8",
    )
    s2, o2 = night(inbox_copy, tmp_path, "n2")
    d2 = s2["draw"]
    assert d2["status"] == "amended" and d2["complaints_added"] == {first: ["TS20269998"], second: ["TS20269997"]}
    assert d2["claims_redrawn"] == [first]  # the other complaint names nobody: its claims stay as drawn
    l2 = pl.read_csv(o2 / "sampling_list.csv", infer_schema=False)
    keep = ["rank", "fixmedins_code", "selection_reason", "inspection_group", "inspectors"]
    assert l2.select(keep).equals(listed.select(keep))  # why each was drawn, and by whom visited, stay
    detail = dict(l2.select("fixmedins_code", "selection_detail").iter_rows())
    assert "举报投诉TS20269998(2026-10-30收到, 2026-11-29前须核查)" in detail[first]
    assert "举报投诉TS20269997(" in detail[second]
    c1, c2 = (pl.read_csv(o / "claim_samples.csv", infer_schema=False) for o in (o1, o2))
    named = c2.filter(pl.col("stratum") == "举报涉及人员")
    assert named.height > 1 and (named["fixmedins_code"] == first).all() and (named["psn_no"] == person).all()
    assert c2.filter(pl.col("fixmedins_code") != first).equals(c1.filter(pl.col("fixmedins_code") != first))
    r = cli("draws", "--db", str(tmp_path / "w.duckdb"), "--verify")
    assert r.returncode == 0 and r.stdout.count("replay: identical") == 2, r.stdout + r.stderr
    assert f"{first}: complaint TS20269998 added" in r.stdout
    s3, _ = night(inbox_copy, tmp_path, "n3")
    assert s3["draw"]["status"] == "reused"


def test_a_draw_amended_before_complaints_were_put_on_listed_rows_still_replays(inbox_copy, tmp_path, monkeypatch):
    """An amendment recorded by a version that only added complaint targets not yet listed replays as made; the next
    night amends it again, putting the complaint on the listed institution's row."""
    import pipelines.targeting.draw as draw

    path = inbox_copy / "reference" / "complaints.csv"
    header = path.read_text(encoding="utf-8").splitlines()[0]
    path.write_text(header + "\n", encoding="utf-8")
    _, o1 = night(inbox_copy, tmp_path, "n1")
    listed = pl.read_csv(o1 / "sampling_list.csv", infer_schema=False)["fixmedins_code"].to_list()
    scored = pl.read_csv(o1 / "institution_scores.csv", infer_schema=False)["fixmedins_code"]
    outside = next(c for c in scored if c not in listed)
    path.write_text(
        f"{header}\nTS20269998,2026-10-30,{listed[0]},,来信,反映串换项目\nTS20269997,2026-10-30,{outside},,来信,反映\n",
        encoding="utf-8",
    )
    with monkeypatch.context() as m:
        m.setattr(draw, "_noted", lambda base_targets, complaints: {})  # as the earlier version amended
        s2, _ = night(inbox_copy, tmp_path, "n2")
    assert s2["draw"]["status"] == "amended" and s2["draw"]["complaints_added"] == {}
    r = cli("draws", "--db", str(tmp_path / "w.duckdb"), "--verify")
    assert r.returncode == 0 and r.stdout.count("replay: identical") == 2, r.stdout + r.stderr
    s3, _ = night(inbox_copy, tmp_path, "n3")
    assert s3["draw"]["draw_id"].endswith("-v3") and s3["draw"]["complaints_added"] == {listed[0]: ["TS20269998"]}
    r = cli("draws", "--db", str(tmp_path / "w.duckdb"), "--verify")
    assert r.returncode == 0 and r.stdout.count("replay: identical") == 3, r.stdout + r.stderr
