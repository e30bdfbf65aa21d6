"""Uncertainty heuristics of a dynamics ensemble, as pure functions of :class:`~dynlearn.models.MemberOutputs`.

Every function takes a member's Gaussians over the target ``y = (delta obs, reward)`` and returns one
non-negative number per batch position (``[...]``, the member axis reduced). They read the members that
``outputs.elites`` names (``outputs.elite()``): the elites, as Lu et al. do. MOPO's code (tianheyu927/mopo and
OfflineRL-Kit) takes its max over *all* members, non-elites included: the rollout's
:class:`~dynlearn.rollout.Penalty` hook does that with ``members="all"``. The heuristics are the ones compared by
Lu et al., *Revisiting Design Choices in Offline Model-Based RL* (ICLR 2022, arXiv 2110.04135, Sec. 4):

============================  ===================================================================  ===================
name                          formula (``i, j`` elites, ``mu_i, sigma_i`` each elite's mean / std)  source
============================  ===================================================================  ===================
:func:`max_aleatoric`         ``max_i || sigma_i ||_2``                                              MOPO (Yu et al. 2020)
:func:`max_pairwise_diff`     ``max_{i,j} || mu_i - mu_j ||_2``                                      MOReL (Kidambi et al. 2020)
:func:`ensemble_std`          ``|| std_i(mu_i) ||_2`` (population std over elites, per dimension)    Lu et al. 2022
:func:`ensemble_var`          ``sum_d [ mean_i(sigma_i^2 + mu_i^2) - mean_i(mu_i)^2 ]`` (mixture)    Lu et al. 2022
:func:`llv`                   ``var_i log N(y; mu_i, sigma_i^2)``                                    Lu et al. 2022
:func:`loo_kl`                ``max_i KL( N(mu_i, sigma_i^2) || N(mu_-i, sigma_-i^2) )``             M2AC (Pan et al. 2020), Lu et al. 2022
============================  ===================================================================  ===================

Where the exact formula could not be checked against the paper's text (the search tool found only its
abstract), the definition is stated here and chosen to match the papers' descriptions:

- MOPO's paper writes ``max_i ||Sigma_i||_F``; for a diagonal covariance the reference code (and
  OfflineRL-Kit) uses the 2-norm of the std vector, which we follow.
- :func:`ensemble_std` is the epistemic spread of the means only; :func:`ensemble_var` is the total
  variance of the equally weighted mixture (aleatoric + epistemic).
- :func:`llv` needs the transition actually taken, ``y``; without it the elites' mean target is used
  (so the function stays deterministic).
- :func:`loo_kl`: ``N(mu_-i, sigma_-i^2)`` is the moment-matched diagonal Gaussian of the other elites
  (M2AC's "one versus rest"); we take the max over ``i`` rather than the member that produced the
  sample, which makes it a function of the outputs alone. Zero for a single elite.

**Which part of the target.** ``part="obs"`` (default) uses the next-state (delta obs) dimensions, as
Lu et al. do; ``part="all"`` uses ``(delta obs, reward)``, as MOPO's code in OfflineRL-Kit does;
``part="reward"`` the reward alone.
"""

from __future__ import annotations

from typing import Callable, Literal

import jax.numpy as jnp

from ._types import Array, Float
from .models.base import MemberOutputs

Part = Literal["obs", "reward", "all"]
PenaltyFn = Callable[..., Float[Array, "..."]]

__all__ = ["PENALTIES", "Part", "ensemble_std", "ensemble_var", "llv", "loo_kl", "max_aleatoric", "max_pairwise_diff"]


def _parts(outputs: MemberOutputs, part: Part) -> tuple[Float[Array, "e ... d"], Float[Array, "e ... d"], slice]:
    """The elites' mean and log-variance restricted to ``part``."""
    if part == "obs":
        cut = slice(0, outputs.obs_dim)
    elif part == "reward":
        cut = slice(outputs.obs_dim, outputs.obs_dim + 1)
    elif part == "all":
        cut = slice(0, None)
    else:
        raise ValueError(f"penalty part must be 'obs', 'reward' or 'all', got {part!r}")
    e = outputs.elite()
    return e.mean[..., cut], e.logvar[..., cut], cut


