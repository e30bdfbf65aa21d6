"""Benchmark ODE systems for dynamical-systems reconstruction, and :func:`simulate` to sample them.

Each system is an :class:`AbstractODESystem` (an Equinox module; parameters are fields) with a pure JAX
``vector_field(x)`` that broadcasts over leading axes, so it serves both the integrator and Jacobians
(true Lyapunov exponents via :func:`dynlearn.metrics.dsr.flow_lyapunov_spectrum`). :func:`simulate`
integrates with Diffrax (Tsit5, adaptive step, PID controller) and saves every ``dt``.

Literature values of the largest Lyapunov exponent at the default parameters (Sprott, *Chaos and
Time-Series Analysis*, 2003, appendix A): Lorenz-63 0.9056, Rössler 0.0714 (per unit time).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Float, Key
from ..errors import ConfigError
from .timeseries import TimeSeries


class AbstractODESystem(eqx.Module):
    """An autonomous ODE ``dx/dt = vector_field(x)``; subclasses hold the parameters as fields."""

    name: ClassVar[str]
    default_dt: ClassVar[float]
    """sampling interval used by :func:`simulate` when none is given"""
    default_transient: ClassVar[float]
    """time integrated and discarded before the first sample (reaches the attractor)"""

    @property
    @abc.abstractmethod
    def dim(self) -> int: ...

    @abc.abstractmethod
    def vector_field(self, x: Float[Array, "... n"]) -> Float[Array, "... n"]:
        """``dx/dt`` at ``x``; broadcasts over leading axes."""

    @abc.abstractmethod
    def base_state(self) -> Float[Array, " n"]:
        """A state in the basin of the attractor; :meth:`initial_state` perturbs it."""

    def initial_state(self, *, key: Key, scale: float = 0.1) -> Float[Array, " n"]:
        """``base_state() + scale * N(0, I)``."""
        return self.base_state() + scale * jax.random.normal(key, (self.dim,), jnp.float32)

    def params(self) -> dict[str, float]:
        """The parameters as plain numbers (for provenance)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def names(self) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(self.dim))

    def _field(self, t, y, args):  # diffrax's (t, y, args) signature
        return self.vector_field(y)


class Lorenz63(AbstractODESystem):
    """Lorenz (1963): ``x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z``; chaotic at (10, 28, 8/3)."""

    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 8.0 / 3.0
    name: ClassVar[str] = "lorenz63"
    default_dt: ClassVar[float] = 0.01
    default_transient: ClassVar[float] = 50.0

    @property
    def dim(self) -> int:
        return 3

    def vector_field(self, x):
        u, v, w = x[..., 0], x[..., 1], x[..., 2]
        return jnp.stack([self.sigma * (v - u), u * (self.rho - w) - v, u * v - self.beta * w], axis=-1)

    def base_state(self):
        return jnp.array([1.0, 1.0, 20.0], jnp.float32)

    def names(self):
        return ("x", "y", "z")


class Rossler(AbstractODESystem):
    """Rössler (1976): ``x' = -y - z, y' = x + a y, z' = b + z (x - c)``; chaotic at a = b = 0.2, c = 5.7.

    The default ``dt = 0.08`` matches the Rössler example data of the AL-RNN repository (fitted here).
    """

    a: float = 0.2
    b: float = 0.2
    c: float = 5.7
    name: ClassVar[str] = "rossler"
    default_dt: ClassVar[float] = 0.08
    default_transient: ClassVar[float] = 200.0

    @property
    def dim(self) -> int:
        return 3

    def vector_field(self, x):
        u, v, w = x[..., 0], x[..., 1], x[..., 2]
        return jnp.stack([-v - w, u + self.a * v, self.b + w * (u - self.c)], axis=-1)

    def base_state(self):
        return jnp.array([1.0, 1.0, 0.0], jnp.float32)

    def names(self):
        return ("x", "y", "z")


