"""Shared pieces of the benchmark scripts: timing child processes and printing tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import psutil

from data_contracts.contract import upload_tables
from pipelines.ingest.naming import BadFileName, parse
from pipelines.ingest.reader import FileRejected, read_upload

RESULTS = Path(__file__).parent / "results"

FLOOR = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
for t in ("setl", "fee"):
    src = f"'{sys.argv[2]}/{t}/*.csv', union_by_name=true, ignore_errors=true"
    con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_csv({src})")
print(con.execute("SELECT (SELECT count(*) FROM setl) + (SELECT count(*) FROM fee)").fetchall()[0][0])
"""


def convert(inbox: Path, dest: Path, per_file: bool = True) -> dict[str, int]:
    """Every readable upload as UTF-8 CSV with code headers, concatenated per table (and per file)."""
    rows = {}
    for t, spec in upload_tables().items():
        if per_file:
            (dest / "per-file" / t).mkdir(parents=True)
        (dest / "one-file" / t).mkdir(parents=True)
        frames = []
        for p in sorted((inbox / "uploads").iterdir()):
            try:
                name = parse(p.name)
                if name.table != t:
                    continue
                f = read_upload(p, spec, name.ext).frame.select(spec.codes)
            except (BadFileName, FileRejected):
                continue
            if per_file:
                f.write_csv(dest / "per-file" / t / f"{name.stem}.csv")
            frames.append(f)
        pl.concat(frames).write_csv(dest / "one-file" / t / f"{t}.csv")
        rows[t] = sum(f.height for f in frames)
    return rows


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall time and peak RSS of one child process (its own rusage, via wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"benchmark step failed: {' '.join(cmd)}\n{err.read().decode()[-2000:]}")
        return {"seconds": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024), "stdout": out.read().decode()}


def claimwatch_cmd(*args: str) -> list[str]:
    """The `claimwatch` command line, run by this interpreter."""
    return [sys.executable, "-m", "pipelines.cli", *args]


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
    }


def table(rows: list[dict], cols: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    line = lambda vals: "  ".join(str(v).ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line([r.get(c, "") for c in cols]) for r in rows)])


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return path
