"""Targeting: who is selected, who goes where, and that the draw is fair, constrained and reproducible."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.targeting.assignment import assign_groups
from pipelines.targeting.config import load
from pipelines.targeting.cycle import cycle_of, previous_cycle
from pipelines.targeting.draw import DrawInputs, amend_draw, amended_targets, make_draw, unchanged
from pipelines.targeting.selection import select_targets

REGIONS = ["东", "西", "南", "北"]


def district(n_hosp: int = 30, n_pharm: int = 15, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    codes = [f"H{i:03d}" for i in range(n_hosp)] + [f"P{i:03d}" for i in range(n_pharm)]
    return pl.DataFrame(
        {
            "fixmedins_code": codes,
            "fixmedins_type": ["1"] * n_hosp + ["2"] * n_pharm,
            "region": [REGIONS[i % 4] for i in range(len(codes))],
            "risk_score": rng.uniform(0, 100, len(codes)).round(1),
        }
    )


def inspectors(n: int = 12) -> pl.DataFrame:
    return pl.DataFrame(
        {"inspector_id": [f"JC{i:02d}" for i in range(n)], "region": [REGIONS[i % 4] for i in range(n)]}
    )


def complaints(*codes: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "complaint_id": [f"TS{i}" for i in range(len(codes))],
            "deadline": ["2026-11-20"] * len(codes),
            "fixmedins_code": list(codes),
            "received_date": ["2026-10-21"] * len(codes),
        }
    )


NO_FOLLOW = pl.DataFrame(schema={"detail": pl.String, "fixmedins_code": pl.String})
NO_PAIRS = pl.DataFrame(schema={"fixmedins_code": pl.String, "inspector_id": pl.String})


def inputs(**kw) -> DrawInputs:
    base = {
        "candidates": district(),
        "complaints": complaints(),
        "follow_up": NO_FOLLOW,
        "inspectors": inspectors(),
        "conflicts": NO_PAIRS,
        "last_cycle": NO_PAIRS,
    }
    return DrawInputs(**{**base, **kw})


def test_selection_mixes_risk_random_and_every_complaint():
    cfg = load()
    cand = district()
    low = cand.sort("risk_score").head(3)["fixmedins_code"].to_list()  # complaint targets nobody would pick on risk
    out = select_targets(cand, complaints(*low), NO_FOLLOW, cfg, np.random.default_rng(1))
    reasons = dict(out.select("fixmedins_code", "selection_reason").iter_rows())
    assert all(reasons[c] == "complaint" for c in low)
    hosp_risk = out.filter((pl.col("selection_reason") == "risk") & pl.col("fixmedins_code").str.starts_with("H"))
    top = (
        cand.filter((pl.col("fixmedins_type") == "1") & ~pl.col("fixmedins_code").is_in(low))
        .sort("risk_score", descending=True)
        .head(hosp_risk.height)
    )
    assert set(hosp_risk["fixmedins_code"]) == set(top["fixmedins_code"])
    n_h = out.filter(pl.col("fixmedins_code").str.starts_with("H") & (pl.col("selection_reason") != "complaint"))
    n_p = out.filter(pl.col("fixmedins_code").str.starts_with("P") & (pl.col("selection_reason") != "complaint"))
    assert (n_h.height, n_p.height) == (cfg["selection"]["hospitals"], cfg["selection"]["pharmacies"])
    assert out.filter(pl.col("selection_reason") == "random").height >= 2  # one per kind at least
    assert out["rank"].to_list() == list(range(1, out.height + 1))
    assert out["selection_detail"].str.len_chars().min() > 0


@pytest.mark.parametrize("trial", range(20))
def test_complaint_targets_always_present(trial):
    rng = np.random.default_rng(trial)
    cand = district(seed=trial)
    named = list(rng.choice(cand["fixmedins_code"].to_list(), size=int(rng.integers(1, 12)), replace=False))
    out = select_targets(cand, complaints(*named), NO_FOLLOW, load(), np.random.default_rng(trial))
    assert set(named) <= set(out["fixmedins_code"])


def test_same_seed_same_list_other_seed_other_random_part():
    cfg = load({"selection.random_share": 0.5})
    a = select_targets(district(), complaints("H001"), NO_FOLLOW, cfg, np.random.default_rng(11))
    b = select_targets(district(), complaints("H001"), NO_FOLLOW, cfg, np.random.default_rng(11))
    assert a.equals(b)
    randoms = {
        frozenset(
            select_targets(district(), complaints("H001"), NO_FOLLOW, cfg, np.random.default_rng(s)).filter(
                pl.col("selection_reason") == "random"
            )["fixmedins_code"]
        )
        for s in range(5)
    }
    assert len(randoms) > 1
    fixed = {
        frozenset(
            select_targets(district(), complaints("H001"), NO_FOLLOW, cfg, np.random.default_rng(s)).filter(
                pl.col("selection_reason") != "random"
            )["fixmedins_code"]
        )
        for s in range(5)
    }
    assert len(fixed) == 1  # risk and complaint picks do not depend on the seed


def test_risk_weighted_random_draw_prefers_riskier():
    cfg = load({"selection.random_weighting": "risk", "selection.random_share": 1.0, "selection.hospitals": 3})
    cand = district(n_hosp=40, n_pharm=0)
    counts: dict[str, int] = {}
    for s in range(300):
        for c in select_targets(cand, complaints(), NO_FOLLOW, cfg, np.random.default_rng(s))["fixmedins_code"]:
            counts[c] = counts.get(c, 0) + 1
    j = cand.with_columns(n=pl.col("fixmedins_code").replace_strict(counts, default=0))
    assert j.select(pl.corr("risk_score", "n")).item() > 0.5


def test_conflicts_never_violated_and_groups_have_two_inspectors():
    cand = district()
    conflicts = pl.DataFrame(
        {
            "fixmedins_code": [c for c in cand["fixmedins_code"] for _ in range(3)],
            "inspector_id": [f"JC{(i * 5 + k) % 12:02d}" for i in range(cand.height) for k in range(3)],
        }
    )
    pairs = set(conflicts.iter_rows())
    for seed in range(10):
        d = make_draw(inputs(conflicts=conflicts), load(), seed)
        assert not d.assignment.unassigned
        assert all(len(m) >= 2 for m in d.assignment.groups.values())
        for code, g in d.assignment.target_group.items():
            assert not any((code, i) in pairs for i in d.assignment.groups[g])


def test_rotation_across_two_consecutive_cycles():
    cfg = load()
    first = make_draw(inputs(), cfg, 5)
    visited = pl.DataFrame(
        [
            {"fixmedins_code": c, "inspector_id": i}
            for c, g in first.assignment.target_group.items()
            for i in first.assignment.groups[g]
        ]
    )
    # the same institutions are targets again next cycle (complaints force them onto the list)
    again = complaints(*first.targets["fixmedins_code"].to_list())
    second = make_draw(inputs(complaints=again, last_cycle=visited), cfg, 6)
    assert not second.assignment.unassigned
    before = set(visited.select("fixmedins_code", "inspector_id").iter_rows())
    for code, g in second.assignment.target_group.items():
        assert not any((code, i) in before for i in second.assignment.groups[g]), code


def test_own_region_avoided_when_others_are_free():
    d = make_draw(inputs(), load(), 3)
    assert d.assignment.own_region == []
    regions = dict(district().select("fixmedins_code", "region").iter_rows())
    insp = dict(inspectors().iter_rows())
    for code, g in d.assignment.target_group.items():
        assert all(insp[i] != regions[code] for i in d.assignment.groups[g])


def test_infeasible_constraints_are_reported_not_dropped():
    cand = district()
    target = "H001"
    everyone = pl.DataFrame({"fixmedins_code": [target] * 12, "inspector_id": inspectors()["inspector_id"]})
    d = make_draw(inputs(complaints=complaints(target), conflicts=everyone), load(), 1)
    assert target in d.assignment.unassigned
    assert "需回避" in d.assignment.unassigned[target]
    assert set(d.assignment.target_group) | set(d.assignment.unassigned) == set(d.targets["fixmedins_code"])
    one = assign_groups(cand.head(2), inspectors(1), NO_PAIRS, NO_PAIRS, load()["inspectors"], np.random.default_rng(0))
    assert set(one.unassigned) == set(cand.head(2)["fixmedins_code"])
    assert "不足2人" in next(iter(one.unassigned.values()))


def test_draw_replays_from_recorded_inputs():
    i = inputs(complaints=complaints("P003"))
    again = DrawInputs.from_json(i.to_json())
    a, b = make_draw(i, load(), 99), make_draw(again, load(), 99)
    assert a.targets.equals(b.targets)
    assert a.assignment == b.assignment


def test_cycles():
    from datetime import date

    assert cycle_of(date(2026, 10, 31)) == "2026-10"
    assert previous_cycle(date(2026, 1, 5)) == "2025-12"
    assert cycle_of(date(2026, 10, 31), "week") == "2026-W44"
    assert previous_cycle(date(2026, 10, 31), "week") == "2026-W43"


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="group_size must be at least 2"):
        load({"inspectors.group_size": 1})


def test_an_amendment_moves_only_the_targets_whose_group_must_now_avoid_them():
    cfg = load()
    first = make_draw(inputs(), cfg, 11)
    a = first.assignment
    base = first.targets.with_columns(
        inspection_group=pl.col("fixmedins_code").replace_strict(a.target_group, default=None, return_dtype=pl.Int32)
    )
    target = sorted(a.target_group)[0]
    member = a.groups[a.target_group[target]][0]
    declared = pl.DataFrame({"fixmedins_code": [target], "inspector_id": [member]})
    amended = amend_draw(inputs(conflicts=declared), cfg, 11, 2, base, a.groups)
    assert amended.moved == [target] and amended.targets.is_empty()
    new_group = amended.assignment.target_group[target]
    assert new_group != a.target_group[target] and member not in a.groups[new_group]
    whole = amended_targets(base, amended)
    changed = whole.join(base, on="fixmedins_code", suffix="_before").filter(
        pl.col("inspection_group") != pl.col("inspection_group_before")
    )
    assert changed["fixmedins_code"].to_list() == [target] and whole.height == base.height
    # nothing declared: nothing moves
    assert amend_draw(inputs(), cfg, 11, 2, base, a.groups).moved == []


@pytest.mark.parametrize("seed", range(8))
def test_amendments_keep_every_hard_constraint_whatever_changed(seed):
    """Random mid-cycle changes (members leaving, avoidances declared, a complaint): every target of the amended
    draw is in a whole group none of whose members must avoid it or inspected it last cycle, or is unassigned
    with a reason; the amendment is a pure function of its inputs."""
    cfg = load()
    rng = np.random.default_rng(seed)
    first = make_draw(inputs(), cfg, seed)
    a = first.assignment
    base = first.targets.with_columns(
        inspection_group=pl.col("fixmedins_code").replace_strict(a.target_group, default=None, return_dtype=pl.Int32)
    )
    members = sorted(i for m in a.groups.values() for i in m)
    left = set(rng.choice(members, size=int(rng.integers(0, 4)), replace=False).tolist())
    codes = base["fixmedins_code"].to_list()
    declared = pl.DataFrame(
        {
            "fixmedins_code": rng.choice(codes, size=6).tolist(),
            "inspector_id": rng.choice(inspectors()["inspector_id"].to_list(), size=6).tolist(),
        }
    )
    changed = inputs(
        inspectors=inspectors().filter(~pl.col("inspector_id").is_in(sorted(left))),
        conflicts=declared,
        complaints=complaints("P014"),
    )
    result = amend_draw(changed, cfg, seed, 2, base, a.groups)
    again = amend_draw(DrawInputs.from_json(changed.to_json()), cfg, seed, 2, base, a.groups)
    assert result.assignment == again.assignment and result.groups == again.groups and result.moved == again.moved
    whole = amended_targets(base, result)
    pairs = set(declared.select("inspector_id", "fixmedins_code").iter_rows())
    assert all(len(m) >= cfg["inspectors"]["group_size"] and not set(m) & left for m in result.groups.values())
    for code, g in whole.select("fixmedins_code", "inspection_group").iter_rows():
        if g is None:
            assert code in result.assignment.unassigned or code in a.unassigned, code
        else:
            assert not any((i, code) in pairs for i in result.groups[g]), code
    assert set(whole["fixmedins_code"]) == set(codes) | {"P014"}


def _recorded(result) -> pl.DataFrame:
    """A draw's targets with their groups, as the warehouse records them."""
    a = result.assignment
    return result.targets.with_columns(
        inspection_group=pl.col("fixmedins_code").replace_strict(a.target_group, default=None, return_dtype=pl.Int32)
    )


