#!/usr/bin/env bash
# Creates .venv with Python 3.10 and installs the pinned requirements. Idempotent: when the
# requirement files have not changed since the last successful install, it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.requirements.sha256"
REQUIREMENTS=(requirements/base.txt requirements/dev.txt requirements/constraints.txt)
wanted=$(cat "${REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1)

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
  exit 0
fi

find_python310() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return 0; fi
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys' >/dev/null 2>&1; then
    command -v python3.10; return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for dir in "$(pyenv root)"/versions/3.10*; do
      if [ -x "$dir/bin/python3.10" ]; then echo "$dir/bin/python3.10"; return 0; fi
    done
  fi
  for candidate in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! python=$(find_python310); then
    cat >&2 <<'MSG'
Python 3.10 is required (Rasa 3.6 runs on Python 3.8-3.10) and none was found.
Install it, then run the command again, e.g.:
  pyenv install 3.10        (with pyenv)
  apt-get install python3.10 python3.10-venv   (Debian/Ubuntu with python3.10 packages)
or point PYTHON at an interpreter: make setup PYTHON=/path/to/python3.10
MSG
    exit 1
  fi
  echo "Creating $VENV with $python"
  "$python" -m venv "$VENV"
fi

echo "Installing pinned requirements into $VENV (first time: about 2-3 minutes)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r requirements/base.txt -r requirements/dev.txt -c requirements/constraints.txt
echo "$wanted" > "$STAMP"
