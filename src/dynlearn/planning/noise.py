"""Temporally correlated ("colored") Gaussian noise for sampling action sequences (iCEM).

Pinneri et al. 2020 (iCEM, arXiv 2008.06389) sample CEM's candidate sequences from noise whose power spectral
density falls as ``1 / f ** beta`` along the time axis: ``beta = 0`` is white noise (CEM, PETS), ``beta`` of 2-4 gives
smooth, low-frequency action sequences that explore further with the same per-step variance.

The draw: independent complex Gaussians per frequency of the real FFT, scaled by ``f ** (-beta / 2)`` (the lowest
frequency ``1 / H`` standing in for ``f = 0``), the zero (and, for even ``H``, the Nyquist) frequency kept real, the
inverse FFT taken, and the result divided by its exact standard deviation, so every time step has unit variance
whatever ``beta`` (the zero frequency gives each sequence a random offset, as in iCEM's sampler).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Float, Key


def colored_noise(key: Key, beta: float, shape: tuple[int, ...]) -> Float[Array, "..."]:
    """Unit-variance Gaussian noise of ``shape``, correlated along the **last** axis with spectrum ``1 / f ** beta``."""
    steps = int(shape[-1])
    if beta == 0.0 or steps < 2:
        return jax.random.normal(key, shape, jnp.float32)
    f = np.fft.rfftfreq(steps)
    f[0] = 1.0 / steps
    scale = f ** (-beta / 2.0)
    # variance of each output step: a complex bin k contributes 4 s_k^2 / H^2 (it appears twice, conjugated), a real
    # bin (zero frequency; Nyquist for even H), drawn with variance 2 s^2, contributes 2 s^2 / H^2
    weight = np.full(f.size, 4.0)
    weight[0] = 2.0
    if steps % 2 == 0:
        weight[-1] = 2.0
    sigma = np.sqrt(np.sum(weight * scale**2)) / steps
    real_key, imag_key = jax.random.split(key)
    bins = (*shape[:-1], f.size)
    scale = jnp.asarray(scale, jnp.float32)
    real = jax.random.normal(real_key, bins, jnp.float32) * scale
    imag = jax.random.normal(imag_key, bins, jnp.float32) * scale
    real_only = np.zeros(f.size, bool)
    real_only[0] = True
    if steps % 2 == 0:
        real_only[-1] = True
    real = jnp.where(real_only, real * np.float32(np.sqrt(2.0)), real)
    imag = jnp.where(real_only, jnp.float32(0.0), imag)
    return (jnp.fft.irfft(jax.lax.complex(real, imag), n=steps, axis=-1) / np.float32(sigma)).astype(jnp.float32)
