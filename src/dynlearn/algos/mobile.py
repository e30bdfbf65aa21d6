"""MOBILE: Sun, Zhang, Jia, Lin, Ye & Yu, "Model-Bellman Inconsistency Penalized Offline Policy Optimization",
ICML 2023.

Instead of penalising rewards in rollouts, MOBILE penalises the critic target of every *model* row by the
uncertainty of its Bellman backup across the ensemble: for each elite ``i``, ``M`` next states are sampled from its
Gaussian, the target critics value them under the current policy, ``Q_i = mean_m min_k Q'_k(s'_im, pi(s'_im))``,
and the penalty is ``u(s, a) = std_i Q_i``. The target becomes ``r - beta u + gamma (1 - d) V(s')``, clamped at
``>= 0`` as in the reference code (``q_floor``: ``-inf`` for tasks with negative rewards); dataset rows get
``u = 0``. It lives in the agent's ``target_adjust`` hook
(:mod:`dynlearn.agents.base`), computed with the state before the step, and costs about ten SAC critic passes
per update (``M x elites x batch`` extra critic rows).

Defaults are the reference code's (yihaosun1124/mobile ``configs/gym/default.py``): SAC 256x256, 2 critics,
actor and temperature lr 1e-4, critic lr 3e-4, ``M = 10``, h = 1, beta = 1, 5% real data, 50,000 rollouts every
1,000 steps kept for 5 rollouts; per-dataset ``h``/``beta``/temperature from its ``configs/gym/*`` files.
As the reference's SAC, the temperature the losses use is clamped at 1. The reference anneals the actor's learning
rate (cosine, over the run's epochs): ``actor_lr_schedule="cosine"`` does the same; the default keeps it constant.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import agents
from .._types import Array, Float, Key
from ..errors import ConfigError
from ..rollout import RolloutHooks, elite_view
from .base import ModelBasedConfig
from .mopo import sac_config


@dataclasses.dataclass(frozen=True)
class MOBILEConfig(ModelBasedConfig):
    """MOBILE: SAC on model rollouts whose critic target is penalised by the Bellman backup's spread over the
    ensemble, ``r - beta u + gamma V(s')``."""

    name: ClassVar[str] = "mobile"
    # the reference starts a tuned temperature at 1.0 (log alpha 0) and uses 0.2 where it fixes it (``configs/gym/default.py``)
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "hopper-medium": {"horizon": 5, "penalty_coef": 1.5, "auto_alpha": False, "alpha": 0.2},
        "hopper-medium-replay": {"horizon": 5, "penalty_coef": 0.1, "auto_alpha": False, "alpha": 0.2},
        "hopper-medium-expert": {"horizon": 5, "penalty_coef": 1.5},
        "hopper-random": {"horizon": 5, "penalty_coef": 5.0},
        "halfcheetah-medium": {"horizon": 5, "penalty_coef": 0.5},
    }

    horizon: int = 1
    """rollout length h"""
    penalty_coef: float = 1.0
    """beta, the weight of the Bellman-inconsistency penalty in the critic target"""
    mobile_samples: int = 10
    """next-state samples per elite for the Bellman-inconsistency estimate (M)"""
    q_floor: float = 0.0
    """lower clamp of the penalised critic target (0 in the reference code, whose tasks have rewards >= 0; -inf, on the
    command line --q-floor=-inf: no clamp, for tasks with negative rewards)"""

    def __post_init__(self):
        super().__post_init__()
        me = type(self).__name__
        if self.penalty_coef < 0:
            raise ConfigError(f"{me}.penalty_coef must be >= 0, got {self.penalty_coef}.")
        if self.mobile_samples < 1:
            raise ConfigError(f"{me}.mobile_samples must be >= 1, got {self.mobile_samples}.")

    def agent(self):
        """SAC with MOBILE's learning rates (fixed temperature ``alpha`` when ``auto_alpha`` is off): MOPO's."""
        return agents.get("sac"), sac_config(self)

    def hooks(self) -> RolloutHooks:
        """No rollout penalty: MOBILE's penalty is in the critic target."""
        return RolloutHooks()

    def target_adjust(self, model, agent, n_real) -> "BellmanInconsistency":
        """The Bellman-inconsistency penalty on the model rows (the first ``n_real`` rows of a batch are the dataset's)."""
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return BellmanInconsistency(elite_view(model), f32(self.penalty_coef), f32(self.q_floor), n_real, self.mobile_samples,
                                    agent.sample_action, agent.q_values)


class BellmanInconsistency(eqx.Module):
    """``target_adjust``: ``max(target - beta * u, floor)`` with ``u`` MOBILE's Bellman-inconsistency estimate on
    model rows (``floor`` 0 as in the reference code; ``-inf`` for tasks with negative rewards).

    The ensemble (elites only) is a traced field; the agent's functions are static.
    """

    model: eqx.Module
    coef: Float[Array, ""]
    floor: Float[Array, ""]
    n_real: int = eqx.field(static=True)
    samples: int = eqx.field(static=True)
    sample_action: Callable = eqx.field(static=True)
    q_values: Callable = eqx.field(static=True)

    def uncertainty(self, state, obs: Float[Array, "b obs"], act: Float[Array, "b act"], *, key: Key) -> Float[Array, " b"]:
        """``std over elites (sample std, n - 1) of mean over samples of min over target critics of Q'(s', pi(s'))``."""
        out = self.model.members(obs, act)  # elites only: [E, b, target]
        noise_key, act_key = jax.random.split(key)
        eps = jax.random.normal(noise_key, (self.samples, *out.delta_mean.shape), jnp.float32)
        next_obs = obs[None, None] + out.delta_mean[None] + jnp.exp(0.5 * out.logvar[..., : out.obs_dim])[None] * eps
        next_act, _ = self.sample_action(state, next_obs, key=act_key)
        q = jnp.mean(jnp.min(self.q_values(state, next_obs, next_act, target=True), axis=0), axis=0)  # [E, b]
        # the sample std over elites (n - 1 in the denominator, as torch.std in the reference code); 0 for one elite
        return jnp.std(q, axis=0, ddof=1) if q.shape[0] > 1 else jnp.zeros(q.shape[1:], q.dtype)

    def __call__(self, state, batch, target: Float[Array, " b"], *, key: Key) -> Float[Array, " b"]:
        u = self.uncertainty(state, batch.obs.astype(jnp.float32), batch.act.astype(jnp.float32), key=key)
        u = jnp.where(jnp.arange(target.shape[0]) < self.n_real, 0.0, u)
        return jnp.maximum(target - self.coef * u, self.floor)
