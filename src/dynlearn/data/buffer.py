"""A fixed-size, device-resident ring buffer of transitions (online replay, model rollouts)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Int
from .transitions import Transitions


class ReplayBuffer(eqx.Module):
    """``capacity`` rows of :class:`Transitions` on device; ``add`` writes a block at the cursor, wrapping around.

    Shapes never change, so jitted consumers (``UniformSampler(buffer.data, batch, buffer.size)``) compile once.
    """

    data: Transitions
    size: Int[Array, ""]
    cursor: Int[Array, ""]

    @classmethod
    def empty(cls, capacity: int, obs_dim: int, act_dim: int) -> "ReplayBuffer":
        z = lambda *shape, dtype=jnp.float32: jnp.zeros((capacity, *shape), dtype)  # noqa: E731
        data = Transitions(obs=z(obs_dim), act=z(act_dim), rew=z(), next_obs=z(obs_dim), terminal=z(dtype=bool),
                           timeout=z(dtype=bool), next_obs_valid=z(dtype=bool))
        return cls(data=data, size=jnp.zeros((), jnp.int32), cursor=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return int(self.data.obs.shape[0])

    @eqx.filter_jit
    def add(self, block: Transitions) -> "ReplayBuffer":
        """Write ``block``'s rows at the cursor (oldest rows are overwritten once full)."""
        n = block.obs.shape[0]
        index = (self.cursor + jnp.arange(n, dtype=jnp.int32)) % self.capacity
        data = jax.tree_util.tree_map(lambda buf, new: buf.at[index].set(new.astype(buf.dtype)), self.data, block)
        size = jnp.minimum(self.size + n, self.capacity).astype(jnp.int32)
        return ReplayBuffer(data=data, size=size, cursor=((self.cursor + n) % self.capacity).astype(jnp.int32))

    def filled(self) -> Transitions:
        """Host copy of the filled rows, oldest first."""
        size, cursor = int(self.size), int(self.cursor)
        order = np.arange(size) if size < self.capacity else (np.arange(size) + cursor) % self.capacity
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[order], self.data)

    @classmethod
    def from_rows(cls, rows: Transitions, capacity: int) -> "ReplayBuffer":
        """A buffer of ``capacity`` holding ``rows`` (e.g. restored from a checkpoint)."""
        buffer = cls.empty(capacity, rows.obs_dim, rows.act_dim)
        return buffer.add(rows) if len(rows) else buffer
