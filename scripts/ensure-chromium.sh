#!/usr/bin/env bash
# Makes sure Debian's headless-capable Chromium is installed at /usr/bin/chromium, with a Chinese
# font so the agent console renders as agents see it, for the browser tests of the console. Installs
# from the distribution's packages with apt-get (never a browser download); runs `apt-get update`
# only when a package cannot be found otherwise.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=()
[[ -x "$CHROMIUM" ]] || PACKAGES+=(chromium)
if ! { command -v fc-list >/dev/null 2>&1 && [[ -n "$(fc-list :lang=zh 2>/dev/null)" ]]; }; then
  PACKAGES+=(fonts-wqy-microhei)
fi
if [[ ${#PACKAGES[@]} -eq 0 ]]; then
  exit 0
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
  else
    echo "ensure-chromium: this user cannot install packages; run as root: apt-get install -y ${PACKAGES[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}"; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi

if [[ ! -x "$CHROMIUM" ]]; then
  echo "ensure-chromium: apt-get finished but $CHROMIUM is still missing" >&2
  exit 1
fi
