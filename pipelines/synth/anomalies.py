"""Injected, labelled anomalies: what a dishonest institution's claims look like.

Each pattern edits or extends the normal claims of one institution and records the affected visits in
`claims.labels` as (vid, pattern). Rule patterns (duplicate charges, over-ceiling prices, restricted
items, ...) are exact by construction; statistical ones (high cost, frequent visits) are deliberately
strong enough to stand out from their peers but not absurd.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from pipelines.synth.claims import Claims, add_purchases, add_stays, eligible_persons
from pipelines.synth.district import CHRONIC_DRUGS, DIAGNOSES, ITEM_PAIRS, ITEMS, OTC_DRUGS, item

HOSPITAL_PATTERNS = [
    "high_cost",
    "frequent_visits",
    "duplicate_charge",
    "over_ceiling",
    "restricted_item",
    "over_daily_count",
    "split_admission",
    "idle_bed",
]
PHARMACY_PATTERNS = ["over_dispensing", "early_refill", "frequent_purchase", "trace_code_reuse", "over_ceiling"]
STATISTICAL_PATTERNS = {"high_cost", "frequent_visits", "frequent_purchase"}
INPATIENT_PATTERNS = {"split_admission", "idle_bed"}


def _sample(rng: np.random.Generator, ids: np.ndarray, share: float, at_least: int = 3) -> np.ndarray:
    k = min(len(ids), max(at_least, round(len(ids) * share)))
    return rng.choice(ids, k, replace=False) if k else ids[:0]


def _inst_visits(claims: Claims, code: str, med_types: list[str]) -> pl.DataFrame:
    v, _ = claims.consolidate()
    return v.filter((pl.col("inst") == code) & pl.col("med_type").is_in(med_types))


def _label(claims: Claims, vids, pattern: str) -> None:
    claims.labels.extend((int(v), pattern) for v in vids)


def _add_to_visits(
    claims: Claims, visits: pl.DataFrame, name: str, cnt: float, offset_s: int = 1500, pric: float | None = None
) -> None:
    it = item(name)
    n = visits.height
    claims.add_lines(
        visits["vid"].to_numpy(),
        it.codg,
        np.full(n, cnt),
        np.full(n, pric or it.pric),
        visits["begn"].to_numpy() + np.timedelta64(offset_s, "s"),
        prd_days=np.full(n, int(cnt * (it.prd_days or 1)), dtype=np.int32) if it.list_type == "drug" else None,
    )


def high_cost(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    v = _inst_visits(claims, code, ["11", "13"])
    pick = v.filter(pl.col("vid").is_in(_sample(rng, v["vid"].to_numpy(), 0.08)))
    for name, lo, hi in [("玻璃酸钠注射液", 2, 4), ("CT平扫", 1, 1), ("肝功能检查", 1, 1), ("推拿治疗", 1, 2)]:
        it = item(name)
        cnt = rng.integers(lo, hi + 1, pick.height).astype(float)
        claims.add_lines(
            pick["vid"].to_numpy(),
            it.codg,
            cnt,
            np.full(pick.height, it.pric),
            pick["begn"].to_numpy() + np.timedelta64(1800, "s"),
        )
    _label(claims, pick["vid"], "high_cost")


def frequent_visits(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """A handful of card holders 'visit' almost every other day (刷卡套现 / 挂名就诊)."""
    dx = next(i for i, d in enumerate(DIAGNOSES) if d.code == "J06.900")
    who = rng.choice(eligible_persons(persons, dx), 6, replace=False)
    span = min(30, claims.days)
    for p in who:
        days = np.sort(rng.choice(np.arange(claims.days - span, claims.days), rng.integers(11, 17), replace=False))
        n = len(days)
        begn = claims.day_time(days, rng.integers(8 * 3600, 17 * 3600, n))
        vids = claims.new_vids(n)
        claims.add_visits(
            vid=vids,
            inst=[code] * n,
            psn=np.full(n, p),
            med_type=["11"] * n,
            dx=np.full(n, dx, dtype=np.int32),
            dept=["A03"] * n,
            begn=begn,
            end=begn + np.timedelta64(900, "s"),
        )
        visits = pl.DataFrame({"vid": vids, "begn": begn})
        _add_to_visits(claims, visits, "普通门诊诊察费", 1, 300)
        _add_to_visits(claims, visits, "连花清瘟胶囊", 1, 600)
        _add_to_visits(claims, visits, "阿莫西林胶囊", 2, 660)
        _label(claims, vids, "frequent_visits")


def duplicate_charge(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """The same line billed twice, or a sub item billed beside the main item that includes it."""
    v = _inst_visits(claims, code, ["11", "13", "14", "21"])
    _, lines = claims.consolidate()
    lines = lines.filter(pl.col("vid").is_in(v["vid"].implode()) & pl.col("refund_of").is_null())
    pick = _sample(rng, v["vid"].to_numpy(), 0.05)
    half = set(pick[: len(pick) // 2].tolist())
    twice = lines.filter(pl.col("vid").is_in(list(half))).unique("vid", keep="last", maintain_order=True)
    claims.add_lines(
        twice["vid"].to_numpy(),
        twice["item"].to_numpy(),
        twice["cnt"].to_numpy(),
        twice["pric"].to_numpy(),
        twice["t"].to_numpy(),
        prd_days=twice["prd_days"],
    )
    labelled = set(twice["vid"].to_list())
    for main, sub, _, _ in ITEM_PAIRS:
        has_main = lines.filter((pl.col("item") == item(main).codg) & pl.col("vid").is_in(pick[len(pick) // 2 :]))
        has_main = has_main.unique("vid", keep="first", maintain_order=True)
        it = item(sub)
        claims.add_lines(
            has_main["vid"].to_numpy(),
            it.codg,
            np.ones(has_main.height),
            np.full(has_main.height, it.pric),
            has_main["t"].to_numpy() + np.timedelta64(120, "s"),
        )
        labelled |= set(has_main["vid"].to_list())
    _label(claims, sorted(labelled), "duplicate_charge")


def over_ceiling(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    v = _inst_visits(claims, code, ["11", "13", "14", "21", "41"])
    pick = _sample(rng, v["vid"].to_numpy(), 0.06)
    capped = [c for c, i in ITEMS.items() if i.uplmt]
    _visits, lines = claims.consolidate()
    target = lines.filter(
        pl.col("vid").is_in(pick) & pl.col("item").is_in(capped) & pl.col("refund_of").is_null()
    ).unique("vid", keep="first", maintain_order=True)
    uplmt = np.array([ITEMS[c].uplmt for c in target["item"]])
    new_price = np.round(uplmt * rng.uniform(1.25, 1.6, target.height), 2)
    price = dict(zip(target["lid"].to_list(), new_price.tolist(), strict=True))
    lines = lines.with_columns(
        pl.col("lid").replace_strict(price, default=pl.col("pric"), return_dtype=pl.Float64).alias("pric")
    )
    # a refund of a repriced line must carry the same price
    lines = lines.with_columns(
        pl.col("refund_of").replace_strict(price, default=pl.col("pric"), return_dtype=pl.Float64).alias("pric")
    )
    claims.lines = [lines]
    _label(claims, target["vid"].unique(), "over_ceiling")


def restricted_item(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """Items limited to one sex or to children billed to patients outside the limit."""
    v = _inst_visits(claims, code, ["11", "14"]).join(
        persons.with_row_index("psn").select(pl.col("psn").cast(pl.Int64), "gend", "age"), on="psn"
    )
    pick = v.filter(pl.col("vid").is_in(_sample(rng, v["vid"].to_numpy(), 0.05)))
    _add_to_visits(claims, pick.filter(pl.col("gend") == "1"), "宫颈液基细胞学检查", 1)
    _add_to_visits(claims, pick.filter((pl.col("gend") == "2") & (pl.col("age") > 14)), "小儿推拿", 1)
    _add_to_visits(claims, pick.filter((pl.col("gend") == "2") & (pl.col("age") <= 14)), "前列腺特异性抗原测定", 1)
    _label(claims, pick["vid"], "restricted_item")


def over_daily_count(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    v = _inst_visits(claims, code, ["11", "14"])
    pick = v.filter(pl.col("vid").is_in(_sample(rng, v["vid"].to_numpy(), 0.04)))
    _add_to_visits(claims, pick, "针刺治疗", float(rng.integers(3, 5)))
    _label(claims, pick["vid"], "over_daily_count")


def split_admission(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """Discharge and readmit the same patient for the same diagnosis a few days later (分解住院)."""
    v = _inst_visits(claims, code, ["21"])
    v = v.with_columns(((pl.col("end").dt.date() - pl.lit(claims.start)).dt.total_days()).alias("end_day"))
    v = v.filter(pl.col("end_day") < claims.days - 14)
    pick = v.filter(pl.col("vid").is_in(_sample(rng, v["vid"].to_numpy(), 0.3)))
    if pick.is_empty():
        return
    n = pick.height
    adm = pick["end_day"].to_numpy() + rng.integers(1, 8, n)
    los = rng.integers(3, 6, n).astype(np.int64)
    vids = add_stays(
        rng, claims, code, claims.levels[code], pick["psn"].to_numpy(), pick["dx"].to_numpy().astype(np.int32), adm, los
    )
    _label(claims, vids, "split_admission")


def idle_bed(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """Stays that go on for days with nothing but bed and nursing charges (挂床住院)."""
    v = _inst_visits(claims, code, ["21"])
    v = v.with_columns(
        ((pl.col("begn").dt.date() - pl.lit(claims.start)).dt.total_days()).alias("adm_day"),
        ((pl.col("end").dt.date() - pl.col("begn").dt.date()).dt.total_days()).alias("los"),
    )
    v = v.filter(pl.col("adm_day") >= 0)
    idle = rng.integers(5, 10, v.height)
    v = v.with_columns(pl.Series("idle", idle)).filter(pl.col("adm_day") + pl.col("los") + pl.col("idle") < claims.days)
    pick = v.filter(pl.col("vid").is_in(_sample(rng, v["vid"].to_numpy(), 0.3)))
    if pick.is_empty():
        return
    # replace the picked stays by longer ones (same patient, diagnosis and admission day)
    visits, lines = claims.consolidate()
    claims.visits = [visits.filter(~pl.col("vid").is_in(pick["vid"].implode()))]
    claims.lines = [lines.filter(~pl.col("vid").is_in(pick["vid"].implode()))]
    vids = add_stays(
        rng,
        claims,
        code,
        claims.levels[code],
        pick["psn"].to_numpy(),
        pick["dx"].to_numpy().astype(np.int32),
        pick["adm_day"].to_numpy(),
        pick["los"].to_numpy(),
        idle_days=pick["idle"].to_numpy(),
    )
    _label(claims, vids, "idle_bed")


def _chronic_purchases(claims: Claims, code: str) -> pl.DataFrame:
    chronic_codes = [item(d).codg for d in CHRONIC_DRUGS.values()]
    v = _inst_visits(claims, code, ["41"])
    _, lines = claims.consolidate()
    return lines.filter(pl.col("vid").is_in(v["vid"].implode()) & pl.col("item").is_in(chronic_codes))


def over_dispensing(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """A chronic drug sold for two to three months at once, beyond the catalogue's days of supply."""
    cand = _chronic_purchases(claims, code)
    pick = set(_sample(rng, cand["lid"].to_numpy(), 0.25).tolist())
    factor = int(rng.integers(3, 4))
    _, lines = claims.consolidate()
    hit = pl.col("lid").is_in(list(pick))
    claims.lines = [
        lines.with_columns(
            pl.when(hit).then(pl.col("cnt") * factor).otherwise(pl.col("cnt")).alias("cnt"),
            pl.when(hit).then(pl.col("prd_days") * factor).otherwise(pl.col("prd_days")).alias("prd_days"),
        )
    ]
    _label(claims, cand.filter(pl.col("lid").is_in(list(pick)))["vid"].unique(), "over_dispensing")
    # the patient's next regular refill now comes while two months of supply are left: a true early refill
    visits, lines = claims.consolidate()
    here = visits.filter(pl.col("inst") == code).select("vid", "psn")
    mine = lines.join(here, on="vid")
    big = mine.filter(hit).select("psn", "item", pl.col("t").alias("t_big"))
    nxt = (
        mine.join(big, on=["psn", "item"])
        .filter(pl.col("t") > pl.col("t_big"))
        .sort("t")
        .unique(["psn", "item", "t_big"], keep="first")
    )
    _label(claims, nxt["vid"].unique(), "early_refill")


