"""Detectors, the audit rule library, scoring and explanations. Pure Python: no Prefect, DuckDB or GX.

Every detector and rule returns findings of one shape (`base.FINDING_SCHEMA`); scoring and everything
after it read findings only.
"""
