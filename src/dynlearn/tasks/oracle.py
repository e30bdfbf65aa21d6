"""The true MuJoCo dynamics behind the model interface: an *oracle* transition model.

>>> oracle = OracleModel.for_task("Hopper-v5")
>>> state = oracle.state_from(data.metadata["qpos"][rows], data.metadata["qvel"][rows])
>>> ro = dl.rollout.rollout(oracle, policy, jnp.asarray(data.transitions.obs[rows]), 5, key=key, model_state=state)

An oracle is what a learned model tries to be: the simulator itself. It serves as the perfect model in
diagnostics (a k-step error of 0, penalties of 0) and as the "true model" ablation of model-based methods.

**State.** Observations of the locomotion tasks drop the x position (Hopper, Walker2d, HalfCheetah; x and y
for Ant) and Hopper/Walker2d clip velocities to +-10, so an observation does not determine the next one.
:class:`OracleState` carries the full simulator state ``(qpos, qvel)`` instead, built with
:meth:`OracleModel.state_from` (from a dataset's ``metadata["qpos"]/["qvel"]``: the simulator state before
each step, recorded by :func:`dynlearn.tasks.collect` and stored as ``infos/qpos``/``qvel``). Only where the
observation is the full state (InvertedPendulum) or the full state up to a coordinate the dynamics do not
depend on (HalfCheetah: x; the planar floor makes x irrelevant, and its velocities are not clipped) does
:meth:`OracleModel.init_state` accept observations.

**float32, made exact.** JAX runs in float32 here, so a float32 ``qpos``/``qvel`` rounds the state (relative
6e-8); the contact dynamics amplify that to about 1e-5 in the next observation (Walker2d, HalfCheetah) and
more over long horizons. :class:`OracleState` therefore carries each array twice: the float32 value and its
float32 residual (``x - float32(x)``), whose sum holds a float64 state to about 1e-15. MuJoCo steps in
float64 and the callback splits the result again, so the oracle reproduces Gymnasium's own next observations
bit for bit along recorded episodes (tests/tasks/test_oracle.py). ``OracleModel.for_task(..., exact=False)``
drops the residuals (a plain float32 state), for measuring what the rounding costs
(``benchmarks/model_error.md``).

**Stepping.** ``step`` calls MuJoCo through one host callback per step for the whole batch (a
``buffer_callback`` on CPU, ``pure_callback`` on an accelerator: see ``_host_call``; it has a vmap rule, so
``jax.vmap`` over ``step`` stays one call). Two host backends:

- ``"rollout"`` (Hopper, Walker2d, HalfCheetah, InvertedPendulum v5): :func:`mujoco.rollout` steps all rows
  in C on a thread pool (``frame_skip`` physics steps with the action held, as ``MujocoEnv.do_simulation``),
  and observation, reward and termination are computed in NumPy with Gymnasium v5's formulas and the env's
  own parameters (weights, healthy ranges), in float64.
- ``"env"`` (any other Gymnasium MuJoCo task, Ant among them): a Python loop over the rows that sets the
  state into one unwrapped environment and calls its ``step``; exact by construction, and slower.

Both start every row from a zero constraint-solver warm start (Gymnasium carries the previous step's), so the
result is a function of ``(qpos, qvel, action)`` alone; the solver's tolerance (1e-8) bounds the difference.

**Ant.** Gymnasium's Ant reward uses the torso's ``xpos`` read right after ``mj_step``, which MuJoCo computed
*before* the last physics sub-step; mid-episode the "before" position is therefore stale by one sub-step,
while the oracle (which starts from ``(qpos, qvel)``) uses the current one. The oracle's Ant reward equals
Gymnasium's on the first step after a reset; later its forward term measures displacement over exactly one
control step while Gymnasium's is shifted by one sub-step. Observations and terminations are not affected.

**Outputs.** ``Prediction.outputs`` is a one-member :class:`~dynlearn.models.MemberOutputs` whose mean is the
true ``(next_obs - obs, reward)`` and whose log-variance is :data:`ORACLE_LOGVAR` (a standard deviation of
2e-9), so every uncertainty penalty of :mod:`dynlearn.penalties` is (numerically) zero on the oracle.

The host side (the simulator and the vectorised Gymnasium formulas) is :mod:`dynlearn.tasks.oracle_host`.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.buffer_callback import buffer_callback

from .._types import Array, Float, Int, Key
from ..errors import ConfigError
from ..models.base import AbstractTransitionModel, MemberOutputs, ModelState, Prediction
from .oracle_host import Simulator, join_float64, split_float64
from .registry import Task, get

ORACLE_LOGVAR = -40.0
"""Log-variance of the oracle's one member (std 2e-9): the true dynamics are deterministic."""