def early_refill(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """Patients who come back for a month's supply every week or so (超量开药 / 囤药)."""
    dx = next(i for i, d in enumerate(DIAGNOSES) if d.chronic == "高血压")
    it = item(CHRONIC_DRUGS["高血压"])
    # people who do not already refill this drug here, so their purchases are the pattern and nothing else
    regulars = _chronic_purchases(claims, code).join(claims.consolidate()[0].select("vid", "psn"), on="vid")["psn"]
    pool = np.setdiff1d(eligible_persons(persons, dx), regulars.to_numpy())
    who = rng.choice(pool, 5, replace=False)
    boxes = float(np.floor(it.max_prd_days / it.prd_days))
    for p in who:
        days = np.arange(int(rng.integers(0, 5)), claims.days, int(rng.integers(6, 11)))
        vids = add_purchases(
            rng, claims, code, np.full(len(days), p), days, [np.full(len(days), it.codg)], [np.full(len(days), boxes)]
        )
        _label(claims, vids[1:], "early_refill")


def frequent_purchase(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    who = rng.choice(len(persons), 5, replace=False)
    otc = np.array([item(x).codg for x in OTC_DRUGS])
    span = min(30, claims.days)
    for p in who:
        days = np.sort(rng.choice(np.arange(claims.days - span, claims.days), rng.integers(12, 18), replace=False))
        n = len(days)
        vids = add_purchases(
            rng,
            claims,
            code,
            np.full(n, p),
            days,
            [rng.choice(otc, n), rng.choice(otc, n)],
            [np.ones(n), np.ones(n)],
        )
        _label(claims, vids, "frequent_purchase")


def trace_code_reuse(rng, claims: Claims, code: str, persons: pl.DataFrame) -> None:
    """A traceability code already sold is settled again (回流药 / 串换)."""
    v = _inst_visits(claims, code, ["41"])
    _visits, lines = claims.consolidate()
    mine = lines.filter(pl.col("vid").is_in(v["vid"].implode()) & pl.col("trace").is_not_null()).sort("t")
    k = max(3, int(mine.height * 0.04))
    later = mine.tail(mine.height // 2).sample(min(k, mine.height // 2), seed=int(rng.integers(1 << 31)))
    earlier = mine.head(mine.height // 2).sample(later.height, seed=int(rng.integers(1 << 31)))
    reuse = dict(zip(later["lid"].to_list(), earlier["trace"].to_list(), strict=True))
    claims.lines = [
        lines.with_columns(
            pl.col("lid").replace_strict(reuse, default=pl.col("trace"), return_dtype=pl.String).alias("trace")
        )
    ]
    _label(claims, later["vid"].unique(), "trace_code_reuse")


PATTERNS: dict[str, Callable[..., None]] = {
    f.__name__: f
    for f in (
        high_cost,
        frequent_visits,
        duplicate_charge,
        over_ceiling,
        restricted_item,
        over_daily_count,
        split_admission,
        idle_bed,
        over_dispensing,
        early_refill,
        frequent_purchase,
        trace_code_reuse,
    )
}


def assign_patterns(rng: np.random.Generator, inst: pl.DataFrame, share: float = 0.3) -> dict[str, list[str]]:
    """Pick the anomalous institutions and give each two patterns, so every pattern occurs at least once."""
    out: dict[str, list[str]] = {}
    for kind, patterns in (("1", HOSPITAL_PATTERNS), ("2", PHARMACY_PATTERNS)):
        rows = inst.filter(pl.col("fixmedins_type") == kind)
        if kind == "1":  # inpatient patterns need a ward: levels 2 and 3 come first
            rows = rows.sort("hosp_lv", descending=True)
        codes = rows["fixmedins_code"].to_list()
        n = min(len(codes), max((len(patterns) + 1) // 2, round(len(codes) * share)))
        chosen = codes[:n] if kind == "1" else list(rng.choice(codes, n, replace=False))
        # inpatient patterns first, so they land on the largest hospitals (which have wards)
        order = sorted(rng.permutation(patterns).tolist(), key=lambda p: p not in INPATIENT_PATTERNS)
        for j, p in enumerate((order * 2)[: max(len(order), 2 * n)]):
            if p not in out.setdefault(chosen[j % n], []):
                out[chosen[j % n]].append(p)
    return out


def inject(rng: np.random.Generator, claims: Claims, inst: pl.DataFrame, persons: pl.DataFrame) -> dict[str, list[str]]:
    plan = assign_patterns(rng, inst)
    for code, patterns in plan.items():
        for p in patterns:
            PATTERNS[p](rng, claims, code, persons)
    return plan
