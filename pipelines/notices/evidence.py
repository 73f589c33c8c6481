"""The evidence behind a notice, from the warehouse: per institution, every line that establishes a breach —
a rule's clear violation (明确违规) on a visit not audited, or a visit the inspectors confirmed on site
(`audit_outcomes.csv`) — with its basis and clause, the patient shown by `psn_no` and masked name, the
amount in whole fen."""

from __future__ import annotations

import duckdb
import polars as pl

from detectors.rules.engine import Rule, load_rules
from pipelines.outputs.safe_text import masked_name
from pipelines.warehouse.schema import ref_table

# Rule violations stand unless the visit was audited on site; an audited visit is judged by the audit:
# confirmed, it is one fact with the inspector's violation type and overpaid amount; not confirmed, it is dropped.
EVIDENCE_SQL = """
    WITH o AS (SELECT * FROM {outcomes}),
    by_rule AS (
        SELECT f.fixmedins_code, f.source, f.source_name, f.setl_id, f.occurred_on,
               CAST(round(f.amount * 100) AS BIGINT) AS fen, f.reason, '智能审核规则' AS established_by
        FROM findings f
        WHERE f.run_id = ? AND list_contains(?, f.fixmedins_code) AND f.result_type = '明确违规'
          AND NOT EXISTS (SELECT 1 FROM o WHERE o.fixmedins_code = f.fixmedins_code AND o.setl_id = f.setl_id)
    ),
    by_audit AS (
        SELECT o.fixmedins_code, 'AUDIT' AS source, coalesce(o.violation_type, '现场核实违规') AS source_name,
               o.setl_id, CAST(s.setl_time AS DATE) AS occurred_on,
               CAST(round(coalesce(o.overpaid_amt, 0) * 100) AS BIGINT) AS fen,
               '现场核实确认(' || strftime(o.audited_on, '%Y-%m-%d') || '), 多支付医保基金'
                   || format('{{:,.2f}}', CAST(coalesce(o.overpaid_amt, 0) AS DOUBLE)) || '元' AS reason,
               '现场核实确认' AS established_by
        FROM o JOIN setl s ON s.fixmedins_code = o.fixmedins_code AND s.setl_id = o.setl_id
        WHERE o.finding = 'confirmed' AND list_contains(?, o.fixmedins_code)
    )
    SELECT e.*, s.psn_no, s.psn_name
    FROM (SELECT * FROM by_rule UNION ALL SELECT * FROM by_audit) e
    LEFT JOIN setl s ON s.fixmedins_code = e.fixmedins_code AND s.setl_id = e.setl_id
    -- a visit already cited by a notice of another cycle is not cited again (nor once its audit confirms it)
    WHERE NOT EXISTS (SELECT 1 FROM notice_lines n WHERE n.cycle <> ? AND n.fixmedins_code = e.fixmedins_code
                      AND n.setl_id = e.setl_id)
    ORDER BY e.fixmedins_code, e.source, e.occurred_on, e.setl_id
"""


def load_evidence(con: duckdb.DuckDBPyConnection, run_id: str, codes: list[str], cfg: dict, cycle: str) -> pl.DataFrame:
    ev = con.sql(
        EVIDENCE_SQL.format(outcomes=ref_table(con, "audit_outcomes")), params=[run_id, codes, codes, cycle]
    ).pl()
    rules = load_rules()
    doc = cfg["document"]
    return ev.with_columns(
        kind := pl.when(pl.col("source") == "AUDIT")
        .then(pl.col("source_name").replace_strict(audit_kinds(cfg, rules), default=None, return_dtype=pl.String))
        .otherwise(pl.col("source"))
        .alias("kind"),
        basis=kind.replace_strict({r.id: r.basis for r in rules}, default=doc["default_basis"]),
        clause=kind.replace_strict({r.id: r.clause for r in rules}, default=doc["default_clause"]),
        psn_name_masked=masked_name("psn_name"),
    ).drop("psn_name")


def audit_kinds(cfg: dict, rules: list[Rule]) -> dict[str, str]:
    """Inspector's violation type -> the rule or detector it is a case of: a rule's name, with or without its
    parenthesis ("提前开药(重复开药)", "提前开药"), or an entry of notice.toml's [audit_types]."""
    kinds = {r.name: r.id for r in rules}
    for r in rules:  # "重复收费" is DUP_SAME_ITEM's own name, not DUP_PAIR's "重复收费(项目内涵)" shortened
        kinds.setdefault(r.name.split("(")[0], r.id)
    return {**kinds, **cfg.get("audit_types", {})}
