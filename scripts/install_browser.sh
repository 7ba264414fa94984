#!/usr/bin/env bash
# scripts/install_browser.sh — Debian's Chromium for the browser test (tests/test_demo.py drives it
# with Playwright). Playwright's own browser download is not reachable here; the OS packages are.
# Does nothing when /usr/bin/chromium exists; uses sudo unless run as root.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
/usr/bin/chromium --version
