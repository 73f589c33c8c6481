"""Read the declared upload contract (`upload_tables.yaml`) into typed column specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

CONTRACT_DIR = Path(__file__).parent
TYPES = {"text", "int", "decimal2", "decimal4", "datetime", "date"}


@dataclass(frozen=True)
class Column:
    code: str
    label: str
    type: str
    not_null: bool = False
    optional: bool = False  # the upload may omit the column entirely
    codes: tuple[str, ...] | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    no_number_form: bool = False  # an id that must not read as a number's display form (1.30302E+17)
    listed_in: str | None = None  # reference lists only: each value must be a key of that list, when it is in force


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    merge: bool = False  # reference lists only: rows are merged by key instead of replacing the list
    key_in: str | None = None  # reference lists only: each row's key must name a row of that upload table

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.code for c in self.columns if not c.optional]

    def header_map(self) -> dict[str, str]:
        """Every accepted header (code or Chinese label) -> code."""
        out = {c.code: c.code for c in self.columns}
        out.update({c.label: c.code for c in self.columns})
        return out

    def column(self, code: str) -> Column:
        return next(c for c in self.columns if c.code == code)


def _load(file: str) -> dict[str, Table]:
    raw = yaml.safe_load((CONTRACT_DIR / file).read_text(encoding="utf-8"))
    raw.pop("rules", None)
    tables = {}
    for name, spec in raw.items():
        cols = []
        for c in spec["columns"]:
            if c["type"] not in TYPES:
                raise ValueError(f"{file}: {name}.{c['code']}: unknown type {c['type']!r}")
            cols.append(
                Column(
                    code=c["code"],
                    label=c.get("label", c["code"]),
                    type=c["type"],
                    not_null=c.get("not_null", False),
                    optional=c.get("optional", False),
                    codes=tuple(c["codes"]) if "codes" in c else None,
                    aliases=c.get("aliases", {}),
                    min=c.get("min"),
                    max=c.get("max"),
                    pattern=c.get("pattern"),
                    no_number_form=c.get("no_number_form", False),
                    listed_in=c.get("listed_in"),
                )
            )
        tables[name] = Table(
            name, tuple(spec["key"]), tuple(cols), spec.get("mode", "replace") == "merge", spec.get("key_in")
        )
    return tables


@cache
def upload_tables() -> dict[str, Table]:
    """`setl` and `fee`, as institutions upload them."""
    return _load("upload_tables.yaml")


@cache
def reference_tables() -> dict[str, Table]:
    """The bureau's reference lists, by file stem (`institutions` for `reference/institutions.csv`)."""
    return _load("reference_tables.yaml")


@dataclass(frozen=True)
class RuleSpec:
    severity: str  # reject / warn
    zh: str


@cache
def rule_specs() -> dict[str, RuleSpec]:
    """Severity and Chinese message of every contract rule, keyed by rule name (without `:<column>`)."""
    raw = yaml.safe_load((CONTRACT_DIR / "upload_tables.yaml").read_text(encoding="utf-8"))["rules"]
    out = {}
    for name, spec in raw.items():
        if spec["severity"] not in ("reject", "warn"):
            raise ValueError(f"upload_tables.yaml: rule {name}: severity must be reject or warn")
        out[name] = RuleSpec(spec["severity"], spec["zh"])
    return out


def rule_spec(rule: str) -> RuleSpec:
    """The spec of a rule id such as `bad_decimal:pric`; unknown ids are rejections with their id as text."""
    return rule_specs().get(rule.split(":")[0], RuleSpec("reject", rule))
