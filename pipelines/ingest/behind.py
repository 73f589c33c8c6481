"""Designated institutions behind on their uploads: their newest loaded file is more days older than the
district's newest than `intake.toml` allows. A night's figures only count what arrived; an institution that
stopped uploading would otherwise be noticed by nobody, its visits simply missing from detection."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from pipelines.warehouse.schema import has_table

CONFIG_PATH = Path(__file__).with_name("intake.toml")
BEHIND_SCHEMA = {
    "fixmedins_code": pl.String,
    "fixmedins_name": pl.String,
    "last_file_date": pl.Date,
    "days_behind": pl.Int64,
}


def load_config(path: Path = CONFIG_PATH) -> dict:
    cfg = tomllib.loads(path.read_text(encoding="utf-8"))["behind"]
    for key in ("hospital_days", "pharmacy_days"):
        if not isinstance(cfg.get(key), int) or cfg[key] < 1:
            raise ValueError(f"{path.name}: behind.{key} must be a whole number of days, at least 1")
    return cfg


def newest_upload(con: duckdb.DuckDBPyConnection) -> date | None:
    """The newest file date loaded from anyone, tonight or before (a corrected file keeps its name's date)."""
    return con.execute("SELECT max(file_date) FROM manifest WHERE status = 'loaded'").fetchall()[0][0]


def behind_uploads(con: duckdb.DuckDBPyConnection, newest: date | None, cfg: dict | None = None) -> pl.DataFrame:
    """fixmedins_code, fixmedins_name, last_file_date, days_behind of the listed institutions that have uploaded
    before and are behind the district's `newest` upload, most days first. Institutions that never uploaded are
    not listed (a list of the district's designated institutions may hold some that no longer settle visits);
    without institutions.csv, none."""
    cfg = cfg or load_config()
    if newest is None or not has_table(con, "ref_institutions"):
        return pl.DataFrame(schema=BEHIND_SCHEMA)
    return con.sql(
        """WITH last AS (SELECT fixmedins_code, max(file_date) AS last_file_date FROM manifest
                         WHERE status = 'loaded' GROUP BY ALL)
           SELECT i.fixmedins_code, i.fixmedins_name, l.last_file_date,
                  date_diff('day', l.last_file_date, $newest) AS days_behind
           FROM ref_institutions i JOIN last l USING (fixmedins_code)
           WHERE date_diff('day', l.last_file_date, $newest) > CASE i.fixmedins_type WHEN '2' THEN $ph ELSE $ho END
           ORDER BY days_behind DESC, i.fixmedins_code""",
        params={"newest": newest, "ph": cfg["pharmacy_days"], "ho": cfg["hospital_days"]},
    ).pl()


def data_gap(newest_upload: str | None, as_of: str | None, cfg: dict | None = None) -> int | None:
    """Days between the district's newest upload and the run's as-of date (ISO dates, as in the run summary),
    when more than a hospital may be behind: the window's last days then hold no data from anyone (an --as-of
    past the uploads, or the transfer from the institutions stopped); else None."""
    if not newest_upload or not as_of:
        return None
    days = (date.fromisoformat(as_of) - date.fromisoformat(newest_upload)).days
    return days if days > (cfg or load_config())["hospital_days"] else None
