"""Fill the Word template with a composed notice, and turn documents into PDF with LibreOffice."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from docxtpl import DocxTemplate

from pipelines.outputs.safe_text import private_file
from pipelines.outputs.templates import TEMPLATES
from pipelines.progress import counted


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


PdfResult = tuple[list[Path], str | None]  # the PDFs made, and why some or none were made


def start_pdf(docs: list[Path], timeout_per_doc: float = 30.0) -> Callable[[], PdfResult]:
    """Start turning `docs` into PDFs beside them; returns `finish`, which waits for them (the caller may do
    other work in between) and returns (pdfs, why some or none were made).

    LibreOffice converts one document at a time per process (about 0.4 s a notice after a second's start),
    so the documents are shared among one process per core, each with its own profile.
    """
    exe = soffice()
    if not docs:
        return lambda: ([], None)
    if exe is None:
        return lambda: ([], "LibreOffice not installed: PDF notices skipped (set-up installs libreoffice-writer)")
    outdir = docs[0].parent
    workers = max(1, min(os.cpu_count() or 1, 4, len(docs)))
    shares = [docs[i::workers] for i in range(workers)]
    tmp = tempfile.mkdtemp(prefix="claimwatch-lo-")
    procs: list[subprocess.Popen] = []
    try:
        for i, share in enumerate(shares):
            cmd = [
                exe,
                f"-env:UserInstallation=file://{tmp}/profile{i}",
                "--headless",
                "--norestore",
                "--convert-to",
                "pdf",
                "--outdir",
                str(outdir),
                *map(str, share),
            ]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    except BaseException:  # nothing left running or behind when a process cannot be started
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    def finish() -> PdfResult:
        timed_out = False
        try:
            for proc, share in zip(procs, shares, strict=True):
                try:
                    proc.wait(timeout=60 + timeout_per_doc * len(share))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    timed_out = True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        pdfs = [d.with_suffix(".pdf") for d in docs if d.with_suffix(".pdf").is_file()]
        for p in pdfs:
            os.chmod(p, 0o600)
        missing = len(docs) - len(pdfs)
        if timed_out:
            return pdfs, f"LibreOffice timed out: {counted(missing, 'notice')} without PDF"
        return pdfs, (f"LibreOffice did not convert {counted(missing, 'notice')}" if missing else None)

    return finish
