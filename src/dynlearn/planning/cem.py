"""The cross-entropy method over action sequences (PETS' optimiser), with iCEM's improvements as options.

Chua et al. 2018 (PETS, arXiv 1805.12114): each iteration samples ``population`` sequences from a diagonal Gaussian
per time step, clipped to the action bounds, scores them, and refits mean and std to the ``elites`` best, smoothed as
``new = alpha * old + (1 - alpha) * fitted`` (PETS: 5 iterations, 500 samples, 50 elites, alpha 0.1). The mean's
first action is executed.

Pinneri et al. 2020 (iCEM, arXiv 2008.06389), each off by default:
``noise_beta`` (colored noise, :mod:`~dynlearn.planning.noise`; the paper uses 2-3.5), ``keep_elites`` (a fraction of
the previous iteration's elites re-enters the population, and the shifted ones at the next control step; 0.3),
``population_decay`` (the population shrinks by this factor per iteration, never below ``2 * elites``; 1.25) and
``execute="best"`` (the best sequence ever scored in this step instead of the mean).
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
class CEMConfig:
    horizon: int = 30
    """Planning horizon H (steps)."""
    population: int = 500
    """Candidate sequences per iteration (the first iteration's, under population_decay)."""
    elites: int = 50
    """Best candidates the distribution is refitted to."""
    iterations: int = 5
    """Refits per control step."""
    alpha: float = 0.1
    """Smoothing: new mean/std = alpha * old + (1 - alpha) * the elites'."""
    init_std: float = 0.5
    """Initial std per step, in units of the action range's half-width."""
    min_std: float = 1e-3
    """Floor of the std (in the same units) so the search never collapses to a point."""
    noise_beta: float = 0.0
    """iCEM: colored-noise exponent along time (0 = white noise)."""
    keep_elites: float = 0.0
    """iCEM: fraction of the elites carried into the next iteration and the next control step."""
    population_decay: float = 1.0
    """iCEM: population divided by this at each iteration (>= 1)."""
    execute: str = "mean"
    """'mean' (PETS): the refitted mean; 'best' (iCEM): the best sequence scored this step."""

    def __post_init__(self):
        if min(self.horizon, self.population, self.elites, self.iterations) < 1:
            raise ConfigError("CEMConfig: horizon, population, elites and iterations must be >= 1.")
        if self.elites > self.population:
            raise ConfigError(f"CEMConfig: elites {self.elites} exceed the population {self.population}.")
        if not 0.0 <= self.alpha < 1.0 or not 0.0 <= self.keep_elites <= 1.0 or self.population_decay < 1.0:
            raise ConfigError("CEMConfig: need 0 <= alpha < 1, 0 <= keep_elites <= 1 and population_decay >= 1.")
        if self.execute not in ("mean", "best"):
            raise ConfigError(f"CEMConfig.execute must be 'mean' or 'best', got {self.execute!r}.")

    @property
    def kept(self) -> int:
        return int(round(self.keep_elites * self.elites))

    def sizes(self) -> list[int]:
        """Population of each iteration."""
        return [max(int(self.population / self.population_decay**i), 2 * self.elites if self.population >= 2 * self.elites
                    else self.elites) for i in range(self.iterations)]


def cem_plan(cfg: CEMConfig, returns_fn: ReturnsFn, state: PlanState, low, high, key: Key):
    """``(sequence [H, act] to execute, refitted PlanState)``; jittable, the iterations unrolled."""
    low32, high32 = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    floor = cfg.min_std * (high32 - low32) / 2
    mean, std, memory = state.mean, state.std, state.elites
    best_seq, best_ret = mean, -jnp.inf
    for i, size in enumerate(cfg.sizes()):
        key, noise_key, eval_key = jax.random.split(key, 3)
        noise = colored_noise(noise_key, cfg.noise_beta, (size, mean.shape[1], mean.shape[0])).swapaxes(1, 2)
        samples = clip(mean + std * noise, low32, high32)
        if cfg.kept:
            samples = jnp.concatenate([samples, memory[: cfg.kept]], axis=0)
        if i == cfg.iterations - 1 and cfg.execute == "mean":
            samples = samples.at[0].set(clip(mean, low32, high32))  # the executed mean is among the last scored
        ret = jnp.nan_to_num(returns_fn(samples, eval_key), nan=-jnp.inf)
        _, top = jax.lax.top_k(ret, cfg.elites)
        elite = samples[top]
        best = jnp.argmax(ret)
        best_seq = jnp.where(ret[best] > best_ret, samples[best], best_seq)
        best_ret = jnp.maximum(ret[best], best_ret)
        mean = cfg.alpha * mean + (1 - cfg.alpha) * elite.mean(axis=0)
        std = jnp.maximum(cfg.alpha * std + (1 - cfg.alpha) * elite.std(axis=0), floor)
        memory = elite[: memory.shape[0]] if memory.shape[0] else memory
    executed = clip(mean, low32, high32) if cfg.execute == "mean" else best_seq
    return executed, PlanState(mean=mean, std=std, elites=memory)
