#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv in the repo (once, and again whenever
# requirements.txt or pyproject.toml change), then runs what was asked.
#   ./dev.sh demo [asc demo options]   the whole pipeline on the generated default dataset
#   ./dev.sh test [pytest options]     the docs site (mkdocs build --strict), then the test suite
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
  # the optional extras (pyproject.toml), pinned, without moving any pin of requirements.txt:
  # ray for `asc grid --engine ray` and its tests
  "$venv/bin/python" -m pip install --quiet --no-build-isolation -c requirements.txt -e ".[ray]"
  echo "$want" > "$venv/.installed"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cmd="${1:-}"; shift || true

# The firmware builds' toolchains: Debian packages only, never a downloaded toolchain (cmake builds
# `asc bundle` folders; ccache keeps the bundle tests' TFLM objects between runs). Installed when
# missing and this runs as root (as CI does); otherwise the firmware tests and stages say what is
# missing and skip.
debian_packages=(g++ make patch cmake ccache gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm)
ensure_toolchains() {
  command -v dpkg-query >/dev/null || return 0
  local missing=()
  for pkg in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "dev.sh: installing Debian packages for the firmware builds: ${missing[*]}" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
      # one package the mirror lacks must not cost the others: each on its own
      for pkg in "${missing[@]}"; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2 \
          || echo "dev.sh: could not install $pkg; the tests that need it skip" >&2
      done
    fi
  else
    echo "dev.sh: missing Debian packages ${missing[*]} (firmware builds skip): sudo apt-get install ${missing[*]}" >&2
  fi
}
# The docs site (mkdocs.yml, docs/): a broken link, a missing anchor or page fails the build (strict).
# Built into a temporary folder of its own, removed afterwards, so no file of the checkout changes.
build_docs() {
  local site log
  site=$(mktemp -d)
  if ! log=$(NO_MKDOCS_2_WARNING=1 "$venv/bin/mkdocs" build --strict --config-file mkdocs.yml --site-dir "$site" 2>&1); then
    rm -rf "$site"
    echo "$log" >&2
    echo "dev.sh: the docs site does not build (mkdocs build --strict, above): fix the link, anchor or page it names" >&2
    exit 1
  fi
  rm -rf "$site"
}
case "$cmd" in
  demo) ensure_toolchains; exec "$venv/bin/asc" demo "$@" ;;
  test) build_docs; ensure_toolchains; exec "$venv/bin/python" -m pytest -q "$@" ;;
  asc)  exec "$venv/bin/asc" "$@" ;;
  *) echo "usage: ./dev.sh demo|test|asc ..." >&2; exit 2 ;;
esac
