"""GX's Data Docs pages are rewritten to load nothing from the internet, with or without the local copies."""

from __future__ import annotations

import re

import pytest

from data_contracts import docs_offline

PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<link rel="stylesheet" href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css">
<link rel="shortcut icon" href="../static/images/favicon.ico" type="image/x-icon"/>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://cdn.jsdelivr.net/npm/vega@5">
</script>
<style>.dark { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/x.png') 0 0; }</style>
</head><body><a href="https://greatexpectations.io/"><img src="https://s3.amazonaws.com/logo.png?id=ctx" alt="GX"></a>
<script>$(function () {});</script></body></html>"""


def _site(tmp_path):
    site = tmp_path / "local_site"
    (site / "validations").mkdir(parents=True)
    (site / "validations" / "page.html").write_text(PAGE, encoding="utf-8")
    (site / "static").mkdir()
    (site / "static" / "styles.css").write_text("h1 { background: url(https://a.example/b.png) }", encoding="utf-8")
    return site


@pytest.mark.parametrize("installed", [True, False])
def test_remote_resources_become_local_copies_or_go(tmp_path, monkeypatch, installed):
    copies = {}
    for ending, name in [("/bootstrap.min.css", "bootstrap.min.css"), ("/jquery-3.7.1.min.js", "jquery.min.js")]:
        copies[ending] = tmp_path / "debian" / name
        if installed:
            copies[ending].parent.mkdir(exist_ok=True)
            copies[ending].write_text(f"/* {name} */", encoding="utf-8")
    monkeypatch.setattr(docs_offline, "LOCAL_COPIES", copies)
    site = _site(tmp_path)
    docs_offline.localise(site)
    page = (site / "validations" / "page.html").read_text(encoding="utf-8")
    style = (site / "static" / "styles.css").read_text(encoding="utf-8")
    loaded = re.findall(r"<(?:link|script|img)\b[^>]*\b(?:href|src)=\"([^\"]+)\"|url\(([^)]*)\)", page + style)
    assert not [u for pair in loaded for u in pair if "//" in u]  # nothing from the internet
    assert 'href="https://greatexpectations.io/"' in page  # a link the reader may follow is left alone
    assert "GX</a>" in page  # the logo becomes its alt text
    assert '<link rel="stylesheet" href="../static/offline/icons.css">' in page  # always written
    assert "favicon.ico" in page and "$(function" in page  # local references and inline scripts stay
    local = ['href="../static/offline/bootstrap.min.css"', 'src="../static/offline/jquery.min.js"']
    assert all((f in page) is installed for f in local)
    assert (site / "static" / "offline" / "bootstrap.min.css").is_file() is installed
