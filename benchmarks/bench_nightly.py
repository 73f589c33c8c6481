"""Whole-night benchmark: the full nightly from an empty warehouse, step by step, then an incremental
night (one new day of uploads on a warehouse that already holds the rest), at one or more scales.

    .venv/bin/python -m benchmarks.bench_nightly --scales small medium [--workdir /tmp/cw-nightly] [--repeat 3]

Per scale, in separate processes on the same files: the generated inbox minus its last day loads first
(the "full" night, from an empty warehouse); then the last day's uploads arrive and the "incremental" night
runs. Below large, the full night also runs once with the GX suites switched off (nightly_without_gx.py), to
measure what validation adds. Each night's step timings come from its run_summary.json, its wall time and
peak RSS from wait4. With --repeat N the floor, the night without GX and the full night take turns N times
(this machine's speed drifts by 10-20% within minutes) and the ratios are reported per round and as medians.
Growth between scales is time and memory per fee line. Results: benchmarks/results/nightly-<scales>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks.common import FLOOR, claimwatch_cmd, machine, measure, save, table
from pipelines.synth.days import hold_back_last_day

UPLOADS = ("setl", "fee")


def night(inbox: Path, db: Path, out: Path, without_gx: bool = False) -> dict:
    args = ["--inbox", str(inbox), "--db", str(db), "--out", str(out), "--orchestrator", "none", "--seed", "1"]
    if without_gx:
        m = measure([sys.executable, "-m", "benchmarks.nightly_without_gx", str(inbox), str(db), str(out)])
    else:
        m = measure(claimwatch_cmd("nightly", *args))
    s = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    return {
        "seconds": m["seconds"],
        "peak_rss_mb": m["peak_rss_mb"],
        "steps": s["timings_s"],
        "steps_peak_rss_mb": s.get("peak_rss_mb", {}),
        "gx_validation_s": round(sum(v for k, v in s["contract"].get("validation_s", {}).items() if k in UPLOADS), 2),
        "validated_rows": {k: v for k, v in s["contract"].get("validated_rows", {}).items() if k in UPLOADS},
        "gx_start_s": s["contract"].get("gx_start_s"),
        "fee_loaded": s["rows"]["fee"]["loaded"],
        "setl_loaded": s["rows"]["setl"]["loaded"],
    }


def convert_for_floor(inbox: Path, root: Path) -> dict[str, int]:
    """The uploads as UTF-8 CSV, concatenated into one file per table under root/utf8; rows per table."""
    conv = root / "utf8"
    if conv.exists():
        shutil.rmtree(conv)
    # converted in a child process: Linux carries a process's peak RSS across fork and exec, so a big parent
    # would inflate the peak measured for every night run after it
    script = "import json, sys; from pathlib import Path; from benchmarks.common import convert; "
    script += "print(json.dumps(convert(Path(sys.argv[1]), Path(sys.argv[2]), per_file=False)))"
    return json.loads(measure([sys.executable, "-c", script, str(inbox), str(conv)])["stdout"])


def floor(root: Path, rows: dict[str, int]) -> dict:
    """DuckDB's own read_csv of the converted uploads into a new database."""
    db = root / "floor.duckdb"
    db.unlink(missing_ok=True)
    m = measure([sys.executable, "-c", FLOOR, str(db), str(root / "utf8" / "one-file")])
    db.unlink()
    return {"seconds": m["seconds"], "peak_rss_mb": m["peak_rss_mb"], "rows": rows}


def gx_added(full: dict, bare: dict) -> dict[str, float]:
    """Seconds the GX suites add to the night: to ingest, to reference + ingest (GX's import is paid in the
    reference step), and to the whole night (two whole processes, so the other steps' noise is in it too)."""
    with_ref = sum(full["steps"][k] - bare["steps"][k] for k in ("reference", "ingest"))
    return {
        "ingest": full["steps"]["ingest"] - bare["steps"]["ingest"],
        "reference_and_ingest": with_ref,
        "night": full["seconds"] - bare["seconds"],
    }


def spread(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "per_round": [round(v, 2) for v in values],
    }


def give_back_held(root: Path, inbox: Path) -> None:
    """Put the held-back day's uploads back into the inbox. Also at the start: a run stopped while the day was
    held out would otherwise leave a reused inbox a day short (and the next run one more)."""
    held = root / "held"
    if held.is_dir() and (inbox / "uploads").is_dir():
        for f in held.iterdir():
            shutil.move(f, inbox / "uploads" / f.name)