def test_a_draw_made_without_inspectors_forms_its_groups_once_the_list_has_them():
    cfg = load()
    nobody = inspectors().clear()
    first = make_draw(inputs(inspectors=nobody), cfg, 5)
    base = _recorded(first)
    assert first.assignment.groups == {} and base["inspection_group"].null_count() == base.height
    assert set(first.assignment.unassigned) == set(base["fixmedins_code"])
    # still too few: nothing changes
    assert unchanged(amend_draw(inputs(inspectors=inspectors(1)), cfg, 5, 2, base, {}), {})
    # the list arrives, with a 回避 and last cycle's visits: groups are formed for every target, none broken
    code = base["fixmedins_code"][0]
    barred = pl.DataFrame({"fixmedins_code": [code] * 6, "inspector_id": [f"JC{i:02d}" for i in range(6)]})
    rotated = pl.DataFrame({"fixmedins_code": [code] * 2, "inspector_id": ["JC06", "JC07"]})
    now = inputs(conflicts=barred, last_cycle=rotated)
    amended = amend_draw(now, cfg, 5, 2, base, {})
    assert amended.targets.is_empty() and amended.moved == [] and not unchanged(amended, {})
    assert amended.assigned == sorted(base["fixmedins_code"]) and not amended.assignment.unassigned
    assert amended.groups == amended.assignment.groups and len(amended.groups) >= 2
    assert all(len(m) == cfg["inspectors"]["group_size"] for m in amended.groups.values())
    assert set(amended.groups[amended.assignment.target_group[code]]) <= {f"JC{i:02d}" for i in range(8, 12)}
    whole = amended_targets(base, amended)
    assert whole["inspection_group"].null_count() == 0 and whole["fixmedins_code"].equals(base["fixmedins_code"])
    # the next night, from the amended draw: nothing left to do
    assert unchanged(amend_draw(now, cfg, 5, 3, whole, amended.groups), amended.groups)


