"""Parse and check upload file names: `<fixmedins_code>_<YYYYMMDD>_<table>.<ext>`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

NAME = re.compile(r"^(?P<code>[A-Za-z0-9]{1,32})_(?P<day>\d{8})_(?P<table>setl|fee)\.(?P<ext>csv|xlsx|parquet)$")
EXTS = ("csv", "xlsx", "parquet")


LEADING_CODE = re.compile(r"^(?P<code>[A-Za-z0-9]{1,32})_")


class BadFileName(ValueError):
    """A name that does not follow the pattern; `code` is what stands where the institution's code goes, if
    anything does (`H13030200002_2026-10-12_fee.csv`), so that the refusal can be sent back to it."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.code = m["code"] if (m := LEADING_CODE.match(name)) else None


@dataclass(frozen=True)
class UploadName:
    name: str
    code: str
    day: date
    table: str
    ext: str

    @property
    def stem(self) -> str:
        """The file's identity across formats: a resend as xlsx replaces the csv of the same stem."""
        return self.name.rpartition(".")[0]


def parse(name: str) -> UploadName:
    m = NAME.match(name)
    if not m:
        raise BadFileName(f"name does not follow <机构编码>_<YYYYMMDD>_<setl|fee>.<csv|xlsx|parquet>: {name!r}", name)
    try:
        d = m["day"]
        day = date(int(d[:4]), int(d[4:6]), int(d[6:]))
    except ValueError:
        raise BadFileName(f"the date in the name is not a calendar date: {m['day']!r}", name) from None
    return UploadName(name, m["code"], day, m["table"], m["ext"])
