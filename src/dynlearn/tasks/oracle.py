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
        return _join(self.qpos, self.qpos_lo), _join(self.qvel, self.qvel_lo)


def _split(x) -> tuple[np.ndarray, np.ndarray]:
    """float64 -> (float32 value, float32 residual)."""
    x = np.asarray(x, np.float64)
    hi = x.astype(np.float32)
    return hi, (x - hi.astype(np.float64)).astype(np.float32)


def _join(hi, lo) -> np.ndarray:
    return np.asarray(hi, np.float64) + np.asarray(lo, np.float64)


# ----------------------------------------------------------------------------------------------
# Host side: Gymnasium v5 formulas, vectorised over rows (float64)


class _Formulas:
    """Observation, reward and termination of one Gymnasium v5 task from states before/after a step."""

    full_state_obs: bool = False
    """``init_state`` may rebuild the state from an observation (see :meth:`state_from_obs`)."""

    def obs(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reward_terminated(self, qpos0, qpos1, qvel1, act) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def state_from_obs(self, obs: Float[Array, "... obs"]) -> tuple[Array, Array] | None:
        """``(qpos, qvel)`` behind observations (JAX, traceable), or None where they do not determine it."""
        return None


class _Planar(_Formulas):
    """Hopper-v5, Walker2d-v5, HalfCheetah-v5: ``obs = (qpos[1:], clip(qvel))``, reward
    ``w_f * dx / dt + healthy * h - w_c * |a|^2``, terminated ``not healthy`` (when the env terminates)."""

    def __init__(self, env, kind: str):
        self.kind = kind
        self.dt = float(env.dt)
        self.nq = int(env.model.nq)
        self.forward_w = float(env._forward_reward_weight)
        self.ctrl_w = float(env._ctrl_cost_weight)
        self.exclude_x = bool(env._exclude_current_positions_from_observation)
        self.clip = kind in ("hopper", "walker2d")  # their _get_obs clips velocities to +-10; HalfCheetah's does not
        if kind == "halfcheetah":
            self.healthy_reward, self.terminate = 0.0, False
        else:
            self.healthy_reward = float(env._healthy_reward)
            self.terminate = bool(env._terminate_when_unhealthy)
            self.z_range = tuple(env._healthy_z_range)
            self.angle_range = tuple(env._healthy_angle_range)
            self.state_range = tuple(env._healthy_state_range) if kind == "hopper" else None
        # HalfCheetah: x is the only coordinate the observation drops, and nothing depends on it
        self.full_state_obs = kind == "halfcheetah" and self.exclude_x

    def obs(self, qpos, qvel):
        pos = qpos[:, 1:] if self.exclude_x else qpos
        vel = np.clip(qvel, -10.0, 10.0) if self.clip else qvel
        return np.concatenate([pos, vel], axis=1)

    def healthy(self, qpos, qvel):
        z, angle = qpos[:, 1], qpos[:, 2]
        ok = (self.z_range[0] < z) & (z < self.z_range[1]) & (self.angle_range[0] < angle) & (angle < self.angle_range[1])
        if self.state_range is not None:  # Hopper: state_vector()[2:] = (qpos[2:], qvel), unclipped
            rest = np.concatenate([qpos[:, 2:], qvel], axis=1)
            ok &= np.all((self.state_range[0] < rest) & (rest < self.state_range[1]), axis=1)
        return ok

    def reward_terminated(self, qpos0, qpos1, qvel1, act):
        x_velocity = (qpos1[:, 0] - qpos0[:, 0]) / self.dt
        ctrl_cost = self.ctrl_w * np.sum(np.square(act), axis=1)
        if self.kind == "halfcheetah":
            return self.forward_w * x_velocity - ctrl_cost, np.zeros(len(act), bool)
        healthy = self.healthy(qpos1, qvel1)
        reward = self.forward_w * x_velocity + self.healthy_reward * healthy - ctrl_cost
        return reward, (~healthy) & self.terminate

    def state_from_obs(self, obs):
        if not self.full_state_obs:
            return None
        n = self.nq - 1
        return jnp.concatenate([jnp.zeros((*obs.shape[:-1], 1), obs.dtype), obs[..., :n]], axis=-1), obs[..., n:]


class _InvertedPendulum(_Formulas):
    """InvertedPendulum-v5: ``obs = (qpos, qvel)``; terminated when not finite or ``|qpos[1]| > 0.2``; reward 1 if not."""

    full_state_obs = True

    def __init__(self, env):
        self.nq = int(env.model.nq)

    def obs(self, qpos, qvel):
        return np.concatenate([qpos, qvel], axis=1)

    def reward_terminated(self, qpos0, qpos1, qvel1, act):
        obs = self.obs(qpos1, qvel1)
        terminated = ~np.all(np.isfinite(obs), axis=1) | (np.abs(obs[:, 1]) > 0.2)
        return (~terminated).astype(np.float64), terminated

    def state_from_obs(self, obs):
        return obs[..., : self.nq], obs[..., self.nq:]


def _formulas(env) -> _Formulas | None:
    """Vectorised formulas for the Gymnasium v5 tasks we know; None for others (the "env" backend)."""
    module = type(env).__module__
    table = {"gymnasium.envs.mujoco.hopper_v5": "hopper", "gymnasium.envs.mujoco.walker2d_v5": "walker2d",
             "gymnasium.envs.mujoco.half_cheetah_v5": "halfcheetah"}
    if module in table:
        return _Planar(env, table[module])
    if module == "gymnasium.envs.mujoco.inverted_pendulum_v5":
        return _InvertedPendulum(env)
    return None


class _Simulator:
    """Host-side stepping of a batch of ``(qpos, qvel, action)`` rows for one task (see the module docstring)."""

    def __init__(self, task: Task, backend: str, nthread: int):
        import mujoco

        self.task_id = task.id
        self.env = task.make().unwrapped
        if not hasattr(self.env, "model") or not hasattr(self.env, "data"):
            self.env.close()
            raise ConfigError(f"OracleModel: task {task.id} is not a MuJoCo environment (no model/data). The oracle steps "
                              "MuJoCo; other tasks have no oracle yet.")
        self.model = self.env.model
        self.nq, self.nv, self.nu = int(self.model.nq), int(self.model.nv), int(self.model.nu)
        self.frame_skip = int(self.env.frame_skip)
        self.formulas = _formulas(self.env)
        if backend == "auto":
            backend = "rollout" if self.formulas is not None else "env"
        if backend == "rollout" and self.formulas is None:
            raise ConfigError(f"OracleModel: backend 'rollout' needs vectorised formulas for {task.id} (known: Hopper, "
                              "Walker2d, HalfCheetah, InvertedPendulum v5). Fix: backend='env' (or 'auto').")
        if backend not in ("rollout", "env"):
            raise ConfigError(f"OracleModel: backend must be 'auto', 'rollout' or 'env', got {backend!r}.")
        self.backend = backend
        self.obs_dim = int(np.prod(self.env.observation_space.shape))
        if backend == "rollout":
            from mujoco import rollout as mj_rollout

            self.nthread = max(1, int(nthread))
            self.datas = [mujoco.MjData(self.model) for _ in range(self.nthread)]
            self.pool = mj_rollout.Rollout(nthread=self.nthread if self.nthread > 1 else 0)
            spec = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
            self.spec = spec
            template = np.empty(mujoco.mj_stateSize(self.model, spec))
            probe = mujoco.MjData(self.model)
            probe.qpos[:] = np.arange(1, self.nq + 1)
            probe.qvel[:] = -np.arange(1, self.nv + 1)
            mujoco.mj_getState(self.model, probe, template, spec)
            self.qpos_at = int(np.flatnonzero(template == 1.0)[0])
            self.qvel_at = int(np.flatnonzero(template == -1.0)[0])
            base = mujoco.MjData(self.model)
            mujoco.mj_getState(self.model, base, template, spec)
            self.template = template  # a fresh MjData's state (time 0, default act/plugin state)

    # -- the host callback --------------------------------------------------------------------

    def __call__(self, qpos, qvel, qpos_lo, qvel_lo, act):
        """``(qpos', qvel', qpos_lo', qvel_lo', obs', reward, terminated)`` for rows with any leading shape."""
        lead = qpos.shape[:-1]
        q0 = _join(qpos, qpos_lo).reshape(-1, self.nq)
        v0 = _join(qvel, qvel_lo).reshape(-1, self.nv)
        a = np.asarray(act, np.float64).reshape(-1, self.nu)
        q1, v1, obs, rew, term = self.step64(q0, v0, a)
        shape = lambda x, *tail: np.ascontiguousarray(x.reshape(*lead, *tail))
        (qh, ql), (vh, vl) = _split(q1), _split(v1)
        return (shape(qh, self.nq), shape(vh, self.nv), shape(ql, self.nq), shape(vl, self.nv),
                shape(obs.astype(np.float32), self.obs_dim), shape(rew.astype(np.float32)), shape(term.astype(bool)))

    def step64(self, q0: np.ndarray, v0: np.ndarray, a: np.ndarray):
        """One control step of rows ``[n, ...]`` in float64: ``(qpos', qvel', obs', reward, terminated)``."""
        if len(q0) == 0:
            q1, v1, obs, rew, term = q0, v0, np.zeros((0, self.obs_dim)), np.zeros(0), np.zeros(0, bool)
        elif self.backend == "rollout":
            q1, v1, obs, rew, term = self._rollout(q0, v0, a)
        else:
            q1, v1, obs, rew, term = self._env_loop(q0, v0, a)
        return q1, v1, obs, rew, term

    def _rollout(self, q0, v0, a):
        n = len(q0)
        init = np.tile(self.template, (n, 1))
        init[:, self.qpos_at:self.qpos_at + self.nq] = q0
        init[:, self.qvel_at:self.qvel_at + self.nv] = v0
        control = np.ascontiguousarray(np.broadcast_to(a[:, None, :], (n, self.frame_skip, self.nu)))
        # initial_warmstart=None: the solver starts from zero for every row (deterministic)
        states, _ = self.pool.rollout(self.model, self.datas, init, control, nstep=self.frame_skip)
        last = states[:, -1]
        q1 = last[:, self.qpos_at:self.qpos_at + self.nq]
        v1 = last[:, self.qvel_at:self.qvel_at + self.nv]
        f = self.formulas
        rew, term = f.reward_terminated(q0, q1, v1, a)
        return q1, v1, f.obs(q1, v1), rew, term

    def _env_loop(self, q0, v0, a):
        env, n = self.env, len(q0)
        q1, v1 = np.empty_like(q0), np.empty_like(v0)
        obs, rew, term = np.empty((n, self.obs_dim)), np.empty(n), np.empty(n, bool)
        for i in range(n):
            env.data.qacc_warmstart[:] = 0.0
            env.set_state(q0[i], v0[i])
            o, r, terminated, _, _ = env.step(a[i])
            obs[i], rew[i], term[i] = np.asarray(o, np.float64).ravel(), r, terminated
            q1[i], v1[i] = env.data.qpos, env.data.qvel
        return q1, v1, obs, rew, term

    def close(self):
        self.env.close()
        if getattr(self, "pool", None) is not None:
            self.pool.close()


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
def _simulator(task_id: str, backend: str, nthread: int) -> _Simulator:
    """One simulator per (task, backend, threads), shared by every oracle of that task (same compiled programs)."""
    return _Simulator(get(task_id), backend, nthread)


# ----------------------------------------------------------------------------------------------
# The model


class OracleModel(AbstractTransitionModel):
    """The task's own MuJoCo dynamics as a :class:`~dynlearn.models.AbstractTransitionModel` (module docstring).

    Build with :meth:`for_task`. ``step`` ignores ``obs`` for the dynamics (the state is the truth) and uses
    it only for the delta in ``outputs.mean``; ``key``, ``member`` and ``deterministic`` change nothing.
    """

    sim: _Simulator = eqx.field(static=True)
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
                hi, lo = _split(x)
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
