"""Whole-night benchmark: the full nightly from an empty warehouse, step by step, then an incremental
night (one new day of uploads on a warehouse that already holds the rest), at one or more scales.

    .venv/bin/python -m benchmarks.bench_nightly --scales small medium [--workdir /tmp/cw-nightly]

Per scale, in separate processes on the same files: the generated inbox minus its last day loads first
(the "full" night, from an empty warehouse); then the last day's uploads arrive and the "incremental" night
runs. Each night's step timings come from its run_summary.json, its wall time and peak RSS from wait4.
Growth between scales is time and memory per fee line. Results: benchmarks/results/nightly-<scales>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from benchmarks.common import claimwatch_cmd, machine, measure, save, table
from pipelines.ingest.naming import BadFileName, parse


def night(inbox: Path, db: Path, out: Path) -> dict:
    m = measure(
        claimwatch_cmd(
            "nightly",
            "--inbox",
            str(inbox),
            "--db",
            str(db),
            "--out",
            str(out),
            "--orchestrator",
            "none",
            "--seed",
            "1",
        )
    )
    s = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    return {
        "seconds": m["seconds"],
        "peak_rss_mb": m["peak_rss_mb"],
        "steps": s["timings_s"],
        "fee_loaded": s["rows"]["fee"]["loaded"],
        "setl_loaded": s["rows"]["setl"]["loaded"],
    }


def split_last_day(inbox: Path, held: Path) -> str:
    """Move the newest day's uploads out of the inbox into `held`; return that day."""
    days = {}
    for f in (inbox / "uploads").iterdir():
        try:
            days.setdefault(parse(f.name).day, []).append(f)
        except BadFileName:
            continue
    last = max(days)
    held.mkdir(parents=True, exist_ok=True)
    for f in days[last]:
        shutil.move(f, held / f.name)
    return last.isoformat()


def bench(scale: str, work: Path) -> dict:
    root = work / scale
    if root.exists():
        shutil.rmtree(root)
    inbox = root / "inbox"
    gen = measure(claimwatch_cmd("generate", "--out", str(inbox), "--scale", scale, "--seed", "5"))
    day = split_last_day(inbox, root / "held")
    full = night(inbox, root / "w.duckdb", root / "out-full")
    for f in (root / "held").iterdir():
        shutil.move(f, inbox / "uploads" / f.name)
    inc = night(inbox, root / "w.duckdb", root / "out-inc")
    return {"scale": scale, "generate_s": gen["seconds"], "last_day": day, "full": full, "incremental": inc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="+", default=["small", "medium"], choices=["small", "medium", "large"])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cw-nightly"))
    a = ap.parse_args()
    results = [bench(s, a.workdir) for s in a.scales]
    rows = []
    for r in results:
        for kind in ("full", "incremental"):
            n = r[kind]
            rows.append(
                {
                    "scale": r["scale"],
                    "night": kind,
                    "seconds": n["seconds"],
                    "peak_rss_mb": n["peak_rss_mb"],
                    "fee_lines_loaded": n["fee_loaded"],
                    **{k: round(v, 1) for k, v in n["steps"].items()},
                }
            )
    steps = list(results[0]["full"]["steps"])
    print(table(rows, ["scale", "night", "seconds", "peak_rss_mb", "fee_lines_loaded", *steps]))
    if len(results) > 1:
        a0, a1 = results[0]["full"], results[-1]["full"]
        rows_ratio = a1["fee_loaded"] / max(a0["fee_loaded"], 1)
        print(
            f"\ngrowth {results[0]['scale']} -> {results[-1]['scale']}: fee lines x{rows_ratio:.1f}, "
            f"time x{a1['seconds'] / a0['seconds']:.1f}, peak RSS x{a1['peak_rss_mb'] / a0['peak_rss_mb']:.1f}"
        )
    path = save(f"nightly-{'-'.join(a.scales)}", {"machine": machine(), "results": results})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
