"""Run the declared rules (`rules.yaml`) over a window's visits and netted fee lines; return findings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl
import yaml

from detectors.base import CLEAR, as_findings, detached, empty_findings, visit_where
from detectors.rules.checks import CHECKS, SCOPES, RuleInputs

RULES_PATH = Path(__file__).with_name("rules.yaml")
SCENARIO_MED_TYPES = {"门诊": ["11", "13", "14"], "住院": ["21"], "购药": ["41"]}
FIELDS = ("id", "name", "check", "kind", "result_type", "scenario", "params", "basis", "clause", "amount")


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    check: str
    kind: str
    result_type: str
    scenario: tuple[str, ...]
    params: dict
    basis: str
    clause: str
    amount: str
    enabled: bool = True

    @property
    def med_types(self) -> list[str]:
        return [m for s in self.scenario for m in SCENARIO_MED_TYPES[s]]


@cache
def load_rules(path: Path = RULES_PATH) -> tuple[Rule, ...]:
    rules = []
    for raw in yaml.safe_load(path.read_text(encoding="utf-8")):
        missing = [f for f in FIELDS if f not in raw]
        if missing:
            raise ValueError(f"{path.name}: rule {raw.get('id', '?')} lacks {', '.join(missing)}")
        if raw["check"] not in CHECKS:
            raise ValueError(f"{path.name}: rule {raw['id']}: unknown check {raw['check']!r}")
        if raw["result_type"] not in ("明确违规", "可疑"):
            raise ValueError(f"{path.name}: rule {raw['id']}: result_type must be 明确违规 or 可疑")
        unknown = set(raw["scenario"]) - set(SCENARIO_MED_TYPES)
        if unknown:
            raise ValueError(f"{path.name}: rule {raw['id']}: unknown scenario {', '.join(unknown)}")
        rules.append(
            Rule(
                **{f: raw[f] for f in FIELDS if f != "scenario"},
                scenario=tuple(raw["scenario"]),
                enabled=raw.get("enabled", True),
            )
        )
    return tuple(rules)


def scope_of(rule: Rule) -> str:
    return SCOPES.get(rule.check, "lines")


def run_rules(
    inputs: RuleInputs, rules: tuple[Rule, ...] | None = None, scopes: tuple[str, ...] | None = None
) -> pl.DataFrame:
    """Findings of every enabled rule (of the given scopes, default all); one row per rule and visit."""
    out = []
    visits = inputs.visits.select(*visit_where(), "med_type")
    scoped: dict[tuple[tuple[str, ...], bool], RuleInputs] = {}
    for rule in rules or load_rules():
        if not rule.enabled or (scopes is not None and scope_of(rule) not in scopes):
            continue
        key = (tuple(rule.med_types), scope_of(rule) == "visits")
        if key not in scoped:
            types = pl.col("med_type").is_in(key[0])
            scoped[key] = RuleInputs(
                lines=inputs.lines.filter(types),
                # only visit-scoped checks read the visits; the others get none rather than a copy
                visits=inputs.visits.filter(types) if key[1] else inputs.visits.head(0),
                catalog=inputs.catalog,
                pairs=inputs.pairs,
            )
        hits = CHECKS[rule.check](scoped[key], rule.params)
        if hits.is_empty():
            continue
        where = visits.filter(pl.col("setl_id").is_in(hits["setl_id"].implode()))
        hits = hits.join(where, on="setl_id", how="inner").with_columns(
            score=pl.lit(1.0 if rule.result_type == CLEAR else 0.7)
        )
        out.append(as_findings(hits, source=rule.id, source_name=rule.name, kind="规则", result_type=rule.result_type))
    return detached(pl.concat(out)) if out else empty_findings()
