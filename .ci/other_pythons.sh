#!/usr/bin/env bash
# CI, after the full suite: on every other supported Python found on this machine, the
# README's install in a fresh venv of that version (.venvs/X.Y), then the fast tests and
# the self-check of one NumPy unit and one torch unit. A version that is absent is skipped
# with one line. Exit status 1 if any version present failed.
set -uo pipefail
cd "$(dirname "$0")/.."

# Every version pyproject.toml's requires-python allows (tests/test_packaging.py checks).
SUPPORTED="3.11 3.12 3.13 3.14"
UNITS="linear_algebra attention"
TORCH=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

# The version the full suite ran on (the README's `python3`); checked there already.
main=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)

# A working interpreter for version $1: pythonX.Y on PATH, else pyenv's newest X.Y.Z
# (pyenv's shim for a version that is installed but not selected exits 127).
find_python() {
  local v=$1 p
  local is_v="import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$v'.split('.'))))"
  if p=$(command -v "python$v") && "$p" -c "$is_v" 2>/dev/null; then
    echo "$p"; return 0
  fi
  if command -v pyenv >/dev/null; then
    p=$(pyenv versions --bare 2>/dev/null | grep -E "^${v//./\\.}\.[0-9]+$" | sort -V | tail -n 1)
    p="$(pyenv root)/versions/$p/bin/python$v"
    if [ -x "$p" ] && "$p" -c "$is_v" 2>/dev/null; then
      echo "$p"; return 0
    fi
  fi
  return 1
}

failed=""
summary=""
for v in $SUPPORTED; do
  if [ "$v" = "$main" ]; then continue; fi
  if ! py=$(find_python "$v"); then
    echo "other Pythons: python$v not found, skipped"
    continue
  fi
  venv=.venvs/$v
  echo "=== Python $v ($py): install, fast tests, selfcheck $UNITS"
  rm -rf "$venv"
  t0=$SECONDS
  # The README's install, with this interpreter in place of python3. Most of the time goes
  # to torch: where no CPU-only wheel is at hand for this version, pip takes PyPI's CUDA
  # build (about 3 GB of wheels, a 5.4 GB venv; README: "Which PyTorch you get").
  if ! { "$py" -m venv "$venv" && "$venv/bin/pip" install -q "$TORCH" && "$venv/bin/pip" install -q -e '.[dev]'; }; then
    failed="$failed $v(install)"; summary="$summary\n$v: install failed"; continue
  fi
  t1=$SECONDS
  HF_HUB_OFFLINE=1 "$venv/bin/python" -m pytest -m "not slow" -n 2
  tests=$?
  t2=$SECONDS
  # One torch thread per kernel, as the test suite grades (tests/conftest.py): with two on a
  # busy 2-core machine, OpenMP spinning makes attention's tiled-vs-naive timing ratio fail
  # on every Python and torch build alike.
  # shellcheck disable=SC2086  # UNITS is a list
  HF_HUB_OFFLINE=1 LLMLABS_THREADS=1 "$venv/bin/llmlabs" selfcheck $UNITS
  check=$?
  t3=$SECONDS
  line="$v: install $((t1 - t0)) s, fast tests $((t2 - t1)) s (exit $tests), selfcheck $((t3 - t2)) s (exit $check)"
  summary="$summary\n$line"
  if [ "$tests" -ne 0 ] || [ "$check" -ne 0 ]; then
    failed="$failed $v"
    echo "$line; its venv is kept in $venv"
  else
    rm -rf "$venv"  # several GB with torch; every run starts from a fresh one anyway
  fi
done

if [ -n "$summary" ]; then echo -e "=== Other Pythons (the full suite ran on ${main}):$summary"; fi
if [ -n "$failed" ]; then
  echo "other Pythons failed:$failed"
  exit 1
fi
