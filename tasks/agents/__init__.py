"""Per-task RL agent configs in the Isaac Lab layout: `<task>_rsl_rl_ppo.py` beside the tasks, each exposing a
runner config class (`<Task>PPORunnerCfg`) that `rho rl train task=<task>` loads and that Isaac Lab gym
registrations can name as their `rsl_rl_cfg_entry_point`. Importing these modules pulls in no torch.

`AGENT_CFGS` maps a task name to the `module:Class` of its agent config.
"""

AGENT_CFGS: dict[str, str] = {
    "plug_insertion": "rho.tasks.agents.plug_insertion_rsl_rl_ppo:PlugInsertionPPORunnerCfg",
    "plug_insertion_occluded": "rho.tasks.agents.plug_insertion_rsl_rl_ppo:PlugInsertionOccludedPPORunnerCfg",
}
