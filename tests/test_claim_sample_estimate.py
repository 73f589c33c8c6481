"""Claim samples (strata, weights, spares, reproducibility) and the overpayment estimator."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.targeting.claim_sample import CERTAINTY, COMPLAINT, draw_claim_sample, frame_sha256
from pipelines.targeting.config import load
from pipelines.targeting.estimate import confirmation_rates, stratified_total


def frame(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cls = rng.choice(["明确违规", "可疑", "未标记"], size=n, p=[0.05, 0.15, 0.8])
    return pl.DataFrame(
        {"setl_id": [f"S{i:05d}" for i in range(n)], "amount": rng.lognormal(5, 1, n).round(2), "result_class": cls}
    )


def test_sample_has_certainty_stratum_weights_and_spares():
    cfg = load()["claim_sample"]
    f = frame()
    s = draw_claim_sample(f, cfg, np.random.default_rng(1))
    main = s.filter(pl.col("role") == "抽样")
    assert main.height == cfg["size"]
    certain = main.filter(pl.col("stratum") == CERTAINTY)
    assert set(certain["setl_id"]) == set(f.sort("amount", descending=True).head(cfg["certainty"])["setl_id"])
    assert (certain["weight"] == 1.0).all()
    # weighted count of the main sample recovers the population size
    assert main["weight"].sum() == pytest.approx(f.height)
    # every stratum is a result class x amount band; flagged visits are over-represented
    assert main.filter(pl.col("stratum").str.starts_with("明确违规")).height >= 0.3 * cfg["size"]
    spares = s.filter(pl.col("role") == "备用")
    for stratum, part in spares.group_by("stratum"):
        n_h = main.filter(pl.col("stratum") == stratum[0]).height
        assert 1 <= part.height <= max(1, int(np.ceil(0.2 * n_h)))
    assert 0.10 * main.height <= spares.height <= 0.20 * main.height + main["stratum"].n_unique()
    assert s["setl_id"].is_unique().all()


@pytest.mark.parametrize("named", [5, 50])
def test_the_visits_of_a_person_a_complaint_names_are_pulled_besides_the_sample(named):
    """All of them up to `complaint_visits` (weight 1), else a random share with its weight; the sample of the
    institution's other visits keeps its size and still recovers their number."""
    cfg = load()["claim_sample"]
    f = frame().with_columns(
        result_class=pl.when(pl.int_range(pl.len()) < named).then(pl.lit(COMPLAINT)).otherwise("result_class")
    )
    s = draw_claim_sample(f, cfg, np.random.default_rng(1))
    main = s.filter(pl.col("role") == "抽样")
    pulled = main.filter(pl.col("stratum") == COMPLAINT)
    assert pulled.height == min(named, cfg["complaint_visits"])
    assert set(pulled["setl_id"]) <= set(f.head(named)["setl_id"])
    assert pulled["weight"].to_list() == [named / pulled.height] * pulled.height
    others = main.filter(pl.col("stratum") != COMPLAINT)
    assert others.height == cfg["size"] and not set(others["setl_id"]) & set(f.head(named)["setl_id"])
    assert others["weight"].sum() == pytest.approx(f.height - named)
    spares = s.filter((pl.col("role") == "备用") & (pl.col("stratum") == COMPLAINT))
    assert spares.height == (0 if named <= cfg["complaint_visits"] else 3)  # 15% of 20


def test_same_seed_same_sample_and_small_institutions_are_taken_whole():
    cfg = load()["claim_sample"]
    f = frame()
    assert draw_claim_sample(f, cfg, np.random.default_rng(3)).equals(
        draw_claim_sample(f, cfg, np.random.default_rng(3))
    )
    assert not draw_claim_sample(f, cfg, np.random.default_rng(3)).equals(
        draw_claim_sample(f, cfg, np.random.default_rng(4))
    )
    small = frame(12)
    s = draw_claim_sample(small, cfg, np.random.default_rng(0))
    assert set(s.filter(pl.col("role") == "抽样")["setl_id"]) == set(small["setl_id"])
    assert (s["weight"] == 1.0).all()
    assert frame_sha256(small) == frame_sha256(small.reverse())
    # an amount the warehouse holds as NULL (loaded by a run without the contract) fingerprints, unlike 0.00
    unknown = small.with_columns(amount=pl.when(pl.col("setl_id") == "S00003").then(None).otherwise("amount"))
    assert frame_sha256(unknown) != frame_sha256(unknown.with_columns(pl.col("amount").fill_null(0.0)))


def test_estimator_matches_hand_computed_example():
    # stratum A: N=10, y = 0, 10, 20 (mean 10, s2 100); stratum B: N=5, y = 50, 70 (mean 60, s2 200)
    units = pl.DataFrame(
        {"stratum": ["A", "A", "A", "B", "B"], "stratum_size": [10, 10, 10, 5, 5], "y": [0.0, 10, 20, 50, 70]}
    )
    e = stratified_total(units, 0.90)
    assert e.total == pytest.approx(10 * 10 + 5 * 60)  # 400
    # var = 10*(10-3)/3*100 + 5*(5-2)/2*200 = 2333.33 + 1500
    assert e.se == pytest.approx(61.9139, abs=1e-3)
    assert e.df == pytest.approx(2.9553, abs=1e-3)  # Satterthwaite
    assert e.lower == pytest.approx(253.391, abs=1e-2)  # 400 - t(0.95, 2.955) * 61.914
    assert e.upper == pytest.approx(546.609, abs=1e-2)
    assert e.observed == 150.0