def test_a_target_no_group_could_take_is_given_one_once_its_avoidance_is_withdrawn():
    cfg = load()
    first = make_draw(inputs(), cfg, 3)
    base = _recorded(first)
    code = base["fixmedins_code"][0]
    everyone = pl.DataFrame({"fixmedins_code": [code] * 12, "inspector_id": inspectors()["inspector_id"]})
    blocked = amend_draw(inputs(conflicts=everyone), cfg, 3, 2, base, first.assignment.groups)
    assert blocked.moved == [code] and code in blocked.assignment.unassigned
    held = amended_targets(base, blocked)
    assert held.filter(pl.col("fixmedins_code") == code)["inspection_group"].to_list() == [None]
    # still barred: no change; withdrawn: it gets a group, nothing else moves
    assert unchanged(amend_draw(inputs(conflicts=everyone), cfg, 3, 3, held, blocked.groups), blocked.groups)
    freed = amend_draw(inputs(), cfg, 3, 3, held, blocked.groups)
    assert freed.assigned == [code] and freed.moved == [] and freed.groups == blocked.groups
    after = amended_targets(held, freed)
    assert after.filter(pl.col("fixmedins_code") != code).equals(held.filter(pl.col("fixmedins_code") != code))
    assert after.filter(pl.col("fixmedins_code") == code)["inspection_group"][0] in blocked.groups


