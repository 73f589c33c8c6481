"""Isolation forest (and PyOD's ECOD / COPOD / HBOS) on compact feature matrices, with per-row reasons.

Tree ensembles give no per-claim explanation of their own (`feature_importances_` is global), so each
flagged row is explained by the features that deviate most from the training median, in robust units.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from detectors.base import MODEL, SUSPECT, BaseDetector, as_findings, empty_findings, visit_where
from detectors.high_cost import COMPONENT_NAMES

FEATURE_NAMES = {"medfee_sumamt": "次均费用", "n_lines": "明细条数", **COMPONENT_NAMES}

MODELS = ("iforest", "ecod", "copod", "hbos")


def _make(model: str, n_estimators: int, seed: int):
    if model == "iforest":
        from pyod.models.iforest import IForest

        return IForest(n_estimators=n_estimators, random_state=seed, n_jobs=2)
    if model == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD()
    if model == "copod":
        from pyod.models.copod import COPOD

        return COPOD()
    if model == "hbos":
        from pyod.models.hbos import HBOS

        return HBOS()
    raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")


class IsolationDetector(BaseDetector):
    """Unsupervised outlier model; `decision_function` higher = more anomalous (PyOD convention)."""

    def __init__(
        self, model: str = "iforest", n_estimators: int = 200, seed: int = 42, max_fit_rows: int | None = None
    ):
        self.model = model
        self.n_estimators = n_estimators
        self.seed = seed
        self.max_fit_rows = max_fit_rows

    def fit(self, X: np.ndarray, y=None) -> IsolationDetector:
        """Learn from X, or from a seeded sample of `max_fit_rows` of it: each tree sees only 256 rows anyway,
        and the training scores (threshold, percentiles) are as good from 100,000 rows as from millions."""
        X = np.asarray(X, dtype=float)
        if self.max_fit_rows is not None and len(X) > self.max_fit_rows:
            pick = np.random.default_rng(self.seed).choice(len(X), self.max_fit_rows, replace=False)
            X = X[np.sort(pick)]
        self.median_ = np.median(X, axis=0)
        mad = np.median(np.abs(X - self.median_), axis=0) * 1.4826
        self.scale_ = np.where(mad > 1e-9, mad, np.maximum(np.std(X, axis=0), 1e-9))
        self.model_ = _make(self.model, self.n_estimators, self.seed).fit(X)
        self.train_scores_ = self.model_.decision_scores_  # PyOD scores the training rows while fitting
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X, dtype=float)
        if self.model != "iforest":  # ECOD / COPOD judge a row against the rows it comes with, and share state
            return self.model_.decision_function(X)
        # a forest scores each row on its own, so each distinct row is scored once and its score copied to its
        # repeats: claims repeat a lot (the same fee at the same kind of visit), and scoring is the dear part
        groups = pl.DataFrame(X).with_row_index("_at").group_by(pl.exclude("_at"), maintain_order=True).agg("_at")
        distinct = groups.drop("_at").to_numpy()
        if len(distinct) < 200_000:
            scores = self.model_.decision_function(distinct)
        else:  # tree traversal releases the GIL: score slices on both cores
            with ThreadPoolExecutor(2) as pool:
                scores = np.concatenate(list(pool.map(self.model_.decision_function, np.array_split(distinct, 8))))
        out = np.empty(len(X))
        out[groups["_at"].explode().to_numpy()] = np.repeat(scores, groups["_at"].list.len().to_numpy())
        return out

    def threshold(self, contamination: float) -> float:
        """The score above which the top `contamination` share of the training rows lie."""
        self._check_fitted()
        return float(np.quantile(self.train_scores_, 1 - contamination))

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Where each score falls among the training scores, 0..1."""
        self._check_fitted()
        return np.searchsorted(np.sort(self.train_scores_), scores, side="right") / len(self.train_scores_)

    def attributions(self, X: np.ndarray) -> np.ndarray:
        """Per row and feature: deviation from the training median in robust units (signed)."""
        self._check_fitted()
        return (np.asarray(X, dtype=float) - self.median_) / self.scale_


def _relative_features(v: pl.DataFrame, features: list[str]) -> np.ndarray:
    """log(1 + value) minus the log(1 + median) of its med_type x level x department group."""
    groups = ["med_type", "hosp_lv", "dept_codg"]
    rel = v.select([(pl.col(f).log1p() - pl.col(f).log1p().median().over(groups)).alias(f) for f in features])
    return rel.fill_null(0).to_numpy()


def run(visits: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Findings over a window's visits, configured by `config.toml`."""
    c = cfg["isolation"]
    v = visits.filter(pl.col("med_type") != "21")
    if v.height < 50:
        return empty_findings()
    X = _relative_features(v, c["features"])
    det = IsolationDetector(c["model"], c["n_estimators"], c["seed"], c.get("max_fit_rows")).fit(X)
    scores = det.decision_function(X)  # the model judges every visit of the window it learnt from
    hit = scores > det.threshold(c["contamination"])
    if not hit.any():
        return empty_findings()
    attr = det.attributions(X[hit])
    top = attr.argmax(axis=1)
    names = [FEATURE_NAMES.get(c["features"][k], c["features"][k]) for k in top]
    ratio = np.exp(np.take_along_axis(X[hit], top[:, None], axis=1)[:, 0])  # ~ value / group median
    pct = det.percentile(scores[hit])
    found = v.filter(pl.Series(hit)).with_columns(
        pl.Series("_name", names), pl.Series("_ratio", ratio), pl.Series("_pct", pct)
    )
    return as_findings(
        found.select(
            *visit_where(),
            (pl.col("_pct") * 0.5).alias("score"),
            pl.lit(0.0).alias("amount"),
            pl.format(
                "孤立森林模型判定异常(高于{}%的就诊), 主要偏离: {}约为同组中位数的{}倍",
                # floored and capped: a visit is among the window it is ranked in, so never above 100% of it
                # and rounded after the division: 998 / 10 is 99.80000000000001 in binary
                ((pl.col("_pct") * 1000).floor().clip(upper_bound=999) / 10).round(1),
                pl.col("_name"),
                pl.col("_ratio").round(1),
            ).alias("reason"),
        ),
        source=f"MODEL_{c['model'].upper()}",
        source_name="孤立森林模型" if c["model"] == "iforest" else f"{c['model'].upper()}模型",
        kind=MODEL,
        result_type=SUSPECT,
    )
