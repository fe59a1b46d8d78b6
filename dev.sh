#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv in the repo (once, and again whenever
# requirements.txt or pyproject.toml change), then runs what was asked.
#   ./dev.sh demo [asc demo options]   the whole pipeline on the generated default dataset
#   ./dev.sh test [pytest options]     the test suite
#   ./dev.sh asc  <subcommand> ...     any asc command
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
  py=""
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      py=$cand; break
    fi
  done
  [ -n "$py" ] || { echo "dev.sh: Python 3.11 is required (python3.11 not found on PATH)" >&2; exit 1; }
  echo "dev.sh: installing the environment into $venv (first run only, a few minutes)" >&2
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r requirements.txt
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$venv/.installed"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cmd="${1:-}"; shift || true
case "$cmd" in
  demo) exec "$venv/bin/asc" demo "$@" ;;
  test) exec "$venv/bin/python" -m pytest -q "$@" ;;
  asc)  exec "$venv/bin/asc" "$@" ;;
  *) echo "usage: ./dev.sh demo|test|asc ..." >&2; exit 2 ;;
esac
