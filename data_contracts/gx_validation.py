"""Run contract checks as Great Expectations suites over pandas batches (the route that works on this
stack: GX's SQL source on DuckDB does not, see STACK_NOTES). One suite per table, rebuilt from the
declared checks; GX returns the (file index, row) of every failing row, with the rule id in the meta.

GX runs in a worker process of its own (see `ContractValidator`), so a batch is validated while the
loader reads the next one and writes the one before. With a `docs_dir`, the worker's context lives on disk
there: validations are stored and `build_docs()` renders them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.docs_index import write_index

INDEX = ["_fi", "_row"]


@dataclass(frozen=True)
class Expect:
    """One expectation by GX class name and arguments, tagged with the contract rule it enforces."""

    rule: str
    kind: str  # e.g. ExpectColumnValuesToNotBeNull
    kwargs: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        return [v for k, v in self.kwargs.items() if k in ("column", "column_A", "column_B")]


def compact(frame: pl.DataFrame, expects: list[Expect]) -> pl.DataFrame:
    """The columns the expectations read, in the most compact form that keeps what they test.

    GX's pandas engine hashes the whole batch and copies every column each time it filters rows, and text
    is by far the dearest to hash and copy. So a text column whose only test is not-null reaches GX as a
    null-or-1 marker, and every other text column as a categorical (columns compared as a pair share one
    set of categories, as pandas requires). Numbers, flags and times pass as they are.
    """
    needed = list(dict.fromkeys(INDEX + [c for e in expects for c in e.columns]))
    kinds: dict[str, set[str]] = {}
    for e in expects:
        for c in e.columns:
            kinds.setdefault(c, set()).add(e.kind)
    text = {c for c in needed if frame.schema[c] == pl.String}
    shared: dict[str, set[str]] = {c: {c} for c in text}
    for e in expects:
        pair = [c for c in e.columns if c in text]
        if len(pair) == 2:
            group = shared[pair[0]] | shared[pair[1]]
            for c in group:
                shared[c] = group
    categories: dict[tuple[str, ...], pl.Series] = {}
    exprs = []
    for c in needed:
        if c not in text:
            exprs.append(pl.col(c))
        elif kinds[c] == {"ExpectColumnValuesToNotBeNull"}:
            exprs.append(pl.when(pl.col(c).is_not_null()).then(pl.lit(1, pl.UInt8)).alias(c))
        else:
            group = tuple(sorted(shared[c]))
            if group not in categories:
                values = [frame.get_column(g).drop_nulls().unique() for g in group]
                categories[group] = pl.concat(values).unique().sort()
            exprs.append(pl.col(c).cast(pl.Enum(categories[group])))
    return frame.select(exprs)


class _Suites:
    """The GX side, living in the validation worker process: one context, one suite per table and signature."""

    def __init__(self, docs_dir: Path | None) -> None:
        self.docs_dir = docs_dir
        self._ctx: Any = None
        self._gx: Any = None
        self._suites: dict[tuple, Callable[[Any], list]] = {}

    def context(self):
        if self._ctx is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
            logging.getLogger("great_expectations").setLevel(logging.ERROR)
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            if self.docs_dir is not None:
                self.docs_dir.mkdir(parents=True, exist_ok=True)
                self._ctx = gx.get_context(mode="file", project_root_dir=str(self.docs_dir))
            else:
                self._ctx = gx.get_context(mode="ephemeral")
            self._ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            self._gx = gx
        return self._ctx

    def validate(self, name: str, frame: pl.DataFrame, expects: list[Expect]) -> list[tuple[int, int, str]]:
        results = self._runner(name, expects)(frame.to_pandas())
        rows: list[tuple[int, int, str]] = []
        for r in results:
            if r.success:
                continue
            rule = r.expectation_config.meta["rule"]
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(f"contract check {rule} could not run: {r.exception_info.get('exception_message')}")
            rows += [(int(u["_fi"]), int(u["_row"]), rule) for u in r.result.get("unexpected_index_list") or []]
        return rows

    def _runner(self, name: str, expects: list[Expect]) -> Callable[[Any], list]:
        """The suite of `name` with these expectations, set up in GX once per run and reused for every batch
        (setting one up costs more than validating a batch of 100,000 rows)."""
        signature = (name, tuple((e.rule, e.kind, repr(sorted(e.kwargs.items()))) for e in expects))
        if signature in self._suites:
            return self._suites[signature]
        ctx = self.context()
        gx = self._gx
        from great_expectations.core.run_identifier import RunIdentifier

        taken = sum(1 for s in self._suites if s[0] == name)
        suite_name = name if not taken else f"{name}-{taken + 1}"
        source = ctx.data_sources.add_or_update_pandas(f"uploads-{suite_name}")
        batch_def = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("batch")
        suite = gx.ExpectationSuite(
            name=suite_name,
            expectations=[getattr(gx.expectations, e.kind)(**e.kwargs, meta={"rule": e.rule}) for e in expects],
        )
        suite = ctx.suites.add_or_update(suite)
        vd = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(data=batch_def, suite=suite, name=suite_name)
        )
        fmt = {
            "result_format": "COMPLETE",
            "unexpected_index_column_names": INDEX,
            "return_unexpected_index_query": False,
        }

        def run(df: Any) -> list:
            # with a docs_dir the run's result is stored in the context; build_docs() renders the site once
            run_id = RunIdentifier(run_name=f"claimwatch-{suite_name}")
            return vd.run(batch_parameters={"dataframe": df}, result_format=fmt, run_id=run_id).results

        self._suites[signature] = run
        return run

    def build_docs(self) -> Path | None:
        if self.docs_dir is None or self._ctx is None:
            return None
        self._ctx.build_data_docs()
        return write_index(self.docs_dir)


# the worker process's side: module state set up by its initializer, and the calls the main process sends it
_WORKER: _Suites | None = None


def _start_worker(docs_dir: Path | None) -> None:
    global _WORKER
    _WORKER = _Suites(docs_dir)


def _warm_worker() -> None:
    _WORKER.context()  # imports GX (about 5 s) while the main process reads its files


def _validate_in_worker(name: str, frame: pl.DataFrame, expects: list[Expect]) -> tuple[list, float]:
    t0 = time.perf_counter()
    rows = _WORKER.validate(name, frame, expects)
    return rows, time.perf_counter() - t0


def _build_docs_in_worker() -> Path | None:
    return _WORKER.build_docs()


def _peak_rss_mb_in_worker() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


_SCHEMA = {"_fi": pl.Int32, "_row": pl.Int32, "rule": pl.String}


@dataclass
class PendingValidation:
    """A batch sent to the validation worker; `result()` waits for its failing rows [_fi, _row, rule]."""

    validator: ContractValidator
    name: str
    height: int
    future: Future | None  # None: nothing to validate

    def result(self) -> pl.DataFrame:
        if self.future is None:
            return pl.DataFrame(schema=_SCHEMA)
        try:
            rows, seconds = self.future.result()
        except BrokenProcessPool:
            raise RuntimeError("the contract validation worker process died (out of memory?)") from None
        v = self.validator
        v.seconds[self.name] = v.seconds.get(self.name, 0.0) + seconds
        v.rows[self.name] = v.rows.get(self.name, 0) + self.height
        return pl.DataFrame(rows, schema=_SCHEMA, orient="row")


@dataclass
class ContractValidator:
    """Runs the contract's GX suites in one worker process of its own.

    GX spends most of its time in Python (building each expectation's metric graph), which holds the
    interpreter lock; in a process of its own it validates batch k while this process reads and writes the
    batches around it, on the other core. Batches travel to it in their compact form (`compact`).
    """

    docs_dir: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # worker time validating, per table (for the summary)
    rows: dict[str, int] = field(default_factory=dict)  # rows validated, per table
    _pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                # spawned, not forked: this process runs DuckDB and polars thread pools a fork would copy mid-work
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.docs_dir,),
            )
        return self._pool

    def warm_up(self) -> None:
        """Start the worker and have it import GX now, while this process reads its first files."""
        self._executor().submit(_warm_worker)

    def submit(self, name: str, frame: pl.DataFrame, expects: list[Expect]) -> PendingValidation:
        """Send a batch to be validated; `frame` must hold INDEX and every column the expectations read."""
        if frame.is_empty() or not expects:
            return PendingValidation(self, name, 0, None)
        future = self._executor().submit(_validate_in_worker, name, compact(frame, expects), expects)
        return PendingValidation(self, name, frame.height, future)

    def validate(self, name: str, frame: pl.DataFrame, expects: list[Expect]) -> pl.DataFrame:
        """Failing rows as [_fi, _row, rule]."""
        return self.submit(name, frame, expects).result()

    def build_docs(self) -> Path | None:
        """Render the Data Docs site of every validation this run stored, and an index of it that reads
        offline; return that index."""
        if self.docs_dir is None or self._pool is None:
            return None
        return self._pool.submit(_build_docs_in_worker).result()

    def docs_index(self) -> Path | None:
        index = self.docs_dir / "index.html" if self.docs_dir is not None else None
        return index if index is not None and index.exists() else None

    def worker_peak_rss_mb(self) -> int:
        return self._pool.submit(_peak_rss_mb_in_worker).result() if self._pool is not None else 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
