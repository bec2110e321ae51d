#!/usr/bin/env bash
# The Isaac Lab backend's Python 3.12 venv: built once and cached outside the clone (~8 GB, a few minutes from the
# package registry), then rho installed into it. Prints the venv's path on stdout (its only line there; progress and
# pip's output go to stderr), so `VENV=$(bash .ci/isaaclab-venv.sh)` works. Python 3.12: $PY312 if it runs, else the
# first working one .ci/find-python312.sh finds; without one it fails saying what to install.
#
# Why not `pip install -e '.[isaaclab]'`: Isaac Lab 3.0 pins mujoco 3.12 (through newton 1.6.1), transformers 5.10
# and, through hydra-core, omegaconf<2.4, while rho's default install needs mujoco>=3.17 (mujoco.batch) and
# omegaconf>=2.4 (Literal fields). rho goes in with --no-deps on top of Isaac Lab's set, plus omegaconf 2.4
# (hydra-core's cap only matters to Isaac Lab's hydra CLI, which rho does not use).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RHO_ISAACLAB_VENV:-$HOME/.cache/rho/isaaclab-venv}
PKGS=(isaaclab==3.0.0 "omegaconf>=2.4,<2.5" pytest pytest-timeout)
STAMP="${PKGS[*]}"
# Rebuild unless the cached venv has the current stamp and its interpreter still runs.
if [ ! -f "$VENV/.rho-stamp" ] || [ "$(cat "$VENV/.rho-stamp")" != "$STAMP" ] \
   || ! "$VENV/bin/python" --version >/dev/null 2>&1; then
  if ! PY312=$(bash .ci/find-python312.sh); then
    echo "error: cannot build the Isaac Lab venv: it needs Python 3.12 (see above). Install it (e.g. \`pyenv install 3.12\`)" >&2
    echo "       or set PY312=/path/to/python3.12, then run this again." >&2
    exit 1
  fi
  echo "building the Isaac Lab venv in $VENV with $PY312 (once; cached)" >&2
  rm -rf "$VENV"
  "$PY312" -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[0]}" pytest pytest-timeout >&2
  { "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[1]}" 2>&1 | grep -v "hydra-core" || true; } >&2
  echo "$STAMP" > "$VENV/.rho-stamp"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . >&2
echo "$VENV"
