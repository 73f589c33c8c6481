"""Isolation forest (and PyOD's ECOD / COPOD / HBOS) on compact feature matrices, with per-row reasons.

Tree ensembles give no per-claim explanation of their own (`feature_importances_` is global), so each
flagged row is explained by the features that deviate most from the training median, in robust units.
"""

from __future__ import annotations

import numpy as np

from detectors.base import BaseDetector

MODELS = ("iforest", "ecod", "copod", "hbos")


def _make(model: str, n_estimators: int, seed: int):
    if model == "iforest":
        from pyod.models.iforest import IForest

        return IForest(n_estimators=n_estimators, random_state=seed, n_jobs=1)
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

    def __init__(self, model: str = "iforest", n_estimators: int = 200, seed: int = 42):
        self.model = model
        self.n_estimators = n_estimators
        self.seed = seed

    def fit(self, X: np.ndarray, y=None) -> IsolationDetector:
        X = np.asarray(X, dtype=float)
        self.median_ = np.median(X, axis=0)
        mad = np.median(np.abs(X - self.median_), axis=0) * 1.4826
        self.scale_ = np.where(mad > 1e-9, mad, np.maximum(np.std(X, axis=0), 1e-9))
        self.model_ = _make(self.model, self.n_estimators, self.seed).fit(X)
        self.train_scores_ = self.model_.decision_function(X)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.model_.decision_function(np.asarray(X, dtype=float))

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
