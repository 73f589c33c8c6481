"""The output folder holds one run's outputs: a reused `--out` loses what the last run wrote and this one did not,
keeps files claimwatch did not write, and a failed run leaves the previous outputs as they were."""

from __future__ import annotations

import json

import pytest

import pipelines.nightly as nightly
from pipelines.nightly import NightlyParams, run_nightly
from pipelines.outputs.publish import PUBLISHED, publish, run_folder


def test_publish_replaces_the_last_runs_outputs_and_keeps_other_files(tmp_path):
    out = tmp_path / "out"
    (out / "notices").mkdir(parents=True)
    (out / "notices" / "H1.docx").write_text("yesterday")
    (out / "quarantine").mkdir()
    (out / "quarantine" / "H2.xlsx").write_text("yesterday's send-back")
    (out / "report.html").write_text("yesterday")
    (out / "my_notes.txt").write_text("the analyst's")
    (out / PUBLISHED).write_text(json.dumps(["notices", "quarantine", "report.html"]))
    (run_folder(out, "killed-run") / "notices").mkdir(parents=True)  # left by a run killed mid-way
    work = run_folder(out, "r2")
    (work / "notices").mkdir(parents=True)
    (work / "notices" / "H3.docx").write_text("tonight")
    (work / "report.html").write_text("tonight")
    assert publish(work, out) == ["notices", "report.html"]
    assert sorted(p.name for p in out.iterdir()) == [PUBLISHED, "my_notes.txt", "notices", "report.html"]
    assert [p.name for p in (out / "notices").iterdir()] == ["H3.docx"]
    assert (out / "report.html").read_text() == "tonight" and (out / "my_notes.txt").read_text() == "the analyst's"
    assert json.loads((out / PUBLISHED).read_text()) == ["notices", "report.html"]


def test_a_reused_output_folder_holds_only_the_last_runs_outputs(small_inbox, tmp_path):
    db, out = tmp_path / "w.duckdb", tmp_path / "out"
    first = run_nightly(NightlyParams(small_inbox, db, out))
    assert (out / "quarantine").is_dir() and any((out / "quarantine").iterdir())  # the first night refused rows
    (out / "notices" / "H99999999999.docx").write_text("a notice no run of this cycle drafted")
    (out / "my_notes.txt").write_text("the analyst's")
    second = run_nightly(NightlyParams(small_inbox, db, out))  # nothing new: nothing refused tonight
    assert second["rows"]["fee"]["quarantined"] == 0 and first["rows"]["fee"]["quarantined"] > 0
    assert not (out / "quarantine").exists()  # last night's send-back workbooks are not sent again
    assert not (out / "notices" / "H99999999999.docx").exists()
    assert (out / "my_notes.txt").read_text() == "the analyst's"
    assert json.loads((out / "run_summary.json").read_text())["run_id"] == second["run_id"]
    assert not list(out.glob(".claimwatch-run-*"))


def _files(out):
    """Every output file's bytes but the summary's."""
    return {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "run_summary.json"}


def test_a_failed_run_leaves_the_previous_outputs_and_says_why(small_inbox, tmp_path, monkeypatch):
    db, out = tmp_path / "w.duckdb", tmp_path / "out"
    first = run_nightly(NightlyParams(small_inbox, db, out))
    before = _files(out)

    def broken_report(ctx):
        raise RuntimeError("the report could not be drawn")

    monkeypatch.setattr(nightly, "STEPS", [*nightly.STEPS[:-1], ("report", broken_report)])
    with pytest.raises(RuntimeError):
        run_nightly(NightlyParams(small_inbox, db, out))
    assert _files(out) == before
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "failed" and "the report could not be drawn" in summary["error"]
    assert summary["run_id"] != first["run_id"] and summary["outputs"]["files"] == []
    assert not list(out.glob(".claimwatch-run-*"))


def test_names_in_the_record_never_reach_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "keep.txt"
    outside.write_text("outside the output folder")
    (out / PUBLISHED).write_text(json.dumps(["../keep.txt", "/etc/passwd", "..", ""]))
    work = run_folder(out, "r")
    work.mkdir()
    (work / "report.html").write_text("tonight")
    publish(work, out)
    assert outside.read_text() == "outside the output folder"


def test_outputs_that_cannot_be_published_are_reported_with_where_they_are(small_inbox, tmp_path, monkeypatch):
    from pipelines.outputs.publish import OutputsNotPublished

    def full_disk(work, out):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nightly, "publish", full_disk)
    with pytest.raises(OutputsNotPublished, match="the warehouse was updated, but tonight's outputs could not"):
        run_nightly(NightlyParams(small_inbox, tmp_path / "w.duckdb", tmp_path / "out"))
    assert (tmp_path / "w.duckdb").is_file()
    assert len(list((tmp_path / "out").glob(".claimwatch-run-*/report.html"))) == 1


def test_a_folder_without_a_record_loses_the_outputs_an_older_version_left(tmp_path):
    out = tmp_path / "out"
    (out / "quarantine").mkdir(parents=True)
    (out / "quarantine" / "H2.xlsx").write_text("a send-back workbook of an older version's night")
    (out / "overpayment_estimates.csv").write_text("old")
    (out / "my_notes.txt").write_text("the analyst's")
    work = run_folder(out, "r")
    work.mkdir()
    (work / "report.html").write_text("tonight")
    publish(work, out)
    assert sorted(p.name for p in out.iterdir()) == [PUBLISHED, "my_notes.txt", "report.html"]


def test_every_output_a_night_writes_is_known_without_a_record(small_night):
    from pipelines.outputs.publish import OUTPUT_NAMES

    written = {p.name for p in small_night[2].iterdir()} - {PUBLISHED, "run_summary.json"}
    assert written <= set(OUTPUT_NAMES), written - set(OUTPUT_NAMES)
