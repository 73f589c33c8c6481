"""Ingest benchmark: claimwatch's nightly load of a generated inbox against DuckDB's bare `read_csv`.

    .venv/bin/python -m benchmarks.bench_ingest [--scale medium] [--workdir /tmp/cw-bench]

Measured in the same run, on the same files (each in its own process, for a clean peak RSS):
  floor/per-file   DuckDB read_csv (types sniffed, bad rows skipped) of the uploads converted to UTF-8 CSV
  floor/one-file   DuckDB read_csv of the same rows concatenated into one file per table (the fastest honest floor)
  claimwatch       `claimwatch nightly` from an empty warehouse (reference + ingest + outputs)
The ratio is claimwatch's time over the faster floor. Results go to benchmarks/results/ingest-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from benchmarks.common import FLOOR, claimwatch_cmd, convert, machine, measure, save, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="medium", choices=["small", "medium", "large"])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/claimwatch-bench"))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    work = args.workdir / args.scale
    inbox = work / "inbox"
    if not (inbox / "uploads").is_dir():
        print(f"generating the {args.scale} inbox in {inbox} …", flush=True)
        measure(claimwatch_cmd("generate", "--out", str(inbox), "--scale", args.scale, "--seed", str(args.seed)))
    conv = work / "utf8"
    if conv.exists():
        shutil.rmtree(conv)
    print("converting uploads to UTF-8 CSV for the floor …", flush=True)
    rows = convert(inbox, conv)
    results = []
    for label, folder in (("floor/per-file", conv / "per-file"), ("floor/one-file", conv / "one-file")):
        db = work / "floor.duckdb"
        db.unlink(missing_ok=True)
        m = measure([sys.executable, "-c", FLOOR, str(db), str(folder)])
        results.append({"step": label, "seconds": m["seconds"], "peak_rss_mb": m["peak_rss_mb"]})
    db = work / "claimwatch.duckdb"
    db.unlink(missing_ok=True)
    m = measure(
        claimwatch_cmd(
            "nightly", "--inbox", str(inbox), "--db", str(db), "--out", str(work / "out"), "--orchestrator", "none"
        )
    )
    summary = json.loads((work / "out" / "run_summary.json").read_text())
    steps = summary["timings_s"]
    load = steps["reference"] + steps["ingest"]
    results.append({"step": "claimwatch nightly (all steps)", "seconds": m["seconds"], "peak_rss_mb": m["peak_rss_mb"]})
    results.append({"step": "  of which reference + ingest (incl. GX)", "seconds": round(load, 2), "peak_rss_mb": ""})
    results.append({"step": "  of which detect", "seconds": steps["detect"], "peak_rss_mb": ""})
    total = rows["setl"] + rows["fee"]
    floor = min(r["seconds"] for r in results[:2])
    for r in results:
        r["rows_per_s"] = f"{total / r['seconds']:,.0f}"
        r["x_floor"] = f"{r['seconds'] / floor:.2f}"
    print(
        f"\ningest benchmark, scale {args.scale}: {rows['setl']:,} setl + {rows['fee']:,} fee rows, "
        f"{len(list((inbox / 'uploads').iterdir()))} files"
    )
    print(table(results, ["step", "seconds", "rows_per_s", "peak_rss_mb", "x_floor"]))
    path = save(f"ingest-{args.scale}", {"scale": args.scale, "rows": rows, "machine": machine(), "results": results})
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
