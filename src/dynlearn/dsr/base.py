"""The interface every latent time-series model keeps: ``x_t -> z_t -> z_{t+1} -> x_{t+1}``.

A latent model for dynamical-systems reconstruction (DSR) is a discrete-time map ``z_{t+1} = F(z_t)`` on a
latent state ``z`` of ``latent_dim`` (M) units, read out into the observation space of ``obs_dim`` (N) by
:meth:`AbstractLatentModel.observe` and entered from an observation by :meth:`AbstractLatentModel.encode`.

**One example per call.** ``encode``, ``step``, ``observe`` and ``jacobian`` take one state or observation
(no batch axis); batch with ``jax.vmap`` at the call site (a vmapped step is one matmul per layer). The PLRNNs'
``encode``, ``step`` and ``observe`` also accept leading batch axes directly.
:meth:`AbstractLatentModel.generate` free-runs the map with ``lax.scan`` (one compiled loop, no host round trips).

**Identity readout** (the observation model of Brenner et al. 2022 used by GTF, arXiv 2306.04406, and the AL-RNN,
arXiv 2410.14240): the first N latent units *are* the observations; the other M - N units start from a learned
linear estimate ``L x`` (see :class:`dynlearn.dsr.plrnn.ShallowPLRNN`).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array, Float
from ..errors import ConfigError


class AbstractLatentModel(eqx.Module):
    """A learned map on a latent state with an observation model. See the module docstring for conventions."""

    obs_dim: eqx.AbstractVar[int]
    latent_dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def encode(self, x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        """The latent state that an observation implies (the start of a trajectory)."""

    @abc.abstractmethod
    def step(self, z: Float[Array, " latent"], *, forcing: Float[Array, " latent"] | None = None) -> Float[Array, " latent"]:
        """One step of the map, ``z_{t+1} = F(z_t)`` (``+ forcing``: an additive latent drive such as ``C s_t``
        for external inputs ``s_t``; None for an autonomous system). Teacher forcing is not done here: see
        :mod:`dynlearn.dsr.teacher_forcing`."""

    @abc.abstractmethod
    def observe(self, z: Float[Array, " latent"]) -> Float[Array, " obs"]:
        """The observation a latent state predicts."""

    @property
    @abc.abstractmethod
    def n_params(self) -> int:
        """Parameters of the latent map, counted as the papers do (the observation model's apart)."""

    def jacobian(self, z: Float[Array, " latent"]) -> Float[Array, "latent latent"]:
        """``dF/dz`` at ``z`` (forward-mode autodiff; piecewise-linear models override it in closed form)."""
        return jax.jacfwd(lambda s: self.step(s))(z)

    def generate(self, steps: int, *, x0: Float[Array, " obs"] | None = None, z0: Float[Array, " latent"] | None = None,
                 latent: bool = False, forcing: Float[Array, "steps_minus_1 latent"] | None = None
                 ) -> Float[Array, "steps obs"] | Float[Array, "steps latent"]:
        """Free-run the map for ``steps`` states (the first one is the start), from an observation ``x0``
        (encoded) or a latent state ``z0`` (exactly one of them).

        Returns observations ``[steps, obs_dim]``, or latent states ``[steps, latent_dim]`` with ``latent=True``.
        ``forcing``: an optional drive ``[steps - 1, latent_dim]`` added at every step.
        """
        if (x0 is None) == (z0 is None):
            raise ConfigError("generate: pass exactly one start, x0 (an observation) or z0 (a latent state).")
        if int(steps) < 1:
            raise ConfigError(f"generate: steps must be >= 1, got {steps}.")
        if x0 is not None:
            x0 = jnp.asarray(x0)
            if x0.shape != (self.obs_dim,):
                raise ConfigError(f"generate: x0 has shape {x0.shape}, the model observes ({self.obs_dim},).")
            start = self.encode(x0)
        else:
            start = jnp.asarray(z0)
            if start.shape != (self.latent_dim,):
                raise ConfigError(f"generate: z0 has shape {start.shape}, the latent state is ({self.latent_dim},).")
        if forcing is not None and forcing.shape != (int(steps) - 1, self.latent_dim):
            raise ConfigError(f"generate: forcing has shape {forcing.shape}, expected ({int(steps) - 1}, {self.latent_dim}).")

        def body(z, drive):
            z = self.step(z, forcing=drive)
            return z, z

        _, rest = jax.lax.scan(body, start, forcing, length=int(steps) - 1)
        traj = jnp.concatenate([start[None], rest], axis=0)
        return traj if latent else jax.vmap(self.observe)(traj)
