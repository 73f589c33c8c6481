"""The nightly run as plain steps: each a function of the run context, wired in order by `run_nightly`.

The Prefect flow (`pipelines/flows/nightly.py`) wraps the same steps as tasks; the command line runs
them directly when no Prefect server is configured. Either way the run writes a staging copy of the
warehouse and publishes it only when every step succeeded (`warehouse/session.py`).
"""

from __future__ import annotations

import json
import resource
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from data_contracts.gx_validation import ContractValidator
from detectors.config import load as load_detector_config
from pipelines import __version__
from pipelines.cases.step import run_cases
from pipelines.detect.step import run_detect
from pipelines.detect.window import day_span, window_start
from pipelines.ingest.hashing import HashAhead
from pipelines.ingest.loader import ingest
from pipelines.ingest.reference import ReferenceResult, load_references
from pipelines.ingest.result import IngestResult
from pipelines.notices.step import run_notices
from pipelines.outputs.publish import OutputsNotPublished, discard, publish, run_folder
from pipelines.outputs.quarantine_files import SendBack, write_send_back, write_warnings
from pipelines.outputs.run_files import write_quarantine, write_summary
from pipelines.outputs.safe_text import private_tree, write_csv
from pipelines.outputs.sampling_files import write_sampling_files
from pipelines.progress import QUIET, Progress
from pipelines.report.data import load_report_data
from pipelines.report.render import render_report
from pipelines.targeting.outcomes import run_estimates
from pipelines.targeting.step import run_targeting
from pipelines.warehouse.session import STOPPED_BY, NotAWarehouse, WarehouseBusy, connect_writer, write_session


class RunInputError(ValueError):
    """A problem with what the user gave the run (paths, dates): reported in one line, never a traceback."""


# what refuses a run for its input, which the user can fix: the command line and the Prefect flow report it in one line
INPUT_ERRORS = (RunInputError, WarehouseBusy, NotAWarehouse)


@dataclass
class NightlyParams:
    inbox: Path
    db: Path
    out: Path
    as_of: date | None = None
    seed: int | None = None
    targeting: dict = field(default_factory=dict)  # overrides of targeting.toml, e.g. {"selection.hospitals": 4}


@dataclass
class RunContext:
    params: NightlyParams
    run_id: str
    stage: Path  # the staging copy of the warehouse this run writes
    out: Path  # the folder this run writes its outputs into; published into params.out when it completes
    progress: Progress = QUIET
    as_of: date | None = None
    reference: ReferenceResult | None = None
    ingest: IngestResult | None = None
    warnings: int = 0
    send_back: SendBack = field(default_factory=SendBack)
    validator: ContractValidator = field(default_factory=ContractValidator)
    hashes: HashAhead = field(default_factory=HashAhead)  # the uploads' hashes, started ahead of the ingest step
    detection: dict = field(default_factory=dict)
    draw: dict = field(default_factory=dict)
    outcomes: dict = field(default_factory=dict)
    notices: dict = field(default_factory=dict)
    cases: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, int] = field(default_factory=dict)  # the process's peak so far, after each step

    def connect(self) -> duckdb.DuckDBPyConnection:
        return connect_writer(self.stage)


Step = Callable[[RunContext], None]


