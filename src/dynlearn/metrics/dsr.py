"""Dynamical-systems reconstruction metrics: D_stsp, D_H, PE(n), Lyapunov exponents, divergence checks.

D_stsp, D_H and PE follow the Julia reference code of Hess et al., ICML 2023 (arXiv:2306.04406;
DurstewitzLab/GTF-shPLRNN ``src/measures``, commit b6172ce), also used by the AL-RNN paper (Brenner et
al., NeurIPS 2024, arXiv:2410.14240), with the defaults of its ``settings/defaults.json``: 30 bins,
Gaussian-mixture variance 1.0, smoothing sigma 20, n = 20. Two other ports differ and are *not*
followed: the D_stsp of the AL-RNN repository's Python ``metrics.py`` (drops points in the first bin and at
the maximum, no 0.1-std margin; its D_H agrees with ours to 1e-15 on the GTF Lorenz-63 data) and dysts'
Hellinger distance (no smoothing, no z-scoring).

Failure on a diverged model (NaN/inf in the generated trajectory): every metric takes
``on_diverged="raise"`` (default: raise :class:`TrajectoryDivergedError`, a ``DataError``) or ``"nan"``
(return ``nan``, as the reference evaluation does for a model with NaN parameters). Bad *reference* data
(NaN, wrong shapes) always raises ``DataError``. :func:`is_diverged` also flags finite blow-ups.

D_stsp and D_H run on the host in NumPy (histograms, FFTs); PE and the Lyapunov exponents are jitted JAX
(``lax`` loops, no per-step host round trips).

The divergence check and policy are in :mod:`.divergence`, the Lyapunov exponents in :mod:`.lyapunov`; their names are
importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._types import Array, ArrayLike, Float, Key
from ..errors import ConfigError, DataError
from .divergence import OnDiverged, TrajectoryDivergedError, check_on_diverged, is_diverged
from .lyapunov import RK4FlowMap, flow_lyapunov_spectrum, flow_max_lyapunov, lyapunov_spectrum, max_lyapunov

__all__ = [
    "BIN_DIM_LIMIT", "OnDiverged", "RK4FlowMap", "TrajectoryDivergedError", "flow_lyapunov_spectrum", "flow_max_lyapunov",
    "is_diverged", "lyapunov_spectrum", "max_lyapunov", "occupancy_gap", "power_spectrum_distance", "prediction_error",
    "state_space_divergence",
]

BIN_DIM_LIMIT = 6
"""D_stsp uses the binned estimate below this many dimensions and the Gaussian mixture at or above it (GTF code)."""


# ----- helpers ----------------------------------------------------------------------------------------
def _as_points(x, name: str, metric: str) -> np.ndarray:
    """``[T, N]`` or ``[K, T, N]`` as float64 ``[rows, N]`` (trajectories concatenated)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise DataError(metric, f"{name} has dtype {arr.dtype}, expected numbers.", "pass a numeric array.", key=name)
    if arr.ndim == 3:
        arr = arr.reshape(-1, arr.shape[-1])
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise DataError(metric, f"{name} has shape {np.shape(x)}; expected [T, N] (or [K, T, N]) with T >= 2.",
                        "pass time along the first axis and channels along the last.", key=name)
    return arr.astype(np.float64)


