#!/usr/bin/env bash
# Proves that a plain `pip install .` (build isolation on) works in a fresh virtualenv, then runs
# the Python tests against that installed package.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "==> fresh virtualenv, pip install .[test]"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$here[test]"
echo "==> pytest"
cd "$here"
"$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider
