"""`claimwatch generate`: write a synthetic inbox (uploads + reference) and its ground truth beside it.

Layout written:
    INBOX/uploads/*.{csv,xlsx,parquet}     one file per institution, day (week for pharmacies) and table
    INBOX/reference/*.csv                  the bureau's lists
    INBOX.truth/                           labels, expected quarantine, next delivery (never inside INBOX)
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from data_contracts.contract import upload_tables
from pipelines.synth import anomalies, defects, tables
from pipelines.synth import claims as care
from pipelines.synth.district import ITEM_PAIRS, ITEMS, REGIONS, item
from pipelines.synth.population import _names, institutions, persons
from pipelines.synth.scales import SCALES

DEFAULT_END = date(2026, 10, 31)


@dataclass
class Generated:
    inbox: Path
    truth: Path
    files: int
    setl_rows: int
    fee_rows: int
    anomalous_institutions: int
    labelled_visits: int


def truth_dir(inbox: Path) -> Path:
    return inbox.parent / f"{inbox.name}.truth"


def _write(path: Path, f: defects.UploadFile, table: str) -> None:
    if f.raw is not None:
        path.write_bytes(f.raw)
        return
    frame = f.frame
    if f.chinese_headers:
        labels = {c.code: c.label for c in upload_tables()[table].columns}
        frame = frame.rename({c: labels[c] for c in frame.columns if c in labels})
    if f.fmt == "parquet":
        frame.write_parquet(path)
    elif f.fmt == "xlsx":
        frame.write_excel(path, autofit=False)
    else:
        buf = io.StringIO()
        frame.write_csv(buf)
        path.write_bytes(buf.getvalue().encode(f.encoding))


def reference(
    rng: np.random.Generator, inst: pl.DataFrame, outdir: Path, end: date, labelled_codes: list[str], setl: pl.DataFrame
) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    inst.write_csv(outdir / "institutions.csv")
    pl.DataFrame(
        [
            {
                "med_list_codg": i.codg,
                "med_list_name": i.name,
                "list_type": i.list_type,
                "med_chrgitm_type": i.chrgitm_type,
                "chrgitm_lv": i.lv,
                "pric_uplmt_amt": i.uplmt,
                "lmt_gend": i.gend,
                "lmt_age_min": i.age_min,
                "lmt_age_max": i.age_max,
                "max_cnt_per_day": i.max_cnt_day,
                "max_prd_days": i.max_prd_days,
                "max_cnt_per_period": i.max_cnt_period,
                "period_days": i.period_days,
            }
            for i in ITEMS.values()
        ]
    ).write_csv(outdir / "catalog.csv")
    pl.DataFrame(
        [{"main_codg": item(m).codg, "sub_codg": item(s).codg, "window": w, "note": n} for m, s, w, n in ITEM_PAIRS]
    ).write_csv(outdir / "item_pairs.csv")
    n_insp = max(8, 3 * len(REGIONS))
    names = _names(rng, n_insp)
    insp = pl.DataFrame(
        {
            "inspector_id": [f"JC{i + 1:03d}" for i in range(n_insp)],
            "inspector_name": names.tolist(),
            "cert_no": [f"冀医保执{1303020000 + 37 * i}" for i in range(n_insp)],
            "region": [REGIONS[i % len(REGIONS)] for i in range(n_insp)],
        }
    )
    insp.write_csv(outdir / "inspectors.csv")
    codes = inst["fixmedins_code"].to_list()
    pl.DataFrame(
        {
            "inspector_id": insp["inspector_id"].sample(3, seed=int(rng.integers(1 << 31))).to_list(),
            "fixmedins_code": list(rng.choice(codes, 3, replace=False)),
            "reason": ["近亲属在该机构任职", "曾在该机构任职", "利害关系"],
        }
    ).write_csv(outdir / "conflicts.csv")
    targets = list(rng.choice(labelled_codes, 2, replace=False)) + list(rng.choice(codes, 2, replace=False))
    # the newest complaint is a patient's own, about the institution where they were seen most (their visits are
    # pulled on site); the others name no one
    seen = setl.filter(pl.col("fixmedins_code") == targets[0])["psn_no"].value_counts(sort=True)
    pl.DataFrame(
        {
            "complaint_id": [f"TS2026{k + 1:04d}" for k in range(4)],
            "received_date": [(end - timedelta(days=d)).isoformat() for d in (3, 12, 25, 60)],
            "fixmedins_code": targets,
            "psn_no": [seen["psn_no"][0] if seen.height else "", "", "", ""],
            "channel": ["12393热线", "来信", "网络平台", "来访"],
            "summary": ["反映该机构存在虚开检查项目问题", "反映药店以药换物、串换药品", "反映重复收费", "反映挂床住院"],
        }
    ).write_csv(outdir / "complaints.csv")


class NotSynthetic(ValueError):
    """A folder holding files the generator did not write: it is never replaced."""


def check_replaceable(folder: Path, marker: Path, what: str) -> None:
    """Refuse to replace `folder` unless it is new, empty, or was written by claimwatch (`marker` exists)."""
    if folder.exists() and any(folder.iterdir()) and not marker.exists():
        raise NotSynthetic(
            f"{folder} holds files that {what} did not write, so it is not replaced: choose an empty or new folder"
        )


def generate(out: Path, seed: int = 7, scale: str = "small", end: date = DEFAULT_END, progress=None) -> Generated:
    """Write the inbox at `out` and its truth at `out.truth`. Both are replaced if an earlier `generate` wrote them;
    a folder with other files (a real inbox) raises NotSynthetic and is left as it is."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    check_replaceable(out, truth_dir(out), "`claimwatch generate`")
    say = progress or (lambda msg: None)
    sc = SCALES[scale]
    rng = np.random.default_rng(seed)
    start = care.window_start(end, sc.days)
    inst = institutions(rng, sc)
    people = persons(rng, sc)
    c = care.Claims(start=start, days=sc.days, levels=dict(inst.select("fixmedins_code", "hosp_lv").iter_rows()))
    say("outpatient visits")
    care.outpatient(rng, c, inst, people, sc)
    say("inpatient stays")
    care.inpatient(rng, c, inst, people, sc)
    say("pharmacy purchases")
    care.pharmacy(rng, c, inst, people, sc)
    care.refunds(rng, c)
    say("injecting anomalies")
    plan = anomalies.inject(rng, c, inst, people)
    setl, fee = tables.build(c, people, inst, end)

    labels = pl.DataFrame(c.labels, schema={"vid": pl.Int64, "pattern": pl.String}, orient="row").unique()
    labels = labels.join(setl.select("vid", "setl_id", "fixmedins_code", "med_type"), on="vid").drop("vid")
    labelled = set(labels["setl_id"])

    files: dict[tuple[str, str, str], defects.UploadFile] = {}
    for table, frame in (("setl", setl), ("fee", fee)):
        for (code, day), part in frame.partition_by(["fixmedins_code", "file_date"], as_dict=True).items():
            files[(code, day, table)] = defects.UploadFile(part.drop("vid", "file_date"))
    say("injecting defective input")
    expected, next_delivery = defects.inject(rng, files, labelled, inst)

    for d in (out, truth_dir(out)):
        if d.exists():
            shutil.rmtree(d)
    uploads = out / "uploads"
    uploads.mkdir(parents=True)
    say(f"writing {len(files)} upload files")
    for (code, day, table), f in files.items():
        _write(uploads / (f.name or defects.file_name(code, day, table, f.fmt)), f, table)
    reference(rng, inst, out / "reference", end, sorted(plan), setl)

    truth = truth_dir(out)
    (truth / "next_delivery" / "uploads").mkdir(parents=True)
    for name, f in next_delivery.items():
        _write(truth / "next_delivery" / "uploads" / name, f, name.rsplit("_", 1)[1].split(".")[0])
    # labelled visits whose rows are refused at load are not expected among the findings
    refused = {r["record_id"] for r in expected.rows if r["table"] == "setl" and r["expected"] == "quarantine"}
    labels.filter(~pl.col("setl_id").is_in(list(refused))).sort("fixmedins_code", "setl_id", "pattern").write_csv(
        truth / "labels.csv"
    )
    pl.DataFrame(
        {
            "fixmedins_code": inst["fixmedins_code"],
            "fixmedins_type": inst["fixmedins_type"],
            "anomalous": [code in plan for code in inst["fixmedins_code"]],
            "patterns": [";".join(plan.get(code, [])) for code in inst["fixmedins_code"]],
        }
    ).write_csv(truth / "institutions.csv")
    pl.DataFrame(expected.files, schema=["file", "expected", "rule"], orient="row").write_csv(truth / "files.csv")
    pl.DataFrame(
        expected.rows, schema=["file", "table", "row_number", "record_id", "expected", "rule"], orient="row"
    ).write_csv(truth / "rows.csv")
    (truth / "README.txt").write_text(
        f"Ground truth for the synthetic inbox {out.name} (seed {seed}, scale {scale}, {start}..{end}).\n"
        "labels.csv: injected anomalous visits; institutions.csv: which institutions carry which patterns;\n"
        "files.csv / rows.csv: what the loader must reject, quarantine or count as duplicate;\n"
        "next_delivery/uploads: a later delivery holding an identical resend, a corrected fee file and a corrected\n"
        "settlement file (the fee lines refused for want of its settlements then load).\n",
        encoding="utf-8",
    )
    return Generated(out, truth, len(files), setl.height, fee.height, len(plan), labels["setl_id"].n_unique())
