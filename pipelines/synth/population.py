"""Institutions and insured persons of the synthetic district."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.synth.district import CHRONIC_DRUGS, DISTRICT_CODE, GIVEN, REGIONS, SURNAMES
from pipelines.synth.scales import Scale

_PHARMACY_BRANDS = ["老百姓", "益丰", "国大", "海王星辰", "同仁堂", "百姓缘", "康恩", "仁和"]
_L1_SUFFIX = "社区卫生服务中心"


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    s = rng.choice(SURNAMES, n)
    g1 = rng.choice(GIVEN, n)
    g2 = np.where(rng.random(n) < 0.6, rng.choice(GIVEN, n), "")
    return np.char.add(np.char.add(s, g1), g2)


def institutions(rng: np.random.Generator, scale: Scale) -> pl.DataFrame:
    rows = []
    n = 0
    ordinal = ["第一", "第二", "第三", "第四", "第五", "第六", "第七", "第八"]
    for lv in ("3", "2", "1"):
        for k in range(scale.hospitals[lv]):
            n += 1
            region = REGIONS[(n - 1) % len(REGIONS)]
            if lv == "3":
                name = f"海港区{ordinal[k % 8]}人民医院" + (f"{k // 8 + 1}院区" if k >= 8 else "")
            elif lv == "2":
                name = f"海港区{region[:-2]}医院" + (f"{k // len(REGIONS) + 1}分院" if k >= len(REGIONS) else "")
            else:
                name = f"海港区{region[:-2]}{_L1_SUFFIX}" + (
                    f"第{k // len(REGIONS) + 1}站" if k >= len(REGIONS) else ""
                )
            rows.append(("H", n, name, "1", lv, region))
    for k in range(scale.pharmacies):
        region = REGIONS[k % len(REGIONS)]
        brand = _PHARMACY_BRANDS[k % len(_PHARMACY_BRANDS)]
        rows.append(("P", k + 1, f"{brand}大药房({region[:-2]}{k + 1}店)", "2", "0", region))
    reps = _names(rng, len(rows))
    return pl.DataFrame(
        {
            "fixmedins_code": [f"{p}{DISTRICT_CODE}{i:05d}" for p, i, *_ in rows],
            "fixmedins_name": [r[2] for r in rows],
            "fixmedins_type": [r[3] for r in rows],
            "hosp_lv": [r[4] for r in rows],
            "region": [r[5] for r in rows],
            "agreement_no": [f"HGYB-XY-2026-{p}{i:04d}" for p, i, *_ in rows],
            "legal_rep": reps.tolist(),
            "address": [f"河北省秦皇岛市海港区{r[5]}{100 + 7 * j}号" for j, r in enumerate(rows)],
        }
    )


def persons(rng: np.random.Generator, scale: Scale) -> pl.DataFrame:
    n = scale.persons
    age = np.clip(np.round(rng.gamma(4.0, 11.0, n)), 0, 98).astype(np.int32)
    gend = np.where(rng.random(n) < 0.5, "1", "2")
    working = (age >= 18) & (age < 60)
    insutype = np.where(working & (rng.random(n) < 0.7), "310", "390")
    old = age >= 40
    chronic = {
        "高血压": old & (rng.random(n) < 0.25),
        "糖尿病": old & (rng.random(n) < 0.10),
        "冠心病": (age >= 50) & (rng.random(n) < 0.06),
        "前列腺增生": (age >= 50) & (gend == "1") & (rng.random(n) < 0.15),
    }
    assert set(chronic) == set(CHRONIC_DRUGS)
    return pl.DataFrame(
        {
            "psn_no": [f"1303{DISTRICT_CODE[-2:]}{i:012d}" for i in rng.permutation(10**7)[:n] + 10**9],
            "psn_name": _names(rng, n).tolist(),
            "gend": gend,
            "age": age,
            "insutype": insutype,
            "region": rng.integers(0, len(REGIONS), n),
            **{f"chronic_{k}": v for k, v in chronic.items()},
        }
    )
