"""COPlanner: plan to roll out conservatively but to explore optimistically (Wang et al., ICLR 2024, arXiv 2310.07220),
on top of online MBPO (:mod:`dynlearn.algos.mbpo_online`).

The paper's UP-MPC (uncertainty-aware policy-guided MPC) chooses an action for a state: ``candidates`` (5) first actions
sampled from the policy are each rolled out ``plan_horizon`` (5) steps in the ensemble, the policy sampling the later
actions, and scored by ``sum_t discount^t r_t + bonus * sum_t discount^t u_t``, ``u_t`` the ensemble's disagreement
about the next state; the best candidate's first action is taken. Model rollouts choose with ``bonus =
-conservative_rate`` (2: a penalty, so the policy learns where the model is sure) and the real task with ``bonus =
+optimistic_rate`` (1: a bonus, so the agent collects data where the model is unsure). Everything else is MBPO.

What we followed, where the paper's text could not be read here (the search tools returned its abstract only), and the
authors' code (``si0wang/COPlanner``, ``DMC-MBPO-COPlanner``: ``SAC.mpc_select_action``, ``Ensemble.sample_1d_ensemble``,
``conf/algorithm/mbpo.yaml``) was read instead:

- **uncertainty** ``u``: each elite draws a next state from its Gaussian (mean + std * noise), and ``u`` is the standard
  deviation over the elites of those draws, averaged over the observation dimensions (:func:`disagreement`;
  ``sample_disagreement=False`` uses the elites' means, the epistemic part alone). The authors' code takes the draws of
  all members (elites and others) and includes the reward column; we read the elites (as every rollout here does) and
  the next state, as the paper's "disagreement of the predicted next states".
- **discount** 0.97 on both sums (the code's ``reward_gamma`` and ``uncertainty_gamma``).
- **the imagined step** is the model's own (a random elite's draw, :meth:`ProbabilisticEnsemble.step`), with the task's
  termination function: a candidate adds neither reward nor uncertainty after it terminates. The authors' code keeps
  summing after a predicted termination; we stop, as the planners' objective here does (:mod:`dynlearn.planning.objective`).
- **where it applies**: to every step of every branched rollout (a whole batch planned in one compiled call) and to
  every real step after the random ones. ``plan_rollouts`` / ``plan_exploration`` switch either off (the paper's
  ablations).

The authors run COPlanner on mbrl-lib's MBPO (fixed SAC temperature 0.2, 512-wide networks, no real rows in the SAC
batches); :meth:`COPlannerConfig.preset` keeps the MBPO paper's values for the MBPO part and the authors' for UP-MPC.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import tyro

from .._types import Array, Float, Int, Key
from ..errors import ConfigError
from ..models.base import MemberOutputs
from ..rollout import elite_view
from .mbpo_online import MBPOOnlineConfig, train_mbpo_online

__all__ = ["COPlannerConfig", "COPlannerJob", "UPMPCPolicy", "UPMPCResult", "disagreement", "run_job", "train_coplanner", "up_mpc"]


@dataclasses.dataclass(frozen=True)
class COPlannerConfig(MBPOOnlineConfig):
    """``dynlearn train coplanner``: MBPO whose model rollouts plan conservatively and whose real actions plan
    optimistically (UP-MPC)."""

    method: ClassVar[str] = "coplanner"

    candidates: int = 5
    """candidate first actions per state, sampled from the policy (reference: 5)"""
    plan_horizon: int = 5
    """model steps each candidate is rolled out, the policy choosing the later actions (reference: 5)"""
    conservative_rate: float = 2.0
    """weight of the uncertainty penalty when choosing model-rollout actions (reference: 2)"""
    optimistic_rate: float = 1.0
    """weight of the uncertainty bonus when choosing real actions (reference: 1)"""
    plan_discount: float = 0.97
    """discount of the planned rewards and uncertainties (reference: 0.97)"""
    sample_disagreement: bool = True
    """disagreement of the elites' sampled next states (reference code); False: of their means"""
    plan_rollouts: bool = True
    """choose the model-rollout actions by UP-MPC (False: SAC's samples, as MBPO)"""
    plan_exploration: bool = True
    """choose the real actions by UP-MPC (False: SAC's samples, as MBPO)"""

    def __post_init__(self):
        super().__post_init__()
        if self.candidates < 1 or self.plan_horizon < 1:
            raise ConfigError(f"COPlannerConfig: candidates ({self.candidates}) and plan_horizon ({self.plan_horizon}) must be >= 1.")
        if self.conservative_rate < 0 or self.optimistic_rate < 0 or not 0.0 < self.plan_discount <= 1.0:
            raise ConfigError("COPlannerConfig: conservative_rate and optimistic_rate must be >= 0 and plan_discount in (0, 1], "
                              f"got {self.conservative_rate}, {self.optimistic_rate}, {self.plan_discount}.")

    def _planner(self, agent, agent_state, model, bonus: float) -> "UPMPCPolicy":
        return UPMPCPolicy(agent.act, agent_state, model, self.candidates, self.plan_horizon, float(bonus), float(self.plan_discount),
                           self.sample_disagreement)

    def rollout_policy(self, agent, agent_state, model) -> eqx.Module:
        """UP-MPC with the uncertainty as a penalty (``-conservative_rate``)."""
        if not self.plan_rollouts:
            return super().rollout_policy(agent, agent_state, model)
        return self._planner(agent, agent_state, model, -self.conservative_rate)

    def explore_policy(self, agent, agent_state, model) -> eqx.Module:
        """UP-MPC with the uncertainty as a bonus (``+optimistic_rate``)."""
        if not self.plan_exploration:
            return super().explore_policy(agent, agent_state, model)
        return self._planner(agent, agent_state, model, self.optimistic_rate)