class Lorenz96(AbstractODESystem):
    """Lorenz (1996): ``x_i' = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F`` on a ring of ``n`` sites.

    Defaults ``n = 20``, ``F = 16`` (strongly chaotic, 20-d: above the 6-d threshold where D_stsp switches
    to its Gaussian-mixture form).
    """

    n: int = eqx.field(static=True, default=20)
    forcing: float = 16.0
    name: ClassVar[str] = "lorenz96"
    default_dt: ClassVar[float] = 0.01
    default_transient: ClassVar[float] = 20.0

    def __check_init__(self):
        if self.n < 4:
            raise ConfigError(f"Lorenz96 needs n >= 4 sites, got {self.n}.")

    @property
    def dim(self) -> int:
        return self.n

    def vector_field(self, x):
        return (jnp.roll(x, -1, axis=-1) - jnp.roll(x, 2, axis=-1)) * jnp.roll(x, 1, axis=-1) - x + self.forcing

    def base_state(self):
        return jnp.full((self.n,), self.forcing, jnp.float32).at[0].add(0.01)


class Thomas(AbstractODESystem):
    """Thomas' cyclically symmetric system (1999): ``x' = sin y - b x`` and cyclic.

    Default b = 0.18: largest exponent measured here 0.034-0.038 per unit time (three initial states). Chaos is weak
    and fragile in b: measured here, b = 0.19 is periodic and the often quoted b = 0.208186 gives only 0.007.
    """

    b: float = 0.18
    name: ClassVar[str] = "thomas"
    default_dt: ClassVar[float] = 0.1
    default_transient: ClassVar[float] = 500.0

    @property
    def dim(self) -> int:
        return 3

    def vector_field(self, x):
        return jnp.sin(jnp.roll(x, -1, axis=-1)) - self.b * x

    def base_state(self):
        return jnp.array([0.1, 0.0, -0.1], jnp.float32)


class Chua(AbstractODESystem):
    """Chua's circuit, dimensionless (Matsumoto, Chua & Komuro 1985): the double scroll.

    ``x' = alpha (y - x - h(x)), y' = x - y + z, z' = -beta y``, ``h(x) = m1 x + (m0 - m1)(|x + 1| - |x - 1|) / 2``:
    piecewise linear, like a PLRNN. Defaults alpha = 15.6, beta = 28, m0 = -8/7, m1 = -5/7.
    """

    alpha: float = 15.6
    beta: float = 28.0
    m0: float = -8.0 / 7.0
    m1: float = -5.0 / 7.0
    name: ClassVar[str] = "chua"
    default_dt: ClassVar[float] = 0.05
    default_transient: ClassVar[float] = 100.0

    @property
    def dim(self) -> int:
        return 3

    def vector_field(self, x):
        u, v, w = x[..., 0], x[..., 1], x[..., 2]
        h = self.m1 * u + 0.5 * (self.m0 - self.m1) * (jnp.abs(u + 1.0) - jnp.abs(u - 1.0))
        return jnp.stack([self.alpha * (v - u - h), u - v + w, -self.beta * v], axis=-1)

    def base_state(self):
        return jnp.array([0.7, 0.0, 0.0], jnp.float32)


class VanDerPol(AbstractODESystem):
    """Van der Pol oscillator: ``x' = y, y' = mu (1 - x^2) y - x``; a stable limit cycle (largest exponent 0)."""

    mu: float = 1.0
    name: ClassVar[str] = "vanderpol"
    default_dt: ClassVar[float] = 0.05
    default_transient: ClassVar[float] = 50.0

    @property
    def dim(self) -> int:
        return 2

    def vector_field(self, x):
        u, v = x[..., 0], x[..., 1]
        return jnp.stack([v, self.mu * (1.0 - u * u) * v - u], axis=-1)

    def base_state(self):
        return jnp.array([2.0, 0.0], jnp.float32)


SYSTEMS: dict[str, type[AbstractODESystem]] = {cls.name: cls for cls in (Lorenz63, Rossler, Lorenz96, Thomas, Chua, VanDerPol)}
"""Name -> system class; ``SYSTEMS["lorenz63"](rho=30.0)`` builds one with other parameters."""