def max_aleatoric(outputs: MemberOutputs, y: Float[Array, "... target"] | None = None, *, part: Part = "obs") -> Float[Array, "..."]:
    """MOPO: ``max_i || sigma_i ||_2`` over elites (the largest predicted aleatoric std)."""
    _, logvar, _ = _parts(outputs, part)
    return jnp.max(jnp.sqrt(jnp.sum(jnp.exp(logvar), axis=-1)), axis=0)


def max_pairwise_diff(outputs: MemberOutputs, y: Float[Array, "... target"] | None = None, *, part: Part = "obs") -> Float[Array, "..."]:
    """MOReL-style disagreement: ``max_{i,j} || mu_i - mu_j ||_2`` over pairs of elites."""
    mean, _, _ = _parts(outputs, part)
    diff = mean[:, None] - mean[None, :]  # [e, e, ..., d]
    dist = jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1))
    return jnp.max(dist, axis=(0, 1))


def ensemble_std(outputs: MemberOutputs, y: Float[Array, "... target"] | None = None, *, part: Part = "obs") -> Float[Array, "..."]:
    """Spread of the elites' means: ``|| std_i(mu_i) ||_2`` (per-dimension population std, then the 2-norm)."""
    mean, _, _ = _parts(outputs, part)
    return jnp.sqrt(jnp.sum(jnp.var(mean, axis=0), axis=-1))


def ensemble_var(outputs: MemberOutputs, y: Float[Array, "... target"] | None = None, *, part: Part = "obs") -> Float[Array, "..."]:
    """Total variance of the elites' equal mixture, summed over dimensions:
    ``sum_d [mean_i(sigma_i^2 + mu_i^2) - mean_i(mu_i)^2]`` (= mean aleatoric variance + variance of the means)."""
    mean, logvar, _ = _parts(outputs, part)
    return jnp.sum(jnp.mean(jnp.exp(logvar), axis=0) + jnp.var(mean, axis=0), axis=-1)


def llv(outputs: MemberOutputs, y: Float[Array, "... target"] | None = None, *, part: Part = "obs") -> Float[Array, "..."]:
    """Log-likelihood variance: ``var_i log N(y; mu_i, diag sigma_i^2)`` over elites, ``y`` the sampled target
    ``(delta obs, reward)`` (the elites' mean target when ``y`` is None)."""
    mean, logvar, cut = _parts(outputs, part)
    y = jnp.mean(mean, axis=0) if y is None else y[..., cut].astype(mean.dtype)
    loglik = -0.5 * jnp.sum(jnp.square(y - mean) * jnp.exp(-logvar) + logvar + jnp.log(2.0 * jnp.pi), axis=-1)
    return jnp.var(loglik, axis=0)


def loo_kl(outputs: MemberOutputs, y: Float[Array, "... target"] | None = None, *, part: Part = "obs") -> Float[Array, "..."]:
    """Leave-one-out KL: ``max_i KL(N_i || N_-i)``, ``N_-i`` the moment-matched diagonal Gaussian of the other
    elites (mean of their means; mean of their ``sigma^2 + mu^2`` minus the squared mean). Zero for a single elite."""
    mean, logvar, _ = _parts(outputs, part)
    e = mean.shape[0]
    if e < 2:  # one elite has nothing to disagree with (e.g. the oracle)
        return jnp.zeros(mean.shape[1:-1], mean.dtype)
    var = jnp.exp(logvar)
    rest_mean = (jnp.sum(mean, axis=0) - mean) / (e - 1)
    rest_second = (jnp.sum(var + jnp.square(mean), axis=0) - (var + jnp.square(mean))) / (e - 1)
    rest_var = jnp.maximum(rest_second - jnp.square(rest_mean), jnp.finfo(mean.dtype).tiny)
    kl = 0.5 * (jnp.log(rest_var) - logvar + (var + jnp.square(mean - rest_mean)) / rest_var - 1.0)
    return jnp.max(jnp.sum(kl, axis=-1), axis=0)


PENALTIES: dict[str, PenaltyFn] = {
    "max_aleatoric": max_aleatoric, "max_pairwise_diff": max_pairwise_diff, "ensemble_std": ensemble_std,
    "ensemble_var": ensemble_var, "llv": llv, "loo_kl": loo_kl,
}
"""The heuristics by name (for configs and sweeps)."""
