"""Write tables for people (csv, xlsx) so that no uploaded text is ever run as a spreadsheet formula."""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


PLAIN_NUMBER = r"^[-+]?\d+(\.\d+)?$"  # can never be a formula: left as it is


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix a quote to every text cell Excel or LibreOffice would read as a formula (OWASP CSV injection)."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            col = pl.col(name)
            risky = pl.any_horizontal([col.str.starts_with(ch) for ch in FORMULA_START]) & ~col.str.contains(
                PLAIN_NUMBER
            )
            exprs.append(pl.when(risky).then(pl.lit("'") + col).otherwise(col).alias(name))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def file_stem(code: str | None) -> str | None:
    """`code` if it is safe as a file name (letters, digits, _ and -), else None: nothing else reaches the disk."""
    return code if code is not None and SAFE_NAME.match(code) else None


def private_file(path: Path) -> Path:
    """Create (or truncate) `path` readable by its owner only, and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def private_tree(folder: Path) -> None:
    """Make everything under `folder` (files other tools wrote too, e.g. Data Docs) owner-only."""
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            os.chmod(os.path.join(root, f), 0o600)


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """UTF-8 with BOM so that Excel on Chinese Windows shows the text, formulas neutralised, owner-only."""
    private_file(path)
    with open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf")
        neutralise(frame).write_csv(fh)
    return path


def masked_name(col: str) -> pl.Expr:
    """A patient's name as inspectors may see it: the family name and one star (张三丰 -> 张*)."""
    return pl.when(pl.col(col).str.len_chars() > 0).then(pl.col(col).str.slice(0, 1) + "*").otherwise(None)
