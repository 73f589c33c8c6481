"""Which institutions inspectors visit this cycle: every open complaint and follow-up target, the
highest-risk institutions, and a random draw from the rest — separately for hospitals and pharmacies.

Pure: the candidates and targets come in as frames, randomness from the generator passed in, so the
same seed and inputs always give the same list.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

KINDS = {"1": "hospitals", "2": "pharmacies"}
COMPLAINT_IN = re.compile(r"举报投诉([^(;]+)\(")
REASON_ORDER = {"complaint": 0, "follow_up": 1, "risk": 2, "random": 3}
REASON_ZH = {"complaint": "举报投诉", "follow_up": "整改跟踪", "risk": "高风险", "random": "随机抽取"}
# a night with nothing to draw from records no draw (see targeting/step.py: no_draw); what its readers are told
NO_DRAW_ZH = "本晚未抽取: 审核窗口内没有就诊, 也没有待查的举报; 本周期的抽取在首个有数据的夜间进行"

CANDIDATE_SCHEMA = {
    "fixmedins_code": pl.String,
    "fixmedins_type": pl.String,
    "risk_score": pl.Float64,
}


def quota_split(quota: int, random_share: float) -> tuple[int, int]:
    """(risk picks, random picks) of a quota; at least one random pick whenever the share is above zero."""
    n_random = round(quota * random_share)
    if random_share > 0 and quota > 0:
        n_random = max(n_random, 1)
    return quota - n_random, n_random


def _random_pick(pool: pl.DataFrame, n: int, weighting: str, rng: np.random.Generator) -> list[str]:
    if n <= 0 or pool.is_empty():
        return []
    pool = pool.sort("fixmedins_code")  # the draw depends on the seed, never on row order
    n = min(n, pool.height)
    p = None
    if weighting == "risk":
        w = 1.0 + pool["risk_score"].fill_null(0).to_numpy()
        p = w / w.sum()
    idx = rng.choice(pool.height, size=n, replace=False, p=p)
    return [pool["fixmedins_code"][int(i)] for i in idx]


def complaint_detail(c: dict) -> str:
    """How a target's selection detail names an open complaint (complaint_id, received_date, deadline)."""
    return f"举报投诉{c['complaint_id']}({c['received_date']}收到, {c['deadline']}前须核查)"


def complaints_in(detail: str, before: str = "") -> list[str]:
    """The complaint ids a selection detail names (as `complaint_detail` writes them), less those `before` names."""
    old = set(COMPLAINT_IN.findall(before))
    return [c for c in COMPLAINT_IN.findall(detail) if c not in old]


def select_targets(
    candidates: pl.DataFrame,
    complaints: pl.DataFrame,
    follow_up: pl.DataFrame,
    cfg: dict,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """One row per target: fixmedins_code, selection_reason, selection_detail, rank.

    `candidates`: fixmedins_code, fixmedins_type ('1' hospital / '2' pharmacy), risk_score.
    `complaints`: open complaints (complaint_id, received_date, deadline, fixmedins_code).
    `follow_up`: fixmedins_code, detail — institutions whose rectification is overdue or failed.
    """
    sel = cfg["selection"]
    ranked = candidates.sort(["risk_score", "fixmedins_code"], descending=[True, False], nulls_last=True)
    ranked = ranked.with_columns(risk_rank=pl.int_range(1, pl.len() + 1))
    rows: dict[str, dict] = {}

    for c in complaints.sort("deadline", "complaint_id").iter_rows(named=True):
        detail = complaint_detail(c)
        if c["fixmedins_code"] in rows:
            rows[c["fixmedins_code"]]["selection_detail"] += "; " + detail
        else:
            rows[c["fixmedins_code"]] = {"selection_reason": "complaint", "selection_detail": detail}
    for f in follow_up.sort("fixmedins_code").iter_rows(named=True):
        if f["fixmedins_code"] not in rows:
            rows[f["fixmedins_code"]] = {"selection_reason": "follow_up", "selection_detail": f["detail"]}

    for kind, key in KINDS.items():
        # institutions without claims in the window (risk_score null) have nothing to audit
        pool = ranked.filter(
            (pl.col("fixmedins_type") == kind)
            & pl.col("risk_score").is_not_null()
            & ~pl.col("fixmedins_code").is_in(list(rows))
        )
        n_risk, n_random = quota_split(int(sel[key]), float(sel["random_share"]))
        risky = pool.filter(pl.col("risk_score") >= sel["min_risk_score"]).head(n_risk)
        for r in risky.iter_rows(named=True):
            rows[r["fixmedins_code"]] = {
                "selection_reason": "risk",
                "selection_detail": f"风险评分{r['risk_score']:.1f}, 全区第{r['risk_rank']}位",
            }
        n_random += n_risk - risky.height  # risk slots nobody earned go to the random draw
        rest = pool.filter(~pl.col("fixmedins_code").is_in(risky["fixmedins_code"].to_list()))
        how = "按风险加权随机抽取" if sel["random_weighting"] == "risk" else "随机抽取"
        for code in _random_pick(rest, n_random, sel["random_weighting"], rng):
            rows[code] = {"selection_reason": "random", "selection_detail": f"{how}(共{rest.height}家待抽)"}

    if not rows:
        return pl.DataFrame(
            schema={
                "rank": pl.Int32,
                "fixmedins_code": pl.String,
                "selection_reason": pl.String,
                "selection_detail": pl.String,
            }
        )
    out = pl.DataFrame([{"fixmedins_code": k, **v} for k, v in rows.items()])
    out = out.join(ranked.select("fixmedins_code", "risk_score"), on="fixmedins_code", how="left")
    out = out.with_columns(_order=pl.col("selection_reason").replace_strict(REASON_ORDER, return_dtype=pl.Int8))
    out = out.sort(["_order", "risk_score", "fixmedins_code"], descending=[False, True, False], nulls_last=True)
    return out.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank"),
        "fixmedins_code",
        "selection_reason",
        "selection_detail",
    )