def make_system(name: str, **params) -> AbstractODESystem:
    """The named system (a key of :data:`SYSTEMS`) with optional parameter overrides."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in SYSTEMS:
        raise ConfigError(f"unknown system '{name}'; choose one of {sorted(SYSTEMS)}.")
    try:
        return SYSTEMS[key](**params)
    except TypeError as e:
        raise ConfigError(f"system '{key}': {e}. Its parameters: {sorted(SYSTEMS[key]().params())}.") from None


@eqx.filter_jit
def _solve(system: AbstractODESystem, x0, ts, dt0: float, rtol: float, atol: float, max_steps: int):
    import diffrax

    def one(y0):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(system._field), diffrax.Tsit5(), t0=0.0, t1=ts[-1], dt0=dt0, y0=y0,
            saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps)
        return sol.ys

    return jax.vmap(one)(x0)


def simulate(system: AbstractODESystem | str, T: int, dt: float | None = None, *, key: Key, x0=None, n_trajectories: int = 1,
             noise: float = 0.0, transient: float | None = None, standardize: bool = False,
             rtol: float = 1e-6, atol: float = 1e-6) -> TimeSeries:
    """Sample ``T`` states every ``dt`` from ``n_trajectories`` solutions of ``system``.

    ``x0``: initial states ``[N]`` or ``[K, N]``; None draws them near the system's attractor with ``key``.
    ``transient``: time integrated and discarded before the first sample (None: the system's default).
    ``noise``: Gaussian observation noise with standard deviation ``noise * std`` of each channel (a
    fraction, e.g. 0.05 as in the GTF paper's ``lorenz63_on0.05``), added before standardising.
    ``standardize``: z-score every channel; the statistics used are in ``provenance['mean'/'std']``.
    Integration: Diffrax Tsit5, adaptive step (PID controller, ``rtol`` / ``atol``), float32, saved at ``dt``.
    """
    try:
        import diffrax  # noqa: F401
    except ImportError:  # pragma: no cover - the dsr extra is missing
        raise ConfigError("simulate needs diffrax: pip install 'dynlearn[dsr]' (or 'diffrax>=0.7,<0.8').") from None
    if isinstance(system, str):
        system = make_system(system)
    dt = float(system.default_dt if dt is None else dt)
    transient = float(system.default_transient if transient is None else transient)
    if int(T) != T or T < 2:
        raise ConfigError(f"simulate: T must be an integer >= 2 samples, got {T}.")
    if not (np.isfinite(dt) and dt > 0):
        raise ConfigError(f"simulate: dt must be positive, got {dt}.")
    if not (np.isfinite(transient) and transient >= 0):
        raise ConfigError(f"simulate: transient must be >= 0 (time units), got {transient}.")
    if not (np.isfinite(noise) and noise >= 0):
        raise ConfigError(f"simulate: noise is a fraction of each channel's std and must be >= 0, got {noise}.")
    if n_trajectories < 1:
        raise ConfigError(f"simulate: n_trajectories must be >= 1, got {n_trajectories}.")
    T = int(T)
    init_key, noise_key = jax.random.split(key)
    if x0 is None:
        x0 = jax.vmap(lambda k: system.initial_state(key=k))(jax.random.split(init_key, n_trajectories))
    else:
        x0 = jnp.asarray(x0, jnp.float32)
        if x0.ndim not in (1, 2) or x0.shape[-1] != system.dim or (x0.ndim == 2 and x0.shape[0] != n_trajectories):
            raise ConfigError(f"simulate: x0 has shape {x0.shape}; expected [{system.dim}] or [{n_trajectories}, {system.dim}].")
        x0 = jnp.broadcast_to(x0, (n_trajectories, system.dim))
    ts = transient + dt * jnp.arange(T, dtype=jnp.float32)
    # generous bound on solver steps: 50 per saved interval plus the transient's share
    max_steps = int(50 * (T + transient / dt)) + 10_000

    values = np.asarray(_solve(system, x0, ts, min(dt, 0.01), float(rtol), float(atol), max_steps), np.float32)
    if noise > 0:
        std = values.reshape(-1, system.dim).std(axis=0)
        values = values + noise * std * np.asarray(jax.random.normal(noise_key, values.shape, jnp.float32))
    prov = {"source": f"simulate:{system.name}", "system": system.name, "params": system.params(), "time_unit": "model time",
            "transient_time": transient, "noise": float(noise), "solver": "diffrax.Tsit5", "rtol": rtol, "atol": atol,
            "x0": np.asarray(x0).tolist()}
    series = TimeSeries(values=values, dt=dt, names=system.names(), provenance=prov)
    return series.standardize()[0] if standardize else series
