"""Writing one prepared batch to the warehouse: rejected files, the rows of earlier versions a correction
replaces, the judged rows, quarantine and contract warnings, and one manifest row per file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import duckdb
import polars as pl

from data_contracts.contract import Table, rule_specs
from pipelines.ingest.in_transfer import entry
from pipelines.ingest.judge import KEY_ORDER, judge, rows_in, without
from pipelines.ingest.plan import reject_file
from pipelines.ingest.prepare import Prepared
from pipelines.ingest.result import IngestResult, RowCounts
from pipelines.warehouse.schema import SQL_TYPES, ident, key_hash


def record_hits(
    con, target: str, found: pl.DataFrame, batch: pl.DataFrame, info: pl.DataFrame, table: Table, run_id: str
) -> None:
    """Write rule hits (one row per uploaded row, rules joined) to `quarantine` or `contract_warnings`."""
    found = found.group_by("_fi", "_row", maintain_order=True).agg(
        rule=pl.col("rule").str.join("; "), value=pl.col("value").str.join("; ")
    )
    uploaded = batch.filter(rows_in(found)).select(
        "_fi",
        "_row",
        pl.col(table.key[1]).alias("record_id"),
        # the institution that sent the file gets the row back, whatever code the row itself claims
        pl.col("_fcode").alias("fixmedins_code"),
        pl.struct(table.codes).struct.json_encode().alias("row_json"),
    )
    rows = (
        found.join(uploaded, on=["_fi", "_row"])
        .join(info.select("_fi", "source_file"), on="_fi")
        .select(
            pl.lit(run_id).alias("run_id"),
            pl.col("source_file").alias("file"),
            pl.lit(table.name).alias("table_name"),
            pl.col("_row").alias("row_number"),
            "record_id",
            "fixmedins_code",
            "rule",
            "value",
            "row_json",
        )
    )
    con.register("hits", rows.to_arrow())
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM hits")
    con.unregister("hits")


def withdraw(con: duckdb.DuckDBPyConnection, run_id: str, table: str, files: list[str]) -> None:
    """Record whose visits the rows of `files` were before they are deleted: the next detection rechecks them
    (a fee line's person is its visit's, as the detection window joins them)."""
    person, join = (
        ("t.psn_no", "")
        if table == "setl"
        else ("coalesce(s.psn_no, t.psn_no)", "LEFT JOIN setl s USING (fixmedins_code, setl_id)")
    )
    con.execute(
        f"""INSERT INTO withdrawn
            SELECT DISTINCT ?, '{table}', t.fixmedins_code, t.setl_id, {person}
            FROM {table} t {join} WHERE t.source_file IN (SELECT unnest(?))""",
        [run_id, files],
    )


def commit(con, prepared: Prepared, run_id: str, result: IngestResult, say: Callable[[str], None]) -> None:
    """Write a prepared batch: rejected files, withdrawn earlier versions, judged rows, quarantine, manifest."""
    table, files, read = prepared.table, prepared.files, prepared.read
    for i, e in sorted(prepared.rejected.items()):
        inc = files[i]
        meta = {
            "stem": inc.name.stem,
            "code": inc.name.code,
            "day": inc.name.day,
            "table": table.name,
            "sha": inc.sha256,
            "size": inc.size,
            "mtime": inc.mtime_ns,
        }
        reject_file(con, run_id, result, inc.path.name, e.rule, e.message, meta)
    for i, st in sorted(prepared.changing.items()):  # not an upload yet, like a file still named as in transfer
        result.seen -= 1
        result.in_transfer.append(entry(files[i].path.name, st))
    # a corrected file replaces every row its earlier version loaded
    for i in read:
        if files[i].supersedes:
            names = list(files[i].supersedes)
            withdraw(con, run_id, table.name, names)
            con.execute(f"DELETE FROM {table.name} WHERE source_file IN (SELECT unnest(?))", [names])
            con.execute(
                "UPDATE manifest SET status = 'superseded' WHERE file_name IN (SELECT unnest(?)) AND status = 'loaded'",
                [names],
            )
            result.corrected += 1
    if not read:
        return
    info, batch, typed, found = prepared.info, prepared.batch, prepared.typed, prepared.found
    severity = {name: spec.severity for name, spec in rule_specs().items()}
    found = found.with_columns(
        sev=pl.col("rule").str.split(":").list.first().replace_strict(severity, default="reject")
    )
    failures = found.filter(pl.col("sev") == "reject").drop("sev")
    warnings = found.filter(pl.col("sev") == "warn").drop("sev")
    checked = without(typed, failures)
    checked = checked.drop("_fcode", "_fday")
    judged = judge(con, table, checked)
    rows_new = without(checked, judged)
    con.register("rows_new", rows_new.to_arrow())
    con.register("batch_files", info.select("_fi", "source_file").to_arrow())
    casts = ", ".join(f"CAST(j.{ident(c.code)} AS {SQL_TYPES[c.type]}) AS {ident(c.code)}" for c in table.columns)
    con.execute(
        f"""INSERT INTO {table.name} BY NAME
        SELECT {casts}, j.extra, f.source_file, j._row AS source_row, ? AS run_id, {key_hash(table, "j.")} AS key_hash
        FROM rows_new j JOIN batch_files f USING (_fi)""",
        [run_id],
    )
    con.unregister("rows_new")
    con.unregister("batch_files")
    # refused rows: contract failures (rules joined per row) and cross-row judgements
    id_col = table.key[1]
    value_of = {"key_conflict": id_col, "setl_missing": "setl_id", "refund_unmatched": "init_feedetl_sn"}
    refusals = judged.filter(pl.col("status") != "duplicate")
    later = refusals.join(checked.filter(rows_in(refusals)), on=KEY_ORDER).select(
        *KEY_ORDER,
        pl.col("status").alias("rule"),
        value=pl.coalesce(
            pl.when(pl.col("status") == r).then(pl.col(c).cast(pl.String))
            for r, c in value_of.items()
            if c in table.codes
        ),
    )
    refused = pl.concat([failures.select("_fi", "_row", "rule", "value"), later])
    refused = refused.group_by("_fi", "_row", maintain_order=True).agg(
        rule=pl.col("rule").str.join("; "), value=pl.col("value").str.join("; ")
    )
    record_hits(con, "quarantine", refused, batch, info, table, run_id)
    if not warnings.is_empty():
        record_hits(con, "contract_warnings", warnings, batch, info, table, run_id)
    # per-file counts, for the manifest (one insert for the batch) and the run summary
    per_file = judged.group_by("_fi").agg(duplicate=(pl.col("status") == "duplicate").sum())
    counts = (
        batch.group_by("_fi")
        .len("received")
        .join(rows_new.group_by("_fi").len("loaded"), on="_fi", how="left")
        .join(per_file, on="_fi", how="left")
        .join(refused.group_by("_fi").len("quarantined"), on="_fi", how="left")
    )
    counts = info.join(counts, on="_fi", how="left").fill_null(0)
    manifest = counts.select(
        file_name="source_file",
        stem=pl.Series([files[i].name.stem for i in read]),
        fixmedins_code="_fcode",
        file_date="_fday",
        table_name=pl.lit(table.name),
        sha256=pl.Series([files[i].sha256 for i in read]),
        size_bytes=pl.Series([files[i].size for i in read]),
        mtime_ns=pl.Series([files[i].mtime_ns for i in read], dtype=pl.Int64),
        status=pl.lit("loaded"),
        reason=pl.lit(None, pl.String),
        rows_received="received",
        rows_loaded="loaded",
        rows_quarantined="quarantined",
        rows_duplicate="duplicate",
        run_id=pl.lit(run_id),
        seen_at=pl.lit(datetime.now()),
    )
    con.register("m", manifest.to_arrow())
    con.execute("INSERT INTO manifest BY NAME SELECT * FROM m")
    con.unregister("m")
    total = RowCounts(*(int(counts[c].sum()) for c in ("received", "loaded", "quarantined", "duplicate")))
    result.rows[table.name].add(total)
    result.loaded += len(read)
    so_far = result.rows[table.name].received
    say(f"{table.name}: {total.received:,} rows from {len(read)} files written ({so_far:,} {table.name} rows tonight)")