__all__ = ["ORACLE_LOGVAR", "OracleModel", "OracleState"]


class OracleState(ModelState):
    """The full simulator state of every row: float32 values and their float32 residuals (module docstring).

    ``qpos + qpos_lo`` (summed in float64) is the simulator's float64 ``qpos``; read ``qpos`` alone for a
    float32 view.
    """

    qpos: Float[Array, "... nq"]
    qvel: Float[Array, "... nv"]
    qpos_lo: Float[Array, "... nq"]
    qvel_lo: Float[Array, "... nv"]

    def float64(self) -> tuple[np.ndarray, np.ndarray]:
        """Host copies of ``(qpos, qvel)`` in float64."""
        return join_float64(self.qpos, self.qpos_lo), join_float64(self.qvel, self.qvel_lo)


# ----------------------------------------------------------------------------------------------
# The host callback


def _host_call(fn, shapes: tuple, *args):
    """``fn(*numpy args) -> tuple of numpy results`` called from traced code, batched under ``vmap``.

    On CPU this is a :func:`jax.experimental.buffer_callback.buffer_callback`: ``fn`` reads the computation's
    own input buffers and its results are written into the output buffers, with no transfer in between.
    :func:`jax.pure_callback` instead ``device_put``s its inputs onto the CPU device from inside the running
    computation, and on the CPU backend that transfer can wait forever on the very client that is running
    the computation (seen as training jobs hanging in ``np.asarray`` of the callback's arguments, most often
    with single-threaded XLA). On an accelerator the inputs come from device memory, so ``pure_callback``
    (which copies them to the host) is the right call there.
    """
    if jax.default_backend() != "cpu":
        return jax.pure_callback(fn, shapes, *args, vmap_method="broadcast_all")

    def kernel(ctx, outs, *ins):
        del ctx
        for out, value in zip(outs, fn(*(np.asarray(x) for x in ins)), strict=True):
            np.asarray(out)[...] = value

    return buffer_callback(kernel, shapes, vmap_method="broadcast_all")(*args)


@functools.cache
def _simulator(task_id: str, backend: str, nthread: int) -> Simulator:
    """One simulator per (task, backend, threads), shared by every oracle of that task (same compiled programs)."""
    return Simulator(get(task_id), backend, nthread)


# ----------------------------------------------------------------------------------------------
# The model


