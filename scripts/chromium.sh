#!/usr/bin/env bash
# Make sure Debian's Chromium is installed (Playwright drives it for browser tests and screenshots)
# and print its version.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ -x /usr/bin/chromium ]] || scripts/apt-install.sh chromium
# Debian's /usr/bin/chromium wrapper prints a harmless shell warning on stderr; keep only the version.
/usr/bin/chromium --version 2>/dev/null
