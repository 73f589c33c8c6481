"""门诊高额费用: visits that cost far more than their peers (type x level x department x diagnosis).

Robust statistics (median, MAD) against the finest peer group with enough visits, so a large level-3
hospital is compared with other level-3 hospitals and is not flagged merely for being large.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors.base import (
    SUSPECT,
    VISIT_WHERE_COLUMNS,
    BaseDetector,
    as_findings,
    empty_findings,
    squash,
    visit_where,
    yuan_text,
)
from detectors.peer_stats import apply_baselines, fit_baselines, robust_z

COMPONENT_NAMES = {
    "drug_amt": "药品费",
    "exam_amt": "检查化验费",
    "material_amt": "卫生材料费",
    "treatment_amt": "治疗手术费",
}
GROUP_WORDS = {
    "med_type": "同类别",
    "hosp_lv": "同级别",
    "dept_codg": "同科室",
    "dscg_maindiag_code": "同诊断",
    "fixmedins_type": "同类机构",
    "region": "同片区",
}


def group_name(keys: list[str]) -> str:
    """How a person says which peers a visit was compared with, e.g. 同类别同级别同科室."""
    return "".join(GROUP_WORDS.get(k, f"同{k}") for k in keys) or "全部"


class HighCostDetector(BaseDetector):
    """X: a visits frame with the peer-group columns, `medfee_sumamt` and the component amounts."""

    def __init__(
        self,
        peer_groups: list[list[str]],
        min_peers: int = 30,
        min_ratio: float = 3.0,
        min_z: float = 4.0,
        min_excess: float = 0.0,
        components: list[str] | None = None,
        value: str = "medfee_sumamt",
    ):
        self.peer_groups = peer_groups
        self.min_peers = min_peers
        self.min_ratio = min_ratio
        self.min_z = min_z
        self.min_excess = min_excess
        self.components = components or []
        self.value = value

    def fit(self, X: pl.DataFrame, y=None) -> HighCostDetector:
        self.measured_ = list(dict.fromkeys([self.value, *self.components]))
        self.baselines_ = fit_baselines(X, self.measured_, self.peer_groups, self.min_peers)
        return self

    def _measured(self, X: pl.DataFrame) -> pl.DataFrame:
        self._check_fitted()
        # the joins run on the peer keys and the measured columns only, then the results are set beside X
        # (a left join keeps the row order): joining all of X's columns at every level cost GBs at district scale
        keys = list(dict.fromkeys(k for g in self.peer_groups for k in g))
        narrow = X.select(keys + [c for c in self.measured_ if c not in keys])
        narrow = apply_baselines(narrow, self.measured_, self.peer_groups, self.baselines_)
        added = [f"{c}_{s}" for c in self.measured_ for s in ("median", "mad", "peers", "level")]
        out = X.hstack(narrow.select(added))
        v = self.value
        return out.with_columns(
            robust_z(pl.col(v), pl.col(f"{v}_median"), pl.col(f"{v}_mad")).alias("_z"),
            (pl.col(v) / pl.max_horizontal(pl.col(f"{v}_median"), pl.lit(1.0))).alias("_ratio"),
        )

    def decision_function(self, X: pl.DataFrame) -> np.ndarray:
        return self._measured(X)["_z"].to_numpy()

    def find(self, X: pl.DataFrame) -> pl.DataFrame:
        v = self.value
        m = self._measured(X).filter(
            (pl.col("_ratio") >= self.min_ratio)
            & (pl.col("_z") >= self.min_z)
            & (pl.col(v) - pl.col(f"{v}_median") >= self.min_excess)
        )
        if m.is_empty():
            return empty_findings()
        v = self.value
        # the component that deviates most, as a multiple of its own peer median
        comp = [((pl.col(c) / pl.max_horizontal(pl.col(f"{c}_median"), pl.lit(1.0))).alias(c)) for c in self.components]
        ratios = m.select(comp) if comp else None
        top_name, top_ratio = [], []
        for row in ratios.iter_rows() if ratios is not None else [() for _ in range(m.height)]:
            if row and max(row) >= 2:
                k = int(np.argmax(row))
                top_name.append(COMPONENT_NAMES.get(self.components[k], self.components[k]))
                top_ratio.append(row[k])
            else:
                top_name.append(None)
                top_ratio.append(None)
        m = m.with_columns(
            pl.Series("_top", top_name, dtype=pl.String), pl.Series("_top_r", top_ratio, dtype=pl.Float64)
        )
        level = pl.col(f"{v}_level").replace_strict(
            {i: group_name(g) for i, g in enumerate(self.peer_groups)}, default="同类"
        )
        reason = pl.format(
            "次均费用{}元, 为{}中位数{}元的{}倍",
            yuan_text(pl.col(v)),
            level,
            yuan_text(pl.col(f"{v}_median")),
            pl.col("_ratio").round(1),
        )
        reason = (
            pl.when(pl.col("_top").is_not_null())
            .then(pl.format("{}; 其中{}为同组中位数的{}倍", reason, pl.col("_top"), pl.col("_top_r").round(1)))
            .otherwise(reason)
        )
        return as_findings(
            m.select(
                *visit_where(),
                squash(pl.col("_z"), 8.0).alias("score"),
                (pl.col(v) - pl.col(f"{v}_median")).alias("amount"),
                reason.alias("reason"),
            ),
            source="HIGH_COST",
            source_name="门诊高额费用",
            kind="统计",
            result_type=SUSPECT,
        )


def run(visits: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Findings over a window's visits, configured by `config.toml`."""
    c = cfg["high_cost"]
    # only the columns the detector reads are copied by the filter (the whole window's visits are ~1 GB at
    # district scale)
    keys = [k for g in c["peer_groups"] for k in g]
    used = list(dict.fromkeys([*VISIT_WHERE_COLUMNS, "med_type", *keys, "medfee_sumamt", *c["components"]]))
    v = visits.select(used).filter(pl.col("med_type").is_in(c["med_types"]))
    if v.is_empty():
        return empty_findings()
    det = HighCostDetector(
        c["peer_groups"], c["min_peers"], c["min_ratio"], c["min_z"], c["min_excess"], c["components"]
    ).fit(v)
    return det.find(v)
