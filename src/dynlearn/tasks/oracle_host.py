"""The host side of :class:`dynlearn.tasks.oracle.OracleModel`: MuJoCo stepping of a batch of ``(qpos, qvel, action)``
rows in float64 (:class:`Simulator`), and Gymnasium v5's observation, reward and termination formulas vectorised over
rows (:class:`Formulas`) for its C rollout backend. The design (exact float64 states as float32 pairs, the two backends,
the zero warm start) is described in :mod:`dynlearn.tasks.oracle`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .._types import Array, Float
from ..errors import ConfigError
from .registry import Task


def split_float64(x) -> tuple[np.ndarray, np.ndarray]:
    """float64 -> (float32 value, float32 residual)."""
    x = np.asarray(x, np.float64)
    hi = x.astype(np.float32)
    return hi, (x - hi.astype(np.float64)).astype(np.float32)


def join_float64(hi, lo) -> np.ndarray:
    return np.asarray(hi, np.float64) + np.asarray(lo, np.float64)


# ----------------------------------------------------------------------------------------------
# Gymnasium v5 formulas, vectorised over rows (float64)


class Formulas:
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


class PlanarFormulas(Formulas):
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


class InvertedPendulumFormulas(Formulas):
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


def formulas_for(env) -> Formulas | None:
    """Vectorised formulas for the Gymnasium v5 tasks we know; None for others (the "env" backend)."""
    module = type(env).__module__
    table = {"gymnasium.envs.mujoco.hopper_v5": "hopper", "gymnasium.envs.mujoco.walker2d_v5": "walker2d",
             "gymnasium.envs.mujoco.half_cheetah_v5": "halfcheetah"}
    if module in table:
        return PlanarFormulas(env, table[module])
    if module == "gymnasium.envs.mujoco.inverted_pendulum_v5":
        return InvertedPendulumFormulas(env)
    return None


# ----------------------------------------------------------------------------------------------
# Stepping


class Simulator:
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
        self.formulas = formulas_for(self.env)
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
        q0 = join_float64(qpos, qpos_lo).reshape(-1, self.nq)
        v0 = join_float64(qvel, qvel_lo).reshape(-1, self.nv)
        a = np.asarray(act, np.float64).reshape(-1, self.nu)
        q1, v1, obs, rew, term = self.step64(q0, v0, a)
        shape = lambda x, *tail: np.ascontiguousarray(x.reshape(*lead, *tail))
        (qh, ql), (vh, vl) = split_float64(q1), split_float64(v1)
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
