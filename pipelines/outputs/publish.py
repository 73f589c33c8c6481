"""One run's outputs in the output folder, never mixed with an earlier run's.

A run writes its outputs into a hidden folder inside `--out` and, once the warehouse is published, moves them
into `--out`, replacing the previous run's. What the previous run wrote and this one did not (a notice of an
institution no longer selected, a send-back workbook of an institution with nothing refused tonight) is
removed: the folder is reused every night by the Prefect deployment, and a stale workbook would be sent back.
Files in `--out` that claimwatch did not write are left alone. A failed run publishes nothing but its summary.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

PUBLISHED = ".claimwatch-outputs"  # the names the last run published, so the next removes what it no longer writes
# what runs write: taken as the last run's outputs in a folder that has no record yet (written by a version
# before the record), so that an old send-back folder does not outlive the upgrade
OUTPUT_NAMES = (
    "anomalies.csv",
    "cases.xlsx",
    "claim_samples.csv",
    "confirmation_rates.csv",
    "contract_warnings.csv",
    "data_docs",
    "institution_scores.csv",
    "notices",
    "overpayment_estimates.csv",
    "quarantine",
    "quarantine.csv",
    "report.html",
    "sampling_list.csv",
    "sampling_list.xlsx",
)


def run_folder(out: Path, run_id: str) -> Path:
    """The folder a run writes its outputs into until it publishes them."""
    return out / f".claimwatch-run-{run_id}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def publish(work: Path, out: Path) -> list[str]:
    """Move the run's outputs from `work` into `out`, replacing the previous run's; return their names."""
    record = out / PUBLISHED
    previous = set(json.loads(record.read_text(encoding="utf-8"))) if record.is_file() else set(OUTPUT_NAMES)
    previous = {n for n in previous if isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..")}
    names = sorted(p.name for p in work.iterdir())
    for name in sorted(previous - set(names)):
        _remove(out / name)
    for name in names:
        _remove(out / name)
        os.replace(work / name, out / name)
    record.write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
    os.chmod(record, 0o600)
    work.rmdir()
    for left in out.glob(f"{run_folder(out, '').name}*"):  # of runs killed before they could clean up
        _remove(left)
    return names


class OutputsNotPublished(OSError):
    """The warehouse was published but the night's outputs could not be moved into the output folder."""


def discard(work: Path) -> None:
    """Drop the outputs of a run that failed."""
    shutil.rmtree(work, ignore_errors=True)
