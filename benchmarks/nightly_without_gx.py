"""The nightly run with the contract's GX validation switched off, for the benchmark only: what validation
adds to a night is the difference between this run's ingest and a normal one on the same files.

    python -m benchmarks.nightly_without_gx INBOX DB OUT

Every other check (types, names, duplicates, keys, refunds) still runs; only the GX suites are skipped,
so no row is refused for a contract rule. Never use it to load real data.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import polars as pl

import pipelines.nightly
from data_contracts.gx_validation import ContractValidator
from pipelines.nightly import NightlyParams, run_nightly


class NoValidation(ContractValidator):
    def warm_up(self) -> None:
        pass

    def validate(self, name, frame, expects) -> pl.DataFrame:
        return pl.DataFrame(schema={"_fi": pl.Int32, "_row": pl.Int32, "rule": pl.String})


def main() -> None:
    inbox, db, out = (Path(a) for a in sys.argv[1:4])
    pipelines.nightly.ContractValidator = NoValidation
    run_nightly(NightlyParams(inbox, db, out, seed=1))


if __name__ == "__main__":
    main()
    gc.freeze()  # as the claimwatch command does before the interpreter's teardown (pipelines/cli.py)
