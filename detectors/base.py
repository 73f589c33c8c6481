"""What every detector shares: the estimator interface and the one shape of a finding.

Estimators follow scikit-learn / PyOD: parameters set in `__init__` (no work there), `fit(X, y=None)`
returns self and sets attributes ending in `_`, `decision_function(X)` gives higher = more anomalous.
Each detector module also offers `find(...) -> findings frame` that applies its threshold and writes
the reason a person can read.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# one row per (source, visit): what was found, where, how strong, how much, and why
FINDING_SCHEMA = {
    "source": pl.String,  # detector or rule id
    "source_name": pl.String,  # its Chinese name
    "kind": pl.String,  # 规则 (rule) / 统计 (statistical) / 模型 (model)
    "result_type": pl.String,  # 明确违规 / 可疑
    "setl_id": pl.String,
    "fixmedins_code": pl.String,
    "psn_no": pl.String,
    "occurred_on": pl.Date,
    "score": pl.Float64,  # 0..1, higher = riskier
    "amount": pl.Float64,  # amount at issue, yuan
    "reason": pl.String,  # Chinese, with the measured numbers
    "evidence": pl.String,  # fee line ids or other record ids, ';'-separated
}
CLEAR = "明确违规"
SUSPECT = "可疑"
MODEL = "模型"  # a model's finding has no amount at issue of its own (its `amount` is 0)


def yuan_text(amount: pl.Expr, decimals: int = 2) -> pl.Expr:
    """An amount in yuan as a reason writes it: thousands separated, two decimals ("21,837.40"). With
    `decimals=4` (unit prices: a tablet may cost 0.035元) up to four, trailing zeros beyond two dropped."""
    scale = 10**decimals
    units = (amount * scale).round(0).cast(pl.Int64)
    whole = (units.abs() // scale).cast(pl.String)
    # commas every three digits from the right: reversed, a comma after each full group, reversed back
    grouped = whole.str.reverse().str.replace_all(r"(\d{3})", "${1},").str.strip_chars_end(",").str.reverse()
    frac = (units.abs() % scale).cast(pl.String).str.zfill(decimals).str.strip_chars_end("0").str.pad_end(2, "0")
    sign = pl.when(units < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str([sign, grouped, pl.lit("."), frac])


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)


VISIT_WHERE_COLUMNS = ("setl_id", "fixmedins_code", "psn_no", "setl_time")  # what visit_where() reads


def visit_where() -> list[pl.Expr]:
    """Where and when a visit-level finding happened, from a visits frame (its VISIT_WHERE_COLUMNS)."""
    return [
        pl.col("setl_id"),
        pl.col("fixmedins_code"),
        pl.col("psn_no"),
        pl.col("setl_time").dt.date().alias("occurred_on"),
    ]


def grouped_order(*keys: str) -> list[pl.Expr]:
    """Sort keys that bring each group's rows together: the keys' hashes first, as a number sorts far faster
    than text, then the keys themselves, which only break the rare tie of two hashes (so groups never mix)."""
    return [pl.col(k).hash() for k in keys] + [pl.col(k) for k in keys]


def as_findings(frame: pl.DataFrame, **constants: str) -> pl.DataFrame:
    """Fill constant columns, cast to the schema and order the columns."""
    frame = frame.with_columns(**{k: pl.lit(v) for k, v in constants.items()})
    for col, dtype in FINDING_SCHEMA.items():
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype).alias(col))
    return frame.select([pl.col(c).cast(t) for c, t in FINDING_SCHEMA.items()])


def detached(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy that owns its data. Polars text columns are views into the buffers of the frame they were
    filtered from, so a few findings would otherwise keep a whole slice of fee lines alive."""
    return pl.from_arrow(frame.to_arrow())


class BaseDetector:
    """Marker base of the estimators; see the module docstring for the contract."""

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> BaseDetector:
        raise NotImplementedError

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not any(k.endswith("_") and not k.startswith("_") for k in vars(self)):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(X) first")


def squash(z: np.ndarray | pl.Expr, scale: float = 4.0):
    """Map a deviation >= 0 to a 0..1 score: 1 - exp(-z/scale)."""
    if isinstance(z, pl.Expr):
        return 1 - (-(z.clip(lower_bound=0) / scale)).exp()
    return 1 - np.exp(-np.clip(z, 0, None) / scale)
