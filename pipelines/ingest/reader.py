"""Read one upload file (csv in UTF-8/GB18030, xlsx, parquet; code or Chinese headers) into text columns.

The result is canonical: columns renamed to interface codes, every value a string (or null), extra
columns packed into one JSON column, the spreadsheet row number kept. Anything that prevents that
raises `FileRejected` with a rule id and a sentence for the institution.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import fastexcel
import numpy as np
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


WORKBOOK_MAGIC = {b"PK\x03\x04": "an Excel workbook (xlsx)", b"\xd0\xcf\x11\xe0": "an old Excel workbook (xls)"}


def refuse_workbook(data: bytes) -> None:
    """A workbook renamed .csv: said as such, not as the text fault or NUL byte it otherwise reads as."""
    for magic, kind in WORKBOOK_MAGIC.items():
        if data.startswith(magic):
            raise FileRejected(
                "unreadable", f"{kind}, not CSV text: save it from Excel as CSV (an upload may also be sent as .xlsx)"
            )


def decode(data: bytes) -> tuple[str, str]:
    """UTF-8 (with or without BOM) or GB18030, strictly; never a silent guess."""
    refuse_workbook(data)
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as e:
            where = _where(data, e.start + 3)
            raise FileRejected("unreadable", f"starts with a UTF-8 BOM but is not UTF-8 ({where})") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        utf8_stops = e.start
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as e:
        # the encoding that reads further is the file's, and where it stops is the byte to correct: a UTF-8 file
        # with one stray byte stops GB18030 at its first Chinese character, which is not where the fault is
        enc, at = ("UTF-8", utf8_stops) if utf8_stops >= e.start else ("GB18030", e.start)
        raise FileRejected(
            "unreadable",
            f"neither UTF-8 nor GB18030 text: it reads as {enc} up to {_where(data, at)}, which is not {enc}",
        ) from None


def _where(data: bytes, offset: int) -> str:
    """A byte offset as the line a text editor shows it on (what an institution can find), and the offset."""
    line = data.count(b"\n", 0, offset) + 1
    return f"line {line}, byte {offset}"


def first_malformed_row(text: str) -> str | None:
    """Where a CSV polars could not parse goes wrong, by row as a spreadsheet numbers them (header = 1), so the
    institution knows what to correct. Python's strict csv reader finds it; it runs only on a refused file."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row, line = 1, 1  # the record being read, and the line it starts on (a quoted value may hold line ends)
    try:
        header = next(reader, [])
        row, line = 2, reader.line_num + 1
        for record in reader:
            if len(record) > len(header):
                return f"row {row}: {len(record)} values where the header has {len(header)}"
            row, line = row + 1, reader.line_num + 1
    except csv.Error as e:
        unclosed = "a quoted value opens in this row and is not closed"
        if "unexpected end of data" in str(e):
            return f"row {row}: {unclosed} before the end of the file"
        if reader.line_num > line:  # the quote took the line ends after it as part of the value
            return f"row {row}: {unclosed} (it runs on over the next {reader.line_num - line} lines)"
        if "expected after" in str(e):  # `"3"x`: text after a value's closing quote
            return f"row {row}: text after a closing quote (quote a value with quotes in it whole, and double them)"
        return f"row {row}: {e}"
    return None


def not_well_formed(text: str, error: Exception, table: Table) -> FileRejected:
    """The refusal of a CSV file polars could not parse, naming the row to correct where it can be found.

    A header that names no known column (a title line above it) or lacks one is refused as that first: the
    rows after a one-cell title line all have "too many values", which would hide the cause."""
    where = first_malformed_row(text)
    if where is None or not where.startswith("row 1:"):
        _mapping(next(csv.reader(io.StringIO(text, newline="")), []), table)  # raises for a header at fault
    where = where or str(error).strip().splitlines()[0][:200]
    return FileRejected("unreadable", f"not a well-formed CSV: {where}")


