"""The `claimwatch` command: demo, generate, nightly (SPEC §2).

Every failure the user can act on ends in one line on stderr and a non-zero exit; anything unexpected
also ends in one line, with the traceback written to a log file named in that line.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import sys
import threading
import traceback
from datetime import date, timedelta
from pathlib import Path

from pipelines.progress import counted

DEFAULT_DB = Path(os.environ.get("CLAIMWATCH_DB", "claimwatch.duckdb"))
DEFAULT_OUT = Path("claimwatch-output")


class UserError(Exception):
    pass


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative: {n}")
    return n


SEED_MAX = 2**63 - 1  # a draw's seed is stored as a BIGINT


def _seed(text: str) -> int:
    n = _count(text)
    if n > SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {SEED_MAX}: {n}")
    return n


def _share(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"must lie in 0..1 (a share, e.g. 0.3): {text}")
    return x


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        self.exit(
            2,
            f"claimwatch: error: {message} (see `{self.prog} --help`)\n",
        )


SCALE_HELP = "visits uploaded: small ~6k, medium ~0.3M (1M fee lines), large ~3.3M (10M fee lines)"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="claimwatch", description="医保基金智能监管: nightly claims supervision.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="generate a synthetic inbox and run the nightly flow on it")
    d.add_argument("--out", type=Path, default=Path("claimwatch-demo"), help="folder for inbox, warehouse and outputs")
    d.add_argument("--scale", choices=["small", "medium", "large"], default="small", help=SCALE_HELP)
    d.add_argument("--seed", type=_seed, default=7, help="seed of the synthetic district")
    g = sub.add_parser("generate", help="write a synthetic inbox and its ground truth")
    g.add_argument("--out", type=Path, required=True, help="the inbox folder to write (truth goes beside it)")
    g.add_argument("--seed", type=_seed, default=7, help="seed of the synthetic district")
    g.add_argument("--scale", choices=["small", "medium", "large"], default="small", help=SCALE_HELP)
    g.add_argument("--end-date", type=_date, default=None, help="last day covered (default 2026-10-31)")
    n = sub.add_parser("nightly", help="load new uploads, check, detect, sample, draft notices, report")
    n.add_argument("--inbox", type=Path, required=True, help="folder holding uploads/ and reference/ (SPEC §1)")
    n.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"warehouse file (default {DEFAULT_DB}, or $CLAIMWATCH_DB)"
    )
    n.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    n.add_argument(
        "--as-of", type=_date, default=None, help="last day of the look-back window (default: newest upload day)"
    )
    n.add_argument("--seed", type=_seed, default=None, help="seed of the random draws (default: from the audit cycle)")
    n.add_argument(
        "--orchestrator",
        choices=["auto", "prefect", "none"],
        default="auto",
        help="run as a Prefect flow (auto: when PREFECT_API_URL is set)",
    )
    n.add_argument("--hospitals", type=_count, default=None, help="hospitals to inspect this cycle (targeting.toml)")
    n.add_argument("--pharmacies", type=_count, default=None, help="pharmacies to inspect this cycle (targeting.toml)")
    n.add_argument(
        "--random-share", type=_share, default=None, help="share of each quota drawn at random, 0..1 (targeting.toml)"
    )
    w = sub.add_parser("draws", help="list the recorded audit draws; --verify replays them from their inputs")
    w.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"warehouse file (default {DEFAULT_DB})")
    w.add_argument("--cycle", default=None, help="only this cycle, e.g. 2026-10")
    w.add_argument("--verify", action="store_true", help="replay each draw and compare with the record")
    from pipelines.cases.commands import add_parser as add_cases

    add_cases(sub, DEFAULT_DB, _date)
    return p


def _print_summary(s: dict, out: Path, db: Path) -> None:
    from pipelines.ingest.behind import data_gap  # loaded by the night already; kept off `--help`'s path
    from pipelines.ingest.result import uploads_rejected

    f, rows = s["files"], s["rows"]
    print(f"claimwatch nightly {s['run_id']}: as of {s['as_of']}, {sum(s['timings_s'].values()):.1f}s")
    print(
        f"  files: {f['seen']:,} seen = {f['loaded']:,} loaded"
        + (f" ({f['corrected']:,} of them corrections)" if f["corrected"] else "")
        + f" + {f['unchanged']:,} unchanged + {len(uploads := uploads_rejected(f)):,} rejected"
        + (f"; {counted(n, 'reference list')} refused" if (n := len(f["rejected"]) - len(uploads)) else "")
    )
    for t, c in rows.items():
        print(
            f"  {t:<5} rows: {c['received']:,} received = {c['loaded']:,} loaded + "
            f"{c['quarantined']:,} quarantined + {c['duplicate']:,} duplicate"
        )
    if f.get("waiting_lines_loaded"):
        print(f"  fee lines that waited for their settlement, loaded tonight: {f['waiting_lines_loaded']:,}")
    if f.get("waiting_lines_still"):
        gone = f.get("waiting_lines_file_gone", 0)
        print(
            f"  fee lines still waiting for the settlement (or refunded line) they name: {f['waiting_lines_still']:,} "
            f"({counted(f['waiting_institutions'], 'institution')})"
            + (f", {gone:,} of them from files no longer in uploads/ (to be sent again)" if gone else "")
        )
    for r in f.get("settlement_withdrawn") or []:
        print(
            f"  NOTE {r['fixmedins_code']}: {counted(r['lines'], 'fee line')} of {r['file']} name a settlement that a "
            "corrected settlement file withdrew tonight; kept, but out of the detection until the settlement comes "
            "again or the fee file is corrected (setl_withdrawn in contract_warnings.csv)"
        )
    for r in (behind := f.get("behind") or [])[:5]:
        print(
            f"  behind on uploads: {r['fixmedins_code']} {r['fixmedins_name'] or ''}, newest file "
            f"{r['last_file_date']}: {r['days_behind']} days before the district's newest"
        )
    if len(behind) > 5:
        print(f"  … {counted(len(behind) - 5, 'more institution')} behind on uploads in run_summary.json")
    if gap := data_gap(f.get("newest_upload"), s.get("as_of")):
        print(
            f"  NOTE the newest upload is dated {f['newest_upload']}, {gap} days before the run's date {s['as_of']}: "
            f"the window's last {gap} days hold no visits"
        )
    for r in f["rejected"][:5]:
        print(f"  rejected {r['file']}: {r['reason']}")
    if len(f["rejected"]) > 5:
        print(f"  … {counted(len(f['rejected']) - 5, 'more rejected file')} in run_summary.json")
    for r in (arriving := f.get("in_transfer") or [])[:5]:
        when = f"modified {r['modified']}" if r["modified"] else "gone before it was read whole"
        print(f"  not read, still being transferred or open: {r['file']} ({when}); left for the next night")
    if len(arriving) > 5:
        print(f"  … {counted(len(arriving) - 5, 'more file')} still being transferred or open in run_summary.json")
    for r in (unread := (s.get("reference") or {}).get("not_read") or [])[:5]:
        print(f"  NOTE {r['file']} not read: {r['reason']}")
    if len(unread) > 5:
        print(f"  … {counted(len(unread) - 5, 'more file')} in reference/ not read, in run_summary.json")
    d, c = s.get("detection") or {}, s.get("contract") or {}
    if d:
        print(
            f"  detection: {d['window'][0]}..{d['window'][1]}, {counted(d['visits'], 'visit')}, "
            f"{counted(d['findings'], 'finding')}, {counted(d['flagged_visits'], 'flagged visit')}, "
            f"{counted(d['institutions'], 'institution')} scored"
        )
        if d.get("mode") == "incremental":
            how = f"{counted(d['persons_rechecked'], 'person')} ({counted(d['lines_rechecked'], 'line')}) rechecked"
            print(f"             per-person rules: incremental, {how}, the others' findings carried over")
        elif d.get("mode"):
            print(f"             per-person rules: full ({d['mode_reason']})")
    if c:
        back = counted(c["send_back_files"], "send-back workbook")
        print(f"  contract:  {counted(c['warnings'], 'warning')}, {back} in quarantine/")
        for code, sheets in (c.get("send_back_overflow") or {}).items():
            for sheet, n in sheets.items():
                print(
                    f"  NOTE send-back {code}: {n:,} refused {sheet} rows, more than a workbook lists; "
                    f"all of them in quarantine/{code}_{sheet}.csv"
                )
    if (dr := s.get("draw")) and dr["draw_id"] is None:
        print(
            f"  draw:      none for {dr['cycle']}: no institution has visits in the window and no complaint is open; "
            "the cycle's draw is made on the first night that has some"
        )
    elif dr:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(dr["by_reason"].items()))
        pull = f"{counted(dr['claims_sampled'], 'claim')} to pull + {counted(dr['claims_spare'], 'spare')}"
        print(
            f"  draw:      {dr['draw_id']} ({dr['status']}, seed {dr['seed']}): "
            f"{counted(dr['targets'], 'institution')} ({reasons}), {counted(dr['groups'], 'inspection group')}, {pull}"
        )
        drawn_from = ("reference/inspectors.csv", "reference/conflicts.csv", "reference/complaints.csv")
        for r in f["rejected"]:
            if r["file"] in drawn_from:
                print(f"  NOTE the draw went by the earlier {r['file']} (or none): tonight's was refused, see above")
        for group, drawn in (dr.get("refilled") or {}).items():
            if drawn:
                print(f"  REFILLED group {group}: {', '.join(drawn)} drawn for a member no longer on inspectors.csv")
            else:
                print(f"  DISSOLVED group {group}: a member left inspectors.csv and nobody free could replace them")
        assigned, regrouped, formed = dr.get("assigned") or {}, dr.get("regrouped") or {}, dr.get("formed") or {}
        for group, members in formed.items():
            codes = ", ".join(c for c, g in (regrouped | assigned).items() if g == group)
            print(f"  FORMED group {group}: {', '.join(members)}, for {codes} (the draw had no whole group left)")
        for code, group in assigned.items():
            if group not in formed:
                print(f"  ASSIGNED {code}: to group {group}; it had none")
        for code, group in regrouped.items():
            if group is not None and group not in formed:
                why = "its group must now avoid it (conflicts.csv) or was dissolved"
                print(f"  REGROUPED {code}: to group {group}; {why}")
        for code, ids in (dr.get("complaints_added") or {}).items():
            redrawn = code in (dr.get("claims_redrawn") or [])
            claims = "its claims to pull drawn again with the named person's visits" if redrawn else "claims as drawn"
            print(f"  COMPLAINT {code}: {', '.join(ids)} to be checked on site too ({claims})")
        for code, why in dr["unassigned"].items():
            print(f"  UNASSIGNED {code}: {why}")
    if nt := s.get("notices"):
        print(
            f"  notices:   {counted(nt['notices'], 'draft breach notice')} in notices/ ({nt['pdf']} as PDF), "
            f"{counted(nt['without_findings'], 'selected institution')} without established breaches"
        )
        if referred := nt.get("referred"):
            print(f"             proposed for referral (移交) to the supervising department: {', '.join(referred)}")
        if nt.get("pdf_note"):
            print(f"             {nt['pdf_note']}")
        for code, missing in (nt.get("blanks") or {}).items():
            print(
                f"  NOTE notice {code} has blanks to fill in by hand (not in reference/institutions.csv): "
                + ", ".join(missing)
            )
    if cs := s.get("cases"):
        print(
            f"  cases:     {cs['opened']} opened tonight, {cs['open']} open ({cs['overdue']} overdue); "
            f"{counted(cs['rectifications_follow_up'], 'rectification')} overdue or failed -> cases.xlsx"
        )
    if (o := s.get("audit_outcomes")) and o.get("audited_flags"):
        print(
            f"  audits:    {o['confirmed_flags']}/{o['audited_flags']} audited flags confirmed; "
            f"{counted(o['institutions_estimated'], 'institution')} estimated, overpayment at least "
            f"{o['estimated_overpayment_lower']:,.2f} yuan (sum of 90% lower bounds)"
        )
    print(f"  warehouse: {db}")
    print(f"  outputs:   {out.resolve()}/")
    for name in s["outputs"]["files"] + ["run_summary.json"] + ([c["data_docs"]] if c.get("data_docs") else []):
        print(f"             {name}")


def cmd_generate(args) -> None:
    from pipelines.synth.generate import DEFAULT_END, NotSynthetic, generate

    try:
        g = generate(args.out, seed=args.seed, scale=args.scale, end=args.end_date or DEFAULT_END)
    except NotSynthetic as e:
        raise UserError(str(e)) from None
    print(
        f"claimwatch generate: {g.files} upload files ({g.setl_rows:,} visits, {g.fee_rows:,} fee lines) "
        f"in {g.inbox}/; {g.anomalous_institutions} anomalous institutions, {g.labelled_visits:,} labelled visits; "
        f"ground truth in {g.truth}/"
    )


def run_nightly_cli(
    inbox: Path,
    db: Path,
    out: Path,
    as_of: date | None,
    seed: int | None,
    orchestrator: str,
    targeting: dict | None = None,
) -> dict:
    from pipelines.nightly import NightlyParams, run_nightly
    from pipelines.progress import Progress

    use_prefect = orchestrator == "prefect" or (orchestrator == "auto" and os.environ.get("PREFECT_API_URL"))
    if use_prefect:
        # without a server Prefect starts a temporary one, which takes ~20 s here: allow it the time
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        from pipelines.flows.nightly import nightly_flow

        state = nightly_flow(
            str(inbox), str(db), str(out), as_of.isoformat() if as_of else None, seed, targeting, return_state=True
        )
        return state.result()  # raises the run's exception: a fixable one is then reported in one line
    return run_nightly(NightlyParams(inbox, db, out, as_of, seed, targeting or {}), progress=Progress())


def cmd_nightly(args) -> None:
    if not args.inbox.is_dir():
        raise UserError(f"inbox folder not found: {args.inbox}")
    targeting = {
        "selection.hospitals": args.hospitals,
        "selection.pharmacies": args.pharmacies,
        "selection.random_share": args.random_share,
    }
    try:
        from pipelines.targeting.config import load

        load(targeting)
    except ValueError as e:
        raise UserError(str(e)) from None
    s = run_nightly_cli(args.inbox, args.db, args.out, args.as_of, args.seed, args.orchestrator, targeting)
    _print_summary(s, args.out, args.db)


def cmd_draws(args) -> None:
    from pipelines.targeting.verify import amendment, verify_draw
    from pipelines.warehouse.session import connect_readonly

    try:
        con = connect_readonly(args.db)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    rows = con.execute(
        """SELECT d.draw_id, d.cycle, d.status, d.seed, d.drawn_at, d.as_of, count(t.fixmedins_code), d.inputs_sha256
           FROM draws d LEFT JOIN draw_targets t USING (draw_id)
           WHERE ? IS NULL OR d.cycle = ? GROUP BY d.draw_id, d.cycle, d.version, d.status, d.seed,
                    d.drawn_at, d.as_of, d.inputs_sha256
           ORDER BY d.cycle, d.version""",
        [args.cycle, args.cycle],
    ).fetchall()
    if not rows:
        raise UserError(f"no draws recorded in {args.db}" + (f" for cycle {args.cycle}" if args.cycle else ""))
    failed = 0
    width = max(11, *(len(str(r[3])) + 1 for r in rows))  # a seed given by hand may have 19 digits
    for draw_id, _, status, seed, drawn_at, as_of, n, sha in rows:
        line = f"{draw_id:<14} {status:<10} seed {seed:<{width}} drawn {drawn_at:%Y-%m-%d %H:%M} data to {as_of}"
        line += f"  {counted(n, 'institution')}  inputs {sha[:12]}"
        if args.verify:
            problems = verify_draw(con, draw_id)
            failed += bool(problems)
            line += "  replay: " + ("identical" if not problems else "DIFFERS: " + "; ".join(problems))
        print(line)
        if changed := amendment(con, draw_id):
            print(f"  {changed}")
    if failed:
        raise UserError(f"{counted(failed, 'draw')} did not replay identically")


def cmd_demo(args) -> None:
    from pipelines.synth.audits import audit_outcomes
    from pipelines.synth.follow_through import follow_through
    from pipelines.synth.generate import NotSynthetic, check_replaceable, generate, truth_dir

    out = args.out
    inbox = out / "inbox"
    try:  # the demo replaces its inbox, warehouse and outputs: never in a folder an earlier demo did not write
        check_replaceable(out, truth_dir(inbox), "`claimwatch demo`")
    except NotSynthetic as e:
        raise UserError(str(e)) from None
    print(f"claimwatch demo: generating a {args.scale} synthetic district in {inbox} …", flush=True)
    g = generate(inbox, seed=args.seed, scale=args.scale)
    print(f"  {g.files} upload files, {g.setl_rows:,} visits, {g.fee_rows:,} fee lines; truth in {g.truth}")
    db = out / "warehouse.duckdb"
    db.unlink(missing_ok=True)
    first = out / "output" / "night-1"
    s = run_nightly_cli(inbox, db, first, None, args.seed, "none")
    _print_summary(s, first, db)

    # the month goes by: inspectors audit the sampled claims and work the cases, one institution reports its
    # rectification, the others do not; a resent and two corrected uploads arrive
    as_of = date.fromisoformat(s["as_of"])
    outcomes = audit_outcomes(first / "claim_samples.csv", g.truth / "labels.csv", as_of, seed=args.seed)
    outcomes.write_csv(inbox / "reference" / "audit_outcomes.csv")
    for f in sorted((g.truth / "next_delivery" / "uploads").iterdir()):
        shutil.copy(f, inbox / "uploads" / f.name)
    story = follow_through(db)
    night2 = next_cycle_day(as_of)
    print(
        f"\nclaimwatch demo: {outcomes.height} sampled claims audited on site "
        f"({(outcomes['finding'] == 'confirmed').sum()} confirmed) -> inbox/reference/audit_outcomes.csv; "
        f"{story}; the second night runs in the next cycle, as of {night2}:\n",
        flush=True,
    )
    second = out / "output" / "night-2"
    s = run_nightly_cli(inbox, db, second, night2, args.seed, "none")
    _print_summary(s, second, db)


def next_cycle_day(day: date) -> date:
    """A day of the audit cycle after the one `day` falls in, past the first rectification deadlines."""
    from pipelines.targeting.cycle import cycle_of

    nxt = day + timedelta(days=35)
    while cycle_of(nxt) == cycle_of(day):
        nxt += timedelta(days=1)
    return nxt


def cmd_cases(args) -> None:
    from pipelines.cases.commands import run

    run(args)


def _stop(signum, frame) -> None:
    """Ctrl-C (SIGINT), or SIGTERM, which `timeout`, systemd, cron's supervisors and `docker stop` send: either
    ends the run as a failure, so the warehouse and the previous outputs stay as they were and the run's staging
    copy and work folder are removed (the default SIGTERM would kill the process and leave both behind). DuckDB
    turns a KeyboardInterrupt raised inside a query into its own `RuntimeError: Query interrupted`, so the signal
    is recorded (`session.STOPPED_BY`) for `main` and the failed run's summary to report it as one."""
    from pipelines.warehouse.session import STOPPED_BY  # imported before this handler was installed

    STOPPED_BY.append(signum)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


