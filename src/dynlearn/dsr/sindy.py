"""SINDy baseline: sparse regression of the vector field on a polynomial library, run as a latent model.

Brunton, Proctor & Kutz, "Discovering governing equations from data by sparse identification of nonlinear
dynamical systems", PNAS 113 (2016), arXiv 1509.03580: estimate ``dx/dt`` from the series, build a library
``Theta(X)`` of candidate terms (here all monomials up to ``degree``), and solve ``dX/dt = Theta(X) Xi`` for a
sparse ``Xi`` by sequentially thresholded least squares (STLSQ, their Algorithm / Eq. 6: ridge least squares,
zero every coefficient below ``threshold``, refit on the rest, repeat). The regression is done by ``pysindy``
(de Silva et al. 2020; Kaptanoglu et al. 2022); the learned field is then copied into a JAX module.

As a latent model the state is the observation (M = N, identity encode/observe) and one ``step`` integrates the
learned field over one sampling interval ``dt`` with classical Runge-Kutta 4 (``substeps`` RK4 steps per ``dt``),
so :meth:`~dynlearn.dsr.base.AbstractLatentModel.generate`, the Jacobian (autodiff through RK4) and the
Lyapunov metrics of :mod:`dynlearn.metrics.dsr` see a discrete map like every other DSR model.

Differences from the paper: the derivative is a 4th-order central finite difference (pysindy's
``FiniteDifference(order=4)``) by default, or a Savitzky-Golay-smoothed one for noisy data; the paper used total-variation
regularised differentiation for noisy data. Parameters (:attr:`SINDyModel.n_params`) are the nonzero coefficients.

>>> model, report = fit_sindy(x_train, SINDyConfig(degree=2, threshold=0.1), dt=0.01)
>>> print(report.equations)            # ["(x0)' = -10.000 x0 + 10.000 x1", ...]
>>> x_gen = model.generate(10_000, x0=x_test[0])
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._types import Array, ArrayLike, Float
from ..data.timeseries import TimeSeries
from ..errors import ConfigError, DataError
from .base import AbstractLatentModel

DIFFERENTIATIONS = ("finite_difference", "smoothed")
"""How :func:`fit_sindy` estimates ``dx/dt``: central finite differences, or Savitzky-Golay-smoothed ones (noisy data)."""


@dataclasses.dataclass(frozen=True)
class SINDyConfig:
    """How :func:`fit_sindy` regresses the vector field (polynomial library + STLSQ)."""

    degree: int = 2
    """Highest total degree of the polynomial library (1 to 5; 2 holds Lorenz-63 and Rössler exactly)."""
    include_bias: bool = True
    """Include the constant term (needed for standardised data: z-scoring shifts the equations)."""
    threshold: float = 0.05
    """STLSQ: coefficients with magnitude below this are set to zero (data units per unit time). Below pysindy's 0.1
    because z-scoring creates small true terms: on standardised Lorenz-63 (T = 100,000) the y-equation's constant is
    -0.094, which 0.1 drops (measured: the free run's RMSE to the data then passes 0.5 after 2.4 time units instead of 6.4)."""
    ridge: float = 0.05
    """STLSQ: ridge (L2) weight of each least-squares solve (pysindy's ``alpha``)."""
    max_iter: int = 20
    """STLSQ: most threshold-and-refit rounds."""
    differentiation: str = "finite_difference"
    """``'finite_difference'`` (central, order ``fd_order``) or ``'smoothed'`` (Savitzky-Golay smoothing first)."""
    fd_order: int = 4
    """Accuracy order of the finite differences (1 to 4; 4 recovers Lorenz-63 at dt = 0.01 to 0.01 %)."""
    substeps: int = 1
    """RK4 steps per sampling interval in :meth:`SINDyModel.step` (raise it for a coarse dt)."""

    def __post_init__(self):
        bad = []
        if not (isinstance(self.degree, int) and 1 <= self.degree <= 5):
            bad.append(f"degree must be an integer in [1, 5], got {self.degree!r}")
        for name in ("threshold", "ridge"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                bad.append(f"{name} must be finite and >= 0, got {value!r}")
        for name in ("max_iter", "substeps"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                bad.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.differentiation not in DIFFERENTIATIONS:
            bad.append(f"differentiation {self.differentiation!r} is not one of {list(DIFFERENTIATIONS)}")
        if not (isinstance(self.fd_order, int) and 1 <= self.fd_order <= 4):
            bad.append(f"fd_order must be an integer in [1, 4], got {self.fd_order!r}")
        if bad:
            raise ConfigError("SINDyConfig: " + "; ".join(bad) + ".")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SINDyReport:
    """What :func:`fit_sindy` found."""

    equations: tuple[str, ...]
    """One readable equation per channel, e.g. ``"(x0)' = -10.000 x0 + 10.000 x1"``."""
    feature_names: tuple[str, ...]
    """Library terms in the order of the coefficient columns."""
    coefficients: np.ndarray
    """``Xi`` as ``[N, n_features]`` float64 (row n: the equation of channel n)."""
    n_params: int
    """Nonzero coefficients."""
    derivative_r2: float
    """R^2 of the fitted field against the estimated derivatives (training data)."""
    wall_s: float
    """Wall time of the fit."""
    config: SINDyConfig


class SINDyModel(AbstractLatentModel):
    """The learned polynomial field ``dx/dt = Xi theta(x)`` as a discrete map: one RK4-integrated ``dt`` per step.

    ``theta(x)[j] = prod_k x[monomials[j][k]]`` where index ``N`` stands for the constant 1 (so every monomial is a
    product of ``degree`` factors). Latent state = observation (M = N).
    """

    coefficients: Float[Array, "obs features"]
    obs_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    monomials: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    substeps: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if self.coefficients.shape != (self.obs_dim, len(self.monomials)):
            raise ConfigError(f"SINDyModel: coefficients have shape {self.coefficients.shape}, expected "
                              f"({self.obs_dim}, {len(self.monomials)}).")
        if not (self.dt > 0 and self.substeps >= 1):
            raise ConfigError(f"SINDyModel: need dt > 0 and substeps >= 1, got {self.dt}, {self.substeps}.")

    def features(self, x: Float[Array, " obs"]) -> Float[Array, " features"]:
        """The library ``theta(x)``: every monomial of the fitted library."""
        padded = jnp.concatenate([x, jnp.ones((1,), x.dtype)])
        return jnp.prod(padded[jnp.asarray(self.monomials, jnp.int32)], axis=-1)

    def vector_field(self, x: Float[Array, " obs"]) -> Float[Array, " obs"]:
        """``dx/dt`` at one state ``x``."""
        return self.coefficients @ self.features(x)

    def encode(self, x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        return jnp.asarray(x, jnp.float32)

    def observe(self, z: Float[Array, " latent"]) -> Float[Array, " obs"]:
        return z

    def step(self, z: Float[Array, " latent"], *, forcing: Float[Array, " latent"] | None = None) -> Float[Array, " latent"]:
        """``substeps`` RK4 steps of the learned field over one ``dt`` (``+ forcing``, added after the step)."""
        h = self.dt / self.substeps
        f = self.vector_field
        for _ in range(self.substeps):
            k1 = f(z)
            k2 = f(z + 0.5 * h * k1)
            k3 = f(z + 0.5 * h * k2)
            k4 = f(z + h * k3)
            z = z + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return z if forcing is None else z + forcing

    @property
    def n_params(self) -> int:
        """Nonzero coefficients of ``Xi``."""
        return int(np.count_nonzero(np.asarray(self.coefficients)))

    @property
    def degree(self) -> int:
        return len(self.monomials[0]) if self.monomials else 0

    def header(self) -> dict:
        """Kind and sizes (for saving)."""
        return {"model": "sindy", "obs_dim": self.obs_dim, "latent_dim": self.latent_dim, "monomials": [list(m) for m in self.monomials],
                "dt": self.dt, "substeps": self.substeps}


def _trajectories(series: TimeSeries | ArrayLike | Sequence[ArrayLike], dt: float | None, where: str) -> tuple[list[np.ndarray], float]:
    """``([T_k, N] float64 arrays, dt)`` from a TimeSeries, one array or a list of arrays; validates values and dt."""
    if isinstance(series, TimeSeries):
        if dt is not None and not np.isclose(float(dt), series.dt):
            raise ConfigError(f"{where}: dt={dt} was passed but the series is sampled every {series.dt:g}; drop the dt argument.")
        return [np.asarray(v, np.float64) for v in series.values], float(series.dt)
    if dt is None:
        raise ConfigError(f"{where}: pass dt= (the sampling interval) with a plain array, or pass a TimeSeries.")
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: dt must be a number, got {dt!r}.") from None
    if not (np.isfinite(dt) and dt > 0):
        raise ConfigError(f"{where}: dt must be positive and finite, got {dt}.")
    items = list(series) if isinstance(series, (list, tuple)) else [series]
    if not items:
        raise DataError(where, "got an empty list of trajectories.", "pass one array [T, N] or a list of them.")
    arrays = []
    for i, item in enumerate(items):
        source = where if len(items) == 1 else f"{where}[{i}]"
        try:
            a = np.asarray(item, np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(source, f"is not a numeric array ({e}).", "pass a float array [T, N].") from None
        if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
            raise DataError(source, f"has shape {a.shape}; expected [T, N] with T >= 2.",
                            "pass time along axis 0 (x[:, None] for one channel).")
        if not np.all(np.isfinite(a)):
            raise DataError(source, "holds NaN/inf.", "remove or interpolate those samples first.")
        if arrays and a.shape[1] != arrays[0].shape[1]:
            raise DataError(source, f"has {a.shape[1]} channels, the first trajectory {arrays[0].shape[1]}.",
                            "pass trajectories of one system.")
        arrays.append(a)
    return arrays, dt


def monomial_indices(n: int, degree: int, *, include_bias: bool = True) -> tuple[tuple[int, ...], ...]:
    """Every monomial of total degree <= ``degree`` in ``n`` variables as ``degree`` factor indices (``n`` = the constant 1),
    in pysindy's ``PolynomialLibrary`` order: by degree, then lexicographically (``1, x0, x1, x0^2, x0 x1, x1^2, ...``)."""
    out = []
    for d in range(0 if include_bias else 1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(n), d):
            out.append(tuple(combo) + (n,) * (degree - d))
    return tuple(out)


def fit_sindy(series: TimeSeries | ArrayLike | Sequence[ArrayLike], cfg: SINDyConfig = SINDyConfig(), *, dt: float | None = None
              ) -> tuple[SINDyModel, SINDyReport]:
    """Fit SINDy (polynomial library, STLSQ; Brunton et al. 2016) to a series and return ``(model, report)``.

    ``series``: a :class:`~dynlearn.data.timeseries.TimeSeries` (its ``dt`` is used; several trajectories are fitted
    jointly, derivatives taken per trajectory), or one array ``[T, N]`` / a list of them with ``dt=``.
    Raises :class:`~dynlearn.errors.ConfigError` for a bad config or dt and :class:`~dynlearn.errors.DataError` for bad data.
    """
    if not isinstance(cfg, SINDyConfig):
        raise ConfigError(f"fit_sindy: cfg must be a SINDyConfig, got {type(cfg).__name__}.")
    start = time.perf_counter()
    arrays, dt = _trajectories(series, dt, "fit_sindy")
    need = cfg.fd_order + 2
    short = [len(a) for a in arrays if len(a) < need]
    if short:
        raise DataError("fit_sindy", f"a trajectory has {short[0]} samples; finite differences of order {cfg.fd_order} need >= {need}.",
                        "pass longer trajectories.")
    try:
        import pysindy as ps
    except ImportError:  # pragma: no cover - the dsr extra is missing
        raise ConfigError("fit_sindy needs pysindy: pip install 'dynlearn[dsr]' (or 'pysindy>=2.1').") from None

    n = arrays[0].shape[1]
    library = ps.PolynomialLibrary(degree=cfg.degree, include_bias=cfg.include_bias)
    if cfg.differentiation == "smoothed":
        differentiation = ps.SmoothedFiniteDifference(order=min(cfg.fd_order, 2))
    else:
        differentiation = ps.FiniteDifference(order=cfg.fd_order)
    optimizer = ps.STLSQ(threshold=float(cfg.threshold), alpha=float(cfg.ridge), max_iter=cfg.max_iter)
    sindy = ps.SINDy(optimizer=optimizer, feature_library=library, differentiation_method=differentiation)
    sindy.fit(arrays if len(arrays) > 1 else arrays[0], t=dt)
    coefficients = np.asarray(sindy.coefficients(), np.float64)
    monomials = monomial_indices(n, cfg.degree, include_bias=cfg.include_bias)
    _check_library_order(np.asarray(library.powers_), monomials, n)

    x_dot = [np.asarray(differentiation(a, t=dt)) for a in arrays]
    pred = [np.asarray(sindy.predict(a)) for a in arrays]
    target, fitted = np.concatenate(x_dot), np.concatenate(pred)
    keep = np.all(np.isfinite(target), axis=1)  # one-sided ends can be NaN with some methods
    resid = np.sum((target[keep] - fitted[keep]) ** 2)
    total = np.sum((target[keep] - target[keep].mean(axis=0)) ** 2)
    r2 = float(1.0 - resid / total) if total > 0 else float("nan")

    model = SINDyModel(coefficients=jnp.asarray(coefficients, jnp.float32), obs_dim=n, latent_dim=n, monomials=monomials,
                       dt=dt, substeps=cfg.substeps)
    names = tuple(str(s) for s in sindy.get_feature_names())
    equations = tuple(_equation(f"x{i}", coefficients[i], names) for i in range(n))
    report = SINDyReport(equations=equations, feature_names=names, coefficients=coefficients, n_params=int(np.count_nonzero(coefficients)),
                         derivative_r2=r2, wall_s=time.perf_counter() - start, config=cfg)
    return model, report


def _check_library_order(powers: np.ndarray, monomials: tuple[tuple[int, ...], ...], n: int) -> None:
    """Our monomial order must match pysindy's columns (a changed pysindy would otherwise scramble the field silently)."""
    ours = np.zeros((len(monomials), n), np.int64)
    for j, mono in enumerate(monomials):
        for i in mono:
            if i < n:
                ours[j, i] += 1
    if powers.shape != ours.shape or not np.array_equal(powers, ours):
        raise RuntimeError("fit_sindy: pysindy's PolynomialLibrary orders its terms differently from dynlearn's monomial_indices; "
                           "this pysindy version is not supported (tested with 2.1).")


def _equation(lhs: str, row: np.ndarray, names: Sequence[str]) -> str:
    terms = [f"{c:+.3f} {name}" if name != "1" else f"{c:+.3f}" for c, name in zip(row, names) if c != 0]
    return f"({lhs})' = " + (" ".join(terms) if terms else "0")
