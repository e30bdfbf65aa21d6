"""Piecewise-linear RNNs for dynamical-systems reconstruction: shPLRNN, clipped shPLRNN, AL-RNN.

**shPLRNN** (Hess et al., ICML 2023, "Generalized Teacher Forcing for Learning Chaotic Dynamics", arXiv 2306.04406;
reference code DurstewitzLab/GTF-shPLRNN, ``src/models/shallow_plrnn.jl``): a linear autoregressive term plus a
one-hidden-layer ReLU network,

    z_{t+1} = A z_t + W1 relu(W2 z_t + h2) + h1,        A diagonal (M), W1 (M x H), W2 (H x M), h1 (M), h2 (H).

The **clipped** variant replaces ``relu(W2 z + h2)`` by ``relu(W2 z + h2) - relu(W2 z)``, a bounded nonlinearity,
so orbits stay bounded when ``max |A_ii| < 1`` (the paper's default for Lorenz-63: M = 3, H = 100).
Parameters: ``2 M H + 2 M + H`` (706 for M = 3, H = 100).

**AL-RNN** (Brenner et al., NeurIPS 2024, "Almost-Linear RNNs Yield Highly Interpretable Symbolic Codes in
Dynamical Systems Reconstruction", arXiv 2410.14240; reference code DurstewitzLab/ALRNN-DSR, ``src/models/alrnn.jl``):

    z_{t+1} = A z_t + W phi(z_t) + h,     phi(z) = (z_1, ..., z_{M-P}, relu(z_{M-P+1}), ..., relu(z_M)),

A diagonal (M), W full (M x M), h (M): only the last P units are piecewise linear, so the map has at most 2^P
linear subregions (see :mod:`dynlearn.dsr.analysis`). Parameters: ``M^2 + 2 M``.

**Initialisation** as the reference code: ``A = diag(K / lambda_max(K))`` with ``K = R^T R / M + I``, ``R ~ N(0, 1)``
(Talathi & Vartak 2016); shPLRNN ``W1 ~ U(+-1/sqrt(H))``, ``W2 ~ U(+-1/sqrt(M))``, ``h1 = 0``, ``h2 = 0`` (clipped:
``h2 ~ U(+-1/sqrt(H))``); AL-RNN ``W ~ N(0, 0.01^2)``, ``h = 0``.

**Observation model** (identity readout, Brenner et al. 2022, as both repositories): the first N latent units are
the observations; when M > N the remaining M - N units of the first state are ``L x_1`` with a learned ``L``
(M - N x N), initialised ``glorot_uniform`` (GTF code) or ``U(+-1/sqrt(N))`` (AL-RNN code). ``L`` is trained with
the map and counted apart (:attr:`n_observation_params`), as the reference code counts it.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array, Float, Key
from ..errors import ConfigError
from .base import AbstractLatentModel


def normalized_positive_definite(m: int, *, key: Key) -> Float[Array, "m m"]:
    """``K / lambda_max(K)`` with ``K = R^T R / m + I``: positive definite, largest eigenvalue 1 (Talathi & Vartak 2016)."""
    r = jax.random.normal(key, (m, m), jnp.float32)
    k = r.T @ r / float(m) + jnp.eye(m, dtype=jnp.float32)
    return k / jnp.max(jnp.abs(jnp.linalg.eigvalsh(k)))


def _uniform(key: Key, shape: tuple[int, ...], bound: float) -> Float[Array, "*shape"]:
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def _check_dims(where: str, obs_dim: int, latent_dim: int) -> None:
    if obs_dim < 1 or latent_dim < 1:
        raise ConfigError(f"{where}: obs_dim {obs_dim} and latent_dim {latent_dim} must be >= 1.")
    if latent_dim < obs_dim:
        raise ConfigError(f"{where}: latent_dim {latent_dim} is below the data dimension {obs_dim}; the identity readout "
                          f"reads the first obs_dim latent units. Fix: latent_dim >= {obs_dim}.")


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _shplrnn_arrays(key: Key, n: int, m: int, h: int, clipped: bool):
    """``A, W1, W2, h2, L`` as the GTF reference initialises them (one compiled call)."""
    ka, k1, k2, kh, kl = jax.random.split(key, 5)
    a = jnp.diagonal(normalized_positive_definite(m, key=ka))
    w1 = _uniform(k1, (m, h), 1.0 / math.sqrt(h))
    w2 = _uniform(k2, (h, m), 1.0 / math.sqrt(m))
    h2 = _uniform(kh, (h,), 1.0 / math.sqrt(h)) if clipped else jnp.zeros((h,), jnp.float32)
    lmap = None if m == n else _uniform(kl, (m - n, n), math.sqrt(6.0 / m))  # glorot: fan_in + fan_out = N + (M - N)
    return a, w1, w2, h2, lmap


@functools.partial(jax.jit, static_argnums=(1, 2))
def _alrnn_arrays(key: Key, n: int, m: int):
    """``A, W, L`` as the AL-RNN reference initialises them (one compiled call)."""
    ka, kw, kl = jax.random.split(key, 3)
    a = jnp.diagonal(normalized_positive_definite(m, key=ka))
    w = 0.01 * jax.random.normal(kw, (m, m), jnp.float32)
    lmap = None if m == n else _uniform(kl, (m - n, n), 1.0 / math.sqrt(n))
    return a, w, lmap


class AbstractIdentityReadout(AbstractLatentModel):
    """Identity observation model: ``observe(z) = z[:N]``, ``encode(x) = (x, L x)`` (``L`` None when M == N)."""

    L: eqx.AbstractVar[Float[Array, "hidden_units obs"] | None]

    def encode(self, x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        x = jnp.asarray(x, jnp.float32)
        return x if self.L is None else jnp.concatenate([x, x @ self.L.T], axis=-1)

    def observe(self, z: Float[Array, " latent"]) -> Float[Array, " obs"]:
        return z[..., : self.obs_dim]

    @property
    def n_observation_params(self) -> int:
        """Entries of ``L`` (0 when M == N)."""
        return 0 if self.L is None else int(self.L.size)

    def observation_penalty(self) -> Float[Array, ""]:
        """``|L|^2`` (the reference's observation-model L2 regulariser)."""
        return jnp.zeros((), jnp.float32) if self.L is None else jnp.sum(jnp.square(self.L))


class ShallowPLRNN(AbstractIdentityReadout):
    """shPLRNN ``z' = A z + W1 relu(W2 z + h2) + h1`` or, with ``clipped``, ``W1 [relu(W2 z + h2) - relu(W2 z)]``.

    >>> model = ShallowPLRNN.init(obs_dim=3, latent_dim=3, hidden_dim=100, clipped=True, key=key)
    >>> x = model.generate(1000, x0=x_data[0])          # [1000, 3]
    """

    A: Float[Array, " latent"]
    W1: Float[Array, "latent hidden"]
    W2: Float[Array, "hidden latent"]
    h1: Float[Array, " latent"]
    h2: Float[Array, " hidden"]
    L: Float[Array, "hidden_units obs"] | None
    obs_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    hidden_dim: int = eqx.field(static=True)
    clipped: bool = eqx.field(static=True)

    @classmethod
    def init(cls, obs_dim: int, latent_dim: int, hidden_dim: int, *, clipped: bool = True, key: Key) -> ShallowPLRNN:
        """Fresh parameters, initialised as the GTF reference code (module docstring)."""
        _check_dims("ShallowPLRNN", obs_dim, latent_dim)
        if hidden_dim < 1:
            raise ConfigError(f"ShallowPLRNN: hidden_dim must be >= 1, got {hidden_dim}.")
        a, w1, w2, h2, lmap = _shplrnn_arrays(key, obs_dim, latent_dim, hidden_dim, clipped)
        return cls(A=a, W1=w1, W2=w2, h1=jnp.zeros((latent_dim,), jnp.float32), h2=h2, L=lmap, obs_dim=obs_dim,
                   latent_dim=latent_dim, hidden_dim=hidden_dim, clipped=clipped)

    @property
    def kind(self) -> str:
        return "clipped_shplrnn" if self.clipped else "shplrnn"

    @property
    def n_params(self) -> int:
        """``2 M H + 2 M + H`` (A, W1, W2, h1, h2)."""
        m, h = self.latent_dim, self.hidden_dim
        return 2 * m * h + 2 * m + h

    def hidden(self, z: Float[Array, " latent"]) -> Float[Array, " hidden"]:
        """The hidden layer's output: ``relu(W2 z + h2)`` (clipped: ``- relu(W2 z)``)."""
        a = z @ self.W2.T  # not W2 @ z: vmapped, this is a [B, M] x [M, H] matmul with no transposes (faster)
        out = jax.nn.relu(a + self.h2)
        return out - jax.nn.relu(a) if self.clipped else out

    def step(self, z: Float[Array, " latent"], *, forcing: Float[Array, " latent"] | None = None) -> Float[Array, " latent"]:
        z_next = self.A * z + self.hidden(z) @ self.W1.T + self.h1
        return z_next if forcing is None else z_next + forcing

    def jacobian(self, z: Float[Array, " latent"]) -> Float[Array, "latent latent"]:
        """``diag(A) + W1 diag(d) W2`` with ``d = [W2 z > -h2]`` (clipped: ``- [W2 z > 0]``), as the reference."""
        a = z @ self.W2.T
        d = (a > -self.h2).astype(z.dtype)
        if self.clipped:
            d = d - (a > 0).astype(z.dtype)
        # W1 diag(d) W2 = sum_k d_k W1[:, k] W2[k, :]: one vector-matrix product (a plain matmul under vmap).
        m = self.latent_dim
        outer = (self.W1.T[:, :, None] * self.W2[:, None, :]).reshape(self.hidden_dim, m * m)
        return jnp.diag(self.A) + (d @ outer).reshape(m, m)

    def penalty(self) -> Float[Array, ""]:
        """The GTF reference's latent-model L2 regulariser: ``|1 - A|^2 + |W1|^2 + |W2|^2 + |h1|^2 + |h2|^2``."""
        return (jnp.sum(jnp.square(1.0 - self.A)) + jnp.sum(jnp.square(self.W1)) + jnp.sum(jnp.square(self.W2))
                + jnp.sum(jnp.square(self.h1)) + jnp.sum(jnp.square(self.h2)))

    def norm_upper_bound(self) -> Float[Array, ""]:
        """``max |A_ii| + |W1|_2 |W2|_2``: an upper bound of every Jacobian's spectral norm (reference code)."""
        return jnp.max(jnp.abs(self.A)) + jnp.linalg.norm(self.W1, 2) * jnp.linalg.norm(self.W2, 2)

    def header(self) -> dict:
        return {"model": self.kind, "obs_dim": self.obs_dim, "latent_dim": self.latent_dim, "hidden_dim": self.hidden_dim}


class ALRNN(AbstractIdentityReadout):
    """AL-RNN ``z' = A z + W phi(z) + h``, ReLU on the last ``pwl_units`` (P) of the M units only.

    >>> model = ALRNN.init(obs_dim=3, latent_dim=20, pwl_units=2, key=key)
    """

    A: Float[Array, " latent"]
    W: Float[Array, "latent latent"]
    h: Float[Array, " latent"]
    L: Float[Array, "hidden_units obs"] | None
    obs_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    pwl_units: int = eqx.field(static=True)

    @classmethod
    def init(cls, obs_dim: int, latent_dim: int, pwl_units: int, *, key: Key) -> ALRNN:
        """Fresh parameters, initialised as the AL-RNN reference code (module docstring)."""
        _check_dims("ALRNN", obs_dim, latent_dim)
        if not 0 <= pwl_units <= latent_dim:
            raise ConfigError(f"ALRNN: pwl_units (P) must be in [0, latent_dim = {latent_dim}], got {pwl_units}.")
        a, w, lmap = _alrnn_arrays(key, obs_dim, latent_dim)
        return cls(A=a, W=w, h=jnp.zeros((latent_dim,), jnp.float32), L=lmap, obs_dim=obs_dim, latent_dim=latent_dim,
                   pwl_units=pwl_units)

    @property
    def kind(self) -> str:
        return "alrnn"

    @property
    def n_params(self) -> int:
        """``M^2 + 2 M`` (A, W, h)."""
        m = self.latent_dim
        return m * m + 2 * m

    def _pwl_mask(self) -> Float[Array, " latent"]:
        return (jnp.arange(self.latent_dim) >= self.latent_dim - self.pwl_units)

    def phi(self, z: Float[Array, " latent"]) -> Float[Array, " latent"]:
        """Identity on the first M - P units, ReLU on the last P."""
        return jnp.where(self._pwl_mask(), jax.nn.relu(z), z)

    def step(self, z: Float[Array, " latent"], *, forcing: Float[Array, " latent"] | None = None) -> Float[Array, " latent"]:
        z_next = self.A * z + self.phi(z) @ self.W.T + self.h
        return z_next if forcing is None else z_next + forcing

    def jacobian(self, z: Float[Array, " latent"]) -> Float[Array, "latent latent"]:
        """``diag(A) + W diag(d)``, ``d = 1`` on linear units and ``[z > 0]`` on the P piecewise-linear ones."""
        d = jnp.where(self._pwl_mask(), (z > 0).astype(z.dtype), jnp.ones_like(z))
        return jnp.diag(self.A) + self.W * d

    def penalty(self) -> Float[Array, ""]:
        """The AL-RNN reference's latent regulariser (``AR_convergence_loss``, eps = 0.95):
        ``|relu(A + diag(W) - (1 - eps))|_2``."""
        excess = jax.nn.relu(self.A + jnp.diagonal(self.W) - 0.05)
        return jnp.sqrt(jnp.sum(jnp.square(excess)) + 1e-30)

    def header(self) -> dict:
        return {"model": self.kind, "obs_dim": self.obs_dim, "latent_dim": self.latent_dim, "pwl_units": self.pwl_units}


def build_model(kind: str, obs_dim: int, latent_dim: int, *, hidden_dim: int = 100, pwl_units: int = 2,
                key: Key) -> ShallowPLRNN | ALRNN:
    """A fresh model by name: ``"shplrnn"``, ``"clipped_shplrnn"`` or ``"alrnn"``."""
    if kind in ("shplrnn", "clipped_shplrnn"):
        return ShallowPLRNN.init(obs_dim, latent_dim, hidden_dim, clipped=kind == "clipped_shplrnn", key=key)
    if kind == "alrnn":
        return ALRNN.init(obs_dim, latent_dim, pwl_units, key=key)
    raise ConfigError(f"unknown DSR model {kind!r}; choose one of {list(MODEL_KINDS)}.")


MODEL_KINDS = ("shplrnn", "clipped_shplrnn", "alrnn")