# the signals that stop a run, each with the handler it has when nobody chose another
STOP_SIGNALS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


def _watch_interrupts() -> None:
    """Pass a stop signal to DuckDB from a thread of its own. Python runs a signal handler only when the main
    thread runs Python, and DuckDB looks for one only now and then inside a query (in some states, never), so
    a signal could go unnoticed for as long as the query runs. The signal also writes a byte to a wakeup pipe,
    which this thread reads at once; it then interrupts the query of the connection open now (a nightly
    step's, a `cases` or `draws` command's), and the main thread sees the signal. A handler another library
    sets (Prefect's, for SIGTERM, while a flow runs in this process) writes here too: the run stops alike."""
    from pipelines.warehouse.session import STOPPED_BY, interrupt_current

    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def watch() -> None:
        while received := os.read(r, 64):  # one byte per signal caught, its number
            stops = [s for s in STOP_SIGNALS if s in received]
            if stops:
                STOPPED_BY.append(stops[0])
                interrupt_current()

    threading.Thread(target=watch, name="stop-signals", daemon=True).start()


def _what_was_left() -> str:
    """What a failed command left in the warehouse: nothing, or (a failure after a run had published: in
    Prefect's teardown, say, or during the demo's second night) what completed before it."""
    from pipelines.warehouse.session import PUBLISHED

    if not PUBLISHED:
        return "the warehouse is unchanged"
    return f"the warehouse {PUBLISHED[-1]} was already updated by the work that completed before it"


