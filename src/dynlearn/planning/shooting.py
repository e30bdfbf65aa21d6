"""Random shooting: score ``samples`` sequences drawn uniformly within the action bounds and execute the best.

The baseline planner of Nagabandi et al. 2018 (arXiv 1708.02596): no distribution is kept between control steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .._types import Key
from ..errors import ConfigError
from .base import PlanState, ReturnsFn


@dataclasses.dataclass(frozen=True)
class RandomShootingConfig:
    horizon: int = 30
    """Planning horizon H (steps)."""
    samples: int = 1000
    """Uniformly random sequences scored per control step."""

    def __post_init__(self):
        if min(self.horizon, self.samples) < 1:
            raise ConfigError("RandomShootingConfig: horizon and samples must be >= 1.")

    @property
    def init_std(self) -> float:
        return 1.0


def shooting_plan(cfg: RandomShootingConfig, returns_fn: ReturnsFn, state: PlanState, low, high, key: Key):
    low32, high32 = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    sample_key, eval_key = jax.random.split(key)
    samples = jax.random.uniform(sample_key, (cfg.samples, *state.mean.shape), jnp.float32, low32, high32)
    ret = jnp.nan_to_num(returns_fn(samples, eval_key), nan=-jnp.inf)
    return samples[jnp.argmax(ret)], state
