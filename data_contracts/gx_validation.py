"""Run contract checks as Great Expectations suites over pandas batches (the route that works on this
stack: GX's SQL source on DuckDB does not, see STACK_NOTES). One suite per table, rebuilt from the
declared checks; GX returns the position of every failing row in the batch, with the rule id in the meta,
and the position gives the row's (file index, row).

With a `docs_dir`, the context lives on disk there: validations are stored and `build_docs()` renders them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.docs_index import site_of, write_index
from data_contracts.docs_offline import localise

INDEX = ["_fi", "_row"]


def _import_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations  # noqa: F401


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
    needed = list(dict.fromkeys(c for e in expects for c in e.columns))
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


def _drop_batches(source: Any) -> None:
    """Let go of the batches a GX data source holds, and of what it computed from them. Its execution engine
    keeps the last batch it validated (the whole frame) until the next one replaces it, and every metric it
    resolved, among them each expectation's per-row condition over the whole batch; so each table's last batch
    and its conditions stayed alive for the rest of the night, through detection, the night's peak. A run finds
    the metrics it needs in its own results first; the engine's cache is only a fallback, and a first run works
    with it empty."""
    engine = source.get_execution_engine()
    engine.batch_manager.batch_data_cache.clear()
    engine.batch_manager.reset_batch_cache()
    engine._metric_cache.clear()  # no public way; a test fails if a GX upgrade moves it


@dataclass
class ContractValidator:
    docs_dir: Path | None = None
    _ctx: Any = None
    _suites: dict[tuple, Callable[[Any], list]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # time spent validating, per table (for the summary)
    rows: dict[str, int] = field(default_factory=dict)  # rows validated, per table
    start_s: float = 0.0  # what the first validation waited for GX's import and its context, kept out of `seconds`
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _importing: threading.Thread | None = None

    def warm_up(self) -> None:
        """Import GX (about 5 s) on a background thread while the run reads its files; the first validation
        waits for it through Python's import lock if it is not done yet."""
        self._importing = threading.Thread(target=_import_gx, name="gx-import", daemon=True)
        self._importing.start()

    def settle(self) -> None:
        """Wait for the warm-up's import to end. Call it once the run needs GX no more: an import still running
        on the background thread while the run imports its next libraries can deadlock on Python's module
        locks (Altair, which GX imports, and scikit-learn both import narwhals.stable, from either end), which
        happens on a night with nothing to validate, when no check has waited for the import."""
        if self._importing is not None:
            self._importing.join()
            self._importing = None

    def _context(self):
        if self._ctx is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
            logging.getLogger("great_expectations").setLevel(logging.ERROR)
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
            from great_expectations.execution_engine import pandas_execution_engine

            # GX fingerprints every batch under this many bytes by hashing all of it, for an md5 shown among
            # Data Docs' batch markers: about a sixth of a suite's run. The manifest's sha256 of each upload is the
            # lineage claimwatch keeps, so no batch is hashed.
            pandas_execution_engine.HASH_THRESHOLD = 0

            if self.docs_dir is not None:
                self.docs_dir.mkdir(parents=True, exist_ok=True)
                self._ctx = gx.get_context(mode="file", project_root_dir=str(self.docs_dir))
            else:
                self._ctx = gx.get_context(mode="ephemeral")
            self._ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            self._gx = gx
        return self._ctx

    def validate(self, name: str, frame: pl.DataFrame, expects: list[Expect]) -> pl.DataFrame:
        """Failing rows as [_fi, _row, rule]. `frame` must hold INDEX and every column the expectations read."""
        empty = pl.DataFrame(schema={"_fi": pl.Int32, "_row": pl.Int32, "rule": pl.String})
        if frame.is_empty() or not expects:
            return empty
        batch = compact(frame, expects).to_pandas()  # indexed 0..n-1: GX reports a failing row by its position
        with self._lock:  # a GX context is not thread-safe: the loader checks batches on worker threads
            if self._ctx is None:
                t0 = time.perf_counter()
                self._context()
                self.start_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            results = self._runner(name, expects)(batch)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.rows[name] = self.rows.get(name, 0) + frame.height
        failed: list[pl.DataFrame] = []
        for r in results:
            if r.success:
                continue
            rule = r.expectation_config.meta["rule"]
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(f"contract check {rule} could not run: {r.exception_info.get('exception_message')}")
            at = pl.Series(r.result.get("unexpected_index_list") or [], dtype=pl.Int64)
            failed.append(frame.select(pl.col(INDEX).gather(at), rule=pl.lit(rule)))
        if not failed:
            return empty
        return pl.concat(failed).cast(empty.schema)

    def _runner(self, name: str, expects: list[Expect]) -> Callable[[Any], list]:
        """The suite of `name` with these expectations, set up in GX once per run and reused for every batch
        (setting one up costs more than validating a batch of 100,000 rows)."""
        signature = (name, tuple((e.rule, e.kind, repr(sorted(e.kwargs.items()))) for e in expects))
        if signature in self._suites:
            return self._suites[signature]
        ctx = self._context()
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
        # Failing rows by position, not by naming INDEX as `unexpected_index_column_names`: GX then reads those
        # columns one failing row at a time (minutes when a whole file breaks a rule).
        fmt = {"result_format": "COMPLETE", "return_unexpected_index_query": False}

        def run(df: Any) -> list:
            # with a docs_dir the run's result is stored in the context; build_docs() renders the site once
            run_id = RunIdentifier(run_name=f"claimwatch-{suite_name}")
            try:
                return vd.run(batch_parameters={"dataframe": df}, result_format=fmt, run_id=run_id).results
            finally:
                _drop_batches(source)

        self._suites[signature] = run
        return run

    def build_docs(self) -> Path | None:
        """Render the Data Docs site of every validation this run stored, with nothing loaded from the internet,
        and an index of it; return that index."""
        if self.docs_dir is None or self._ctx is None:
            return None
        self._ctx.build_data_docs()
        localise(site_of(self.docs_dir))
        return write_index(self.docs_dir)

    def docs_index(self) -> Path | None:
        if self.docs_dir is None or self._ctx is None:
            return None
        return self.docs_dir / "index.html"
