"""Normalisation statistics fitted on a training split."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._types import ArrayLike, Float


class Normalizer(eqx.Module):
    """Per-feature standardisation ``(x - mean) / std``; ``std`` is floored so constant features pass through."""

    mean: Float[ArrayLike, " d"]
    std: Float[ArrayLike, " d"]

    @classmethod
    def fit(cls, x: Float[ArrayLike, "n d"], *, min_std: float = 1e-6) -> "Normalizer":
        """Statistics of the rows of ``x`` (fit on the training split only)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"Normalizer.fit needs a non-empty [N, d] array, got shape {x.shape}")
        std = np.maximum(x.std(axis=0), min_std)
        return cls(mean=jnp.asarray(x.mean(axis=0), jnp.float32), std=jnp.asarray(std, jnp.float32))

    @classmethod
    def identity(cls, dim: int) -> "Normalizer":
        return cls(mean=jnp.zeros(dim, jnp.float32), std=jnp.ones(dim, jnp.float32))

    def __call__(self, x):
        return (x - self.mean) / self.std

    def inverse(self, z):
        return z * self.std + self.mean