class OracleModel(AbstractTransitionModel):
    """The task's own MuJoCo dynamics as a :class:`~dynlearn.models.AbstractTransitionModel` (module docstring).

    Build with :meth:`for_task`. ``step`` ignores ``obs`` for the dynamics (the state is the truth) and uses
    it only for the delta in ``outputs.mean``; ``key``, ``member`` and ``deterministic`` change nothing.
    """

    sim: Simulator = eqx.field(static=True)
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    nq: int = eqx.field(static=True)
    nv: int = eqx.field(static=True)
    task_id: str = eqx.field(static=True)
    exact: bool = eqx.field(static=True, default=True)

    @classmethod
    def for_task(cls, task: str | Task, *, backend: str = "auto", nthread: int | None = None, exact: bool = True) -> OracleModel:
        """The oracle of a MuJoCo task. ``backend``: 'auto' (the C rollout where formulas are known, else the
        env loop), 'rollout' or 'env'. ``nthread``: MuJoCo threads of the rollout backend (default: every core).
        ``exact=False``: a plain float32 state, rounded at every step (for measuring what rounding costs)."""
        task = get(task)
        sim = _simulator(task.id, backend, int(nthread or os.cpu_count() or 1))
        if (sim.obs_dim, sim.nu) != (task.obs_dim, task.act_dim):
            raise ConfigError(f"OracleModel: {task.id}'s env has obs/act dims {sim.obs_dim}/{sim.nu}, the task says "
                              f"{task.obs_dim}/{task.act_dim}.")
        return cls(sim=sim, obs_dim=task.obs_dim, act_dim=task.act_dim, nq=sim.nq, nv=sim.nv, task_id=task.id, exact=exact)

    @property
    def backend(self) -> str:
        return self.sim.backend

    @property
    def full_state_obs(self) -> bool:
        """Whether an observation determines the simulator state (so :meth:`init_state` works)."""
        return self.sim.formulas is not None and self.sim.formulas.full_state_obs

    # -- states --------------------------------------------------------------------------------

    def state_from(self, qpos: Float[Any, "... nq"], qvel: Float[Any, "... nv"]) -> OracleState:
        """The state of rows whose simulator state is ``(qpos, qvel)`` (e.g. ``dataset.metadata["qpos"][rows]``).

        Host (NumPy) float64 input keeps its full precision in the residuals; JAX arrays are taken as float32
        values (zero residuals)."""
        if np.shape(qpos)[-1:] != (self.nq,) or np.shape(qvel)[-1:] != (self.nv,) or np.shape(qpos)[:-1] != np.shape(qvel)[:-1]:
            raise ConfigError(f"OracleModel({self.task_id}).state_from: need qpos [..., {self.nq}] and qvel [..., {self.nv}] "
                              f"with the same leading shape, got {np.shape(qpos)} and {np.shape(qvel)}.")
        parts = []
        for x in (qpos, qvel):
            if isinstance(x, jax.Array) or not self.exact:
                hi = jnp.asarray(x, jnp.float32)
                parts.append((hi, jnp.zeros_like(hi)))
            else:
                hi, lo = split_float64(x)
                parts.append((jnp.asarray(hi), jnp.asarray(lo)))
        (qh, ql), (vh, vl) = parts
        return OracleState(qpos=qh, qvel=vh, qpos_lo=ql, qvel_lo=vl)

    def init_state(self, obs: Float[Array, "... obs"], *, key: Key | None = None) -> OracleState:
        """The state behind observations, only where the observation determines it (InvertedPendulum;
        HalfCheetah with x = 0). Elsewhere raises: use :meth:`state_from` with the recorded ``qpos``/``qvel``."""
        f = self.sim.formulas
        if f is None or not f.full_state_obs:
            raise ConfigError(
                f"OracleModel({self.task_id}).init_state: an observation is not the simulator state (locomotion observations "
                "drop the x position, Hopper/Walker2d clip velocities to +-10, Ant adds contact forces), so the oracle cannot "
                "start from observations. Fix: oracle.state_from(qpos, qvel) with the recorded simulator state (a dataset's "
                "metadata['qpos'] / ['qvel'], written by dynlearn.tasks.collect), and pass it as model_state= to rollout.")
        qpos, qvel = f.state_from_obs(jnp.asarray(obs, jnp.float32))
        return self.state_from(qpos, qvel)

    # -- model interface -----------------------------------------------------------------------

    def members(self, obs, act) -> MemberOutputs:
        raise ConfigError(f"OracleModel({self.task_id}).members: the true dynamics need the simulator state, which an "
                          "observation does not hold. Fix: call step(state, obs, act, key=...) with a state from "
                          "state_from(qpos, qvel); its Prediction.outputs holds the one-member outputs.")

    def physics(self, state: OracleState, act: Float[Array, "... act"]):
        """One control step of the true dynamics: ``(next_state, next_obs, reward, terminated)`` (one host callback)."""
        batch = state.qpos.shape[:-1]
        act = jnp.broadcast_to(jnp.asarray(act, jnp.float32), (*batch, self.act_dim))
        f32 = lambda *tail: jax.ShapeDtypeStruct((*batch, *tail), jnp.float32)
        shapes = (f32(self.nq), f32(self.nv), f32(self.nq), f32(self.nv), f32(self.obs_dim), f32(), jax.ShapeDtypeStruct(batch, jnp.bool_))
        qpos, qvel, qpos_lo, qvel_lo, next_obs, reward, terminated = _host_call(
            self.sim, shapes, state.qpos, state.qvel, state.qpos_lo, state.qvel_lo, act)
        if not self.exact:
            qpos_lo, qvel_lo = jnp.zeros_like(qpos_lo), jnp.zeros_like(qvel_lo)
        return OracleState(qpos=qpos, qvel=qvel, qpos_lo=qpos_lo, qvel_lo=qvel_lo), next_obs, reward, terminated

    def step(self, state: OracleState, obs: Float[Array, "... obs"], act: Float[Array, "... act"], *, key: Key | None = None,
             member: Int[Array, ...] | int | None = None, deterministic: bool = False) -> tuple[OracleState, Prediction]:
        """The true next observation, reward and termination (``terminated``, never a time-limit truncation)."""
        if not isinstance(state, OracleState):
            raise ConfigError(f"OracleModel({self.task_id}).step needs an OracleState (from state_from(qpos, qvel)), got "
                              f"{type(state).__name__}. Fix: pass model_state=oracle.state_from(qpos, qvel) to rollout.")
        next_state, next_obs, reward, terminated = self.physics(state, act)
        batch = next_obs.shape[:-1]
        target = jnp.concatenate([next_obs - jnp.asarray(obs, jnp.float32), reward[..., None]], axis=-1)
        outputs = MemberOutputs(mean=target[None], logvar=jnp.full((1, *target.shape), ORACLE_LOGVAR, jnp.float32),
                                terminal_logit=None, elites=jnp.zeros((1,), jnp.int32), obs_dim=self.obs_dim)
        pred = Prediction(next_obs=next_obs, reward=reward, terminal=terminated, member=jnp.zeros(batch, jnp.int32), outputs=outputs)
        return next_state, pred
