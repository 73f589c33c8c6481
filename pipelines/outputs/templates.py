"""Where the editable templates live: `reports/templates/` (notice.docx, report.html.j2, charts.mplstyle)."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates"
