"""Draw inspection groups and give each target institution one, under the bureau's constraints.

Hard: a group has at least `group_size` law-enforcement inspectors; no member is listed in
`conflicts.csv` for the institution (回避); no member inspected the same institution in the previous
cycle (rotation). Soft: no member works in the institution's own region unless no other group is free.
Randomised restarts look for an assignment meeting every hard constraint; what cannot be met is
returned as unassigned with the reason, never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl


@dataclass
class Assignment:
    groups: dict[int, list[str]]  # group number -> inspector ids
    target_group: dict[str, int]  # fixmedins_code -> group number
    unassigned: dict[str, str] = field(default_factory=dict)  # fixmedins_code -> reason (Chinese)
    own_region: list[str] = field(default_factory=list)  # targets sent a group with a member of their region

    def cost(self) -> tuple[int, int]:
        return len(self.unassigned), len(self.own_region)


def _blocked_reason(code: str, inspectors: list[str], conflicts: set, last_cycle: set, group_size: int) -> str:
    free = [i for i in inspectors if (i, code) not in conflicts and (i, code) not in last_cycle]
    if len(free) < group_size:
        n_conf = sum((i, code) in conflicts for i in inspectors)
        n_last = sum((i, code) in last_cycle for i in inspectors)
        return (
            f"可派执法人员不足{group_size}名: 共{len(inspectors)}名, 其中{n_conf}名需回避、"
            f"{n_last}名上一周期已检查该机构"
        )
    return "现有检查组均有成员需回避或上期已检查该机构, 或各组已满; 请增加执法人员或调整分组"


def _one_attempt(
    codes: list[str],
    regions: dict[str, str | None],
    inspectors: list[str],
    insp_region: dict[str, str | None],
    conflicts: set,
    last_cycle: set,
    cfg: dict,
    rng: np.random.Generator,
    fixed_groups: dict[int, list[str]] | None,
    fixed_load: dict[int, int],
    spare: int,
) -> Assignment:
    size = cfg["group_size"]
    if fixed_groups:
        groups = {g: list(m) for g, m in fixed_groups.items()}
    else:
        perm = [inspectors[int(i)] for i in rng.permutation(len(inspectors))]
        n_groups = max(1, min(len(perm) // size, math.ceil(len(codes) / cfg["institutions_per_group"])))
        groups = {g + 1: sorted(perm[g * size : (g + 1) * size]) for g in range(n_groups)}
    capacity = math.ceil((len(codes) + sum(fixed_load.values())) / len(groups)) + spare
    load = {g: fixed_load.get(g, 0) for g in groups}

    def allowed(g: int, code: str) -> bool:
        return all((i, code) not in conflicts and (i, code) not in last_cycle for i in groups[g])

    def local(g: int, code: str) -> bool:
        return (
            cfg["avoid_own_region"]
            and regions.get(code) is not None
            and any(insp_region.get(i) == regions[code] for i in groups[g])
        )

    # most constrained institutions first, ties in random order
    tiebreak = {c: float(x) for c, x in zip(codes, rng.random(len(codes)), strict=True)}
    order = sorted(codes, key=lambda c: (sum(allowed(g, c) for g in groups), tiebreak[c]))
    result = Assignment(groups, {})
    for code in order:
        options = [g for g in groups if load[g] < capacity and allowed(g, code)]
        if not options:
            result.unassigned[code] = _blocked_reason(code, inspectors, conflicts, last_cycle, size)
            continue
        noise = rng.random(len(options))
        best = min(zip(options, noise, strict=True), key=lambda o: (local(o[0], code), load[o[0]], o[1]))[0]
        result.target_group[code] = best
        load[best] += 1
        if local(best, code):
            result.own_region.append(code)
    return result


def assign_groups(
    targets: pl.DataFrame,
    inspectors: pl.DataFrame,
    conflicts: pl.DataFrame,
    last_cycle: pl.DataFrame,
    cfg: dict,
    rng: np.random.Generator,
    fixed_groups: dict[int, list[str]] | None = None,
    fixed_load: dict[int, int] | None = None,
    spare: int = 0,
) -> Assignment:
    """Groups and their institutions.

    `targets`: fixmedins_code, region. `inspectors`: inspector_id, region. `conflicts` and
    `last_cycle`: inspector_id, fixmedins_code pairs. `fixed_groups` keeps the groups of an earlier draw
    of the same cycle (when complaint targets are added to it), `fixed_load` their institutions so far;
    `spare` lets each group take that many more than an even share (a target moved for 回避 may otherwise find
    room only in the group it left).
    """
    codes = sorted(targets["fixmedins_code"].to_list())
    ids = sorted(inspectors["inspector_id"].to_list())
    if not codes:
        return Assignment(fixed_groups or {}, {})
    if len(ids) < cfg["group_size"] and not fixed_groups:
        reason = f"执法人员名单不足{cfg['group_size']}人(现有{len(ids)}人), 无法组成检查组; 请更新inspectors.csv"
        return Assignment({}, {}, dict.fromkeys(codes, reason))
    pairs = {(a, b) for a, b in conflicts.select("inspector_id", "fixmedins_code").iter_rows()}
    last = {(a, b) for a, b in last_cycle.select("inspector_id", "fixmedins_code").iter_rows()}
    regions = dict(targets.select("fixmedins_code", "region").iter_rows())
    insp_region = dict(inspectors.select("inspector_id", "region").iter_rows())
    best: Assignment | None = None
    for _ in range(max(1, int(cfg["attempts"]))):
        a = _one_attempt(codes, regions, ids, insp_region, pairs, last, cfg, rng, fixed_groups, fixed_load or {}, spare)
        if best is None or a.cost() < best.cost():
            best = a
        if best.cost() == (0, 0):
            break
    assert best is not None
    return best
