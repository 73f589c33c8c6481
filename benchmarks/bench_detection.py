"""Detection quality against the generator's ground truth, over several seeds.

    .venv/bin/python -m benchmarks.bench_detection [--scale small] [--seeds 1 2 3]

For each seed: generate an inbox, run `claimwatch nightly`, then compare `institution_scores.csv` and
`anomalies.csv` with the truth. Prints institution ROC-AUC and recall in the top k (k = number of
anomalous institutions), and per injected pattern the recall of its detector and the precision of the
visits that detector flags; plus the precision of all flagged visits. Writes benchmarks/results/detection-<scale>.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import polars as pl
from sklearn.metrics import roc_auc_score

from benchmarks.common import claimwatch_cmd, machine, measure, save, table

# which findings answer which injected pattern
PATTERN_SOURCES = {
    "high_cost": ["HIGH_COST"],
    "frequent_visits": ["FREQUENCY"],
    "frequent_purchase": ["FREQUENCY"],
    "duplicate_charge": ["DUP_SAME_ITEM", "DUP_PAIR"],
    "over_ceiling": ["PRICE_OVER_CEILING"],
    "restricted_item": ["GENDER_RESTRICTED", "AGE_RESTRICTED"],
    "over_daily_count": ["OVER_DAILY_COUNT"],
    "split_admission": ["SPLIT_ADMISSION"],
    "idle_bed": ["IDLE_BED"],
    "over_dispensing": ["OVER_SUPPLY_DAYS"],
    "early_refill": ["EARLY_REFILL"],
    "trace_code_reuse": ["TRACE_CODE_REUSE"],
}
STATISTICAL = {"high_cost", "frequent_visits", "frequent_purchase"}


def evaluate(out: Path, truth: Path) -> dict:
    inst = pl.read_csv(out / "institution_scores.csv", infer_schema_length=0).with_columns(
        pl.col("risk_score").cast(pl.Float64)
    )
    lab = pl.read_csv(truth / "institutions.csv", infer_schema_length=0).with_columns(
        anom=pl.col("anomalous") == "true"
    )
    j = inst.join(lab.select("fixmedins_code", "anom"), on="fixmedins_code", how="inner")
    k = int(j["anom"].sum())
    top = j.sort("risk_score", descending=True).head(k)
    res = {
        "auc": roc_auc_score(j["anom"].to_numpy(), j["risk_score"].to_numpy()),
        "recall_at_k": top["anom"].sum() / k,
        "k": k,
        "patterns": {},
    }
    flagged = pl.read_csv(out / "anomalies.csv", infer_schema_length=0).with_columns(pl.col("detectors").str.split(";"))
    labels = pl.read_csv(truth / "labels.csv", infer_schema_length=0)
    labelled = set(labels["setl_id"])
    res["flagged_visits"] = flagged.height
    res["precision_all"] = len(set(flagged["setl_id"]) & labelled) / max(flagged.height, 1)
    for pattern, sources in PATTERN_SOURCES.items():
        mine = set(labels.filter(pl.col("pattern") == pattern)["setl_id"])
        by = set(flagged.filter(pl.col("detectors").list.eval(pl.element().is_in(sources)).list.any())["setl_id"])
        if not mine:
            continue
        res["patterns"][pattern] = {
            "labelled": len(mine),
            "recall": len(mine & by) / len(mine),
            "flagged": len(by),
            "precision": len(by & labelled) / max(len(by), 1),
        }
    return res


def _weighted(per: list[dict], key: str, weight: str) -> float:
    return sum(p[key] * p[weight] for p in per) / max(sum(p[weight] for p in per), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="small", choices=["small", "medium", "large"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            root = Path(tmp) / f"s{seed}"
            measure(
                claimwatch_cmd("generate", "--out", str(root / "inbox"), "--scale", args.scale, "--seed", str(seed))
            )
            m = measure(
                claimwatch_cmd(
                    "nightly",
                    "--inbox",
                    str(root / "inbox"),
                    "--db",
                    str(root / "w.duckdb"),
                    "--out",
                    str(root / "out"),
                    "--orchestrator",
                    "none",
                )
            )
            r = evaluate(root / "out", root / "inbox.truth")
            r["seed"], r["seconds"] = seed, m["seconds"]
            runs.append(r)
            print(
                f"seed {seed}: institution AUC {r['auc']:.3f}, recall@{r['k']} {r['recall_at_k']:.2f}, "
                f"flagged visits {r['flagged_visits']}, precision {r['precision_all']:.2f} ({m['seconds']}s)",
                flush=True,
            )
    rows = []
    for pattern in PATTERN_SOURCES:
        per = [r["patterns"][pattern] for r in runs if pattern in r["patterns"]]
        if not per:
            continue
        rows.append(
            {
                "pattern": pattern,
                "kind": "statistical" if pattern in STATISTICAL else "rule",
                "labelled": sum(p["labelled"] for p in per),
                "recall": f"{_weighted(per, 'recall', 'labelled'):.3f}",
                "precision": f"{_weighted(per, 'precision', 'flagged'):.3f}",
                "target_recall": "0.80" if pattern in STATISTICAL else "0.95",
            }
        )
    mean = lambda key: sum(r[key] for r in runs) / len(runs)  # noqa: E731
    print(f"\ndetection benchmark, scale {args.scale}, seeds {args.seeds}")
    print(
        f"institution ROC-AUC {mean('auc'):.3f} (target 0.95), recall in top k {mean('recall_at_k'):.3f}, "
        f"precision of flagged visits {mean('precision_all'):.3f} (target 0.60)"
    )
    print(table(rows, ["pattern", "kind", "labelled", "recall", "target_recall", "precision"]))
    path = save(
        f"detection-{args.scale}",
        {"scale": args.scale, "seeds": args.seeds, "runs": runs, "patterns": rows, "machine": machine()},
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
