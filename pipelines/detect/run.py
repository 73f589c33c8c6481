"""Wire the detectors over one window: statistical detectors, the isolation model, the rule library,
then scoring. Pure functions of the window frames and the config; the step stores what they return.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from detectors.institution_profile import model_scores, profile
from detectors.rules.checks import RuleInputs
from detectors.rules.engine import run_rules
from detectors.scoring import institution_risk, repeat_offender_uplift, visit_scores
from pipelines.detect.window import Window


@dataclass
class Detection:
    findings: pl.DataFrame
    visits: pl.DataFrame  # flagged visits with score, detectors, reasons, amount
    institutions: pl.DataFrame  # every active institution with risk_score and top_reasons


def visit_detector(name: str):
    """A detector module named in config.toml: `detectors/<name>.py` with `run(visits, cfg) -> findings`."""
    if not name.isidentifier():
        raise ValueError(f"config.toml: detector name {name!r} is not a module name")
    module = importlib.import_module(f"detectors.{name}")
    if not callable(getattr(module, "run", None)):
        raise ValueError(f"config.toml: detectors/{name}.py has no run(visits, cfg) function")
    return module


def detect(
    w: Window,
    cfg: dict,
    history: pl.DataFrame | None = None,
    carried: pl.DataFrame | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Detection:
    """`carried`: per-person rule findings still valid from last night for the persons whose lines are not in
    the window's slices (see incremental.py); None when the slices hold everyone. `say`: progress."""
    found = []
    for name in cfg["detectors"]["visit_level"]:
        say(f"{name} over {w.visits.height:,} visits")
        found.append(visit_detector(name).run(w.visits, cfg))
    # the rules see the lines a slice at a time (see window.py), the trace-coded lines together, the visits once
    rules = [] if carried is None else [w.keyed(carried)]
    for i in range(w.parts):  # the slice is read as the call's argument, so it is freed when the call returns
        say(f"rules over the persons' lines, slice {i + 1}/{w.parts} ({w.n_checked:,} lines in all)")
        rules.append(run_rules(RuleInputs(w.person_part(i), w.visits, w.catalog, w.pairs), scopes=("lines",)))
    say("rules over the drug trace codes settled more than once, and over the visits")
    trace = w.trace_lines()
    rules.append(run_rules(RuleInputs(trace, w.visits, w.catalog, w.pairs), scopes=("trace",)))
    rules.append(run_rules(RuleInputs(trace.head(0), w.visits, w.catalog, w.pairs), scopes=("visits",)))
    findings = pl.concat([*found, *rules])
    say(f"scoring {findings.height:,} findings and the institutions")
    scored = visit_scores(findings, w.visits)
    prof = profile(w.visits)
    model = model_scores(prof, cfg)
    inst = institution_risk(
        prof, scored, findings, model.select("fixmedins_code", "model_percentile"), w.complaints, cfg
    )
    inst = inst.join(model.select("fixmedins_code", "model_reason"), on="fixmedins_code", how="left").with_columns(
        top_reasons=pl.when(pl.col("model_reason").is_not_null() & (pl.col("model_percentile") >= 0.9))
        .then(pl.concat_str([pl.col("top_reasons"), pl.col("model_reason")], separator="; ", ignore_nulls=True))
        .otherwise(pl.col("top_reasons"))
        .fill_null("未发现异常")
    )
    if history is not None:
        inst = repeat_offender_uplift(inst, history, cfg)
    return Detection(w.unkeyed(findings), w.unkeyed(scored), inst)