def _interrupted() -> int:
    from pipelines.warehouse.session import STOPPED_BY

    if STOPPED_BY[:1] == [signal.SIGTERM]:
        print(f"claimwatch: stopped by SIGTERM; {_what_was_left()}", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(f"claimwatch: interrupted; {_what_was_left()}", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    # `claimwatch nightly | head`: die quietly on a closed pipe like other Unix tools. The summary is
    # printed only after the warehouse was published, so this never interrupts a run half-way.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # only where nobody chose otherwise: a shell's background job keeps Ctrl-C ignored, as it should
    caught = [s for s, default in STOP_SIGNALS.items() if signal.getsignal(s) is default]
    if caught:
        from pipelines.warehouse import session  # noqa: F401  (the handler records into it: loaded first)

        for s in caught:
            signal.signal(s, _stop)
        _watch_interrupts()
    args = _parser().parse_args(argv)
    from pipelines.cases.commands import CaseError
    from pipelines.nightly import INPUT_ERRORS
    from pipelines.outputs.publish import OutputsNotPublished
    from pipelines.warehouse.session import STOPPED_BY

    try:
        if isinstance(db := getattr(args, "db", None), Path) and db.is_dir():
            raise UserError(f"--db {db} is a folder: give the warehouse file, e.g. {db / 'claimwatch.duckdb'}")
        {"demo": cmd_demo, "generate": cmd_generate, "nightly": cmd_nightly, "draws": cmd_draws, "cases": cmd_cases}[
            args.command
        ](args)
        return 0
    except KeyboardInterrupt:
        return _interrupted()
    except (UserError, CaseError, *INPUT_ERRORS) as e:
        print(f"claimwatch: error: {e}", file=sys.stderr)
        return 2
    except OutputsNotPublished as e:  # the one failure after the warehouse was published
        print(f"claimwatch: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if STOPPED_BY:  # a stop signal DuckDB reported as its own error
            return _interrupted()
        if isinstance(e, OSError) and e.filename:  # the machine's: a folder that cannot be made, a full disk
            print(f"claimwatch: error: {e.filename}: {e.strerror or e}; {_what_was_left()}", file=sys.stderr)
            return 1
        log = Path(getattr(args, "out", None) or ".") / "claimwatch-error.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(traceback.format_exc(), encoding="utf-8")
            where = f"details in {log}"
        except OSError:
            where = "no log could be written"
        said = next(iter(str(e).strip().splitlines()), "")  # DuckDB's messages go on with the query and a caret
        left = "" if args.command == "generate" else f"; {_what_was_left()}"  # generate writes no warehouse
        print(f"claimwatch: internal error: {type(e).__name__}: {said} ({where}){left}", file=sys.stderr)
        return 1


def run() -> None:
    """The console script. Once the command is done, the objects it leaves are frozen out of the garbage
    collector: the interpreter's teardown would otherwise run full collections over them while it unloads
    modules, about 2 s after a small night before the shell gets its prompt back (0.8 s for GX's alone)."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
