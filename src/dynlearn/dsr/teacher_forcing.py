"""Teacher forcing for training latent models on chaotic data: GTF, adaptive GTF (aGTF) and sparse TF.

**Generalized teacher forcing** (Hess et al., ICML 2023, arXiv 2306.04406; Doya 1992). During training the model
runs along a data sequence ``x_0 .. x_T``; after every step its readout units are pulled towards the data,

    z~_t = (1 - alpha) z_t + alpha x_t     on the first N (observed) units; the other M - N units are not forced,

and the next step starts from ``z~_t``. The loss is the MSE between the *unforced* predictions ``observe(z_t)``
and ``x_t`` for ``t = 1 .. T``; the first state is ``encode(x_0)``. ``alpha = 1`` is classical teacher forcing,
``alpha = 0`` free running. This is the reference's ``GTFRecur`` with partial forcing (``src/tf_training/tfrecur.jl``).

**Adaptive alpha (aGTF)**, the reference's default ``product_upper_bound`` estimator
(``src/tf_training/alpha_estimation.jl``): every ``k`` = 5 batches, for each sequence of the batch take the geometric
mean over time of the spectral norms ``|J(z_t)|_2`` of the model's Jacobians at the data states; ``G`` is the
largest over the batch and ``alpha_est = max(0, 1 - 1/G)``, the smallest alpha that keeps the forced Jacobian
products ``prod (1 - alpha) J`` from growing. Annealing (``training.jl``): if ``alpha_est > alpha`` alpha jumps to
it, else ``alpha <- gamma alpha + (1 - gamma) alpha_est`` with ``gamma = 0.999``; alpha starts at 1. Alpha stays in
[0, 1]; it falls as training makes the map less expanding along the data, and rises at once when it expands more.

Difference from the reference: where M > N the reference evaluates the Jacobians at ``(x_t, 0)`` (its identity
observation model pads the unobserved units with zeros); we use ``encode(x_t) = (x_t, L x_t)``, the same estimate
of the unobserved units that starts every sequence. Where M = N both are ``x_t``.

**Sparse teacher forcing** (Mikhaeil et al. 2022; Brenner et al. 2022; the AL-RNN's training, arXiv 2410.14240):
the readout units are replaced by the data every ``tau`` steps (``t = tau, 2 tau, ...``) and left alone otherwise,
i.e. GTF with ``alpha_t = 1`` on those steps and 0 elsewhere (the reference's ``TFRecur``). One code path
(:func:`forced_predictions` with a per-step ``alphas`` schedule) serves all three.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array, Float
from ..errors import ConfigError
from .base import AbstractLatentModel

FORCING_MODES = ("adaptive", "gtf", "sparse")


def forcing_schedule(mode: str, length: int, *, alpha: float | Float[Array, ""] = 1.0, tau: int = 16) -> Float[Array, " length"]:
    """Per-step forcing weights ``alpha_t`` for ``t = 1 .. length``.

    ``"gtf"`` / ``"adaptive"``: ``alpha`` at every step; ``"sparse"``: 1 at ``t = tau, 2 tau, ...``, else 0.
    """
    if mode in ("gtf", "adaptive"):
        return jnp.full((length,), alpha, jnp.float32)
    if mode == "sparse":
        if tau < 1:
            raise ConfigError(f"forcing_schedule: tau must be >= 1, got {tau}.")
        return (jnp.arange(1, length + 1) % tau == 0).astype(jnp.float32)
    raise ConfigError(f"forcing_schedule: unknown mode {mode!r}; choose one of {list(FORCING_MODES)}.")


def force(z: Float[Array, " latent"], x: Float[Array, " obs"], alpha: Float[Array, ""]) -> Float[Array, " latent"]:
    """``(1 - alpha) z + alpha x`` on the first ``N = x.shape[-1]`` units of ``z``; the rest unchanged."""
    n = x.shape[-1]
    forced = (1.0 - alpha) * z[..., :n] + alpha * x
    return jnp.concatenate([forced, z[..., n:]], axis=-1) if z.shape[-1] > n else forced


def forced_predictions(model: AbstractLatentModel, x: Float[Array, "T1 obs"], alphas: Float[Array, " T"]
                       ) -> Float[Array, "T latent"]:
    """The model's unforced predictions ``z_1 .. z_T`` along one data sequence ``x_0 .. x_T`` under forcing ``alphas``.

    ``z_0 = encode(x_0)``; ``z_t = step(z~_{t-1})``; ``z~_t = force(z_t, x_t, alpha_t)``. One ``lax.scan``.
    """

    def body(z, inputs):
        x_t, a_t = inputs
        z_t = model.step(z)
        return force(z_t, x_t, a_t), z_t

    _, zs = jax.lax.scan(body, model.encode(x[0]), (x[1:], alphas))
    return zs


def forced_mse(model: AbstractLatentModel, x: Float[Array, "batch T1 obs"], alphas: Float[Array, " T"]) -> Float[Array, ""]:
    """Mean squared error of ``observe(z_t)`` against ``x_t`` over a batch of sequences (the GTF/STF training loss)."""
    zs = jax.vmap(forced_predictions, in_axes=(None, 0, None))(model, x, alphas)
    pred = jax.vmap(jax.vmap(model.observe))(zs)
    return jnp.mean(jnp.square(pred - x[:, 1:]))


def spectral_norms(jacobians: Float[Array, "*batch m m"]) -> Float[Array, "*batch"]:
    """Largest singular value of each matrix (``sqrt`` of the top eigenvalue of ``J^T J``)."""
    gram = jnp.einsum("...ki,...kj->...ij", jacobians, jacobians)
    return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(gram)[..., -1], 0.0))


def jacobian_product_growth(model: AbstractLatentModel, z: Float[Array, "batch T latent"]) -> Float[Array, ""]:
    """``G``: over the sequences of a batch, the largest geometric mean along time of ``|J(z_t)|_2`` (aGTF's
    ``product_upper_bound``). ``G^T`` bounds the norm of the Jacobian product along a sequence of length ``T``."""
    jac = jax.vmap(jax.vmap(model.jacobian))(z)
    logs = jnp.log(spectral_norms(jac))  # log 0 = -inf: a zero Jacobian gives G = 0, alpha 0
    return jnp.max(jnp.exp(jnp.mean(logs, axis=1)))


def alpha_from_growth(growth: Float[Array, ""]) -> Float[Array, ""]:
    """``max(0, 1 - 1/G)``: the forcing that makes ``(1 - alpha) G <= 1`` (no growth of forced products)."""
    return jnp.clip(1.0 - 1.0 / growth, 0.0, 1.0)


def estimate_alpha(model: AbstractLatentModel, x: Float[Array, "batch T1 obs"]) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """``(alpha_est, G)`` at the data states ``encode(x_t)``, ``t = 1 .. T``, of a batch of sequences."""
    z = jax.vmap(jax.vmap(model.encode))(x[:, 1:])
    growth = jacobian_product_growth(model, jax.lax.stop_gradient(z))
    return alpha_from_growth(growth), growth


def anneal_alpha(alpha: Float[Array, ""], alpha_est: Float[Array, ""], decay: float = 0.999) -> Float[Array, ""]:
    """aGTF's update: jump up to ``alpha_est`` when it is larger, else ``decay * alpha + (1 - decay) * alpha_est``."""
    return jnp.where(alpha_est > alpha, alpha_est, decay * alpha + (1.0 - decay) * alpha_est)
