"""RL-driven experts: privileged-state policies trained with rsl-rl's PPO on the batched envs, used as demonstrators.

    residual.py  per-task privileged observations and the residual action over the scripted expert
    vecenv.py    `RslRlVecEnv`: a `BatchedEnv` (+ scripted expert) behind rsl-rl's `VecEnv` interface
    train.py     `rho rl train`: rollouts, PPO updates, checkpoints, resume, logs, progress bar
    expert.py    `RlExpert`: a trained checkpoint behind the scripted experts' act/reset interface
                 (`rho datagen expert=rl:<checkpoint>`, `rho eval policy=rl:<checkpoint>`)
    play.py      `rho rl play`: render episodes of a checkpoint, report success

Agent configs (hyper-parameters per task) live in `rho.tasks.agents`. Importing this package imports no torch.
"""