def bench(scale: str, work: Path, keep_inbox: bool, repeat: int = 1) -> dict:
    root = work / scale
    inbox = root / "inbox"
    gen_s = None
    give_back_held(root, inbox)
    if not (keep_inbox and (inbox / "uploads").is_dir()):
        if root.exists():
            shutil.rmtree(root)
        gen_s = measure(claimwatch_cmd("generate", "--out", str(inbox), "--scale", scale, "--seed", "5"))["seconds"]
    for old in ("w.duckdb", "out-full", "out-inc", "held"):
        p = root / old
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    day = hold_back_last_day(inbox, root / "held").isoformat()
    rows = convert_for_floor(inbox, root)
    # The machine's speed drifts by 10-20% within minutes, so with --repeat the floor and the nights take turns
    # and each ratio is taken within its own round; the incremental night follows the last round's full one.
    rounds = []
    for i in range(repeat):
        base = floor(root, rows)
        bare = None
        if scale != "large":  # what GX adds: the same full night with the GX suites switched off (a minute at medium)
            bare = night(inbox, root / "w-nogx.duckdb", root / "out-nogx", without_gx=True)
            (root / "w-nogx.duckdb").unlink()
            shutil.rmtree(root / "out-nogx")
        if i:
            (root / "w.duckdb").unlink()
            shutil.rmtree(root / "out-full")
        full = night(inbox, root / "w.duckdb", root / "out-full")
        rounds.append({"floor": base, "full": full, "full_without_gx": bare})
    shutil.rmtree(root / "utf8")
    give_back_held(root, inbox)
    inc = night(inbox, root / "w.duckdb", root / "out-inc")
    last = rounds[-1]
    ratios = {
        "ingest_x_floor": spread([r["full"]["steps"]["ingest"] / r["floor"]["seconds"] for r in rounds]),
        "full_x_floor": spread([r["full"]["seconds"] / r["floor"]["seconds"] for r in rounds]),
    }
    if last["full_without_gx"]:
        for k in ("ingest", "reference_and_ingest", "night"):
            added = [gx_added(r["full"], r["full_without_gx"])[k] / r["floor"]["seconds"] for r in rounds]
            ratios[f"gx_adds_to_{k}_x_floor"] = spread(added)
    return {
        "scale": scale,
        "generate_s": gen_s,
        "last_day": day,
        **last,
        "incremental": inc,
        "full_x_floor": round(last["full"]["seconds"] / last["floor"]["seconds"], 2),
        "incremental_x_full": round(inc["seconds"] / last["full"]["seconds"], 3),
        "rounds": len(rounds),
        "ratios": ratios,  # each ratio per round, and its median, min and max over the rounds
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="+", default=["small", "medium"], choices=["small", "medium", "large"])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cw-nightly"))
    ap.add_argument("--keep-inbox", action="store_true", help="reuse an inbox generated by an earlier run")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of floor and full nights per scale (medians)")
    a = ap.parse_args()
    results = []
    name = f"nightly-{'-'.join(a.scales)}"
    for scale in a.scales:
        results.append(bench(scale, a.workdir, a.keep_inbox, a.repeat))
        save(name, {"machine": machine(), "results": results})  # kept even if a later scale fails
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
                    "x_floor": round(n["seconds"] / r["floor"]["seconds"], 2),
                    **{k: round(v, 1) for k, v in n["steps"].items()},
                }
            )
    for r in results:
        f, full, bare, inc = r["floor"], r["full"], r["full_without_gx"], r["incremental"]
        n = sum(f["rows"].values())
        print(f"{r['scale']}: floor (DuckDB read_csv, one UTF-8 file per table): {f['seconds']} s for {n:,} rows")
        print(
            f"{r['scale']}: ingest step {full['steps']['ingest']:.1f} s = "
            f"{full['steps']['ingest'] / f['seconds']:.2f}x the floor; GX validated "
            f"{sum(full['validated_rows'].values()):,} upload rows in {full['gx_validation_s']:.1f} s "
            f"({full['gx_validation_s'] / max(sum(full['validated_rows'].values()), 1) * 1e6:.2f} s per million rows)"
        )
        print(
            f"{r['scale']}: new day: GX validated {sum(inc['validated_rows'].values()):,} upload rows in "
            f"{inc['gx_validation_s']:.2f} s; its first check waited {inc['gx_start_s']:.2f} s for GX's import "
            f"(the full night's {full['gx_start_s']:.2f} s, in its reference step)"
        )
        if bare:
            added = gx_added(full, bare)
            load = full["steps"]["reference"] + full["steps"]["ingest"]
            print(
                f"{r['scale']}: without GX the ingest step takes {bare['steps']['ingest']:.1f} s and reference "
                f"{bare['steps']['reference']:.1f} s: validation adds {added['ingest']:.1f} s to ingest "
                f"({added['ingest'] / f['seconds']:.2f}x the floor), {added['reference_and_ingest']:.1f} s with the "
                f"reference step ({added['reference_and_ingest'] / f['seconds']:.2f}x the floor; "
                f"{added['reference_and_ingest'] / load:.0%} of the load's {load:.1f} s), "
                f"{added['night']:.1f} s to the whole night ({added['night'] / f['seconds']:.2f}x the floor)"
            )
        if r["rounds"] > 1:
            for k, v in r["ratios"].items():
                print(f"{r['scale']}: {k} over {r['rounds']} rounds: median {v['median']}, range {v['min']}-{v['max']}")
    steps = list(results[0]["full"]["steps"])
    print(table(rows, ["scale", "night", "seconds", "x_floor", "peak_rss_mb", "fee_lines_loaded", *steps]))
    if len(results) > 1:
        a0, a1 = results[0]["full"], results[-1]["full"]
        rows_ratio = a1["fee_loaded"] / max(a0["fee_loaded"], 1)
        print(
            f"\ngrowth {results[0]['scale']} -> {results[-1]['scale']}: fee lines x{rows_ratio:.1f}, "
            f"time x{a1['seconds'] / a0['seconds']:.1f}, peak RSS x{a1['peak_rss_mb'] / a0['peak_rss_mb']:.1f}"
        )
    path = save(name, {"machine": machine(), "results": results})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
