"""Model-predictive path integral control (MPPI) over action sequences.

Williams et al. 2017 (information-theoretic MPC, "Information Theoretic MPC for Model-Based Reinforcement
Learning", ICRA): perturb the current mean sequence with Gaussian noise, score every perturbed sequence, and move
the mean to the exponentially weighted average ``sum_i w_i a_i`` with ``w = softmax(R / temperature)``. A low
temperature approaches "take the best"; a high one averages everything. The mean's first action is executed and the
mean is shifted by one step for the next control step. ``iterations > 1`` repeats the update within a control step
(as in TD-MPC's MPPI); ``noise_beta`` draws the perturbations as colored noise (iCEM's).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .._types import Key
from ..errors import ConfigError
from .base import PlanState, ReturnsFn, clip
from .noise import colored_noise


@dataclasses.dataclass(frozen=True)
class MPPIConfig:
    horizon: int = 30
    """Planning horizon H (steps)."""
    samples: int = 500
    """Perturbed sequences per iteration."""
    iterations: int = 1
    """Weighted updates per control step."""
    temperature: float = 1.0
    """lambda in w = softmax(R / lambda), in units of the return."""
    noise_std: float = 0.5
    """Perturbation std per step, in units of the action range's half-width."""
    noise_beta: float = 0.0
    """Colored-noise exponent along time (0 = white noise)."""

    def __post_init__(self):
        if min(self.horizon, self.samples, self.iterations) < 1:
            raise ConfigError("MPPIConfig: horizon, samples and iterations must be >= 1.")
        if not self.temperature > 0 or not self.noise_std > 0:
            raise ConfigError(f"MPPIConfig: temperature ({self.temperature}) and noise_std ({self.noise_std}) must be > 0.")

    @property
    def init_std(self) -> float:
        return self.noise_std


def mppi_plan(cfg: MPPIConfig, returns_fn: ReturnsFn, state: PlanState, low, high, key: Key):
    """``(sequence [H, act] to execute, updated PlanState)``; jittable."""
    low32, high32 = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    std = cfg.noise_std * (high32 - low32) / 2
    mean = state.mean
    for _ in range(cfg.iterations):
        key, noise_key, eval_key = jax.random.split(key, 3)
        noise = colored_noise(noise_key, cfg.noise_beta, (cfg.samples, mean.shape[1], mean.shape[0])).swapaxes(1, 2)
        samples = clip(mean + std * noise, low32, high32).at[0].set(clip(mean, low32, high32))  # the mean itself is one
        ret = jnp.nan_to_num(returns_fn(samples, eval_key), nan=-jnp.inf)
        w = jax.nn.softmax((ret - ret.max()) / cfg.temperature)
        mean = jnp.einsum("n,nha->ha", w, samples)
    return clip(mean, low32, high32), PlanState(mean=mean, std=state.std, elites=state.elites)
