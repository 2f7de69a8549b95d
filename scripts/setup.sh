#!/usr/bin/env bash
# Create .venv (once) and install edgebert with its test extra from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extra=()
[ -d /opt/wheels ] && extra+=(--find-links /opt/wheels)   # the local torch==2.13.0 CPU wheel
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${extra[@]}" -e '.[test]'
