"""The visits to pull on site for one institution: a stratified random sample with inclusion weights.

Strata: the visits of a person an open complaint names (举报涉及人员, pulled in addition to the sample: all of
them up to `complaint_visits`, else a random share of them), a certainty stratum of the largest visits (always
pulled, weight 1), then result class (明确违规 / 可疑 / 未标记, from the night's findings) × amount band.
Each stratum gets its share of the sample (at least `min_per_stratum` where it has that many visits), drawn
in a random order; the next 10–20% in that order are spares, to pull when a record cannot be found. A unit's
weight is N_h / n_h, so weighted sums of the audited values estimate the institution's totals.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import polars as pl

CLASSES = ("明确违规", "可疑", "未标记")
CERTAINTY = "确定性(金额最大)"
COMPLAINT = "举报涉及人员"  # a result class and its stratum: the visits of a person a complaint names
SAMPLE_SCHEMA = {
    "setl_id": pl.String,
    "stratum": pl.String,
    "role": pl.String,  # 抽样 (sampled) / 备用 (spare)
    "draw_order": pl.Int32,
    "weight": pl.Float64,
    "stratum_size": pl.Int32,
    "stratum_sample": pl.Int32,
}


def frame_sha256(frame: pl.DataFrame) -> str:
    """Fingerprint of a sampling frame (ids, classes, amounts), recorded so a re-draw can be checked."""
    rows = frame.sort("setl_id").select(
        "setl_id", "result_class", pl.col("amount").round(2).cast(pl.String).fill_null("")
    )
    h = hashlib.sha256()
    for r in rows.iter_rows():
        h.update("\x1f".join(r).encode() + b"\n")
    return h.hexdigest()


def _band_labels(n: int) -> list[str]:
    return ["低额", "高额"] if n == 2 else [f"金额第{k + 1}档" for k in range(n)]


def _largest_remainder(total: int, weights: list[float], caps: list[int], floor: list[int]) -> list[int]:
    """Integers summing to min(total, sum caps), near-proportional to weights, within floor..cap each."""
    alloc = [min(f, c) for f, c in zip(floor, caps, strict=True)]
    left = min(total, sum(caps)) - sum(alloc)
    while left > 0:
        open_ = [i for i in range(len(caps)) if alloc[i] < caps[i]]
        w = sum(weights[i] for i in open_)
        ideal = {i: left * weights[i] / w if w > 0 else left / len(open_) for i in open_}
        adds = {i: min(math.floor(ideal[i]), caps[i] - alloc[i]) for i in open_}
        if sum(adds.values()) == 0:  # the remainder: one unit to the largest fractional share
            adds = {max(open_, key=lambda i: (ideal[i] - math.floor(ideal[i]), -i)): 1}
        for i, a in adds.items():
            alloc[i] += a
            left -= a
    return alloc


def stratify(frame: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """`frame` (setl_id, amount, result_class) with a `stratum` column."""
    frame = frame.sort(["amount", "setl_id"], descending=[True, False])
    named = frame.filter(pl.col("result_class") == COMPLAINT).with_columns(stratum=pl.lit(COMPLAINT))
    frame = frame.filter(pl.col("result_class") != COMPLAINT)
    certain = frame.head(cfg["certainty"]).with_columns(stratum=pl.lit(CERTAINTY))
    rest = frame.slice(cfg["certainty"])
    bands = int(cfg["amount_bands"])
    labels = _band_labels(bands)
    rest = rest.with_columns(
        _rank=(pl.col("amount").rank("ordinal").over("result_class") - 1),
        _n=pl.len().over("result_class"),
    ).with_columns(
        stratum=pl.col("result_class")
        + "·"
        + ((pl.col("_rank") * bands) // pl.col("_n"))
        .cast(pl.Int64)
        .map_elements(lambda k: labels[k], return_dtype=pl.String)
    )
    return pl.concat([named, certain, rest.drop("_rank", "_n")]).sort("setl_id")


def allocate(strata: pl.DataFrame, cfg: dict) -> dict[str, int]:
    """Sample size per stratum; `strata` has stratum, result_class, N and amount (its total)."""
    out = {s: n for s, n in strata.filter(pl.col("stratum") == CERTAINTY).select("stratum", "N").iter_rows()}
    budget = int(cfg["size"]) - sum(out.values())
    for (n,) in strata.filter(pl.col("stratum") == COMPLAINT).select("N").iter_rows():  # besides the sample
        out[COMPLAINT] = min(n, int(cfg["complaint_visits"]))
    rest = strata.filter(~pl.col("stratum").is_in([CERTAINTY, COMPLAINT])).sort("stratum")
    classes = [c for c in CLASSES if c in rest["result_class"].to_list()]
    class_n = [int(rest.filter(pl.col("result_class") == c)["N"].sum()) for c in classes]
    per_class = _largest_remainder(budget, [float(cfg["class_share"][c]) for c in classes], class_n, [0] * len(classes))
    m = int(cfg["min_per_stratum"])
    for c, n_c in zip(classes, per_class, strict=True):
        part = rest.filter(pl.col("result_class") == c)
        caps = part["N"].to_list()
        weights = [max(float(a), 0.01) for a in part["amount"].to_list()]  # by money at stake
        alloc = _largest_remainder(n_c, weights, caps, [min(m, cap) if n_c >= m * len(caps) else 0 for cap in caps])
        out.update(dict(zip(part["stratum"].to_list(), alloc, strict=True)))
    return out


def draw_claim_sample(frame: pl.DataFrame, cfg: dict, rng: np.random.Generator) -> pl.DataFrame:
    """The sample (and spares) of one institution's visits. `frame`: setl_id, amount, result_class."""
    if frame.is_empty():
        return pl.DataFrame(schema=SAMPLE_SCHEMA)
    s = stratify(frame, cfg)
    sizes = s.group_by("stratum").agg(
        pl.col("result_class").first(), pl.len().alias("N"), pl.col("amount").sum().alias("amount")
    )
    alloc = allocate(sizes, cfg)
    parts = []
    for stratum, part in sorted(s.partition_by("stratum", as_dict=True).items()):
        name = stratum[0]
        n_h, big_n = alloc.get(name, 0), part.height
        if n_h == 0:
            continue
        spares = min(big_n - n_h, math.ceil(cfg["spare_share"] * n_h)) if name != CERTAINTY else 0
        order = rng.permutation(big_n)[: n_h + spares]
        picked = part[order.tolist()]
        parts.append(
            picked.select(
                "setl_id",
                pl.lit(name).alias("stratum"),
                pl.when(pl.int_range(pl.len()) < n_h).then(pl.lit("抽样")).otherwise(pl.lit("备用")).alias("role"),
                (pl.int_range(pl.len()) + 1).cast(pl.Int32).alias("draw_order"),
                pl.lit(big_n / n_h).alias("weight"),
                pl.lit(big_n, pl.Int32).alias("stratum_size"),
                pl.lit(n_h, pl.Int32).alias("stratum_sample"),
            )
        )
    return pl.concat(parts).cast(SAMPLE_SCHEMA) if parts else pl.DataFrame(schema=SAMPLE_SCHEMA)