def _read_csv(path: Path, table: Table) -> tuple[pl.DataFrame, str]:
    data = path.read_bytes()
    if not data or data.isspace():
        raise FileRejected("unreadable", "the file is empty (no header line)")
    refuse_workbook(data)
    if b"\x00" in data[:4096]:
        raise FileRejected("unreadable", "binary content (NUL bytes): not a CSV text file")
    text, enc = decode(data)
    # polars parses UTF-8 bytes; re-encode only what was not UTF-8 already
    payload = data if enc == "utf-8" else text.encode("utf-8")
    try:
        frame = pl.read_csv(io.BytesIO(payload), infer_schema=False, has_header=True)
    except (pl.exceptions.PolarsError, ValueError) as e:
        raise not_well_formed(text, e, table) from None
    # polars leaves a quoted header's doubled quotes ("a""b") doubled; unescape them as for values
    if any('""' in c for c in frame.columns):
        frame = frame.rename({c: c.replace('""', '"') for c in frame.columns if '""' in c})
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


EXCEL_DIGITS = 15  # Excel keeps a number to 15 significant digits; a double holds whole numbers exactly to 2^53


def _typed_xlsx(path: Path) -> pl.DataFrame | None:
    """The first sheet with its cells' own types (numbers as floats), to see which columns hold numbers."""
    # fastexcel logs a warning for each column it cannot type (an empty one), which would reach the terminal
    logging.getLogger("fastexcel").setLevel(logging.ERROR)
    try:
        return pl.read_excel(path, sheet_id=1, engine="calamine", infer_schema_length=None)
    except Exception:  # a sheet calamine cannot type column by column: the text read stands on its own
        return None


def _check_digits_kept(typed: pl.DataFrame, table: Table, doubles: bool) -> None:
    """FileRejected when a text column (an id, a code) holds numbers past 15 digits: stored as a number, a
    人员编号 or 药品追溯码 has lost its last digits (Excel keeps 15; a float column no more than ~16), so the
    file's persons and codes cannot be trusted. `doubles`: every number of the file is a float, as in a
    workbook, even where the reader typed a column of whole numbers as integers; else (parquet) integers are
    exact."""
    rename, _ = _mapping(typed.columns, table)
    for raw, code in rename.items():
        dtype = typed.schema[raw]
        if table.column(code).type != "text" or not (dtype.is_float() or (doubles and dtype.is_integer())):
            continue
        rows = typed.select(pl.arg_where(pl.col(raw).abs() >= 10**EXCEL_DIGITS)).to_series()
        if rows.len():
            first = typed[raw][rows[0]]
            raise FileRejected(
                "number_lost_digits",
                f"{code}({table.column(code).label}) is stored as numbers, and {rows.len()} of them have more than "
                f"{EXCEL_DIGITS} digits, which a number cannot keep (row {rows[0] + 2}: {first:.0f}): store the "
                "column as text and resend",
            )


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
            # as a spreadsheet shows it, to 15 significant digits: an amount computed in floating point (10.1 × 3)
            # is 30.299999999999997 in binary, 30.3 to the institution (and to calamine's text of an xlsx cell);
            # whole numbers stored as floats (1.0) must read back as the code "1"
            shown = col.round_sig_figs(EXCEL_DIGITS)
            exprs.append(
                pl.when(shown == shown.round(0))
                .then(shown.cast(pl.Int64).cast(pl.String))
                .otherwise(shown.cast(pl.String))
                .alias(name)
            )
        else:
            exprs.append(col.cast(pl.String))
    return frame.select(exprs)


