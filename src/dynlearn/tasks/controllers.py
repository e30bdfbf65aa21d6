"""Hand-written controllers for the low-dimensional tasks: reference "expert" returns and behaviour policies.

They need no training, so the built-in default job can make an informative dataset on the spot, and
reference returns for these tasks are measured with them (benchmarks/README.md, "Reference returns").
"""

from __future__ import annotations

import numpy as np


class PendulumSwingUp:
    """Pendulum-v1: energy-shaping swing-up, then a linear balancing law near the top.

    The pendulum (m = l = 1, g = 10) is pumped toward the upright energy ``E0 = m g l / 2`` with
    ``u = k (E0 - E) sign(thetadot)``; within ``|theta| < switch`` a pole-placement law
    ``u = -(k1 theta + k2 thetadot)`` (closed-loop poles near -5, -5 for ``thetadot'' = 15 theta + 3 u``) holds it.
    """

    def __init__(self, *, energy_gain: float = 2.0, switch: float = 0.6, k1: float = 13.3, k2: float = 3.3, max_torque: float = 2.0):
        self.energy_gain, self.switch, self.k1, self.k2, self.max_torque = energy_gain, switch, k1, k2, max_torque

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        cos, sin, thdot = obs[:, 0], obs[:, 1], obs[:, 2]
        theta = np.arctan2(sin, cos)
        energy = 0.5 * (1.0 / 3.0) * thdot**2 + 5.0 * cos
        pump = self.energy_gain * (5.0 - energy) * np.sign(thdot + 1e-3)
        balance = -(self.k1 * theta + self.k2 * thdot)
        u = np.where(np.abs(theta) < self.switch, balance, pump)
        return np.clip(u, -self.max_torque, self.max_torque)[:, None].astype(np.float32)


class InvertedPendulumBalance:
    """InvertedPendulum-v5: a linear state-feedback law ``u = -K obs`` on ``[x, theta, xdot, thetadot]``."""

    def __init__(self, gains=(0.5, 12.0, 1.0, 2.0), max_force: float = 3.0):
        self.gains, self.max_force = np.asarray(gains, np.float32), max_force

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        u = obs @ self.gains
        return np.clip(u, -self.max_force, self.max_force)[:, None].astype(np.float32)


class ReacherReach:
    """Reacher-v5: Jacobian-transpose control of the two-link arm, ``u = kp J(q)^T (target - fingertip) - kd qdot``.

    The arm's links are 0.1 and 0.11 long to the fingertip (Gymnasium's ``reacher.xml``); ``obs`` holds ``cos q``,
    ``sin q``, the target, ``qdot`` and ``fingertip - target``. The gains were picked on 30 episodes from a small grid
    (kp 5-40, kd 0.05-0.2) for the return, whose action cost ``||u||^2`` weighs as much as the distance.
    """

    def __init__(self, *, kp: float = 20.0, kd: float = 0.05, links: tuple[float, float] = (0.1, 0.11)):
        self.kp, self.kd, self.links = kp, kd, links

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        q1, q2 = np.arctan2(obs[:, 2], obs[:, 0]), np.arctan2(obs[:, 3], obs[:, 1])
        l1, l2 = self.links
        s1, c1, s12, c12 = np.sin(q1), np.cos(q1), np.sin(q1 + q2), np.cos(q1 + q2)
        ex, ey = -obs[:, 8], -obs[:, 9]  # target minus fingertip
        # J = [[-l1 s1 - l2 s12, -l2 s12], [l1 c1 + l2 c12, l2 c12]]; u = kp J^T e - kd qdot
        u1 = self.kp * ((-l1 * s1 - l2 * s12) * ex + (l1 * c1 + l2 * c12) * ey) - self.kd * obs[:, 6]
        u2 = self.kp * (-l2 * s12 * ex + l2 * c12 * ey) - self.kd * obs[:, 7]
        return np.clip(np.stack([u1, u2], axis=1), -1.0, 1.0).astype(np.float32)
