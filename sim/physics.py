"""The physics engine under `BatchedEnv`: one task definition, two backends.

- ``mujoco`` (default): `mujoco.batch.Batch` — MuJoCo's C engine, N model copies stepped on a thread pool.
- ``isaaclab``: `rho.sim.isaaclab.IsaacLabBatch` — the same MJCF imported into Isaac Lab 3.0's Newton physics
  (MuJoCo-Warp solver, kit-less) on ``sim.device`` = ``cpu`` or ``cuda:N``; needs the ``isaaclab`` extra (Python 3.12).

Both expose the slice of `mujoco.batch.Batch` the env uses (``bind``, ``step``, ``rollout``, ``reset``,
``forward``, ``set_models``, ``jac``, ``state``, ``warning``, ``get_data``) and raise `SimulationError` (with
``.ids``) for diverged sims.
"""

from __future__ import annotations

from typing import Any

import mujoco


class _NoSimulationError(Exception):
    ids: Any = ()


def simulation_errors(backend: str) -> tuple[type[Exception], ...]:
    """The exception types a backend's step raises for diverged sims (each carries ``.ids``)."""
    if backend == "isaaclab":
        from rho.sim.isaaclab.batch import SimulationError

        return (SimulationError,)
    try:
        from mujoco.batch import SimulationError
    except ImportError:
        return (_NoSimulationError,)
    return (SimulationError,)


def make_batch(model: mujoco.MjModel, xml: str, num_envs: int, sim_cfg: Any, attach: bool = False):
    """The batched physics for `model` (compiled from `xml`) on the backend `sim_cfg.backend` names."""
    if sim_cfg.backend == "isaaclab":
        from rho.sim.isaaclab.batch import IsaacLabBatch

        return IsaacLabBatch(model, xml, num_envs, device=sim_cfg.device, njmax=sim_cfg.njmax,
                             nconmax=sim_cfg.nconmax, attach=attach)
    try:
        from mujoco.batch import Batch
    except ImportError as e:
        raise ImportError(
            f"backend=mujoco needs mujoco>=3.17 (mujoco.batch); this environment has mujoco {mujoco.__version__}. "
            "Isaac Lab 3.0 pins mujoco 3.12 through Newton, so its venv runs backend=isaaclab only: use "
            "backend=isaaclab here, or `pip install -U 'mujoco>=3.17'` in a venv without Isaac Lab.") from e
    return Batch(model, nsim=num_envs, nthread=sim_cfg.num_threads)