def _mapping(columns: list[str], table: Table) -> tuple[dict[str, str], list[str]]:
    """Header -> code renames and the extra columns; FileRejected if a required column is missing or doubled."""
    headers = table.header_map()
    rename: dict[str, str] = {}
    extras: list[str] = []
    for raw in columns:
        code = headers.get(raw.strip().lstrip("\ufeff"))
        if code is None:
            extras.append(raw)
        elif code in rename.values():
            raise FileRejected("duplicate_column", f"column {code} appears twice in the header")
        else:
            rename[raw] = code
    if not rename:  # a title line above the header, or another table's file: listing every column would hide it
        named = [c.strip()[:40] for c in columns if c.strip() and not c.startswith("__UNNAMED__")]  # empty cells
        shown = ", ".join(repr(c) for c in named[:3]) + (", …" if len(named) > 3 else "") or "nothing"
        first = table.column(table.required[0])
        example = (
            f"by code or label ({first.code} or {first.label}, …)"
            if first.label != first.code
            else f"by code ({', '.join(table.required[:2])}, …)"
        )
        raise FileRejected(
            "missing_column",
            f"no known column in the first row (it reads {shown}): the first row must name the columns, {example}",
        )
    missing = [table.column(c) for c in table.required if c not in rename.values()]
    if missing:
        named = ", ".join(c.code if c.label == c.code else f"{c.code}({c.label})" for c in missing)
        raise FileRejected("missing_column", f"required column missing: {named}")
    return rename, extras


def canonical(frame: pl.DataFrame, table: Table, fi: pl.Series, row: pl.Series) -> RawFile:
    """Text frame with upload headers -> code columns (trimmed, empty = null), `extra` JSON, `_fi`, `_row`."""
    rename, extras = _mapping(frame.columns, table)
    frame = frame.rename(rename)
    extra = pl.struct([pl.col(c) for c in extras]).struct.json_encode() if extras else pl.lit(None, pl.String)
    present = set(frame.columns)
    frame = frame.with_columns(fi.alias("_fi"), row.alias("_row")).select(
        *[
            pl.col(c).str.strip_chars().replace("", None) if c in present else pl.lit(None, pl.String).alias(c)
            for c in table.codes
        ],
        extra.alias("extra"),
        "_fi",
        "_row",
    )
    return RawFile(frame)


def numbered(frame: pl.DataFrame, fi: int) -> tuple[pl.Series, pl.Series]:
    """The `_fi` and `_row` columns of a file's frame: its index in the batch and the spreadsheet row (header = 1)."""
    n = frame.height
    return pl.Series([fi] * n, dtype=pl.Int32), pl.Series(range(2, n + 2), dtype=pl.Int32)


