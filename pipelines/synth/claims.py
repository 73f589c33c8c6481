"""Normal care of the synthetic district: outpatient visits, inpatient stays, pharmacy purchases.

Visits and fee lines are built as polars frames with integer ids; anomalies (`anomalies.py`) edit and
extend them; `generate.py` turns them into upload files. Every array operation is vectorised so the
`large` scale (~10M fee lines) stays within minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from pipelines.synth.district import CHRONIC_DRUGS, DIAGNOSES, ITEMS, LEVEL_DEPTS, OTC_DRUGS, REGIONS, item
from pipelines.synth.scales import Scale

ITEM_CODES = list(ITEMS)
LEVEL_PRICE = {"3": 1.0, "2": 0.95, "1": 0.9, "0": 1.0}

VISIT_SCHEMA = {
    "vid": pl.Int64,
    "inst": pl.String,
    "psn": pl.Int64,
    "med_type": pl.String,
    "dx": pl.Int32,
    "dept": pl.String,
    "begn": pl.Datetime("us"),
    "end": pl.Datetime("us"),
}
LINE_SCHEMA = {
    "lid": pl.Int64,
    "vid": pl.Int64,
    "item": pl.String,
    "cnt": pl.Float64,
    "pric": pl.Float64,
    "t": pl.Datetime("us"),
    "prd_days": pl.Int32,
    "trace": pl.String,
    "refund_of": pl.Int64,
}


@dataclass
class Claims:
    """Visits and their fee lines, plus the ground-truth labels of injected anomalies."""

    start: date
    days: int
    visits: list[pl.DataFrame] = field(default_factory=list)
    lines: list[pl.DataFrame] = field(default_factory=list)
    levels: dict[str, str] = field(default_factory=dict)  # fixmedins_code -> hosp_lv
    labels: list[tuple[int, str]] = field(default_factory=list)  # (vid, pattern)
    next_vid: int = 1
    next_lid: int = 1

    def new_vids(self, n: int) -> np.ndarray:
        ids = np.arange(self.next_vid, self.next_vid + n, dtype=np.int64)
        self.next_vid += n
        return ids

    def new_lids(self, n: int) -> np.ndarray:
        ids = np.arange(self.next_lid, self.next_lid + n, dtype=np.int64)
        self.next_lid += n
        return ids

    def add_visits(self, **cols) -> None:
        self.visits.append(pl.DataFrame(cols, schema_overrides=VISIT_SCHEMA).select(list(VISIT_SCHEMA)))

    def add_lines(self, vid, item_codes, cnt, pric, t, prd_days=None, trace=None, refund_of=None) -> None:
        n = len(vid)
        if n == 0:
            return
        none = [None] * n
        frame = pl.DataFrame(
            {
                "lid": self.new_lids(n),
                "vid": vid,
                "item": item_codes,
                "cnt": cnt,
                "pric": pric,
                "t": t,
                "prd_days": none if prd_days is None else prd_days,
                "trace": none if trace is None else trace,
                "refund_of": none if refund_of is None else refund_of,
            },
            schema_overrides=LINE_SCHEMA,
        )
        self.lines.append(frame.select(list(LINE_SCHEMA)))

    def consolidate(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        v = pl.concat(self.visits)
        ln = pl.concat(self.lines)
        self.visits, self.lines = [v], [ln]
        return v, ln

    def day_time(self, day: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        base = np.datetime64(datetime.combine(self.start, datetime.min.time()), "us")
        return base + day.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")


def eligible_persons(persons: pl.DataFrame, dx_index: int) -> np.ndarray:
    d = DIAGNOSES[dx_index]
    cond = (pl.col("age") >= d.age_min) & (pl.col("age") <= d.age_max)
    if d.gend:
        cond &= pl.col("gend") == d.gend
    if d.chronic:
        cond &= pl.col(f"chronic_{d.chronic}") if d.chronic in CHRONIC_DRUGS else pl.col("age") >= 45
    return persons.with_row_index("i").filter(cond)["i"].to_numpy().astype(np.int64)


LOCAL_SHARE = 0.85  # patients mostly use the institutions of their own region


def pick_patients(rng: np.random.Generator, pool: np.ndarray, region_of: np.ndarray, region: int, n: int) -> np.ndarray:
    """n patients from `pool`, most of them living in `region` (people have a home area, not a random one)."""
    local = pool[region_of[pool] == region]
    if not len(local):
        return rng.choice(pool, n)
    return np.where(rng.random(n) < LOCAL_SHARE, rng.choice(local, n), rng.choice(pool, n))


def region_index(region: str) -> int:
    return REGIONS.index(region)


def drug_supply(codg: str, cnt: np.ndarray) -> np.ndarray:
    it = ITEMS[codg]
    return (cnt * (it.prd_days or 1)).astype(np.int32)


def _price(codg: str, lv: np.ndarray | str) -> np.ndarray:
    factor = np.vectorize(LEVEL_PRICE.get)(lv) if isinstance(lv, np.ndarray) else LEVEL_PRICE[lv]
    return np.round(ITEMS[codg].pric * factor, 2)


def _add_dx_items(
    rng: np.random.Generator,
    claims: Claims,
    vids: np.ndarray,
    lv: np.ndarray,
    begn: np.ndarray,
    chronic_visit: np.ndarray,
    dx_items: list[tuple[str, float, int, int]],
) -> None:
    for k, (name, prob, lo, hi) in enumerate(dx_items):
        it = item(name)
        take = rng.random(len(vids)) < prob
        if not take.any():
            continue
        cnt = rng.integers(lo, hi + 1, take.sum()).astype(np.float64)
        prd = None
        if it.list_type == "drug" and it.prd_days:
            # chronic visits prescribe close to a month; never more than the catalogue allows
            month = np.floor((it.max_prd_days or 30) / it.prd_days)
            cnt = np.where(chronic_visit[take], month, np.minimum(cnt, month))
            prd = drug_supply(it.codg, cnt)
        claims.add_lines(
            vids[take],
            it.codg,
            cnt,
            _price(it.codg, lv[take]),
            begn[take] + np.timedelta64(600 + 60 * k, "s"),
            prd_days=prd,
        )


def outpatient(
    rng: np.random.Generator, claims: Claims, inst: pl.DataFrame, persons: pl.DataFrame, scale: Scale
) -> None:
    hosp = inst.filter(pl.col("fixmedins_type") == "1")
    fits = {}
    for i in range(len(DIAGNOSES)):
        mask = np.zeros(len(persons))
        mask[eligible_persons(persons, i)] = 1.0
        fits[i] = mask
    home = persons["region"].to_numpy()
    everyone = np.arange(len(persons))
    for code, lv, region in hosp.select("fixmedins_code", "hosp_lv", "region").iter_rows():
        counts = rng.poisson(scale.outpatient_per_day[lv], claims.days)
        day = np.repeat(np.arange(claims.days), counts)
        n = len(day)
        # the patient comes first, from the population (mostly the hospital's own region); the diagnosis
        # is then drawn among those that fit them, so nobody visits more often than people do
        psn = pick_patients(rng, everyone, home, region_index(region), n)
        cands = [i for i, d in enumerate(DIAGNOSES) if d.dept in LEVEL_DEPTS[lv]]
        weight = np.stack([fits[i][psn] * (6.0 if DIAGNOSES[i].chronic else 1.0) for i in cands], axis=1)
        cum = np.cumsum(weight, axis=1)
        pick = (cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1)
        dx = np.array(cands, dtype=np.int32)[np.minimum(pick, len(cands) - 1)]
        chronic = np.array([DIAGNOSES[i].chronic is not None for i in dx])
        emergency = ~chronic & (lv != "1") & (rng.random(n) < 0.06)
        med_type = np.where(chronic & (rng.random(n) < 0.7), "14", np.where(emergency, "13", "11"))
        dept = np.where(emergency & (lv == "3"), "A20", np.array([DIAGNOSES[i].dept for i in dx]))
        begn = claims.day_time(day, rng.integers(8 * 3600, 17 * 3600, n))
        end = begn + rng.integers(600, 3600, n).astype("timedelta64[s]")
        vids = claims.new_vids(n)
        claims.add_visits(vid=vids, inst=[code] * n, psn=psn, med_type=med_type, dx=dx, dept=dept, begn=begn, end=end)
        consult = "一般诊疗费" if lv == "1" else "普通门诊诊察费"
        consult_codes = np.where(med_type == "13", item("急诊诊察费").codg, item(consult).codg)
        lvs = np.full(n, lv)
        claims.add_lines(
            vids,
            consult_codes,
            np.ones(n),
            np.round(np.where(med_type == "13", item("急诊诊察费").pric, item(consult).pric) * LEVEL_PRICE[lv], 2),
            begn + np.timedelta64(300, "s"),
        )
        for i in np.unique(dx):
            sel = dx == i
            _add_dx_items(rng, claims, vids[sel], lvs[sel], begn[sel], med_type[sel] == "14", DIAGNOSES[i].outpatient)


def add_stays(
    rng: np.random.Generator,
    claims: Claims,
    code: str,
    lv: str,
    psn: np.ndarray,
    dx: np.ndarray,
    adm_day: np.ndarray,
    los: np.ndarray,
    idle_days: np.ndarray | None = None,
) -> np.ndarray:
    """Add inpatient stays with their daily charges; `idle_days` extra days bill bed and nursing only."""
    n = len(psn)
    idle = np.zeros(n, dtype=np.int64) if idle_days is None else idle_days
    begn = claims.day_time(adm_day, rng.integers(9 * 3600, 16 * 3600, n))
    end = claims.day_time(adm_day + los + idle, rng.integers(9 * 3600, 11 * 3600, n))
    vids = claims.new_vids(n)
    depts = np.array([DIAGNOSES[i].dept for i in dx])
    claims.add_visits(vid=vids, inst=[code] * n, psn=psn, med_type=["21"] * n, dx=dx, dept=depts, begn=begn, end=end)
    # one row per stay-day: bed, nursing, ward round; treatment only on the treated days
    total = los + idle
    sv = np.repeat(np.arange(n), total)
    dos = np.arange(total.sum()) - np.repeat(np.cumsum(total) - total, total)
    day_vid = vids[sv]
    at8 = claims.day_time(adm_day[sv] + dos, np.full(len(sv), 8 * 3600))
    day_t = np.where(dos == 0, begn[sv] + np.timedelta64(1800, "s"), at8)
    treated = dos < los[sv]
    for k, name in enumerate(["床位费(三人间)", "二级护理", "住院诊察费"]):
        rows = slice(None) if name != "住院诊察费" else treated
        m = len(day_vid[rows])
        claims.add_lines(
            day_vid[rows],
            item(name).codg,
            np.ones(m),
            np.full(m, _price(item(name).codg, lv)),
            day_t[rows] + np.timedelta64(60 * k, "s"),
        )
    for i in np.unique(dx):
        d = DIAGNOSES[i]
        sel_day = treated & (dx[sv] == i)
        for k, name in enumerate(d.inpatient_daily):
            it = item(name)
            m = int(sel_day.sum())
            cnt = np.ones(m)
            claims.add_lines(
                day_vid[sel_day],
                it.codg,
                cnt,
                np.full(m, _price(it.codg, lv)),
                day_t[sel_day] + np.timedelta64(600 + 60 * k, "s"),
                prd_days=np.ones(m, dtype=np.int32) if it.list_type == "drug" else None,
            )
        first = (dos == 0) & (dx[sv] == i)
        for k, name in enumerate(d.inpatient_once):
            m = int(first.sum())
            claims.add_lines(
                day_vid[first],
                item(name).codg,
                np.ones(m),
                np.full(m, _price(item(name).codg, lv)),
                day_t[first] + np.timedelta64(1200 + 60 * k, "s"),
            )
        op_day = (dos == 1) & (dx[sv] == i)
        for k, name in enumerate(d.surgery):
            m = int(op_day.sum())
            claims.add_lines(
                day_vid[op_day],
                item(name).codg,
                np.ones(m),
                np.full(m, _price(item(name).codg, lv)),
                day_t[op_day] + np.timedelta64(3600 + 600 * k, "s"),
            )
    return vids


def inpatient(
    rng: np.random.Generator, claims: Claims, inst: pl.DataFrame, persons: pl.DataFrame, scale: Scale
) -> None:
    hosp = inst.filter(pl.col("fixmedins_type") == "1")
    lead = 14  # stays admitted before the window that end inside it are uploaded too
    home = persons["region"].to_numpy()
    for code, lv, region in hosp.select("fixmedins_code", "hosp_lv", "region").iter_rows():
        cands = [i for i, d in enumerate(DIAGNOSES) if d.los[1] and d.dept in LEVEL_DEPTS[lv]]
        counts = rng.poisson(scale.admissions_per_day[lv], claims.days + lead)
        adm_day = np.repeat(np.arange(claims.days + lead), counts) - lead
        n = len(adm_day)
        if n == 0 or not cands:
            continue
        dx = rng.choice(cands, n).astype(np.int32)
        los = np.array([rng.integers(DIAGNOSES[i].los[0], DIAGNOSES[i].los[1] + 1) for i in dx], dtype=np.int64)
        keep = (adm_day + los >= 0) & (adm_day + los < claims.days)
        adm_day, dx, los = adm_day[keep], dx[keep], los[keep]
        psn = np.empty(len(dx), dtype=np.int64)
        for i in np.unique(dx):
            sel = dx == i
            psn[sel] = pick_patients(rng, eligible_persons(persons, int(i)), home, region_index(region), int(sel.sum()))
        # one patient is not in two beds at once, nor back within a month by chance (that is a pattern)
        order = np.lexsort((adm_day, psn))
        psn, dx, adm_day, los = psn[order], dx[order], adm_day[order], los[order]
        keep = np.ones(len(psn), dtype=bool)
        last_end: dict[int, int] = {}
        for k in range(len(psn)):
            p = int(psn[k])
            if p in last_end and adm_day[k] <= last_end[p] + 30:
                keep[k] = False
            else:
                last_end[p] = int(adm_day[k] + los[k])
        add_stays(rng, claims, code, lv, psn[keep], dx[keep], adm_day[keep], los[keep])


def add_purchases(
    rng: np.random.Generator,
    claims: Claims,
    code: str,
    psn: np.ndarray,
    day: np.ndarray,
    drugs: list[np.ndarray],
    boxes: list[np.ndarray],
) -> np.ndarray:
    """Add pharmacy purchases: one visit per (psn, day), one line per drug; each line a new trace code."""
    n = len(psn)
    begn = claims.day_time(day, rng.integers(8 * 3600, 21 * 3600, n))
    vids = claims.new_vids(n)
    claims.add_visits(
        vid=vids,
        inst=[code] * n,
        psn=psn,
        med_type=["41"] * n,
        dx=[-1] * n,
        dept=[None] * n,
        begn=begn,
        end=begn + np.timedelta64(120, "s"),
    )
    for k, (codes, cnt) in enumerate(zip(drugs, boxes, strict=True)):
        has = codes != ""
        m = int(has.sum())
        if not m:
            continue
        c = codes[has]
        pric = np.array([ITEMS[x].pric for x in c])
        prd = (cnt[has] * np.array([ITEMS[x].prd_days or 1 for x in c])).astype(np.int32)
        trace = [f"{x:019d}{k}" for x in rng.integers(10**18, 9 * 10**18, m, dtype=np.int64)]
        claims.add_lines(
            vids[has],
            c,
            cnt[has].astype(np.float64),
            pric,
            begn[has] + np.timedelta64(30 * k, "s"),
            prd_days=prd,
            trace=trace,
        )
    return vids


def pharmacy(rng: np.random.Generator, claims: Claims, inst: pl.DataFrame, persons: pl.DataFrame, scale: Scale) -> None:
    ph = inst.filter(pl.col("fixmedins_type") == "2")
    codes = ph["fixmedins_code"].to_list()
    if not codes:
        return
    # chronic patients refill a month's supply at their usual pharmacy, on time
    p = persons.with_row_index("i")
    regions = persons["region"].to_numpy()
    ph_regions = [region_index(r) for r in ph["region"]]
    all_ph = list(range(len(codes)))
    by_region: dict[int, list[int]] = {}
    for k, r in enumerate(ph_regions):
        by_region.setdefault(r, []).append(k)
    for cond, drug in CHRONIC_DRUGS.items():
        users = p.filter(pl.col(f"chronic_{cond}"))["i"].to_numpy()
        users = users[rng.random(len(users)) < 0.3]
        it = item(drug)
        boxes = np.floor((it.max_prd_days or 30) / it.prd_days)
        supply = int(boxes * it.prd_days)
        # the usual pharmacy is one in the patient's own region where there is one
        home = np.array([rng.choice(by_region.get(int(r), all_ph)) for r in regions[users]], dtype=np.int64)
        first = rng.integers(0, supply, len(users))
        rows_psn, rows_day, rows_ph = [], [], []
        for j in range(int(np.ceil(claims.days / supply)) + 1):
            day = first + j * supply + rng.integers(0, 4, len(users)) * (j > 0)
            ok = day < claims.days
            rows_psn.append(users[ok])
            rows_day.append(day[ok])
            rows_ph.append(home[ok])
        psn, day, home_of = (np.concatenate(x) for x in (rows_psn, rows_day, rows_ph))
        for h, code in enumerate(codes):
            sel = home_of == h
            add_purchases(
                rng, claims, code, psn[sel], day[sel], [np.full(sel.sum(), it.codg)], [np.full(sel.sum(), boxes)]
            )
    # walk-in purchases of common medicines
    otc = np.array([item(x).codg for x in OTC_DRUGS])
    everyone = np.arange(len(persons))
    for code, region in zip(codes, ph_regions, strict=True):
        counts = rng.poisson(scale.purchases_per_day, claims.days)
        day = np.repeat(np.arange(claims.days), counts)
        n = len(day)
        psn = pick_patients(rng, everyone, regions, region, n)
        d1 = rng.choice(otc, n)
        d2 = np.where(rng.random(n) < 0.35, rng.choice(otc, n), "")
        d2 = np.where(d2 == d1, "", d2)
        # never more boxes than the catalogue's days of supply allow
        cap = np.array([np.floor(ITEMS[c].max_prd_days / ITEMS[c].prd_days) for c in d1])
        boxes = np.minimum(rng.integers(1, 3, n), cap).astype(float)
        add_purchases(rng, claims, code, psn, day, [d1, d2], [boxes, np.ones(n)])


def refunds(rng: np.random.Generator, claims: Claims, share: float = 0.02) -> None:
    """Refund one drug line of a few outpatient visits (negative line naming the original)."""
    visits, lines = claims.consolidate()
    outp = visits.filter(pl.col("med_type").is_in(["11", "13", "14"]))["vid"]
    drug_codes = [c for c, i in ITEMS.items() if i.list_type == "drug"]
    cand = lines.filter(pl.col("vid").is_in(outp.implode()) & pl.col("item").is_in(drug_codes))
    cand = cand.unique(subset="vid", keep="first", maintain_order=True)
    pick = cand.filter(pl.Series(rng.random(cand.height) < share))
    claims.add_lines(
        pick["vid"].to_numpy(),
        pick["item"].to_numpy(),
        -pick["cnt"].to_numpy(),
        pick["pric"].to_numpy(),
        pick["t"].to_numpy() + np.timedelta64(900, "s"),
        refund_of=pick["lid"].to_numpy(),
    )


def window_start(end: date, days: int) -> date:
    return end - timedelta(days=days - 1)