def disagreement(outputs: MemberOutputs, *, key: Key | None = None) -> Float[Array, "..."]:
    """The elites' disagreement about the next state: the standard deviation over elites of each one's prediction,
    averaged over the observation dimensions. With ``key``, each elite's prediction is a draw from its Gaussian (the
    reference code's); without, its mean."""
    out = outputs.elite()
    pred = out.delta_mean  # next state minus the shared current state: the same spread as the next states
    if key is not None:
        pred = pred + jnp.exp(0.5 * out.logvar[..., : out.obs_dim]) * jax.random.normal(key, pred.shape, pred.dtype)
    return jnp.mean(jnp.std(pred, axis=0), axis=-1)


class UPMPCResult(eqx.Module):
    """UP-MPC's choice for a batch of ``B`` states among ``K`` candidates (candidate axis first)."""

    action: Float[Array, "b act"]
    """the chosen candidate's first action"""
    choice: Int[Array, " b"]
    candidates: Float[Array, "k b act"]
    returns: Float[Array, "k b"]
    """discounted sum of the planned rewards"""
    uncertainty: Float[Array, "k b"]
    """discounted sum of the planned disagreements"""
    score: Float[Array, "k b"]
    """``returns + bonus * uncertainty``"""


def up_mpc(model, act_fn: Callable, agent_state: Any, obs: Float[Array, "b obs"], *, key: Key, candidates: int = 5, horizon: int = 5,
           bonus: float = 0.0, discount: float = 0.97, sample_disagreement: bool = True) -> UPMPCResult:
    """UP-MPC for each row of ``obs`` (module docstring), traceable. ``act_fn(agent_state, obs, *, key, deterministic)``
    samples the policy (an agent's ``act``); ``bonus`` weights the uncertainty (negative: a penalty)."""
    model = elite_view(model)
    b, k = obs.shape[0], candidates
    first_key, init_key, scan_key = jax.random.split(key, 3)
    start = jnp.broadcast_to(obs.astype(jnp.float32), (k, *obs.shape)).reshape(k * b, obs.shape[-1])
    first = act_fn(agent_state, start, key=first_key, deterministic=False).astype(jnp.float32)

    def body(carry, inputs):
        s, a, alive, ret, unc, state = carry
        t, step_key = inputs
        model_key, noise_key, act_key = jax.random.split(step_key, 3)
        state, pred = model.step(state, s, a, key=model_key)
        u = disagreement(pred.outputs, key=noise_key if sample_disagreement else None)
        weight = jnp.asarray(discount, jnp.float32) ** t
        ret = ret + weight * jnp.where(alive, pred.reward, 0.0)
        unc = unc + weight * jnp.where(alive, u, 0.0)
        alive = alive & ~pred.terminal
        s = jnp.where(alive[:, None], pred.next_obs, s)
        a = act_fn(agent_state, s, key=act_key, deterministic=False).astype(jnp.float32)
        return (s, a, alive, ret, unc, state), None

    zeros = jnp.zeros((k * b,), jnp.float32)
    carry = (start, first, jnp.ones((k * b,), bool), zeros, zeros, model.init_state(start, key=init_key))
    steps = (jnp.arange(horizon, dtype=jnp.float32), jax.random.split(scan_key, horizon))
    (_, _, _, ret, unc, _), _ = jax.lax.scan(body, carry, steps)
    ret, unc, first = ret.reshape(k, b), unc.reshape(k, b), first.reshape(k, b, -1)
    score = ret + jnp.asarray(bonus, jnp.float32) * unc
    choice = jnp.argmax(score, axis=0).astype(jnp.int32)
    action = jnp.take_along_axis(first, choice[None, :, None], axis=0)[0]
    return UPMPCResult(action=action, choice=choice, candidates=first, returns=ret, uncertainty=unc, score=score)


