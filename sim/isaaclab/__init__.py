"""The Isaac Lab 3.0 backend (``pip install -e '.[isaaclab]'``, Python 3.12).

- `batch.IsaacLabBatch`: the physics under `BatchedEnv` when ``env.sim.backend=isaaclab`` — the task's MJCF
  imported into Newton, stepped by Isaac Lab's kit-less `SimulationContext` with the MuJoCo-Warp solver on
  ``cpu`` or ``cuda:N``; `rho datagen / eval / expert backend=isaaclab device=...` use it.
- `env.RhoDirectRLEnv` / `env.RhoEnvCfg`: every task as an Isaac Lab `DirectRLEnv` (gym ids
  ``Rho-<Task>-Direct-v0``, registered by `rho.sim.isaaclab.tasks` with ``env_cfg_entry_point`` and
  ``rsl_rl_cfg_entry_point``), for Isaac Lab's own training and tooling.
- `contacts`: MuJoCo's ``<contact>`` sensor rebuilt from a contact list (touch on every backend; numpy only).

Importing this package does not import Isaac Lab; its modules do, when used.
"""
