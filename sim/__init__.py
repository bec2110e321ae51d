"""Simulation core on the MuJoCo backend: the batched env base, touch, sensors, cameras, randomization."""

from .env import ActionCfg, BatchedEnv, CameraCfg, EnvCfg, ProprioCfg, SimCfg, TouchCfg
from .randomization import RandomizationCfg, Range
from .sensors import SensorCfg, SensorChannel
from .spec import ObservationSpec, ObsKey

__all__ = ["ActionCfg", "BatchedEnv", "CameraCfg", "EnvCfg", "ObsKey", "ObservationSpec", "ProprioCfg",
           "RandomizationCfg", "Range", "SensorCfg", "SensorChannel", "SimCfg", "TouchCfg"]