def peak_rss_mb() -> int:
    """This process's peak resident memory so far (child processes such as LibreOffice not included)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def step_reference(ctx: RunContext) -> None:
    with ctx.connect() as con:
        ctx.reference = load_references(
            con, ctx.params.inbox / "reference", ctx.run_id, ctx.validator, ctx.progress.say
        )


def step_ingest(ctx: RunContext) -> None:
    with ctx.connect() as con:
        ctx.ingest = ingest(con, ctx.params.inbox, ctx.run_id, ctx.progress.say, ctx.validator, ctx.hashes)
        later = load_references(
            con, ctx.params.inbox / "reference", ctx.run_id, ctx.validator, ctx.progress.say, after_uploads=True
        )
        if ctx.reference:
            ctx.reference.merge(later)
        else:
            ctx.reference = later
        if ctx.params.as_of is not None:
            _check_as_of(con, ctx.params.as_of)
    ctx.validator.settle()  # the last step to validate: no import of GX's may overlap detection's
    ctx.as_of = ctx.params.as_of or ctx.ingest.newest_upload or date.today()


def _check_as_of(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    """An --as-of whose window holds no visit while the warehouse holds some is a mistake (a mistyped year): the
    night would detect nothing and record an empty draw for that cycle. Stop with what the warehouse holds."""
    start = window_start(as_of, load_detector_config()["window"]["days"])
    n, first, last = con.execute(
        "SELECT count(*) FILTER (setl_time >= ? AND setl_time < ?), CAST(min(setl_time) AS DATE), "
        "CAST(max(setl_time) AS DATE) FROM setl",
        list(day_span(start, as_of)),
    ).fetchall()[0]
    if n == 0 and last is not None:
        raise RunInputError(
            f"--as-of {as_of}: no visit was settled in its window {start}..{as_of}; the warehouse holds visits "
            f"settled {first}..{last}"
        )


def step_detect(ctx: RunContext) -> None:
    with ctx.connect() as con:
        ctx.detection = run_detect(con, ctx.run_id, ctx.as_of, ctx.out, ctx.progress.say)


def step_target(ctx: RunContext) -> None:
    with ctx.connect() as con:
        ctx.draw = run_targeting(con, ctx.run_id, ctx.as_of, ctx.params.seed, ctx.params.targeting)
        write_sampling_files(con, ctx.draw["draw_id"], ctx.out)
        estimates, rates = run_estimates(con, ctx.run_id)
    if estimates.height or rates.height:
        write_csv(estimates, ctx.out / "overpayment_estimates.csv")
        write_csv(rates, ctx.out / "confirmation_rates.csv")
    ctx.outcomes = {
        "institutions_estimated": estimates.height,
        "estimated_overpayment_lower": round(float(estimates["lower"].sum()), 2),
        "audited_flags": int(rates["audited"].sum()),
        "confirmed_flags": int(rates["confirmed"].sum()),
    }


def step_notices(ctx: RunContext) -> None:
    with ctx.connect() as con:
        ctx.notices = run_notices(con, ctx.run_id, ctx.as_of, ctx.draw["draw_id"], ctx.out, say=ctx.progress.say)


def step_cases(ctx: RunContext) -> None:
    with ctx.connect() as con:
        ctx.cases = run_cases(con, ctx.run_id, ctx.as_of, ctx.draw.get("draw_id"), ctx.notices, ctx.out)


def step_outputs(ctx: RunContext) -> None:
    with ctx.connect() as con:
        write_quarantine(con, ctx.run_id, ctx.out)
        ctx.send_back = write_send_back(con, ctx.run_id, ctx.out)
        ctx.warnings = write_warnings(con, ctx.run_id, ctx.out)
    ctx.validator.build_docs()


def step_report(ctx: RunContext) -> None:
    with ctx.connect() as con:
        data = load_report_data(con, ctx.run_id, ctx.as_of, ctx.draw.get("draw_id"))
    render_report(data, summary_of(ctx, "completed"), ctx.out)
    private_tree(ctx.out)


STEPS: list[tuple[str, Step]] = [
    ("reference", step_reference),
    ("ingest", step_ingest),
    ("detect", step_detect),
    ("target", step_target),
    ("notices", step_notices),
    ("cases", step_cases),
    ("outputs", step_outputs),
    ("report", step_report),
]

Runner = Callable[[str, Step, RunContext], None]


def run_directly(name: str, fn: Step, ctx: RunContext) -> None:
    fn(ctx)


def summary_of(ctx: RunContext, status: str, error: str | None = None) -> dict:
    ing = ctx.ingest or IngestResult()
    rejected = list(ing.rejected) + (ctx.reference.rejected if ctx.reference else [])
    return {
        "run_id": ctx.run_id,
        "status": status,
        **({"error": error} if error else {}),
        "as_of": ctx.as_of.isoformat() if ctx.as_of else None,
        "software_version": __version__,
        "files": {
            **ing.files_summary(),
            "rejected": [{"file": r["file"], "reason": f"{r['rule']}: {r['reason']}"} for r in rejected],
        },
        "rows": {t: vars(c) for t, c in ing.rows.items()},
        "reference": {k: getattr(ctx.reference, k) for k in ("loaded", "unchanged", "absent", "not_read")}
        if ctx.reference
        else {},
        "detection": ctx.detection,
        "draw": ctx.draw,
        "audit_outcomes": ctx.outcomes,
        "notices": {k: v for k, v in ctx.notices.items() if k != "issued"},
        "cases": ctx.cases,
        "timings_s": {k: round(v, 3) for k, v in ctx.timings.items()},
        "peak_rss_mb": ctx.peak_rss_mb,
        "contract": {
            "warnings": ctx.warnings,
            "send_back_files": len(ctx.send_back.workbooks),
            "send_back_overflow": ctx.send_back.overflow,
            "data_docs": str(d.relative_to(ctx.out)) if (d := ctx.validator.docs_index()) else None,
            # GX validation time and rows, per table; apart from them, what the first validation waited for
            # GX's import (started with the run) and its context
            "validation_s": {k: round(v, 3) for k, v in ctx.validator.seconds.items()},
            "gx_start_s": round(ctx.validator.start_s, 3),
            "validated_rows": dict(ctx.validator.rows),
        },
        "outputs": {
            "folder": str(ctx.params.out.resolve()),
            "files": sorted(
                p.name if p.is_file() else f"{p.name}/ ({sum(1 for _ in p.rglob('*') if _.is_file())} files)"
                for p in ctx.out.iterdir()
                if p.name not in ("run_summary.json", "data_docs")
            )
            if status == "completed"
            else [],  # a failed run publishes nothing but its summary
        },
    }


def run_nightly(params: NightlyParams, runner: Runner = run_directly, progress: Progress = QUIET) -> dict:
    """Run every step; publish the warehouse, then the outputs, and return the summary; or raise with the warehouse
    and the previous run's outputs untouched (the summary says why)."""
    if not (params.inbox / "uploads").is_dir() and not (params.inbox / "reference").is_dir():
        raise RunInputError(f"{params.inbox} is not an inbox: expected an uploads/ and/or reference/ folder in it")
    for part in ("uploads", "reference"):  # outputs there would be read as uploads the next night
        if params.out.resolve().is_relative_to((params.inbox / part).resolve()):
            raise RunInputError(f"--out {params.out} is inside the inbox's {part}/ folder: choose a folder outside it")
    params.out.mkdir(parents=True, exist_ok=True)
    run_id = f"{datetime.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    started = datetime.now()
    ctx: RunContext | None = None
    try:
        with write_session(params.db) as stage:
            work = run_folder(params.out, run_id)
            work.mkdir(mode=0o700)
            ctx = RunContext(
                params, run_id, stage, work, progress, validator=ContractValidator(docs_dir=work / "data_docs")
            )
            ctx.validator.warm_up()
            with ctx.connect() as con:
                ctx.hashes = HashAhead.start(con, params.inbox / "uploads")
            for name, fn in STEPS:
                progress.step(name)
                t0 = time.perf_counter()
                runner(name, fn, ctx)
                ctx.timings[name] = time.perf_counter() - t0
                ctx.peak_rss_mb[name] = peak_rss_mb()
            summary = summary_of(ctx, "completed")
            with ctx.connect() as con:
                con.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, 'completed', ?, ?)",
                    [run_id, started, datetime.now(), ctx.as_of, __version__, json.dumps(summary, default=str)],
                )
    except BaseException as e:
        if ctx is not None:
            discard(ctx.out)
            error = f"{type(e).__name__}: {e}"
            if STOPPED_BY:  # whatever DuckDB made of the stop signal ("Query interrupted", "INTERRUPT Error") is it
                error = f"KeyboardInterrupt: stopped by {signal.Signals(STOPPED_BY[0]).name}"
            write_summary(summary_of(ctx, "failed", error), params.out)
        raise
    finally:
        if ctx is not None:
            ctx.hashes.close()
        progress.done()
    try:
        publish(ctx.out, params.out)
    except OSError as e:  # after the warehouse was published: say so, and where the outputs are
        raise OutputsNotPublished(
            f"the warehouse was updated, but tonight's outputs could not be moved into {params.out} ({e}); "
            f"they are in {ctx.out}"
        ) from e
    write_summary(summary, params.out)
    return summary