def read_upload(path: Path, table: Table, ext: str, fi: int = 0) -> RawFile:
    """One file on its own (xlsx, parquet, and CSVs the batch reader cannot concatenate)."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise FileRejected(
            "file_too_large",
            f"{size / 2**20:,.0f} MB, over the {MAX_BYTES / 2**20:,.0f} MB limit per upload (which bounds a night's "
            "memory): send it as several files, one per settlement day",
        )
    if ext == "csv":
        frame, _ = _read_csv(path, table)
    elif ext == "xlsx":
        try:
            frame = _read_xlsx(path)
            if (typed := _typed_xlsx(path)) is not None:
                _check_digits_kept(typed, table, doubles=True)
            return canonical(_as_text(frame), table, *numbered(frame, fi))
        except FileRejected as e:
            if e.rule != "missing_column" or not (others := _other_sheets(path)):
                raise
            raise FileRejected(e.rule, f"{e.message} ({others})") from None
    else:
        frame = _read_parquet(path)
        _check_digits_kept(frame, table, doubles=False)
    return canonical(_as_text(frame), table, *numbered(frame, fi))


def _other_sheets(path: Path) -> str:
    """What to add to a workbook's missing columns when it has more than one sheet: only the first is read
    (SPEC §1), and an export with a cover or notes sheet first puts the data on another."""
    names = fastexcel.read_excel(path).sheet_names
    if len(names) < 2:
        return ""
    shown = ", ".join(repr(n) for n in names[1:4]) + (", …" if len(names) > 4 else "")
    return f"only the first sheet, {names[0]!r}, is read: move the data there; the workbook also has {shown}"


def _plain_csv(path: Path) -> tuple[str, memoryview, int, str] | None:
    """(header, body as a view of UTF-8 bytes, newline count, encoding) of a CSV to parse together with others,
    else None.

    The caller checks that the parsed row count equals the newline count: a quoted newline inside a
    field can only lower the parsed count, so equality proves every newline ended exactly one record
    and row numbers are exact. Otherwise the files are re-read one by one.
    """
    data = path.read_bytes()
    if len(data) > MAX_BYTES or b"\x00" in data[:4096] or not data or data.isspace():
        return None
    text, enc = decode(data)
    # UTF-8 uploads keep their bytes (decoding above proved them valid); GB18030 ones are re-encoded
    raw, start = (data, 3) if enc == "utf-8-sig" else (data, 0) if enc == "utf-8" else (text.encode("utf-8"), 0)
    del text
    if b"\r" in raw:
        raw = raw[start:].replace(b"\r\n", b"\n")
        start = 0
        if b"\r" in raw:
            return None
    cut = raw.find(b"\n", start)
    if cut < 0:
        cut = len(raw)
    header = raw[start:cut].decode("utf-8")
    if not header or '"' in header:
        return None
    # a view, not a copy: the caller joins the bodies of a whole batch (250 MB at medium) into one buffer anyway
    body, n = memoryview(raw)[cut + 1 :], raw.count(b"\n", cut + 1)
    if body and body[-1] != ord("\n"):  # the last record has no line end: give it one
        body, n = memoryview(bytes(body) + b"\n"), n + 1
    return header, body, n, enc


def read_batch(files: list[tuple[int, Path, str]], table: Table) -> tuple[list[RawFile], dict[int, FileRejected]]:
    """Read many uploads of one table; CSVs sharing a header are parsed together as one buffer.

    `files` holds (file index, path, extension). Returns canonical frames (their `_fi` names the file)
    and the rejected files by index. A group that fails to parse as a whole is re-read file by file,
    so one broken file never takes its neighbours down with it.
    """
    frames: list[RawFile] = []
    rejected: dict[int, FileRejected] = {}
    groups: dict[str, list[tuple[int, Path, str, int]]] = {}

    def refuse(fi: int, e: FileRejected) -> None:
        # keep a copy without the traceback: the raised one holds this frame, whose locals hold every file's
        # bytes and frames, in a cycle that only a full garbage collection frees (GBs at district scale)
        rejected[fi] = FileRejected(e.rule, e.message)

    def single(fi: int, path: Path, ext: str) -> None:
        try:
            frames.append(read_upload(path, table, ext, fi))
        except FileRejected as e:
            refuse(fi, e)

    for fi, path, ext in files:
        try:
            plain = _plain_csv(path) if ext == "csv" else None
        except FileRejected as e:
            refuse(fi, e)
            continue
        if plain is None:
            single(fi, path, ext)
        else:
            header, body, n, _ = plain
            groups.setdefault(header, []).append((fi, path, body, n))
    for header, members in groups.items():
        columns = header.split(",")
        try:
            _mapping(columns, table)
        except FileRejected as e:
            for fi, *_ in members:
                refuse(fi, e)
            continue
        counts = [n for *_, n in members]
        try:
            frame = (
                pl.read_csv(
                    io.BytesIO(b"".join(body for _, _, body, _ in members)),
                    has_header=False,
                    new_columns=columns,
                    infer_schema=False,
                )
                if sum(counts)
                else pl.DataFrame({c: [] for c in columns}, schema={c: pl.String for c in columns})
            )
            if frame.height != sum(counts):
                raise ValueError("row count differs")
        except (pl.exceptions.PolarsError, ValueError):
            for fi, path, _, _ in members:
                single(fi, path, "csv")
            continue
        sizes = np.array(counts)
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        fi_col = pl.Series(np.repeat([fi for fi, *_ in members], sizes), dtype=pl.Int32)
        row_col = pl.Series(np.arange(sizes.sum()) - starts + 2, dtype=pl.Int32)
        frames.append(canonical(frame, table, fi_col, row_col))
    return frames, rejected
