# Sourced by scripts/run.sh and scripts/test.sh: make ./.venv and install the package with its test extra,
# again whenever pyproject.toml's content changes. Needs only python3 (>= 3.11) with venv.
set -euo pipefail
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Spooled needs Python 3.11 or newer as \`$PY\` (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The stamp holds pyproject.toml's hash, not a time: a fresh checkout or worktree whose pyproject.toml is only
# newer (git sets the time at checkout) does not reinstall into a venv that already has its dependencies.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  echo "$want" > .venv/.installed
fi