def test_lower_bound_never_below_what_the_sample_proved():
    units = pl.DataFrame({"stratum": ["A"] * 3, "stratum_size": [1000] * 3, "y": [0.0, 0.0, 900.0]})
    e = stratified_total(units, 0.90)
    assert e.lower == 900.0 and e.total == pytest.approx(300_000)


def test_confidence_interval_covers_the_true_total_at_about_the_nominal_rate():
    # A population where a sample of 200 visits meets the estimator's assumptions; with rarer, more skewed
    # overpayments and the default 30-visit sample coverage falls (0.75-0.82 in the same simulation), which is
    # why the conservative figure is the lower bound and the sample size is the bureau's choice.
    cfg = {**load()["claim_sample"], "size": 200}
    rng = np.random.default_rng(2026)
    f = frame(1500, seed=1).with_columns(amount=pl.Series(np.random.default_rng(5).lognormal(5, 0.5, 1500).round(2)))
    p = f["result_class"].replace_strict({"明确违规": 0.8, "可疑": 0.5, "未标记": 0.25}, return_dtype=pl.Float64)
    overpaid = np.where(rng.random(f.height) < p.to_numpy(), f["amount"].to_numpy() * rng.uniform(0.2, 1, f.height), 0)
    truth = dict(zip(f["setl_id"], overpaid, strict=True))
    covered, trials = 0, 300
    for k in range(trials):
        s = draw_claim_sample(f, cfg, np.random.default_rng(k)).filter(pl.col("role") == "抽样")
        e = stratified_total(s.with_columns(y=pl.col("setl_id").replace_strict(truth, return_dtype=pl.Float64)), 0.90)
        half = e.upper - e.total  # the symmetric interval (the reported lower bound is floored at the proved sum)
        covered += e.total - half <= overpaid.sum() <= e.upper
    assert 0.85 <= covered / trials <= 0.95, covered / trials


def test_confirmation_rates_per_source():
    outcomes = pl.DataFrame(
        {
            "fixmedins_code": ["H1"] * 4,
            "setl_id": ["a", "b", "c", "d"],
            "finding": ["confirmed", "confirmed", "not_confirmed", "confirmed"],
            "overpaid_amt": [10.0, 20.0, None, 5.0],
        }
    )
    findings = pl.DataFrame(
        {
            "fixmedins_code": ["H1"] * 5,
            "setl_id": ["a", "b", "c", "c", "x"],
            "source": ["high_cost", "high_cost", "high_cost", "dup", "dup"],
            "source_name": ["门诊高额费用", "门诊高额费用", "门诊高额费用", "重复收费", "重复收费"],
        }
    )
    r = confirmation_rates(outcomes, findings)
    hc = r.filter(pl.col("source") == "high_cost").row(0, named=True)
    assert (hc["audited"], hc["confirmed"], hc["rate"], hc["confirmed_amount"]) == (3, 2, 0.667, 30.0)
    dup = r.filter(pl.col("source") == "dup").row(0, named=True)
    assert (dup["audited"], dup["confirmed"], dup["rate"]) == (1, 0, 0.0)


def test_rates_read_from_the_warehouse_equal_the_rates_over_every_finding():
    """`rates` reads only the findings of audited visits: the same rates as over the whole findings history,
    with a visit flagged on several nights, unaudited visits, and a setl_id that also exists at another
    institution."""
    import duckdb

    from pipelines.targeting.outcomes import rates
    from pipelines.warehouse.schema import create_all

    outcomes = pl.DataFrame(
        {
            "fixmedins_code": ["H1", "H1", "H2"],
            "setl_id": ["a", "b", "a"],
            "finding": ["confirmed", "not_confirmed", "confirmed"],
            "overpaid_amt": [10.0, None, 4.0],
        }
    )
    findings = pl.DataFrame(
        {
            "run_id": ["r1", "r2", "r1", "r2", "r2", "r1", "r2"],
            "fixmedins_code": ["H1", "H1", "H1", "H1", "H3", "H2", "H1"],
            "setl_id": ["a", "a", "b", "x", "a", "a", "y"],
            "source": ["high_cost", "high_cost", "dup", "dup", "dup", "dup", "high_cost"],
            "source_name": [
                "门诊高额费用",
                "门诊高额费用",
                "重复收费",
                "重复收费",
                "重复收费",
                "重复收费",
                "门诊高额费用",
            ],
        }
    )
    con = duckdb.connect()
    create_all(con)
    con.register("o", outcomes.to_arrow())
    con.register("f", findings.to_arrow())
    con.execute("CREATE TABLE ref_audit_outcomes AS SELECT * FROM o")
    con.execute("INSERT INTO findings BY NAME SELECT * FROM f")
    got = rates(con)
    assert got.equals(confirmation_rates(outcomes, findings))
    assert got.select("source", "audited", "confirmed").rows() == [("high_cost", 1, 1), ("dup", 2, 1)]
