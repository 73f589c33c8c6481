"""The nightly Prefect flow runs the same steps as the command line, as task runs."""

from __future__ import annotations

import json

import pytest

from pipelines.nightly import STEPS


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
    assert list(summary["timings_s"]) == [name for name, _ in STEPS]

    # the headline figures are in the Prefect UI as artifacts, without personal identifiers
    from prefect.artifacts import Artifact

    from pipelines.flows.artifacts import SUMMARY_KEY, TOP_KEY

    md = Artifact.get(SUMMARY_KEY)
    assert md is not None and summary["run_id"] in md.data and "疑点" in md.data and "(本次抽取)" in md.data
    top = Artifact.get(TOP_KEY)
    assert top is not None
    rows = json.loads(top.data) if isinstance(top.data, str) else top.data
    assert len(rows) == 10 and "risk_score" in rows[0]
    import polars as pl

    setl = pl.read_csv(next((small_inbox / "uploads").glob("H*_setl.csv")), infer_schema=False)
    shown = md.data + json.dumps(rows, ensure_ascii=False)
    assert not any(p in shown for p in setl["psn_no"].to_list() + setl["psn_name"].to_list())


def test_a_folder_that_is_not_an_inbox_fails_the_run_with_one_line(prefect_harness, tmp_path):
    """The run's state says what to fix, as the command line would; before, the flow raised, and Prefect logged a
    traceback in the run's log."""
    from pipelines.flows.nightly import nightly_flow
    from pipelines.nightly import RunInputError

    empty = tmp_path / "empty"
    empty.mkdir()
    state = nightly_flow(str(empty), str(tmp_path / "w.duckdb"), str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    assert (
        state.message
        == f"claimwatch: error: {empty} is not an inbox: expected an uploads/ and/or reference/ folder in it"
    )
    with pytest.raises(RunInputError):
        state.result()  # the command line's `--orchestrator prefect` reports it in its one line
    assert not (tmp_path / "w.duckdb").exists()
