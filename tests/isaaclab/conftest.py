"""Isaac Lab backend tests: run in the Python 3.12 venv with Isaac Lab 3.0 (`.ci/isaaclab-venv.sh`); skipped
elsewhere. Parity tests also need the MuJoCo backend's interpreter in ``RHO_MUJOCO_PYTHON`` (mujoco>=3.17 cannot
share a venv with Isaac Lab's mujoco 3.12 pin)."""

import os

import pytest

pytest.importorskip("isaaclab", reason="Isaac Lab 3.0 not installed (Python 3.12 extra; see the README)")
pytest.importorskip("isaaclab_newton", reason="Isaac Lab 3.0 not installed (Python 3.12 extra; see the README)")

os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.py312)
