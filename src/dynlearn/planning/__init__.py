"""Planning with a transition model: random shooting, CEM (with iCEM's options) and MPPI, and MPC policies.

>>> mpc = dl.planning.MPC(model, dl.planning.CEMConfig(), low=task.act_low, high=task.act_high)
>>> policy = dl.planning.PlannerPolicy(mpc)            # policy(obs [B, obs], rng) -> act [B, act]
"""

from .base import PlanState
from .cem import CEMConfig
from .mpc import MPC, ObjectiveConfig, PlannerPolicy
from .mppi import MPPIConfig
from .noise import colored_noise
from .objective import sequence_returns
from .shooting import RandomShootingConfig

__all__ = ["CEMConfig", "MPC", "MPPIConfig", "ObjectiveConfig", "PlanState", "PlannerPolicy", "RandomShootingConfig",
           "colored_noise", "sequence_returns"]
