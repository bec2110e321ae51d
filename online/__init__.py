"""Online learning from corrections: `rho online task=<name> policy=<dir> corrector=expert ...`.

A trained policy drives a task's env; a corrector watches and takes over when a trigger fires (no progress, a
pad force over a limit, a distance from its own plan, a random rate), with a reaction latency, drives for a while
and hands control back (HG-DAgger's protocol). Every episode is recorded in the usual dataset format with a per-step
`intervention` flag (and `controller`: 0 policy, 1 corrector). Every `update.every_episodes` episodes the policy is
fine-tuned (`rho train init_from=...`) on the corrections — corrected steps drawn `update.intervention_weight`
times as often — mixed with a replay of earlier data (`replay.fraction` of the draws: the policy's original
training datasets and earlier rounds' corrections), so skills not being corrected are not forgotten. After every
update the policy is evaluated on fixed seeded episodes of the corrected task and of the other tasks it knew; an
update that drops another task's success by more than `eval.rollback_drop` is rolled back.

Layout of `out/`: `state.json` (the round reached, the current checkpoint; written atomically — a killed session
resumes from it), `corrections/round_XXXX.hdf5` (one shard per round, renamed into place when complete),
`updates/round_XXXX/` (each update's `rho train` run), `eval/round_XXXX/` (each evaluation's report),
`progress.jsonl` (one line per round: interventions, success per task, rollback), `report.html`.

Correctors: `expert` (the task's scripted expert; `rl:<checkpoint>` an RL expert) stands in for a person, so runs and
tests are headless and reproducible. The experts speak `ee_delta`; the env keeps the policy's `joint_pos` mode and
`Env.joint_action_from_ee_delta` executes their commands, so what is recorded is always the executed joint action.
`human` (online/human.py): a person at a 3D mouse (pyspacemouse) or the keyboard, watching MuJoCo's viewer, toggles
takeover themself (HG-DAgger) and drives one arm at a time; one env; recorded input events replay headless.
"""

from .config import CorrectorCfg, OnlineCfg, OnlineEvalCfg, ReplayCfg, TriggerCfg, UpdateCfg
from .corrector import ExpertCorrector
from .session import run_session

__all__ = ["CorrectorCfg", "ExpertCorrector", "OnlineCfg", "OnlineEvalCfg", "ReplayCfg", "TriggerCfg", "UpdateCfg",
           "run_session"]
