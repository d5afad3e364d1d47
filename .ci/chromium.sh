#!/usr/bin/env bash
# Make Debian's headless-capable Chromium available at /usr/bin/chromium for the browser tests
# (Playwright drives it with executable_path=/usr/bin/chromium; no browser is ever downloaded).
# Idempotent: does nothing when it is already installed.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium.sh: present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: no $CHROMIUM and no apt-get; install Debian's chromium package" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo --preserve-env=DEBIAN_FRONTEND)
fi
export DEBIAN_FRONTEND=noninteractive

"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "chromium.sh: apt-get installed chromium but $CHROMIUM is missing" >&2
    exit 1
fi
echo "chromium.sh: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
