"""The nightly Prefect flow: each step of `pipelines.nightly.STEPS` becomes a task run.

Tasks touch the warehouse, so they never cache (`NO_CACHE`) and take the run context (paths and small
results), not connections or frames. Retries are for I/O that can fail transiently; a failed task
fails the flow and the warehouse stays as it was before the run. Input the user can fix (a folder that is not an
inbox, a busy warehouse) fails the run with that one line as its state's message and in the log, not a
traceback; the exception is the state's data, so `state.result()` raises it for the command line.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from pipelines.flows.artifacts import SUMMARY_KEY, TOP_KEY, summary_markdown, top_institutions
from pipelines.nightly import INPUT_ERRORS, NightlyParams, RunContext, Step, run_nightly

# Only steps that write nothing but files are retried: a step that writes the warehouse fails the run instead,
# which leaves the warehouse as it was (a retry would start from its half-written staging copy).
RETRIES = {"notices": 1, "outputs": 2, "report": 1}


def prefect_runner(name: str, fn: Step, ctx: RunContext) -> None:
    t = task(
        fn, name=name, cache_policy=NO_CACHE, retries=RETRIES.get(name, 0), retry_delay_seconds=5, persist_result=False
    )
    t(ctx)


@flow(name="claimwatch-nightly", log_prints=False, persist_result=False)
def nightly_flow(
    inbox: str,
    db: str,
    out: str,
    as_of: str | None = None,
    seed: int | None = None,
    targeting: dict | None = None,
) -> dict | State:
    params = NightlyParams(
        Path(inbox), Path(db), Path(out), date.fromisoformat(as_of) if as_of else None, seed, targeting or {}
    )
    log = get_run_logger()
    try:
        summary = run_nightly(params, runner=prefect_runner)
    except INPUT_ERRORS as e:
        log.error("claimwatch: error: %s", e)
        return Failed(message=f"claimwatch: error: {e}", data=e)
    create_markdown_artifact(summary_markdown(summary), key=SUMMARY_KEY, description="claimwatch 夜间运行摘要")
    if top := top_institutions(Path(out)):
        create_table_artifact(top, key=TOP_KEY, description="风险评分最高的机构")
    for step, seconds in summary["timings_s"].items():
        log.info("step=%s seconds=%.2f", step, seconds)
    rows = summary["rows"]
    log.info(
        "files seen %s, loaded %s, unchanged %s, rejected %s; setl rows %s, fee rows %s",
        summary["files"]["seen"],
        summary["files"]["loaded"],
        summary["files"]["unchanged"],
        len(summary["files"]["rejected"]),
        rows["setl"],
        rows["fee"],
    )
    return summary
