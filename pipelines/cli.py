"""The `claimwatch` command: demo, generate, nightly (SPEC §2).

Every failure the user can act on ends in one line on stderr and a non-zero exit; anything unexpected
also ends in one line, with the traceback written to a log file named in that line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from datetime import date
from pathlib import Path

DEFAULT_DB = Path(os.environ.get("CLAIMWATCH_DB", "claimwatch.duckdb"))
DEFAULT_OUT = Path("claimwatch-output")


class UserError(Exception):
    pass


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        self.exit(
            2,
            f"claimwatch: error: {message} (see `claimwatch {self.prog.split()[-1]} --help`)\n"
            if " " in self.prog
            else f"claimwatch: error: {message} (see `claimwatch --help`)\n",
        )


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="claimwatch", description="医保基金智能监管: nightly claims supervision.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="generate a synthetic inbox and run the nightly flow on it")
    d.add_argument("--out", type=Path, default=Path("claimwatch-demo"), help="folder for inbox, warehouse and outputs")
    d.add_argument("--scale", choices=["small", "medium", "large"], default="small")
    d.add_argument("--seed", type=int, default=7)
    g = sub.add_parser("generate", help="write a synthetic inbox and its ground truth")
    g.add_argument("--out", type=Path, required=True, help="the inbox folder to write (truth goes beside it)")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--scale", choices=["small", "medium", "large"], default="small")
    g.add_argument("--end-date", type=_date, default=None, help="last day covered (default 2026-10-31)")
    n = sub.add_parser("nightly", help="load new uploads, check, detect, sample, draft notices, report")
    n.add_argument("--inbox", type=Path, required=True)
    n.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"warehouse file (default {DEFAULT_DB}, or $CLAIMWATCH_DB)"
    )
    n.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    n.add_argument(
        "--as-of", type=_date, default=None, help="last day of the look-back window (default: newest upload day)"
    )
    n.add_argument("--seed", type=int, default=None, help="seed of the random draws (default: from the audit cycle)")
    n.add_argument(
        "--orchestrator",
        choices=["auto", "prefect", "none"],
        default="auto",
        help="run as a Prefect flow (auto: when PREFECT_API_URL is set)",
    )
    return p


def _print_summary(s: dict, out: Path, db: Path) -> None:
    f, rows = s["files"], s["rows"]
    print(f"claimwatch nightly {s['run_id']}: as of {s['as_of']}, {sum(s['timings_s'].values()):.1f}s")
    print(
        f"  files: {f['seen']} seen, {f['loaded']} loaded, {f['unchanged']} unchanged, "
        f"{f['corrected']} corrected, {len(f['rejected'])} rejected"
    )
    for t, c in rows.items():
        print(
            f"  {t:<5} rows: {c['received']:,} received = {c['loaded']:,} loaded + "
            f"{c['quarantined']:,} quarantined + {c['duplicate']:,} duplicate"
        )
    for r in f["rejected"][:5]:
        print(f"  rejected {r['file']}: {r['reason']}")
    if len(f["rejected"]) > 5:
        print(f"  … {len(f['rejected']) - 5} more rejected files in run_summary.json")
    d, c = s.get("detection") or {}, s.get("contract") or {}
    if d:
        print(
            f"  detection: {d['window'][0]}..{d['window'][1]}, {d['visits']:,} visits, {d['findings']:,} findings, "
            f"{d['flagged_visits']:,} flagged visits, {d['institutions']} institutions scored"
        )
    if c:
        print(f"  contract:  {c['warnings']:,} warnings, {c['send_back_files']} send-back workbooks in quarantine/")
    print(f"  warehouse: {db}")
    print(f"  outputs:   {out.resolve()}/")
    for name in s["outputs"]["files"] + ["run_summary.json"] + ([c["data_docs"]] if c.get("data_docs") else []):
        print(f"             {name}")


def cmd_generate(args) -> None:
    from pipelines.synth.generate import DEFAULT_END, generate

    if args.out.exists() and any(args.out.iterdir()) and not (args.out / "uploads").is_dir():
        raise UserError(f"{args.out} exists and is not a claimwatch inbox; choose an empty or new folder")
    g = generate(args.out, seed=args.seed, scale=args.scale, end=args.end_date or DEFAULT_END)
    print(
        f"claimwatch generate: {g.files} upload files ({g.setl_rows:,} visits, {g.fee_rows:,} fee lines) "
        f"in {g.inbox}/; {g.anomalous_institutions} anomalous institutions, {g.labelled_visits:,} labelled visits; "
        f"ground truth in {g.truth}/"
    )


def run_nightly_cli(inbox: Path, db: Path, out: Path, as_of: date | None, seed: int | None, orchestrator: str) -> dict:
    from pipelines.nightly import NightlyParams, run_nightly
    from pipelines.progress import Progress

    use_prefect = orchestrator == "prefect" or (orchestrator == "auto" and os.environ.get("PREFECT_API_URL"))
    if use_prefect:
        # without a server Prefect starts a temporary one, which takes ~20 s here: allow it the time
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        from pipelines.flows.nightly import nightly_flow

        return nightly_flow(str(inbox), str(db), str(out), as_of.isoformat() if as_of else None, seed)
    return run_nightly(NightlyParams(inbox, db, out, as_of, seed), progress=Progress())


def cmd_nightly(args) -> None:
    if not args.inbox.is_dir():
        raise UserError(f"inbox folder not found: {args.inbox}")
    s = run_nightly_cli(args.inbox, args.db, args.out, args.as_of, args.seed, args.orchestrator)
    _print_summary(s, args.out, args.db)


def cmd_demo(args) -> None:
    from pipelines.synth.generate import generate

    out = args.out
    inbox = out / "inbox"
    print(f"claimwatch demo: generating a {args.scale} synthetic district in {inbox} …", flush=True)
    g = generate(inbox, seed=args.seed, scale=args.scale)
    print(f"  {g.files} upload files, {g.setl_rows:,} visits, {g.fee_rows:,} fee lines; truth in {g.truth}")
    db = out / "warehouse.duckdb"
    s = run_nightly_cli(inbox, db, out / "output", None, args.seed, "none")
    _print_summary(s, out / "output", db)


def main(argv: list[str] | None = None) -> int:
    # `claimwatch nightly | head`: die quietly on a closed pipe like other Unix tools. The summary is
    # printed only after the warehouse was published, so this never interrupts a run half-way.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = _parser().parse_args(argv)
    from pipelines.nightly import RunInputError
    from pipelines.warehouse.session import WarehouseBusy

    try:
        {"demo": cmd_demo, "generate": cmd_generate, "nightly": cmd_nightly}[args.command](args)
        return 0
    except (UserError, RunInputError, WarehouseBusy) as e:
        print(f"claimwatch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("claimwatch: interrupted; the warehouse is unchanged", file=sys.stderr)
        return 130
    except Exception as e:
        log = Path(getattr(args, "out", None) or ".") / "claimwatch-error.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(traceback.format_exc(), encoding="utf-8")
            where = f"details in {log}"
        except OSError:
            where = "no log could be written"
        print(
            f"claimwatch: internal error: {type(e).__name__}: {e} ({where}); the warehouse is unchanged",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
