#!/usr/bin/env bash
# The Isaac Lab backend's Python 3.12 venv: built once and cached outside the clone (~5 GB, a few minutes from the
# package registry), then rho installed into it. Prints the venv's path on its last line.
#
# Why not `pip install -e '.[isaaclab]'`: Isaac Lab 3.0 pins mujoco 3.12 (through newton 1.6.1), transformers 5.10
# and, through hydra-core, omegaconf<2.4, while rho's default install needs mujoco>=3.17 (mujoco.batch) and
# omegaconf>=2.4 (Literal fields). rho goes in with --no-deps on top of Isaac Lab's set, plus omegaconf 2.4
# (hydra-core's cap only matters to Isaac Lab's hydra CLI, which rho does not use).
set -euo pipefail
cd "$(dirname "$0")/.."
PY312=${PY312:-$(command -v python3.12 || echo /root/.pyenv/versions/3.12.1/bin/python3.12)}
VENV=${RHO_ISAACLAB_VENV:-$HOME/.cache/rho/isaaclab-venv}
PKGS=(isaaclab==3.0.0 "omegaconf>=2.4,<2.5" pytest pytest-timeout)
STAMP="${PKGS[*]}"
if [ ! -f "$VENV/.rho-stamp" ] || [ "$(cat "$VENV/.rho-stamp")" != "$STAMP" ]; then
  echo "building the Isaac Lab venv in $VENV (once; cached)" >&2
  rm -rf "$VENV"
  "$PY312" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[0]}" pytest pytest-timeout
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[1]}" 2>&1 | grep -v "hydra-core" || true
  echo "$STAMP" > "$VENV/.rho-stamp"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . >&2
echo "$VENV"
