"""One audit draw as a pure function of its recorded inputs, parameters and seed.

`make_draw` selects the targets and assigns the groups; `amend_draw` adds complaint targets that
arrived after the cycle's draw, keeping its groups. Both are re-run by `claimwatch draws --verify` on
the inputs stored with a draw, which must give the same result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.targeting.assignment import Assignment, assign_groups
from pipelines.targeting.selection import select_targets

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
    base_load: dict[int, int],
) -> DrawResult:
    """Complaint targets not yet on the cycle's list, added after it with groups from the same cycle."""
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
    assignment = _assign(
        added, inputs, cfg, stream(seed, STREAM_AMEND, version), fixed_groups=base_groups, fixed_load=base_load
    )
    return DrawResult(added, assignment)
