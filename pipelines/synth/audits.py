"""Synthetic on-site audits for the demo: inspectors pull the sampled claims of a draw and confirm the
ones the generator made anomalous (with part of their amount overpaid), plus a little noise — what a
bureau would feed back as `reference/audit_outcomes.csv` (SPEC §1.4)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from detectors.rules.engine import load_rules

JUSTIFIABLE = ("high_cost", "frequent_visits", "frequent_purchase", "split_admission", "early_refill")
PATTERN_ZH = {
    "duplicate_charge": "重复收费",
    "early_refill": "提前开药",
    "frequent_purchase": "频繁购药",
    "frequent_visits": "虚构就诊",
    "high_cost": "过度诊疗",
    "idle_bed": "挂床住院",
    "over_ceiling": "超标准收费",
    "over_daily_count": "超限量收费",
    "over_dispensing": "超量开药",
    "restricted_item": "超限定范围用药",
    "split_admission": "分解住院",
    "trace_code_reuse": "药品追溯码重复结算",
}


def audit_outcomes(claim_samples: Path, labels: Path, as_of: date, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    sampled = pl.read_csv(claim_samples, infer_schema=False).filter(pl.col("role") == "抽样")
    truth = pl.read_csv(labels, infer_schema=False).group_by("setl_id").agg(pl.col("pattern").first())
    s = sampled.join(truth, on="setl_id", how="left").sort("fixmedins_code", "setl_id")
    noise = rng.random(s.height) < 0.03  # a violation the generator did not plant but the inspector found
    share = rng.uniform(0.3, 0.9, s.height)
    # what a rule calls a clear violation (an age-restricted item for a child, …) is there in the record too
    clear = {r.name for r in load_rules() if r.result_type == "明确违规"}
    by_rule = s["flags"].fill_null("").str.split("、").list.eval(pl.element().is_in(list(clear))).list.any()
    s = s.with_columns(
        pattern=pl.col("pattern").fill_null(
            pl.when(by_rule).then(s["flags"].str.split("、").list.first()).otherwise(None)
        )
    )
    # a statistical suspicion is sometimes justified by the medical record: not every one is confirmed
    justified = s["pattern"].is_in(list(JUSTIFIABLE)).fill_null(False).to_numpy() & (rng.random(s.height) < 0.2)
    confirmed = (s["pattern"].is_not_null().to_numpy() & ~justified) | noise
    amount = s["amount"].cast(pl.Float64).to_numpy()
    return pl.DataFrame(
        {
            "fixmedins_code": s["fixmedins_code"],
            "setl_id": s["setl_id"],
            "audited_on": [(as_of + timedelta(days=14)).isoformat()] * s.height,
            "finding": np.where(confirmed, "confirmed", "not_confirmed"),
            "violation_type": [
                (PATTERN_ZH.get(p, p) if p else "其他违规") if c else None
                for p, c in zip(s["pattern"].to_list(), confirmed, strict=True)
            ],
            "overpaid_amt": np.round(amount * share, 2),
        }
    ).with_columns(overpaid_amt=pl.when(pl.col("finding") == "confirmed").then(pl.col("overpaid_amt")))
