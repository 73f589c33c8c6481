#!/usr/bin/env bash
# One-step set-up: a virtual environment at .venv with claimwatch and its dependencies, plus the
# system packages the outputs need (CJK fonts for charts; LibreOffice and poppler for PDF notices;
# Chromium for the report's browser test). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
quiet() { if [ -n "${CI:-}" ] || [ ! -t 1 ]; then "$@" >/tmp/claimwatch-setup.log 2>&1 || { cat /tmp/claimwatch-setup.log; return 1; }; else "$@"; fi; }

# system packages (Debian): CJK fonts for charts and notices, LibreOffice Writer for PDF notices, Bootstrap
# and jQuery for the Data Docs pages (copied into each run's output, read offline), poppler to look at PDFs,
# Chromium for the report's browser test. Skipped where apt is absent or we are not root;
# CLAIMWATCH_SYSTEM_PACKAGES="" skips them, or names another list.
SYSTEM_PACKAGES="${CLAIMWATCH_SYSTEM_PACKAGES-fonts-noto-cjk libreoffice-writer libjs-bootstrap4 libjs-jquery poppler-utils chromium}"
if [ -n "$SYSTEM_PACKAGES" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  missing=""
  for p in $SYSTEM_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "setup: installing system packages:$missing"
    quiet apt-get update -qq
    DEBIAN_FRONTEND=noninteractive quiet apt-get install -y -qq --no-install-recommends $missing
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
stamp=.venv/.claimwatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing claimwatch and its dependencies into .venv (about a minute the first time)"
  quiet .venv/bin/pip install --disable-pip-version-check -q --upgrade pip
  quiet .venv/bin/pip install --disable-pip-version-check -q -e '.[dev,notebook]'
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/claimwatch)"
