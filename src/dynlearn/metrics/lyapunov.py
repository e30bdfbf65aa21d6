"""Lyapunov exponents of a map or a flow: the QR method on the Jacobians (jitted JAX, ``lax`` loops, no per-step host
round trips), and the RK4 time-``dt`` map of a flow (:class:`RK4FlowMap`)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._types import Array, ArrayLike, Float
from ..errors import ConfigError
from .divergence import OnDiverged, TrajectoryDivergedError, check_on_diverged


def lyapunov_spectrum(step_fn: Callable[[Array], Array], x0: Float[ArrayLike, " n"], *, steps: int, transient: int = 1000,
                      dt: float = 1.0, n_exponents: int | None = None, on_diverged: OnDiverged = "raise") -> np.ndarray:
    """The ``n_exponents`` largest Lyapunov exponents of the map ``x_{t+1} = step_fn(x_t)``, largest first.

    QR method (Benettin et al. 1980; Eckmann & Ruelle 1985): tangent vectors ``Q`` are pushed forward with the
    map's Jacobian (``jax.linearize``: one Jacobian-vector product per exponent) and re-orthonormalised by
    QR every step; the exponents are the time averages of ``log |diag R|``. ``step_fn`` maps ONE state
    ``[N] -> [N]`` (unlike :func:`prediction_error`). The first ``transient`` steps move the state onto the
    attractor and align ``Q`` and are not averaged. Values are per iteration divided by ``dt``: pass the
    sampling interval to get exponents per unit time, comparable with a flow's (Lorenz-63: 0.906).
    """
    metric = "lyapunov_spectrum"
    check_on_diverged(on_diverged)
    x0 = jnp.asarray(x0, jnp.float32)
    if x0.ndim != 1:
        raise ConfigError(f"{metric}: x0 must be one state [N], got shape {x0.shape}.")
    k = x0.shape[0] if n_exponents is None else int(n_exponents)
    if not 1 <= k <= x0.shape[0]:
        raise ConfigError(f"{metric}: n_exponents must be in [1, {x0.shape[0]}], got {n_exponents}.")
    if steps < 1 or transient < 0 or not (dt > 0):
        raise ConfigError(f"{metric}: need steps >= 1, transient >= 0, dt > 0; got {steps}, {transient}, {dt}.")
    block = min(int(steps), 1000)
    n_blocks, rest = divmod(int(steps), block)
    sums = _lyapunov_sums(step_fn, x0, int(transient), k, block, n_blocks, rest)
    total = np.sum(np.asarray(sums, np.float64), axis=0)
    exps = np.sort(total / (int(steps) * float(dt)))[::-1]
    if not np.all(np.isfinite(exps)):
        if on_diverged == "raise":
            raise TrajectoryDivergedError(metric, "the orbit or its tangent vectors became NaN/inf: the map diverged from x0.",
                                          "start on the attractor, or pass on_diverged='nan' to get nan.")
        return np.full(k, np.nan)
    return exps


def max_lyapunov(step_fn: Callable[[Array], Array], x0: Float[ArrayLike, " n"], *, steps: int, transient: int = 1000,
                 dt: float = 1.0, on_diverged: OnDiverged = "raise") -> float:
    """The largest Lyapunov exponent of the map ``step_fn`` (one tangent vector; see :func:`lyapunov_spectrum`)."""
    return float(lyapunov_spectrum(step_fn, x0, steps=steps, transient=transient, dt=dt, n_exponents=1, on_diverged=on_diverged)[0])


@eqx.filter_jit
def _lyapunov_sums(step_fn, x0, transient: int, k: int, block: int, n_blocks: int, rest: int):
    def qr_step(carry, _):
        x, q = carry
        y, jvp = jax.linearize(step_fn, x)
        v = jax.vmap(jvp, in_axes=1, out_axes=1)(q)
        q_new, r = jnp.linalg.qr(v)
        return (y, q_new), jnp.log(jnp.abs(jnp.diagonal(r)))

    def run_block(carry, length):
        carry, logs = lax.scan(qr_step, carry, None, length=length)
        return carry, jnp.sum(logs, axis=0)

    carry = (x0, jnp.eye(x0.shape[0], k, dtype=jnp.float32))
    if transient > 0:
        carry, _ = lax.scan(qr_step, carry, None, length=transient)
    carry, sums = lax.scan(lambda c, _: run_block(c, block), carry, None, length=n_blocks)
    if rest:
        carry, last = run_block(carry, rest)
        sums = jnp.concatenate([sums, last[None]], axis=0)
    return sums


class RK4FlowMap(eqx.Module):
    """The time-``dt`` map of ``dx/dt = vector_field(x)`` by ``substeps`` classical Runge-Kutta-4 steps.

    A module (not a closure), so jitted callers reuse their compilation across calls with equal settings.
    """

    vector_field: Callable[[Array], Array]
    dt: float = eqx.field(static=True)
    substeps: int = eqx.field(static=True, default=1)

    def __call__(self, x: Float[Array, "... n"]) -> Float[Array, "... n"]:
        h = self.dt / self.substeps
        f = self.vector_field

        def rk4(x, _=None):
            k1 = f(x)
            k2 = f(x + 0.5 * h * k1)
            k3 = f(x + 0.5 * h * k2)
            k4 = f(x + h * k3)
            return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

        return lax.scan(rk4, x, None, length=self.substeps)[0] if self.substeps > 1 else rk4(x)[0]


def flow_lyapunov_spectrum(vector_field: Callable[[Array], Array], x0: Float[ArrayLike, " n"], *, dt: float, steps: int,
                           transient: int = 1000, n_exponents: int | None = None, substeps: int = 1) -> np.ndarray:
    """Lyapunov exponents per unit time of a flow (e.g. ``Lorenz63().vector_field``): the QR method on its
    RK4 time-``dt`` map (:class:`RK4FlowMap`), divided by ``dt``. ``steps * dt`` is the averaging time."""
    return lyapunov_spectrum(RK4FlowMap(vector_field, float(dt), int(substeps)), x0, steps=steps, transient=transient, dt=dt,
                             n_exponents=n_exponents)


def flow_max_lyapunov(vector_field: Callable[[Array], Array], x0: Float[ArrayLike, " n"], *, dt: float, steps: int,
                      transient: int = 1000, substeps: int = 1) -> float:
    """The largest Lyapunov exponent per unit time of a flow (see :func:`flow_lyapunov_spectrum`)."""
    return float(flow_lyapunov_spectrum(vector_field, x0, dt=dt, steps=steps, transient=transient, n_exponents=1, substeps=substeps)[0])
