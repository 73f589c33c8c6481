"""Read one upload file (csv in UTF-8/GB18030, xlsx, parquet; code or Chinese headers) into text columns.

The result is canonical: columns renamed to interface codes, every value a string (or null), extra
columns packed into one JSON column, the spreadsheet row number kept. Anything that prevents that
raises `FileRejected` with a rule id and a sentence for the institution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data_contracts.contract import Table

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_BYTES = 512 * 1024 * 1024


class FileRejected(Exception):
    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule
        self.message = message


@dataclass
class RawFile:
    frame: pl.DataFrame  # code columns (text) + extra (json text or null) + _row (spreadsheet row)
    encoding: str
    extra_columns: list[str]


def decode(data: bytes) -> tuple[str, str]:
    """UTF-8 (with or without BOM) or GB18030, strictly; never a silent guess."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as e:
            raise FileRejected("unreadable", f"starts with a UTF-8 BOM but is not UTF-8 (byte {e.start})") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as e:
        raise FileRejected(
            "unreadable", f"neither UTF-8 nor GB18030 text (undecodable byte at offset {e.start})"
        ) from None


def _read_csv(path: Path) -> tuple[pl.DataFrame, str]:
    data = path.read_bytes()
    if not data.strip():
        raise FileRejected("unreadable", "the file is empty (no header line)")
    if b"\x00" in data[:4096]:
        raise FileRejected("unreadable", "binary content (NUL bytes): not a CSV text file")
    text, enc = decode(data)
    # polars parses UTF-8 bytes; re-encode only what was not UTF-8 already
    payload = data if enc == "utf-8" else text.encode("utf-8")
    try:
        frame = pl.read_csv(io.BytesIO(payload), infer_schema=False, has_header=True)
    except (pl.exceptions.PolarsError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:200]
        raise FileRejected("unreadable", f"not a well-formed CSV: {first}") from None
    return frame, enc


def _read_xlsx(path: Path) -> pl.DataFrame:
    try:
        return pl.read_excel(path, sheet_id=1, engine="calamine", infer_schema_length=0)
    except Exception as e:  # calamine raises its own error types for damaged workbooks
        raise FileRejected("unreadable", f"not a readable xlsx workbook: {type(e).__name__}") from None


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as e:  # damaged or foreign files raise several arrow/polars error types
        raise FileRejected("unreadable", f"not a readable parquet file: {type(e).__name__}") from None
    return frame


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Typed cells (xlsx dates, parquet numbers) to the SPEC's text forms."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.String:
            exprs.append(col)
        elif isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.strftime(TS_FORMAT))
        elif dtype == pl.Date:
            exprs.append(col.dt.strftime("%Y-%m-%d 00:00:00"))
        elif dtype.is_float():
            # whole numbers stored as floats (1.0) must read back as the code "1"
            exprs.append(
                pl.when(col == col.round(0))
                .then(col.cast(pl.Int64).cast(pl.String))
                .otherwise(col.cast(pl.String))
                .alias(name)
            )
        else:
            exprs.append(col.cast(pl.String))
    return frame.select(exprs)


def read_upload(path: Path, table: Table, ext: str) -> RawFile:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise FileRejected("unreadable", f"file of {size} bytes exceeds the {MAX_BYTES} byte limit per upload")
    enc = "binary"
    if ext == "csv":
        frame, enc = _read_csv(path)
    elif ext == "xlsx":
        frame = _read_xlsx(path)
    else:
        frame = _read_parquet(path)
    frame = _as_text(frame)
    headers = table.header_map()
    rename: dict[str, str] = {}
    extras: list[str] = []
    for raw in frame.columns:
        h = raw.strip().lstrip("\ufeff")
        code = headers.get(h)
        if code is None:
            extras.append(raw)
        elif code in rename.values():
            raise FileRejected("duplicate_column", f"column {code} appears twice in the header")
        else:
            rename[raw] = code
    missing = [c for c in table.required if c not in rename.values()]
    if missing:
        labels = ", ".join(f"{c}({table.column(c).label})" for c in missing)
        raise FileRejected("missing_column", f"required column missing: {labels}")
    frame = frame.rename(rename)
    extra = pl.struct([pl.col(c) for c in extras]).struct.json_encode() if extras else pl.lit(None, pl.String)
    frame = frame.select(
        *[
            pl.col(c).str.strip_chars().replace("", None).alias(c)
            if c in frame.columns
            else pl.lit(None, pl.String).alias(c)
            for c in table.codes
        ],
        extra.alias("extra"),
        (pl.int_range(pl.len(), dtype=pl.Int32) + 2).alias("_row"),
    )
    return RawFile(frame, enc, extras)


def row_json(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    """The row as uploaded (text) for the send-back file."""
    return frame.select(pl.struct(columns).struct.json_encode()).to_series()
