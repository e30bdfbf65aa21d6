"""The one container every control-track feature reads: ``Transitions``, one row per environment step."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import ArrayLike, Bool, Float, Key

FIELDS = ("obs", "act", "rew", "next_obs", "terminal", "timeout", "next_obs_valid")


class Transitions(eqx.Module):
    """Rows ``(obs, act, rew, next_obs, terminal, timeout, next_obs_valid)``, arrays of leading size N.

    - ``terminal``: the episode truly ended at this step (no bootstrapping from ``next_obs``).
    - ``timeout``: the episode was cut at this step (a truncation, not a terminal: bootstrapping is right).
    - ``next_obs_valid``: False where the data has no successor observation for this step (for
      example the last step of an episode in a D4RL file without ``next_observations``). Such rows
      keep their reward and terminal flag; ``next_obs`` there is a copy of ``obs`` and must not be
      used as a successor (model fitting skips them).

    Leaves may be NumPy (host) or JAX (device) arrays; ``jax.device_put(t)`` moves them all.
    Build one from a file with :func:`dynlearn.data.load` or from arrays with
    :func:`dynlearn.data.from_arrays`, which validate; the constructor only checks shapes.
    """

    obs: Float[ArrayLike, "n obs"]
    act: Float[ArrayLike, "n act"]
    rew: Float[ArrayLike, " n"]
    next_obs: Float[ArrayLike, "n obs"]
    terminal: Bool[ArrayLike, " n"]
    timeout: Bool[ArrayLike, " n"]
    next_obs_valid: Bool[ArrayLike, " n"]

    def __check_init__(self):
        n = self.obs.shape[0]
        for name in FIELDS:
            value = getattr(self, name)
            if value.shape[:1] != (n,):
                raise ValueError(f"Transitions.{name} has leading size {value.shape[:1]}, expected ({n},)")
        if self.obs.ndim != 2 or self.next_obs.shape != self.obs.shape or self.act.ndim != 2:
            raise ValueError(f"Transitions: obs {self.obs.shape}, next_obs {self.next_obs.shape}, act {self.act.shape}: "
                             "expected obs and next_obs [N, obs_dim] and act [N, act_dim]")

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.act.shape[1])

    def take(self, index) -> "Transitions":
        """Rows at ``index`` (an integer array, slice or boolean mask), as a new ``Transitions``."""
        return jax.tree_util.tree_map(lambda x: x[index], self)

    def done(self):
        """Where an episode ends at this step: ``terminal | timeout``."""
        return self.terminal | self.timeout

    def with_successor(self) -> "Transitions":
        """Host-side: the rows that have a successor observation (what model fitting uses)."""
        return self.take(np.flatnonzero(np.asarray(self.next_obs_valid)))

    def to_device(self) -> "Transitions":
        """Move every leaf to the default JAX device (once, before a training loop)."""
        return jax.device_put(self)


def sample(data: Transitions, batch_size: int, *, key: Key) -> Transitions:
    """A batch of ``batch_size`` rows drawn uniformly with replacement. Jittable; data stays on device."""
    index = jax.random.randint(key, (batch_size,), 0, data.obs.shape[0])
    return jax.tree_util.tree_map(lambda x: jnp.take(x, index, axis=0), data)


def concatenate(parts: list[Transitions]) -> Transitions:
    """Rows of several ``Transitions`` one after another (host-side)."""
    if not parts:
        raise ValueError("concatenate needs at least one Transitions")
    return jax.tree_util.tree_map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *parts)
