"""Tables in workbooks for people: Chinese headers, frozen header row, widths that fit, printable on
A4, every text cell neutralised so no uploaded text runs as a formula. One way for every xlsx we write."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import xlsxwriter

from pipelines.outputs.safe_text import neutralise, private_file

HEADER_FORMAT = {"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"}
MAX_WIDTH = 30  # characters; longer text wraps


def display_width(text: object) -> int:
    """Columns `text` takes in a sheet or a terminal."""
    s = "" if text is None else str(text)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)  # CJK characters take two columns


class Workbook:
    """An owner-only xlsx file; use as a context manager."""

    def __init__(self, path: Path):
        self.path = private_file(path)
        self.wb = xlsxwriter.Workbook(path)
        self.head = self.wb.add_format(HEADER_FORMAT)
        self.wrap = self.wb.add_format({"text_wrap": True, "valign": "top"})
        self.money = self.wb.add_format({"num_format": "#,##0.00", "valign": "top"})
        self.bold = self.wb.add_format({"bold": True})
        self.title_format = self.wb.add_format({"bold": True, "font_size": 14})

    def sheet(self, name: str) -> Sheet:
        return Sheet(self, name)

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc) -> None:
        self.wb.close()
        os.chmod(self.path, 0o600)


class Sheet:
    """One worksheet, written top to bottom: a title, label/value lines, tables."""

    def __init__(self, book: Workbook, name: str):
        self.book = book
        self.ws = book.wb.add_worksheet(name[:31])
        self.ws.set_landscape()
        self.ws.set_paper(9)  # A4
        self.ws.fit_to_pages(1, 0)  # one page wide
        self.row = 0
        self.widths: dict[int, int] = {}

    def _fit(self, col: int, width: int) -> None:
        self.widths[col] = max(self.widths.get(col, 0), min(width, MAX_WIDTH))
        self.ws.set_column(col, col, self.widths[col])

    def title(self, text: str) -> Sheet:
        self.ws.write_string(self.row, 0, text, self.book.title_format)
        self.row += 1
        return self

    def lines(self, pairs: list[tuple[str, object]]) -> Sheet:
        """Label/value lines, e.g. a block above a table."""
        values = neutralise(
            pl.DataFrame({"v": ["" if v is None else str(v) for _, v in pairs]}, schema={"v": pl.String})
        )
        for (label, _), value in zip(pairs, values["v"], strict=True):
            self.ws.write_string(self.row, 0, label, self.book.bold)
            self.ws.write_string(self.row, 1, value)
            self._fit(0, display_width(label) + 2)
            self.row += 1
        self.row += 1
        return self

    def table(self, frame: pl.DataFrame, main: bool = False) -> Sheet:
        """`frame` with its column names as headers; `main` freezes its header and repeats it on every page."""
        frame = neutralise(frame)
        top = self.row
        for c, name in enumerate(frame.columns):
            self.ws.write_string(top, c, name, self.book.head)
            dtype = frame.schema[name]
            fmt = self.book.money if dtype.is_float() else self.book.wrap
            for r, value in enumerate(frame[name].to_list(), start=top + 1):
                if value is None:
                    self.ws.write_blank(r, c, None, fmt)
                elif dtype.is_numeric():
                    self.ws.write_number(r, c, value, fmt)
                else:
                    self.ws.write_string(r, c, str(value), fmt)
            self._fit(c, max([display_width(name), *(display_width(v) for v in frame[name].head(500).to_list())]) + 2)
        # wrapped text needs its row height set: spreadsheet programs do not grow rows written by a library
        for r, row in enumerate(frame.iter_rows(), start=top + 1):
            lines = max(
                (-(-display_width(v) // max(self.widths[c] - 1, 1)) for c, v in enumerate(row) if isinstance(v, str)),
                default=1,
            )
            if lines > 1:
                self.ws.set_row(r, 15 * min(lines, 8))
        if main:
            self.ws.freeze_panes(top + 1, 0)
            self.ws.repeat_rows(top)
            if frame.height:
                self.ws.autofilter(top, 0, top + frame.height, frame.width - 1)
        self.row = top + frame.height + 2
        return self
