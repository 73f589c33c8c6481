"""Make GX's Data Docs pages load nothing from the internet.

GX's pages pull their styles and scripts from six public CDNs, and a logo from GX's own S3 bucket whose
address carries this data context's id: opened on a bureau workstation, every page would ask outside
servers for them (and fail on a closed network, leaving the page unstyled). After GX builds the site, the
remote stylesheets, scripts and images of each page and style sheet are replaced by local copies where set-up
installed one (Debian's Bootstrap 4 and jQuery, copied into the site so the folder can be zipped and sent on),
and dropped otherwise. The pages are static HTML, so they read fully without the dropped scripts (the
validation list on GX's own home page is the exception; `docs_index.py` writes the index to use instead).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

# what a page loads remotely, by the end of its address -> the local copy that stands in for it
LOCAL_COPIES = {
    "/bootstrap.min.css": Path("/usr/share/javascript/bootstrap4/css/bootstrap.min.css"),
    "/jquery-3.7.1.min.js": Path("/usr/share/javascript/jquery/jquery.min.js"),
    # Bootstrap's bundle carries Popper, so GX's separate popper.min.js is dropped
    "/bootstrap.min.js": Path("/usr/share/javascript/bootstrap4/js/bootstrap.bundle.min.js"),
}
# GX marks each expectation's status with Font Awesome 6 icons (Debian has only 4.7, whose names differ):
# written as plain characters instead, by a style sheet standing in for Font Awesome's
ICONS = (
    "icons.css",
    ".fas{font-style:normal;font-weight:bold}.fa-check-circle::before{content:'\\2714'}"
    ".fa-times::before{content:'\\2718'}.fa-question-circle::before{content:'?'}",
)
WRITTEN = {"/all.min.css": ICONS}
ASSETS = "static/offline"  # inside the site, beside GX's own static files

_REMOTE = r"""["'](https?:)?//[^"']*["']"""
_TAGS = re.compile(
    rf"<script\b[^>]*\bsrc\s*=\s*{_REMOTE}[^>]*>\s*</script>"
    rf"|<link\b[^>]*\bhref\s*=\s*{_REMOTE}[^>]*/?>"
    rf"|<img\b[^>]*\bsrc\s*=\s*{_REMOTE}[^>]*/?>",
    re.IGNORECASE,
)
_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*["']?(https?:)?//[^)]*\)""", re.IGNORECASE)  # a background image, in styles


def _stand_in(tag: str, url: str, page: Path, site: Path, copies: dict[str, str]) -> str:
    """The local tag for a remote one, or "" when there is no local copy (`copies`: address ending -> file in
    ASSETS)."""
    for ending, name in copies.items():
        if url.split("?")[0].endswith(ending):
            local = Path(*[".."] * (len(page.relative_to(site).parts) - 1), ASSETS, name).as_posix()
            if tag.lower().startswith("<link"):
                return f'<link rel="stylesheet" href="{local}">'
            return f'<script src="{local}"></script>'
    if tag.lower().startswith("<img"):  # GX's logo: its alt text instead
        alt = re.search(r"""\balt\s*=\s*["']([^"']*)["']""", tag, re.IGNORECASE)
        return alt.group(1) if alt else ""
    return ""


def localise(site: Path) -> None:
    """Rewrite every page and style sheet of the GX site at `site` to load nothing from the internet."""
    (site / ASSETS).mkdir(parents=True, exist_ok=True)
    copies = {}
    for ending, source in LOCAL_COPIES.items():
        if source.is_file():
            shutil.copyfile(source, site / ASSETS / source.name)
            copies[ending] = source.name
    for ending, (name, text) in WRITTEN.items():
        (site / ASSETS / name).write_text(text, encoding="utf-8")
        copies[ending] = name
    for page in [*site.rglob("*.html"), *site.rglob("*.css")]:
        text = page.read_text(encoding="utf-8")
        if page.suffix == ".html":
            text = _TAGS.sub(
                lambda m, p=page: _stand_in(m.group(0), _URL.search(m.group(0)).group(1), p, site, copies), text
            )
        page.write_text(_CSS_URL.sub("none", text), encoding="utf-8")
