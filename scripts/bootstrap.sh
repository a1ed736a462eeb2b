#!/usr/bin/env bash
# Prepare the Python environment (.venv) from uv.lock, installing what is missing.
# Idempotent: a second run only checks. Needs Python >= 3.11 (Debian 12 ships 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
TOOLS=var/tools

die() { echo "error: $*" >&2; exit 1; }

apt_install() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    die "$1 is missing: install it with \`apt-get install -y $2\` (as root) and run this again"
  fi
  echo "installing $2 (apt-get)…" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $2 >/dev/null \
    || die "\`apt-get install $2\` failed; install it by hand and run this again"
}

PYTHON=${LIFTLEDGER_PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$(command -v "$candidate"); break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  apt_install "Python 3.11" "python3"
  PYTHON=$(command -v python3)
fi

uv_ok() { [ -x "$1" ] && [ "$("$1" --version 2>/dev/null | awk '{print $2}')" = "$UV_VERSION" ]; }
UV="$TOOLS/bin/uv"
if ! uv_ok "$UV"; then
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install "the Python venv module" "python3-venv"
  fi
  echo "installing uv $UV_VERSION into $TOOLS…" >&2
  "$PYTHON" -m venv "$TOOLS" || die "cannot create $TOOLS with $PYTHON -m venv"
  "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" \
    || die "cannot install uv $UV_VERSION from PyPI (is PyPI reachable?)"
fi

UV_PYTHON_DOWNLOADS=never "$UV" sync --frozen --python "$PYTHON" -q \
  || die "\`uv sync --frozen\` failed: see the messages above"
