"""One audit draw as a pure function of its recorded inputs, parameters and seed.

`make_draw` selects the targets and assigns the groups; `amend_draw` keeps the cycle's draw and mends it: it
adds complaint targets that arrived after it, makes a group whole again with an inspector drawn at random when
a member has left the inspectors' list, and gives another group to a target one of whose inspectors must now
avoid it (回避 declared after the draw). Both are re-run by `claimwatch draws --verify` on
the inputs stored with a draw, which must give the same result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.targeting.assignment import Assignment, assign_groups
from pipelines.targeting.selection import complaint_detail, complaints_in, select_targets

# the sub-streams of one seed: each part of the draw has its own, so changing one part never shifts another
STREAM_SELECT, STREAM_ASSIGN, STREAM_SAMPLE, STREAM_AMEND = 0, 1, 2, 3


@dataclass
class DrawInputs:
    candidates: pl.DataFrame  # fixmedins_code, fixmedins_type, region, risk_score
    complaints: pl.DataFrame  # complaint_id, received_date, deadline, fixmedins_code
    follow_up: pl.DataFrame  # fixmedins_code, detail
    inspectors: pl.DataFrame  # inspector_id, region
    conflicts: pl.DataFrame  # inspector_id, fixmedins_code
    last_cycle: pl.DataFrame  # inspector_id, fixmedins_code: who inspected what in the previous cycle

    def to_json(self) -> str:
        return json.dumps(
            {k: getattr(self, k).sort(pl.all()).to_dicts() for k in self.__dataclass_fields__},
            ensure_ascii=False,
            default=str,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> DrawInputs:
        data = json.loads(text)
        return cls(
            **{
                k: pl.DataFrame(v, schema=SCHEMAS[k], orient="row") if v else pl.DataFrame(schema=SCHEMAS[k])
                for k, v in data.items()
            }
        )


SCHEMAS = {
    "candidates": {
        "fixmedins_code": pl.String,
        "fixmedins_type": pl.String,
        "region": pl.String,
        "risk_score": pl.Float64,
    },
    "complaints": {
        "complaint_id": pl.String,
        "deadline": pl.String,
        "fixmedins_code": pl.String,
        "received_date": pl.String,
    },
    "follow_up": {"detail": pl.String, "fixmedins_code": pl.String},
    "inspectors": {"inspector_id": pl.String, "region": pl.String},
    "conflicts": {"fixmedins_code": pl.String, "inspector_id": pl.String},
    "last_cycle": {"fixmedins_code": pl.String, "inspector_id": pl.String},
}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stream(seed: int, part: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, part, *more])


def code_key(code: str) -> int:
    """A stable integer for an institution code, to give each institution its own sample stream."""
    return int(hashlib.sha256(code.encode()).hexdigest()[:12], 16)


@dataclass
class DrawResult:
    targets: pl.DataFrame  # rank, fixmedins_code, selection_reason, selection_detail
    assignment: Assignment
    moved: list[str] = field(default_factory=list)  # an amendment's earlier targets given another group
    groups: dict[int, list[str]] | None = None  # an amendment's groups: made whole again where a member left,
    # without those that could not be (their institutions are among `moved`); formed now if the draw had none
    assigned: list[str] = field(default_factory=list)  # an amendment's earlier targets without a group given one
    noted: dict[str, str] = field(default_factory=dict)  # an amendment's earlier targets an open complaint names
    # that their selection detail does not: that detail with the complaint added (the inspectors must check it)


def _regions(codes: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    return codes.select("fixmedins_code").join(
        candidates.select("fixmedins_code", "region"), on="fixmedins_code", how="left"
    )


def make_draw(inputs: DrawInputs, cfg: dict, seed: int) -> DrawResult:
    targets = select_targets(inputs.candidates, inputs.complaints, inputs.follow_up, cfg, stream(seed, STREAM_SELECT))
    return DrawResult(targets, _assign(targets, inputs, cfg, stream(seed, STREAM_ASSIGN)))


def _assign(targets: pl.DataFrame, inputs: DrawInputs, cfg: dict, rng: np.random.Generator, **fixed) -> Assignment:
    return assign_groups(
        _regions(targets, inputs.candidates),
        inputs.inspectors,
        inputs.conflicts,
        inputs.last_cycle,
        cfg["inspectors"],
        rng,
        **fixed,
    )


def amend_draw(
    inputs: DrawInputs,
    cfg: dict,
    seed: int,
    version: int,
    base_targets: pl.DataFrame,
    base_groups: dict[int, list[str]],
) -> DrawResult:
    """Complaint targets not yet on the cycle's list, added after it with groups from the same cycle; groups
    that lost a member made whole again; the list's targets whose group now has a member who must avoid
    them, or could not be made whole, given another of those groups; and its targets left without a group
    tried again. With no whole group left (a draw made before inspectors.csv listed enough inspectors, or
    every group dissolved) groups are drawn afresh for them. Nothing added, moved, assigned or refilled: the
    draw stands as it is."""
    size = cfg["inspectors"]["group_size"]
    groups, stranded = _refill(
        base_targets, base_groups, inputs, cfg["inspectors"], stream(seed, STREAM_AMEND, version, 1)
    )
    whole = {g: m for g, m in groups.items() if len(m) >= size}
    moved = sorted(set(conflicted(base_targets, groups, inputs.conflicts)) | set(stranded))
    open_ = inputs.complaints.filter(~pl.col("fixmedins_code").is_in(base_targets["fixmedins_code"].to_list()))
    empty = inputs.follow_up.clear()
    added = select_targets(
        inputs.candidates.clear(),
        open_,
        empty,
        {"selection": {**cfg["selection"], "hospitals": 0, "pharmacies": 0}},
        stream(seed, STREAM_AMEND, version),
    )
    added = added.with_columns(rank=pl.col("rank") + base_targets.height)
    staying = base_targets.drop_nulls("inspection_group").filter(~pl.col("fixmedins_code").is_in(moved))
    load = {g: n for g, n in staying.group_by("inspection_group").len().iter_rows() if g in whole}
    waiting = base_targets.filter(pl.col("inspection_group").is_null() & ~pl.col("fixmedins_code").is_in(moved))
    again = pl.concat(
        [
            added.select("fixmedins_code"),
            pl.DataFrame({"fixmedins_code": moved}, schema={"fixmedins_code": pl.String}),
            waiting.select("fixmedins_code"),
        ]
    )
    rng = stream(seed, STREAM_AMEND, version)
    if not whole:  # no whole group: drawn without enough inspectors, or every group dissolved; groups are drawn
        # afresh from the inspectors' list, numbered after the draw's earlier ones (a number never names two groups)
        assignment = _assign(again, inputs, cfg, rng)
        used, offset = set(assignment.target_group.values()), max(base_groups, default=0)
        whole = assignment.groups = {g + offset: m for g, m in assignment.groups.items() if g in used}
        assignment.target_group = {c: g + offset for c, g in assignment.target_group.items()}
    else:
        assignment = _assign(again, inputs, cfg, rng, fixed_groups=whole, fixed_load=load, spare=int(bool(moved)))
    assigned = sorted(c for c in waiting["fixmedins_code"] if c in assignment.target_group)
    return DrawResult(added, assignment, moved, whole, assigned, _noted(base_targets, inputs.complaints))


def _noted(base_targets: pl.DataFrame, complaints: pl.DataFrame) -> dict[str, str]:
    """The earlier targets named by open complaints their selection detail does not mention (a complaint received
    after the draw, about an institution drawn for its risk or at random), with the complaints added to it."""
    details = dict(base_targets.select("fixmedins_code", "selection_detail").iter_rows())
    noted: dict[str, str] = {}
    for c in complaints.sort("deadline", "complaint_id").iter_rows(named=True):
        code = c["fixmedins_code"]
        if code in details and c["complaint_id"] not in complaints_in(detail := noted.get(code, details[code])):
            noted[code] = f"{detail}; {complaint_detail(c)}"
    return noted


def unchanged(result: DrawResult, base_groups: dict[int, list[str]]) -> bool:
    """Whether an amendment changes nothing: no complaint target to add, no complaint to put on a listed target's
    row, no target to move or to give a group, no group refilled or formed."""
    return (
        result.targets.is_empty()
        and not result.moved
        and not result.assigned
        and not result.noted
        and result.groups == base_groups
    )


def _refill(
    targets: pl.DataFrame, base_groups: dict[int, list[str]], inputs: DrawInputs, cfg: dict, rng: np.random.Generator
) -> tuple[dict[int, list[str]], list[str]]:
    """The groups, those with a member no longer on the inspectors' list made whole again by inspectors drawn at
    random from those in no group who may go to every institution of the group (回避, rotation; one from outside
    their regions when there is one); and the institutions of the groups that could not be made whole."""
    listed = set(inputs.inspectors["inspector_id"])
    groups = {g: [i for i in m if i in listed] for g, m in base_groups.items()}
    lost = [g for g in sorted(groups) if len(groups[g]) < len(base_groups[g])]
    if not lost:
        return groups, []
    barred = set(inputs.conflicts.select("inspector_id", "fixmedins_code").iter_rows())
    barred |= set(inputs.last_cycle.select("inspector_id", "fixmedins_code").iter_rows())
    region = dict(inputs.inspectors.select("inspector_id", "region").iter_rows())
    target_region = dict(_regions(targets, inputs.candidates).iter_rows())
    pool = sorted(listed - {i for m in groups.values() for i in m})
    stranded: list[str] = []
    for g in lost:
        codes = targets.filter(pl.col("inspection_group") == g)["fixmedins_code"].to_list()
        while len(groups[g]) < cfg["group_size"]:
            free = [i for i in pool if not any((i, c) in barred for c in codes)]
            far = [i for i in free if region[i] is None or region[i] not in {target_region.get(c) for c in codes}]
            choice = far if far and cfg["avoid_own_region"] else free
            if not choice:
                stranded += codes
                break
            pick = choice[int(rng.integers(len(choice)))]
            groups[g] = sorted([*groups[g], pick])
            pool.remove(pick)
    return groups, stranded


def conflicted(targets: pl.DataFrame, groups: dict[int, list[str]], conflicts: pl.DataFrame) -> list[str]:
    """The targets whose group has a member listed in `conflicts` for them."""
    pairs = set(conflicts.select("inspector_id", "fixmedins_code").iter_rows())
    return sorted(
        code
        for code, g in targets.select("fixmedins_code", "inspection_group").iter_rows()
        if g is not None and any((i, code) in pairs for i in groups.get(g, []))
    )


def amended_targets(base_targets: pl.DataFrame, result: DrawResult) -> pl.DataFrame:
    """An amended draw's whole list: the earlier targets (those moved or given a group in their new group, those a
    complaint has come about with it in their detail) and those added."""
    groups = result.assignment.target_group
    base = base_targets.with_columns(
        inspection_group=pl.when(pl.col("fixmedins_code").is_in([*result.moved, *result.assigned]))
        .then(pl.col("fixmedins_code").replace_strict(groups, default=None, return_dtype=pl.Int32))
        .otherwise(pl.col("inspection_group")),
        selection_detail=pl.col("fixmedins_code").replace_strict(
            result.noted, default=pl.col("selection_detail"), return_dtype=pl.String
        ),
    )
    added = result.targets.with_columns(
        inspection_group=pl.col("fixmedins_code").replace_strict(groups, default=None, return_dtype=pl.Int32)
    )
    return pl.concat([base, added.select(base.columns).cast(base.schema)])
