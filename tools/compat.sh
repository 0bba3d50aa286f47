#!/usr/bin/env bash
# The whole test suite on the oldest versions pyproject.toml declares (docs/compatibility.md).
#
#   bash tools/compat.sh                      # builds /tmp/compat-venv, runs the suite there
#   bash tools/compat.sh -x tests/test_engine.py   # arguments after the script go to pytest
#
# Every ">=" lower bound of [project].dependencies becomes an "==" pin, so the bounds are
# exactly what this tests; the interpreter is the oldest Python of requires-python. The venv
# is rebuilt each run (COMPAT_VENV=DIR to put it elsewhere, COMPAT_PYTHON=... to choose the
# interpreter, COMPAT_REUSE=1 to bring an existing venv to the pins instead of rebuilding it);
# the global interpreter is never installed into.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${COMPAT_VENV:-/tmp/compat-venv}
start=$SECONDS

# The pins, from pyproject.toml (python >= 3.11 for tomllib: the host's interpreter).
PINS=$(python3 - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
python = re.fullmatch(r">=\s*(\d+\.\d+)", project["requires-python"]).group(1)
print(f"python=={python}")
for requirement in project["dependencies"]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)", requirement)
    if match is None:
        raise SystemExit(f"pyproject.toml: {requirement!r} has no plain '>=' lower bound to test")
    print(f"{match.group(1)}=={match.group(2)}")
PY
)
PYTHON_VERSION=$(sed -n 's/^python==//p' <<<"$PINS")

# The interpreter: COMPAT_PYTHON, else pythonX.Y on the PATH, else pyenv's.
find_python() {
  local candidate
  for candidate in ${COMPAT_PYTHON:-} "python$PYTHON_VERSION" "$HOME"/.pyenv/versions/"$PYTHON_VERSION".*/bin/python"$PYTHON_VERSION"; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  echo "tools/compat.sh: no Python $PYTHON_VERSION found (set COMPAT_PYTHON)" >&2
  exit 1
}
PYTHON=$(find_python)

if [ "${COMPAT_REUSE:-0}" = 1 ] && [ -x "$VENV/bin/python" ]; then
  echo "compat: reusing $VENV, brought to the pins below"
else
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# transformers 5 (an extra's test dependency, which declares no torch bound) refuses torch 2.3
{ grep -v '^python==' <<<"$PINS"; echo "transformers<5"; } > "$VENV/constraints.txt"
echo "compat: $("$VENV/bin/python" --version) in $VENV; pins: $(tr '\n' ' ' < "$VENV/constraints.txt")"
# The pins are constraints, so the extras' own dependencies resolve against them too.
"$VENV/bin/python" -m pip install -q -c "$VENV/constraints.txt" -e ".[dev]"
echo "compat: installed in $((SECONDS - start)) s"
"$VENV/bin/python" -m pip freeze --exclude-editable > "$VENV/freeze.txt"
grep -iE '^(torch|torchvision|captum|quantus|numpy|scipy|scikit-learn|matplotlib|tqdm)==' "$VENV/freeze.txt"

status=0
MPLBACKEND=Agg PYTHONPATH= "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=$?
echo "compat: finished in $((SECONDS - start)) s, pytest exit status $status; CPU time (user, system) of this shell, then of its children:"
times
exit "$status"