def _point_pair(x_true, x_gen, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Both trajectories as points (:func:`_as_points`), checked to share their channels."""
    xt, xg = _as_points(x_true, "x_true", metric), _as_points(x_gen, "x_gen", metric)
    if xt.shape[1] != xg.shape[1]:
        raise DataError(metric, f"x_true has {xt.shape[1]} channels but x_gen has {xg.shape[1]}.", "compare in the same observation space.")
    return xt, xg


def _finite_or_fail(x_true: np.ndarray, x_gen: np.ndarray, metric: str, on_diverged: str) -> bool:
    """Raise on bad reference data; for a non-finite generated trajectory raise or return False (caller returns nan)."""
    if not np.all(np.isfinite(x_true)):
        raise DataError(metric, "x_true holds NaN/inf.", "clean the reference data first.", key="x_true")
    if not np.all(np.isfinite(x_gen)):
        if on_diverged == "raise":
            bad = int(np.argmax(~np.all(np.isfinite(x_gen), axis=-1)))
            raise TrajectoryDivergedError(metric, f"x_gen holds NaN/inf (first at step {bad}): the free-running model diverged.",
                                          "report the model as diverged, or pass on_diverged='nan' to get nan.", key="x_gen")
        return False
    return True


# ----- D_stsp ------------------------------------------------------------------------------------------
def state_space_divergence(x_true: Float[ArrayLike, "t n"], x_gen: Float[ArrayLike, "s n"], *, n_bins: int = 30,
                           smoothing: float = 1e-5, method: Literal["auto", "bins", "gmm"] = "auto",
                           gmm_variance: float = 1.0, mc_samples: int = 1000, max_points: int = 10_000,
                           key: Key | None = None, on_diverged: OnDiverged = "raise") -> float:
    """D_stsp: KL(p_true || p_gen) between the state-space occupations of two trajectories.

    ``method="auto"`` picks the binned estimate for N < 6 and the Gaussian mixture otherwise (GTF code).
    Binned (Hess et al. 2023, ``state_space_divergence(X, X̃, n_bins)``): ``n_bins`` per dimension over the
    true data's range widened by 0.1 std on each side; generated points outside are not counted; Laplace
    smoothing ``(h + alpha) / (sum h + alpha * n_bins^N)`` on both histograms. Computed sparsely (only
    occupied bins are stored), with the same value as the dense histogram.
    Gaussian mixture (Hershey & Olsen 2007, as in the GTF code): one isotropic Gaussian of variance
    ``gmm_variance`` per point of the first ``min(T, max_points)`` points of each trajectory; KL by Monte Carlo
    with ``mc_samples`` samples from the true mixture (``key``; None means a fixed key 0). Log-likelihoods
    are computed with log-sum-exp, so no sample is dropped; the reference works in float32 and drops
    samples whose likelihood underflows to 0, which can only lower its value.

    Trajectories ``[K, T, N]`` are concatenated. Returns a float; raises (or returns nan, per
    ``on_diverged``) when ``x_gen`` holds NaN/inf or, binned, when no generated point lies in the box.
    """
    metric = "state_space_divergence"
    check_on_diverged(on_diverged)
    xt, xg = _point_pair(x_true, x_gen, metric)
    if not _finite_or_fail(xt, xg, metric, on_diverged):
        return math.nan
    if method == "auto":
        method = "bins" if xt.shape[1] < BIN_DIM_LIMIT else "gmm"
    if method == "bins":
        return _binned_kl(xt, xg, n_bins, smoothing, metric, on_diverged)
    if method == "gmm":
        return _gmm_kl(xt, xg, gmm_variance, mc_samples, max_points, key)
    raise ConfigError(f"{metric}: method must be 'auto', 'bins' or 'gmm', got {method!r}.")


def _bin_counts(xt: np.ndarray, xg: np.ndarray, n_bins: int, metric: str) -> tuple[np.ndarray, np.ndarray, int]:
    """D_stsp's binning: ``(count_t, count_g, n_bins^N)`` over the bins either trajectory occupies (``n_bins`` per
    dimension over the true data's range widened by 0.1 std on each side; generated points outside are not counted)."""
    n = xt.shape[1]
    if n_bins**n > 2**62:
        raise ConfigError(f"{metric}: {n_bins}^{n} bins overflow; use method='gmm' or fewer bins.")
    sd = xt.std(axis=0, ddof=1)
    if np.any(sd == 0):
        raise DataError(metric, f"x_true is constant in channel(s) {np.flatnonzero(sd == 0).tolist()}.",
                        "drop constant channels.", key="x_true")
    lo, hi = xt.min(axis=0) - 0.1 * sd, xt.max(axis=0) + 0.1 * sd

    def flat_bins(x):
        inside = np.all((x >= lo) & (x < hi), axis=1)
        b = np.clip(np.floor((x[inside] - lo) / (hi - lo) * n_bins).astype(np.int64), 0, n_bins - 1)
        return b @ (n_bins ** np.arange(n, dtype=np.int64))

    bt, bg = flat_bins(xt), flat_bins(xg)
    occupied, inverse = np.unique(np.concatenate([bt, bg]), return_inverse=True)
    count_t = np.bincount(inverse[: bt.size], minlength=occupied.size).astype(np.float64)
    count_g = np.bincount(inverse[bt.size:], minlength=occupied.size).astype(np.float64)
    return count_t, count_g, n_bins**n


def _binned_kl(xt: np.ndarray, xg: np.ndarray, n_bins: int, alpha: float, metric: str, on_diverged: str) -> float:
    if n_bins < 1 or alpha <= 0:
        raise ConfigError(f"{metric}: n_bins must be >= 1 and smoothing > 0, got {n_bins} and {alpha}.")
    count_t, count_g, total = _bin_counts(xt, xg, n_bins, metric)
    if count_g.sum() == 0:
        if on_diverged == "raise":
            raise TrajectoryDivergedError(metric, "no generated point lies within the true data's range: "
                                                  "the trajectory left the attractor.",
                                          "report the model as diverged, or pass on_diverged='nan' to get nan.", key="x_gen")
        return math.nan
    total = float(total)
    zt, zg = count_t.sum() + alpha * total, count_g.sum() + alpha * total
    p, q = (count_t + alpha) / zt, (count_g + alpha) / zg
    p0, q0 = alpha / zt, alpha / zg
    return float(np.sum(p * np.log(p / q)) + (total - count_t.size) * p0 * np.log(p0 / q0))


def occupancy_gap(x_true: Float[ArrayLike, "t n"], x_gen: Float[ArrayLike, "s n"], *, n_bins: int = 30) -> dict[str, float]:
    """Where two state-space occupations differ, on D_stsp's bins (below 6 dimensions): ``missed`` is the share of
    the true points in bins the generated trajectory never visits (parts of the attractor the model does not
    reproduce), ``spurious`` the share of the generated points inside the box that fall in bins the data never
    visits, and ``outside`` the share of generated points outside the box. A binned D_stsp is dominated by ``missed``
    (each such bin costs ``p log(p / smoothing)``)."""
    metric = "occupancy_gap"
    xt, xg = _point_pair(x_true, x_gen, metric)
    if n_bins < 1:
        raise ConfigError(f"{metric}: n_bins must be >= 1, got {n_bins}.")
    _finite_or_fail(xt, xg, metric, "raise")
    count_t, count_g, _ = _bin_counts(xt, xg, n_bins, metric)
    inside = count_g.sum()
    return {"missed": float(count_t[count_g == 0].sum() / count_t.sum()),
            "spurious": float(count_g[count_t == 0].sum() / inside) if inside else math.nan,
            "outside": float(1.0 - inside / len(xg))}


def _gmm_kl(xt: np.ndarray, xg: np.ndarray, variance: float, mc_samples: int, max_points: int, key) -> float:
    if variance <= 0 or mc_samples < 1 or max_points < 1:
        raise ConfigError("state_space_divergence: gmm_variance, mc_samples and max_points must be positive.")
    centre = xt[:max_points].mean(axis=0)  # a shift changes nothing but keeps float32 distances accurate
    mu_t = jnp.asarray(xt[:max_points] - centre, jnp.float32)
    mu_g = jnp.asarray(xg[:max_points] - centre, jnp.float32)
    key = jax.random.key(0) if key is None else key
    pick_key, noise_key = jax.random.split(key)
    idx = jax.random.randint(pick_key, (mc_samples,), 0, mu_t.shape[0])
    samples = mu_t[idx] + math.sqrt(variance) * jax.random.normal(noise_key, (mc_samples, xt.shape[1]), jnp.float32)
    log_p = _mixture_loglik(samples, mu_t, variance)
    log_q = _mixture_loglik(samples, mu_g, variance)
    return float(jnp.mean(log_p - log_q))


@jax.jit
def _mixture_loglik(samples: Float[Array, "s n"], centres: Float[Array, "t n"], variance) -> Float[Array, " s"]:
    """``log mean_t exp(-|s - mu_t|^2 / (2 variance))`` per sample (normalising constants cancel in the KL)."""
    c2 = jnp.sum(centres * centres, axis=1)

    def one(s):
        d2 = jnp.maximum(jnp.dot(s, s) + c2 - 2.0 * (centres @ s), 0.0)
        return jax.nn.logsumexp(-0.5 * d2 / variance)

    return lax.map(one, samples, batch_size=256) - jnp.log(jnp.float32(centres.shape[0]))


# ----- D_H ---------------------------------------------------------------------------------------------
def power_spectrum_distance(x_true: Float[ArrayLike, "t n"], x_gen: Float[ArrayLike, "t n"], *, smoothing_sigma: float = 20.0,
                            per_dimension: bool = False, on_diverged: OnDiverged = "raise") -> float | np.ndarray:
    """D_H: Hellinger distance between smoothed power spectra, averaged over dimensions (GTF ``power_spectrum_error``).

    Per channel: z-score (sample std), ``|rfft|^2``, Gaussian smoothing with ``smoothing_sigma`` frequency bins
    (kernel radius ``int(4 sigma + 0.5)``, mirror padding that repeats the edge sample, as
    ``scipy.ndimage.gaussian_filter1d`` and the reference's ImageFiltering "reflect"), negatives clipped,
    normalised to sum 1, then ``H = sqrt(sum (sqrt p - sqrt q)^2) / sqrt 2`` in [0, 1]. Both series must
    have the same shape ``[T, N]``. Deviation from the reference: a generated channel that is exactly
    constant (a fixed point) gets H = 1 instead of nan. ``per_dimension=True`` returns the ``[N]`` distances.
    """
    metric = "power_spectrum_distance"
    check_on_diverged(on_diverged)
    xt, xg = np.asarray(x_true), np.asarray(x_gen)
    if xt.ndim != 2 or xt.shape != xg.shape or xt.shape[0] < 2:
        raise DataError(metric, f"x_true {xt.shape} and x_gen {xg.shape} must have the same shape [T, N] with T >= 2.",
                        "generate as many steps as the true series holds (one trajectory at a time).")
    xt, xg = xt.astype(np.float64), xg.astype(np.float64)
    if not _finite_or_fail(xt, xg, metric, on_diverged):
        return np.full(xt.shape[1], np.nan) if per_dimension else math.nan
    if smoothing_sigma < 0:
        raise ConfigError(f"{metric}: smoothing_sigma must be >= 0, got {smoothing_sigma}.")
    if np.any(xt.std(axis=0) == 0):
        raise DataError(metric, "x_true has a constant channel.", "drop constant channels.", key="x_true")
    ps_t = _normalized_smoothed_spectrum(xt, smoothing_sigma)
    ps_g = _normalized_smoothed_spectrum(xg, smoothing_sigma)
    h = np.sqrt(np.sum((np.sqrt(ps_t) - np.sqrt(ps_g)) ** 2, axis=0)) / math.sqrt(2.0)
    h = np.where(np.isnan(h), 1.0, np.minimum(h, 1.0))  # nan only from a constant generated channel
    return h if per_dimension else float(np.mean(h))


def _normalized_smoothed_spectrum(x: np.ndarray, sigma: float) -> np.ndarray:
    sd = x.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - x.mean(axis=0)) / sd
    ps = np.abs(np.fft.rfft(z, axis=0)) ** 2
    if sigma > 0:
        ps = np.maximum(_gaussian_smooth(ps, sigma), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ps / ps.sum(axis=0, keepdims=True)


def _gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0, truncated at 4 sigma, edges mirrored with the edge sample repeated."""
    radius = int(4.0 * sigma + 0.5)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    w /= w.sum()
    padded = np.pad(x, ((radius, radius), (0, 0)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=0)  # [T, N, window]
    return windows @ w


# ----- PE(n) -------------------------------------------------------------------------------------------
def prediction_error(step_fn: Callable[[Array], Array], x: Float[ArrayLike, "t n"], n: int = 20, *,
                     encode: Callable[[Array], Array] | None = None, observe: Callable[[Array], Array] | None = None,
                     on_diverged: OnDiverged = "raise") -> float:
    """PE(n): from every time point ``t < T - n`` iterate the model ``n`` steps and take the MSE to ``x[t + n]``.

    As the GTF reference (``prediction_error(model, O, X, n)``): ``z = encode(x[:T-n])``, then ``n`` times
    ``z = step_fn(z)``, then ``mean((observe(z) - x[n:])^2)`` over all windows and channels (Flux.mse). All three
    callables map a BATCH (leading axis) of states, e.g. for a per-example latent model
    ``step_fn=jax.vmap(model.step), encode=jax.vmap(model.encode), observe=jax.vmap(model.observe)``;
    ``encode`` / ``observe`` default to the identity (a model in observation space). The latent state is
    encoded once and never re-encoded, as in the reference. ``x``: ``[T, N]`` or ``[K, T, N]`` (every
    trajectory contributes its own windows).
    """
    metric = "prediction_error"
    check_on_diverged(on_diverged)
    arr = np.asarray(x)
    arr = arr[None] if arr.ndim == 2 else arr
    if arr.ndim != 3:
        raise DataError(metric, f"x has shape {np.shape(x)}; expected [T, N] or [K, T, N].", "pass time along axis -2.", key="x")
    if not (isinstance(n, (int, np.integer)) and 1 <= n < arr.shape[1]):
        raise ConfigError(f"{metric}: n must be an integer in [1, T), got {n} with T = {arr.shape[1]}.")
    if not np.all(np.isfinite(arr)):
        raise DataError(metric, "x holds NaN/inf.", "clean the data first.", key="x")
    starts = jnp.asarray(arr[:, :-n].reshape(-1, arr.shape[2]), jnp.float32)
    targets = jnp.asarray(arr[:, n:].reshape(-1, arr.shape[2]), jnp.float32)
    mse = float(_pe(step_fn, encode, observe, starts, targets, int(n)))
    if not math.isfinite(mse):
        if on_diverged == "raise":
            raise TrajectoryDivergedError(metric, f"the model's {n}-step predictions hold NaN/inf.",
                                          "report the model as diverged, or pass on_diverged='nan' to get nan.")
        return math.nan
    return mse


@eqx.filter_jit
def _pe(step_fn, encode, observe, starts, targets, n: int):
    z = starts if encode is None else encode(starts)
    z = lax.fori_loop(0, n, lambda i, z: step_fn(z), z)
    pred = z if observe is None else observe(z)
    if pred.shape != targets.shape:
        raise ConfigError(f"prediction_error: predictions have shape {pred.shape}, the data {targets.shape}; pass observe=.")
    return jnp.mean(jnp.square(pred - targets))
