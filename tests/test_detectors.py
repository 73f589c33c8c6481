"""Detectors on tiny frames with planted outliers: the ranking, the threshold and the reason."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from detectors.frequency import FrequencyDetector
from detectors.high_cost import HighCostDetector
from detectors.isolation import MODELS, IsolationDetector
from detectors.scoring import top_reasons

GROUPS = [["med_type", "hosp_lv", "dept_codg"], ["med_type"]]
T0 = datetime(2026, 10, 1, 9)


def _visits(n: int, rng: np.random.Generator, **over) -> pl.DataFrame:
    base = {
        "setl_id": [f"S{i}" for i in range(n)],
        "fixmedins_code": ["H1"] * n,
        "fixmedins_type": ["1"] * n,
        "psn_no": [f"P{i}" for i in range(n)],
        "med_type": ["11"] * n,
        "hosp_lv": ["2"] * n,
        "dept_codg": ["A03"] * n,
        "setl_time": [T0 + timedelta(days=int(d)) for d in rng.integers(0, 60, n)],
        "medfee_sumamt": rng.normal(100, 10, n).round(2),
        "drug_amt": rng.normal(60, 6, n).round(2),
        "exam_amt": rng.normal(30, 3, n).round(2),
        "material_amt": np.zeros(n),
        "treatment_amt": np.zeros(n),
    }
    base.update(over)
    return pl.DataFrame(base)


def test_high_cost_ranks_the_planted_visit_first_and_explains_it():
    rng = np.random.default_rng(0)
    v = _visits(60, rng)
    v = v.with_columns(
        pl.when(pl.col("setl_id") == "S7").then(900.0).otherwise(pl.col("medfee_sumamt")).alias("medfee_sumamt"),
        pl.when(pl.col("setl_id") == "S7").then(830.0).otherwise(pl.col("exam_amt")).alias("exam_amt"),
    )
    det = HighCostDetector(
        GROUPS, min_peers=20, min_ratio=3, min_z=4, min_excess=300, components=["drug_amt", "exam_amt"]
    )
    assert det.fit(v) is det
    scores = det.decision_function(v)
    assert int(np.argmax(scores)) == 7
    found = det.find(v)
    assert found["setl_id"].to_list() == ["S7"]
    reason = found["reason"][0]
    assert "为同类别同级别同科室中位数" in reason  # the finest group this config declares
    assert "8.7倍" in reason and "检查化验费" in reason
    assert found["amount"][0] == pytest.approx(
        900 - v.filter(pl.col("setl_id") != "S7")["medfee_sumamt"].median(), abs=5
    )


def test_high_cost_compares_a_large_hospital_with_its_own_level():
    """Level-3 visits cost 4x level-2 ones; none is flagged because each level is its own peer group."""
    rng = np.random.default_rng(1)
    small = _visits(40, rng)
    big = _visits(
        40,
        rng,
        hosp_lv=["3"] * 40,
        medfee_sumamt=rng.normal(400, 30, 40).round(2),
        setl_id=[f"B{i}" for i in range(40)],
    )
    v = pl.concat([small, big])
    det = HighCostDetector(GROUPS, min_peers=20, min_ratio=3, min_z=4).fit(v)
    assert det.find(v).is_empty()


def test_unfitted_detector_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        HighCostDetector(GROUPS).decision_function(_visits(5, np.random.default_rng(0)))


def test_frequency_flags_the_person_who_comes_every_other_day():
    rng = np.random.default_rng(2)
    v = _visits(80, rng)
    frequent = pl.DataFrame(
        {
            "setl_id": [f"F{i}" for i in range(12)],
            "psn_no": ["PX"] * 12,
            "setl_time": [T0 + timedelta(days=2 * i) for i in range(12)],
        }
    )
    v = pl.concat([v, frequent.join(v.head(1).drop("setl_id", "psn_no", "setl_time"), how="cross").select(v.columns)])
    det = FrequencyDetector(window_days=30, min_visits_outpatient=8).fit(v)
    scores = det.decision_function(v)
    top = set(v["setl_id"].gather(np.argsort(-scores)[:12]).to_list())
    assert top == {f"F{i}" for i in range(12)}
    found = det.find(v)
    assert set(found["setl_id"]) <= {f"F{i}" for i in range(12)} and found.height >= 8
    assert found["reason"].str.contains("30日内在同一机构就诊").all()
    once = FrequencyDetector(window_days=30, min_visits_outpatient=8).fit_find(v)
    assert once.sort("setl_id").equals(found.sort("setl_id"))


def test_frequency_flags_a_person_touring_institutions_in_one_week():
    rng = np.random.default_rng(3)
    v = _visits(50, rng)
    tour = pl.DataFrame(
        {
            "setl_id": [f"T{i}" for i in range(5)],
            "psn_no": ["PT"] * 5,
            "fixmedins_code": [f"H{i}" for i in range(5)],
            "setl_time": [T0 + timedelta(days=i) for i in range(5)],
        }
    )
    v = pl.concat(
        [
            v,
            tour.join(v.head(1).drop("setl_id", "psn_no", "setl_time", "fixmedins_code"), how="cross").select(
                v.columns
            ),
        ]
    )
    found = FrequencyDetector(max_institutions_per_week=4).fit(v).find(v)
    assert set(found["setl_id"]) == {f"T{i}" for i in range(5)}
    assert found["reason"].str.contains("7日内在5家机构就诊5次").any()


@pytest.mark.parametrize("model", MODELS)
def test_isolation_models_rank_planted_outliers_on_top_and_attribute_them(model):
    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (300, 4))
    # planted far out in three features: tail-based models (ECOD/COPOD) cap each feature's evidence at
    # about log(n), so a single extreme feature would tie with normal rows extreme in two
    X[[5, 50, 150], 1] = [7, 8, 9]
    X[[5, 50, 150], 2] = [9, 10, 11]
    X[[5, 50, 150], 3] = [-8, -9, -10]
    det = IsolationDetector(model=model, n_estimators=100, seed=0)
    assert det.fit(X) is det
    assert set(np.argsort(-det.decision_function(X))[:3]) == {5, 50, 150}
    assert set(np.abs(det.attributions(X[[5, 50, 150]])).argmax(axis=1)) <= {1, 2, 3}
    assert det.decision_function(X[[5]])[0] > det.threshold(0.02)


def test_isolation_forest_scores_repeated_rows_as_the_model_scores_each_row():
    rng = np.random.default_rng(7)
    X = rng.normal(0, 1, (400, 3))
    X[100:300] = X[rng.integers(0, 100, 200)]  # half the rows repeat earlier ones, as claims do
    X[[10, 20]] = [[9.0, -9.0, 9.0], [0.0, -0.0, 0.0]]
    det = IsolationDetector(n_estimators=50, seed=1).fit(X)
    shuffled = X[rng.permutation(len(X))]
    for rows in (X, shuffled, X[:1]):
        assert np.array_equal(det.decision_function(rows), det.model_.decision_function(rows))


def test_isolation_findings_rank_the_visit_within_its_window_and_name_the_feature():
    from detectors.config import load
    from detectors.isolation import run

    rng = np.random.default_rng(3)
    v = _visits(400, rng, n_lines=rng.integers(3, 8, 400))
    far = {"medfee_sumamt": 9000.0, "drug_amt": 5000.0, "exam_amt": 4000.0}  # planted far out in three features
    v = v.with_columns(
        pl.when(pl.col("setl_id") == "S7").then(pl.lit(x)).otherwise(pl.col(c)).alias(c) for c, x in far.items()
    )
    found = run(v, load()).sort("score", descending=True)
    assert found["setl_id"][0] == "S7"
    # the most anomalous visit of its window is above 99.9% of it, never "above 100%" of a window it is in
    assert found["reason"][0].startswith("孤立森林模型判定异常(高于99.9%的就诊), 主要偏离: "), found["reason"][0]
    assert not found["reason"].str.contains("高于100").any()


def test_isolation_reasons_give_the_share_with_one_decimal():
    """998 / 10 is 99.80000000000001 in binary; the reason must read 99.8%."""
    import copy

    from detectors.config import load
    from detectors.isolation import run

    cfg = copy.deepcopy(load())
    cfg["isolation"]["contamination"] = 0.03  # some thirty findings, from 97% up
    rng = np.random.default_rng(5)
    found = run(_visits(1000, rng, n_lines=rng.integers(3, 8, 1000)), cfg)
    shares = found["reason"].str.extract(r"高于([^%]+)%")
    assert shares.n_unique() > 10 and "99.8" in shares.to_list(), shares.unique().to_list()
    assert shares.str.contains(r"^\d{2}\.\d$").all(), shares.filter(~shares.str.contains(r"^\d{2}\.\d$")).to_list()


def test_top_reasons_name_the_money_at_issue_and_no_amount_for_a_model():
    findings = pl.DataFrame(
        {
            "fixmedins_code": ["A", "A", "A", "A", "B"],
            "source_name": ["孤立森林模型", "孤立森林模型", "重复收费", "超标准收费", "孤立森林模型"],
            "setl_id": ["1", "2", "1", "3", "9"],
            "kind": ["模型", "模型", "规则", "规则", "模型"],
            "amount": [0.0, 0.0, 12.5, 300.0, 0.0],
        }
    )
    out = dict(top_reasons(findings, 2).iter_rows())
    assert out == {"A": "超标准收费1人次, 涉及300.00元; 重复收费1人次, 涉及12.50元", "B": "孤立森林模型1人次"}
    assert dict(top_reasons(findings, 3).iter_rows())["A"].endswith("; 孤立森林模型2人次")
