"""The look-back window as compact frames for the detectors, computed in DuckDB.

`visits`: one row per settled visit in the window, with its institution's type/level/region and the
amounts per component of its (netted) fee lines. Lines: the window's fee lines with refunds netted
against their originals (a fully refunded line disappears), given, as each slice is read, their visit's
person columns and the catalogue limits the rules need. A district's 90 days hold ~10M lines, too many to
hold in memory with the copies the rules make, so they stay in a DuckDB temp table and reach the rules in
slices of whole persons (`person_part`: every rule but one looks no further than one person), plus the lines
of the drug trace codes settled more than once (`trace_lines`: a trace code may reappear at another person).
On an incremental night (`recheck`, see incremental.py) the slices hold only the persons rechecked, and the
per-visit amounts come from `visit_amounts`, recomputed only for their visits.
All frames come in a fixed order with amounts to the cent, so the seeded models see the same matrix on every
re-run of the same night and give the same findings.
The detectors know a visit by its `setl_id`, which SPEC makes unique per institution only: where two
institutions' visits in the window share one, their frames carry `<setl_id>@<fixmedins_code>` instead
(`keyed`), and findings leave detection with the uploaded id again (`unkeyed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import duckdb
import polars as pl

from data_contracts.contract import upload_tables
from pipelines.cases.complaints import open_complaints
from pipelines.warehouse.schema import has_table, key_hash, ref_table

COMPONENTS = {
    "drug_amt": ("09", "10", "11"),
    "exam_amt": ("03", "04"),
    "material_amt": ("08",),
    "treatment_amt": ("05", "06"),
}


CATALOG_LIMITS = {  # catalogue columns the rules compare lines with, in the types they compare in
    "pric_uplmt_amt": "DOUBLE",
    "lmt_gend": "VARCHAR",
    "lmt_age_min": "INTEGER",
    "lmt_age_max": "INTEGER",
    "max_cnt_per_day": "DOUBLE",
    "max_prd_days": "INTEGER",
    "max_cnt_per_period": "DOUBLE",
    "period_days": "INTEGER",
}
PERSON = ("psn_no", "gend", "age", "med_type", "begntime", "endtime")  # the visit's columns each line carries
LINES_PER_PART = 1_000_000  # lines per slice handed to the rules (bounds their memory; 1.5M peaked ~250 MB higher)
# DuckDB's memory while the slices are read: each is read once, so the blocks it would otherwise cache (up to its
# whole limit, ~1 GB at district scale) would only take memory from the rules working beside it
READ_MEMORY = "256MB"
LINE_KEY = "fixmedins_code, feedetl_sn"
VISIT_KEY = "_vkey"  # a line's visit: the hash of its settlement's key (fixmedins_code, setl_id) as uploaded
# the columns of a line as the rules get it: from w_lines, then the visit's PERSON columns and the catalogue limits
STORED = (
    "feedetl_sn",
    "setl_id",
    "fixmedins_code",
    "fee_ocur_time",
    "med_list_codg",
    "med_list_name",
    "med_chrgitm_type",
    "pric",
    "cnt",
    "amt",
    "prd_days",
    "drug_trac_codg",
)
LINE_COLUMNS = [*STORED, *PERSON, *CATALOG_LIMITS]


@dataclass
class Window:
    start: date
    end: date  # inclusive
    visits: pl.DataFrame
    n_lines: int
    catalog: pl.DataFrame | None
    pairs: pl.DataFrame | None
    complaints: pl.DataFrame
    parts: int = 1
    con: duckdb.DuckDBPyConnection | None = None  # holds the temp tables `w_lines`, `w_reused` until close()
    n_checked: int = 0  # lines in the person slices: all of the window's, or those of the persons rechecked
    memory_limit: str | None = None  # the connection's own limit, restored by close()
    renamed: pl.DataFrame | None = None  # fixmedins_code, setl_id, key of the visits whose setl_id is shared
    # what each line is given when read (see _completed): its visit's PERSON columns, found by `visit_on`, and
    # its item's catalogue limits
    persons: pl.DataFrame | None = None
    visit_on: tuple[str, ...] = (VISIT_KEY,)
    limits: pl.DataFrame | None = None

    def keyed(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (with fixmedins_code, setl_id as uploaded) with the window's key of each visit as setl_id."""
        if self.renamed is None:
            return frame
        to_key = {f"{c}\x00{s}": k for c, s, k in self.renamed.iter_rows()}
        pair = pl.concat_str("fixmedins_code", pl.lit("\x00"), "setl_id")
        return frame.with_columns(setl_id=pair.replace_strict(to_key, default=pl.col("setl_id")))

    def unkeyed(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (with setl_id as the window's key) with each visit's setl_id as uploaded."""
        if self.renamed is None:
            return frame
        to_id = dict(zip(self.renamed["key"], self.renamed["setl_id"], strict=True))
        return frame.with_columns(setl_id=pl.col("setl_id").replace_strict(to_id, default=pl.col("setl_id")))

    def person_part(self, i: int) -> pl.DataFrame:
        """Slice `i` of the window's lines (0 <= i < parts); all lines of one person fall in the same slice. The
        table is stored sorted by slice and then by LINE_KEY, so each read touches only its own row groups and
        needs no sort of its own (DuckDB keeps a filtered scan in insertion order: `preserve_insertion_order`
        is on). Read one slice at a time and let it go before the next (some 300 MB each at district scale)."""
        return self._completed(self.con.sql(f"SELECT * EXCLUDE (part) FROM w_lines WHERE part = {int(i)}").pl())

    def trace_lines(self) -> pl.DataFrame:
        """The lines, of the persons' slices and of the visits outside them, of every trace code found in more
        than one settlement: the only codes the trace rule can find reused. Trace codes are due on every
        dispensed drug, so at a district they may come on half its lines, nearly all of them settled once.
        In no particular order: the trace rule orders them itself. A DuckDB sort here, under READ_MEMORY, once
        failed for want of memory on a district-size new day (1.3M lines; duckdb 2.0.1)."""
        return self._completed(
            self.con.sql(
                "SELECT * EXCLUDE (part) FROM w_lines WHERE drug_trac_codg IN (SELECT drug_trac_codg FROM w_reused)"
            ).pl()
        )

    def _completed(self, lines: pl.DataFrame) -> pl.DataFrame:
        """`lines` as read from `w_lines` with their visit's person columns and their item's catalogue limits,
        in LINE_COLUMNS order. Both are joined here, per slice, not in `w_lines`: carried through its build and
        sort for the whole window they cost more than half of it (district scale: 15.4 s against 6.6 s)."""
        on = list(self.visit_on)
        out = lines.join(self.persons, on=on, how="left", maintain_order="left")
        out = out.join(self.limits, on="med_list_codg", how="left", maintain_order="left")
        return out.select(LINE_COLUMNS)

    def close(self) -> None:
        if self.con is not None:
            self.con.execute("DROP TABLE IF EXISTS w_lines")
            self.con.execute("DROP TABLE IF EXISTS w_reused")
            self.con.execute("DROP TABLE IF EXISTS w_codes")
            if self.memory_limit is not None:
                self.con.execute(f"SET memory_limit = '{self.memory_limit}'")
            self.con = None


def _update_visit_amounts(con: duckdb.DuckDBPyConnection, recheck: bool) -> None:
    """Keep `visit_amounts` (lines and money per component of each visit in the last window) up to date from
    the lines due tonight: rebuilt whole, or (rechecking) only for the visits of the persons rechecked. Those
    are the only visits whose lines or window membership changed, so every other visit's amounts are still
    right."""
    comp = ", ".join(
        # money, rounded to the cent: a parallel float sum must not differ in its last bits between runs
        f"round(coalesce(sum(amt) FILTER (med_chrgitm_type IN ({', '.join(repr(c) for c in codes)})), 0), 2) AS {name}"
        for name, codes in COMPONENTS.items()
    )
    if recheck:
        con.execute(
            """DELETE FROM visit_amounts v USING setl s
               WHERE s.fixmedins_code = v.fixmedins_code AND s.setl_id = v.setl_id
                 AND s.psn_no IN (SELECT psn_no FROM w_recheck)"""
        )
    else:
        con.execute("DELETE FROM visit_amounts")
    con.execute(
        f"""INSERT INTO visit_amounts
            SELECT fixmedins_code, setl_id, count(*) AS n_lines, {comp} FROM w_lines WHERE part >= 0 GROUP BY ALL"""
    )


def _reused_codes(lines: str) -> str:
    """SQL for the drug trace codes of `lines` (a relation with fixmedins_code, setl_id, drug_trac_codg) found in
    more than one settlement; a setl_id is unique per institution only."""
    return f"""SELECT drug_trac_codg FROM {lines} WHERE drug_trac_codg IS NOT NULL GROUP BY ALL
               HAVING min(setl_id) <> max(setl_id) OR min(fixmedins_code) <> max(fixmedins_code)"""


def _visit_on(visits: pl.DataFrame) -> tuple[str, ...]:
    """How a line finds its visit among `visits`: by the hash of the visit's key, or, should two of the window's
    visits share a hash (about one window in three million at district scale), by the key's text (slower, the
    same lines)."""
    return (VISIT_KEY,) if visits[VISIT_KEY].n_unique() == visits.height else ("fixmedins_code", "setl_id")


def window_start(as_of: date, days: int) -> date:
    """The first day of the window of `days` ending at `as_of` (inclusive)."""
    return as_of - timedelta(days=days - 1)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min)


def day_span(first: date, last: date) -> tuple[datetime, datetime]:
    """Settlement times from `first` to `last` inclusive, as [lo, hi): `lo <= setl_time < hi`."""
    return midnight(first), midnight(last + timedelta(days=1))


def load_window(con: duckdb.DuckDBPyConnection, as_of: date, days: int, recheck: bool = False) -> Window:
    """The window of `days` ending at `as_of`. With `recheck`, the slices hold only the lines of the persons
    listed in the temp table `w_recheck(psn_no)` (the others' per-person findings are known from last night)."""
    start = window_start(as_of, days)
    lo, hi = day_span(start, as_of)
    inst = (
        "LEFT JOIN ref_institutions i USING (fixmedins_code)"
        if has_table(con, "ref_institutions")
        else "LEFT JOIN (SELECT NULL::VARCHAR AS fixmedins_code, NULL::VARCHAR AS fixmedins_type, "
        "NULL::VARCHAR AS hosp_lv, NULL::VARCHAR AS region) i USING (fixmedins_code)"
    )
    bounds = {"lo": lo, "hi": hi}
    setl = upload_tables()["setl"]  # whose key names a line's visit (VISIT_KEY)
    # which visits' lines are netted tonight: all of the window's, or (rechecking) those of the persons to
    # recheck plus the visits holding a trace code found in more than one of the window's settlements (the
    # trace-code rule compares them across persons; a code settled once, nearly all of them, cannot be reused).
    # `w_codes` may hold a few more codes than `w_reused` below (refunds are netted there, not here): harmless.
    due, only, traced = "true", "", "drug_trac_codg IS NOT NULL"
    if recheck:
        due = "psn_no IN (SELECT psn_no FROM w_recheck)"
        window_fee = """(SELECT f.fixmedins_code, f.setl_id, f.drug_trac_codg FROM fee f
               SEMI JOIN (SELECT fixmedins_code, setl_id FROM setl WHERE setl_time >= $lo AND setl_time < $hi) s
                 ON f.fixmedins_code = s.fixmedins_code AND f.setl_id = s.setl_id WHERE f.cnt > 0)"""
        con.execute(f"CREATE OR REPLACE TEMP TABLE w_codes AS {_reused_codes(window_fee)}", bounds)
        traced = "drug_trac_codg IN (SELECT drug_trac_codg FROM w_codes)"
        only = f"AND ({due} OR (fixmedins_code, setl_id) IN (SELECT fixmedins_code, setl_id FROM fee WHERE {traced}))"
    window = (
        f"SELECT fixmedins_code, setl_id, {', '.join(PERSON)}, {due} AS due FROM setl "
        f"WHERE setl_time >= $lo AND setl_time < $hi {only}"
    )
    # slices of about LINES_PER_PART lines, estimated from the visits due and the warehouse's lines per visit,
    # so that the lines are netted, joined and sorted into their slices in one statement
    due_visits, per_visit = con.execute(
        f"""SELECT count(*), (SELECT count(*) FROM fee) / greatest((SELECT count(*) FROM setl), 1)
            FROM setl WHERE setl_time >= $lo AND setl_time < $hi AND {due}""",
        bounds,
    ).fetchall()[0]
    parts = max(1, math.ceil(due_visits * per_visit / LINES_PER_PART))
    limits = ", ".join(f"CAST(c.{k} AS {t}) AS {k}" for k, t in CATALOG_LIMITS.items())
    # the refunds among the lines due: summed from `f` itself on a new day, when few lines are due; read from
    # `fee` again when the whole window is, since a statement that reads `f` twice makes DuckDB materialise it
    # (9.8M lines at district scale, 3.5 GB spilt to disk: 16.5 s instead of 13 s; on a new day 3.8 s against 5 s)
    refunds_of = "f"
    if not recheck:
        refunds_of = "fee f SEMI JOIN w ON f.fixmedins_code = w.fixmedins_code AND f.setl_id = w.setl_id"
    # refunds netted against their originals (a fully refunded line disappears); the others' lines are needed
    # only where trace-coded, and stay outside every slice: part -1
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE w_lines AS
        WITH w AS ({window}),
        f AS (SELECT f.feedetl_sn, f.init_feedetl_sn, f.setl_id, f.fixmedins_code, f.fee_ocur_time, f.med_list_codg,
                     f.med_list_name, f.med_chrgitm_type, f.pric, f.cnt, f.prd_days, f.drug_trac_codg,
                     w.* EXCLUDE (fixmedins_code, setl_id)  -- the person as the visit names it
              FROM fee f JOIN w ON f.fixmedins_code = w.fixmedins_code AND f.setl_id = w.setl_id),
        r AS (SELECT f.fixmedins_code, f.init_feedetl_sn, sum(f.cnt) AS rcnt FROM {refunds_of}
              WHERE f.cnt < 0 GROUP BY ALL)
        SELECT f.feedetl_sn, f.setl_id, f.fixmedins_code, f.fee_ocur_time, f.med_list_codg, f.med_list_name,
               f.med_chrgitm_type, CAST(f.pric AS DOUBLE) AS pric,
               CAST(f.cnt + coalesce(r.rcnt, 0) AS DOUBLE) AS cnt,
               round(CAST(f.pric AS DOUBLE) * CAST(f.cnt + coalesce(r.rcnt, 0) AS DOUBLE), 2) AS amt,
               CASE WHEN r.rcnt IS NULL THEN f.prd_days
                    ELSE CAST(round(f.prd_days * (f.cnt + r.rcnt) / f.cnt) AS INTEGER) END AS prd_days,
               f.drug_trac_codg, {key_hash(setl, "f.")} AS {VISIT_KEY},
               CAST(CASE WHEN f.due THEN hash(f.psn_no) % {parts} ELSE -1 END AS INTEGER) AS part
        FROM f LEFT JOIN r ON r.fixmedins_code = f.fixmedins_code AND r.init_feedetl_sn = f.feedetl_sn
        WHERE f.cnt > 0 AND f.cnt + coalesce(r.rcnt, 0) > 0 AND (f.due OR f.{traced})
        ORDER BY part, {LINE_KEY}
    """,
        bounds,
    )
    _update_visit_amounts(con, recheck)
    # the trace codes settled more than once (see Window.trace_lines; a setl_id is unique per institution only),
    # found under the connection's own limit
    con.execute(f"CREATE OR REPLACE TEMP TABLE w_reused AS {_reused_codes('w_lines')}")
    visits = con.sql(
        f"""
        SELECT s.setl_id, s.mdtrt_id, s.fixmedins_code,
               coalesce(i.fixmedins_type, CASE WHEN s.med_type = '41' THEN '2' ELSE '1' END) AS fixmedins_type,
               coalesce(i.hosp_lv, '0') AS hosp_lv, coalesce(i.region, '未知') AS region,
               s.psn_no, s.gend, s.age, s.med_type, s.dept_codg, s.dscg_maindiag_code, s.dscg_maindiag_name,
               s.begntime, s.endtime, s.setl_time,
               CAST(s.medfee_sumamt AS DOUBLE) AS medfee_sumamt, CAST(s.fund_pay_sumamt AS DOUBLE) AS fund_pay_sumamt,
               coalesce(c.n_lines, 0) AS n_lines,
               {", ".join(f"coalesce(c.{n}, 0) AS {n}" for n in COMPONENTS)},
               {key_hash(setl, "s.")} AS {VISIT_KEY}
        FROM setl s {inst}
        LEFT JOIN visit_amounts c ON c.fixmedins_code = s.fixmedins_code AND c.setl_id = s.setl_id
        WHERE s.setl_time >= ? AND s.setl_time < ?
        ORDER BY s.fixmedins_code, s.setl_id
    """,
        params=[lo, hi],
    ).pl()
    visit_on = _visit_on(visits)
    renamed = None
    # rare: a setl_id at two institutions (see the top). Its hashes first, ~0.06 s for a district's 3.3M
    # visits against 0.4 s for the text (a hash collision only costs the exact check below, which finds none)
    if visits.select(pl.col("setl_id").hash().n_unique()).item() < visits.height:
        shared = (
            visits.group_by("setl_id").agg(pl.col("fixmedins_code").n_unique()).filter(pl.col("fixmedins_code") > 1)
        )
        if shared.height:
            key = pl.concat_str("setl_id", pl.lit("@"), "fixmedins_code")
            hit = pl.col("setl_id").is_in(shared["setl_id"].implode())
            renamed = visits.filter(hit).select("fixmedins_code", "setl_id", key.alias("key"))
            visits = visits.with_columns(setl_id=pl.when(hit).then(key).otherwise(pl.col("setl_id")))
            con.register("w_renamed", renamed.to_arrow())
            con.execute(
                """UPDATE w_lines SET setl_id = r.key FROM w_renamed r
                   WHERE w_lines.fixmedins_code = r.fixmedins_code AND w_lines.setl_id = r.setl_id"""
            )
            con.unregister("w_renamed")
    persons = visits.select(*visit_on, *PERSON)
    visits = visits.drop(VISIT_KEY)
    item_limits = con.sql(f"SELECT med_list_codg, {limits} FROM {ref_table(con, 'catalog')} c").pl()
    n_lines = int(visits["n_lines"].sum())
    n_checked = con.execute("SELECT count(*) FROM w_lines WHERE part >= 0").fetchall()[0][0]
    catalog = con.sql("SELECT * FROM ref_catalog").pl() if has_table(con, "ref_catalog") else None
    if catalog is not None:
        catalog = catalog.with_columns(
            pl.col(c).cast(pl.Float64)
            for c in ("pric_uplmt_amt", "max_cnt_per_day", "max_cnt_per_period")
            if c in catalog.columns
        )
    pairs = con.sql("SELECT * FROM ref_item_pairs").pl() if has_table(con, "ref_item_pairs") else None
    complaints = open_complaints(con, as_of)
    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{READ_MEMORY}'")
    return Window(
        start,
        as_of,
        visits,
        n_lines,
        catalog,
        pairs,
        complaints,
        parts,
        con,
        n_checked,
        limit,
        renamed,
        persons,
        visit_on,
        item_limits,
    )
