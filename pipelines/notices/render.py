"""Fill the Word template with a composed notice, and turn documents into PDF with LibreOffice."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from docxtpl import DocxTemplate

from pipelines.outputs.safe_text import private_file

TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates"


def template_path() -> Path:
    """`reports/templates/notice.docx`, or the bureau's own copy named by $CLAIMWATCH_NOTICE_TEMPLATE."""
    path = Path(os.environ.get("CLAIMWATCH_NOTICE_TEMPLATE", TEMPLATES / "notice.docx"))
    if not path.is_file():
        raise FileNotFoundError(f"notice template not found: {path}")
    return path


def render_docx(context: dict, path: Path) -> Path:
    doc = DocxTemplate(template_path())
    doc.render(context, autoescape=True)  # text from uploads is escaped, never read as markup
    doc.save(private_file(path))
    return path


def soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def to_pdf(docs: list[Path], timeout_per_doc: float = 30.0) -> tuple[list[Path], str | None]:
    """PDFs beside `docs` (one LibreOffice run for all); returns (pdfs, why none were made)."""
    exe = soffice()
    if not docs:
        return [], None
    if exe is None:
        return [], "LibreOffice not installed: PDF notices skipped (set-up installs libreoffice-writer)"
    outdir = docs[0].parent
    with tempfile.TemporaryDirectory(prefix="claimwatch-lo-") as profile:
        cmd = [
            exe,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
            str(outdir),
            *map(str, docs),
        ]
        try:
            subprocess.run(cmd, capture_output=True, timeout=60 + timeout_per_doc * len(docs), check=False)
        except subprocess.TimeoutExpired:
            return [], "LibreOffice timed out converting the notices to PDF"
    pdfs = [d.with_suffix(".pdf") for d in docs if d.with_suffix(".pdf").is_file()]
    for p in pdfs:
        os.chmod(p, 0o600)
    missing = len(docs) - len(pdfs)
    return pdfs, (f"LibreOffice did not convert {missing} notice(s)" if missing else None)