class UPMPCPolicy(eqx.Module):
    """UP-MPC as a rollout policy ``policy(obs [B, obs], *, key) -> act [B, act]`` (:func:`dynlearn.rollout.rollout`);
    the agent state and the model are traced, so new parameters do not recompile."""

    act_fn: Callable = eqx.field(static=True)
    agent_state: Any
    model: Any
    candidates: int = eqx.field(static=True)
    horizon: int = eqx.field(static=True)
    bonus: float = eqx.field(static=True)
    discount: float = eqx.field(static=True)
    sample_disagreement: bool = eqx.field(static=True, default=True)

    def __call__(self, obs: Float[Array, "b obs"], *, key: Key) -> Float[Array, "b act"]:
        return up_mpc(self.model, self.act_fn, self.agent_state, obs, key=key, candidates=self.candidates, horizon=self.horizon,
                      bonus=self.bonus, discount=self.discount, sample_disagreement=self.sample_disagreement).action


def train_coplanner(cfg: COPlannerConfig, out: str | Path, **kwargs) -> dict:
    """Run COPlanner into the run folder ``out``; the keywords and the folder are those of
    :func:`~dynlearn.algos.mbpo_online.train_mbpo_online`."""
    if not isinstance(cfg, COPlannerConfig):
        raise ConfigError(f"train_coplanner needs a COPlannerConfig, got {type(cfg).__name__}.")
    return train_mbpo_online(cfg, out, **kwargs)


@dataclasses.dataclass(frozen=True)
class COPlannerJob:
    """dynlearn train coplanner: COPlanner online in a task (MBPO with conservative model rollouts and optimistic
    exploration, both planned by UP-MPC); writes a run folder with results.json, metrics.jsonl, the agent and the ensemble.
    --preset NAME starts the MBPO part from a preset of train mbpo-online (cpu, hopper, halfcheetah, ...); flags change it."""

    config: Annotated[COPlannerConfig, tyro.conf.arg(name="")] = COPlannerConfig()
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/coplanner")
    """run folder"""
    resume: bool = False
    """continue a stopped run in --out"""
    force: bool = False
    """replace an existing run folder in --out"""


def run_job(job: COPlannerJob) -> None:
    train_coplanner(job.config, job.out, resume=job.resume, force=job.force)
