"""The nightly Prefect flow runs the same steps as the command line, as task runs."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory):
    import os

    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_nightly_flow_loads_and_reports(prefect_harness, small_inbox, tmp_path):
    from pipelines.flows.nightly import nightly_flow

    state = nightly_flow(str(small_inbox), str(tmp_path / "w.duckdb"), str(tmp_path / "out"), return_state=True)
    assert state.is_completed()
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["rows"]["fee"]["loaded"] > 20000
    assert list(summary["timings_s"]) == ["reference", "ingest", "detect", "outputs"]
