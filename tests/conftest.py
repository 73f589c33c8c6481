"""Shared fixtures: one generated small inbox per session, and helpers to run the loader on it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def small_inbox(tmp_path_factory) -> Path:
    """A generated small inbox (seed 7) and its truth beside it; treat as read-only."""
    from pipelines.synth.generate import generate

    root = tmp_path_factory.mktemp("gen")
    generate(root / "inbox", seed=7, scale="small")
    return root / "inbox"


@pytest.fixture
def inbox_copy(small_inbox, tmp_path) -> Path:
    """A private copy of the small inbox (with its truth) that a test may change."""
    dst = tmp_path / "inbox"
    shutil.copytree(small_inbox, dst)
    shutil.copytree(small_inbox.parent / "inbox.truth", tmp_path / "inbox.truth")
    return dst


@pytest.fixture(scope="session")
def small_night(small_inbox, tmp_path_factory) -> tuple[Path, dict, Path]:
    """The nightly run on the small inbox: (warehouse, summary, output folder)."""
    from pipelines.nightly import NightlyParams, run_nightly

    root = tmp_path_factory.mktemp("night")
    summary = run_nightly(NightlyParams(small_inbox, root / "w.duckdb", root / "out"))
    return root / "w.duckdb", summary, root / "out"


def table_digest(db: Path) -> dict[str, tuple]:
    """Row count and an order-independent content hash of every upload table (lineage columns excluded)."""
    from data_contracts.contract import upload_tables

    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for name, t in upload_tables().items():
            cols = ", ".join(f'"{c}"' for c in t.codes)
            out[name] = con.execute(f"SELECT count(*), sum(hash(({cols}))) FROM {name}").fetchall()[0]
        return out
    finally:
        con.close()