def test_when_every_group_dissolves_groups_are_drawn_afresh_and_the_next_night_keeps_them():
    """Each group loses a member and nobody is free to replace them: the remaining inspectors are drawn into new
    groups, numbered after the old ones, for every target (never one they must avoid); the same inputs the next
    night change nothing (before, the next night formed the groups the night of the dissolution had not)."""
    cfg = load()
    first = make_draw(inputs(), cfg, 9)
    base = _recorded(first)
    groups = first.assignment.groups
    left = inspectors().filter(pl.col("inspector_id").is_in([m[0] for m in groups.values()]))
    code = base["fixmedins_code"][0]
    barred = pl.DataFrame({"fixmedins_code": [code], "inspector_id": [left["inspector_id"][0]]})
    now = inputs(inspectors=left, conflicts=barred)
    amended = amend_draw(now, cfg, 9, 2, base, groups)
    assert sorted(amended.moved) == sorted(base["fixmedins_code"]) and not amended.assignment.unassigned
    assert min(amended.groups) > max(groups) and all(len(m) == 2 for m in amended.groups.values())
    assert left["inspector_id"][0] not in amended.groups[amended.assignment.target_group[code]]
    whole = amended_targets(base, amended)
    assert set(whole["inspection_group"]) <= set(amended.groups)
    assert unchanged(amend_draw(now, cfg, 9, 3, whole, amended.groups), amended.groups)
