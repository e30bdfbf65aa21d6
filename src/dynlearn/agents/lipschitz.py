"""A critic with a small Lipschitz constant in the state, and estimates of that constant: Zheng, Wang, Xu & Huang, ICLR 2023,
"Is Model Ensemble Necessary? Model-based RL via a Single Model with Lipschitz Regularized Value Function" (arXiv 2302.01244).

The paper's argument: the gap between the Bellman operators of the true and of a learned model shrinks with the value
function's Lipschitz constant, and what a probabilistic ensemble adds to MBPO is mostly a smoother value (its samples
spread the targets around the states the model is unsure of). So one model with a value made smooth directly should do
as well. Its two mechanisms, as :class:`dynlearn.agents.sac.SACConfig` options:

- **spectral normalisation** of the critics' weights (Miyato et al. 2018, arXiv 1802.05957): each normalised layer uses
  ``W / sigma(W)``, ``sigma`` estimated by one power iteration per update whose vector is kept in the agent state
  (:func:`power_vectors`, :func:`power_step`, :func:`normalise`); ``"hidden"`` normalises every layer but the output,
  ``"all"`` every layer (the critic is then 1-Lipschitz in ``(s, a)``, too tight for returns in the hundreds).
- **robust (adversarial) regularisation**: ``coef * mean_rows (Q(s + delta*, a) - Q(s, a))^2`` is added to each critic's
  loss, ``delta*`` the perturbation in the L-infinity ball of radius ``eps`` that (approximately) maximises that change,
  found by projected sign-gradient ascent from a uniform draw in the ball (:func:`adversarial_obs`,
  :func:`adversarial_penalty`), as Shen et al.'s smoothness regulariser (SR2L, ICML 2020) for a critic.

:func:`value_lipschitz` measures the result: the norm of ``d V(s) / d s`` for ``V(s) = min_i Q_i(s, pi(s))`` (``pi`` the
policy's mean action) over a batch of states (maximum, a quantile, mean), the same for the critic alone at fixed actions,
and the product of the layers' spectral norms, an upper bound on every critic's Lipschitz constant in ``(s, a)``.

What could not be read here, and the choices made instead: the paper's text past its introduction was not available in
this workplace (only the abstract and the project page's opening), and no code by the authors was found. So which layers
it normalises, its ``eps``, ascent steps and coefficient, which rows it perturbs, and which Lipschitz estimate its figures
report are not known. Here: hidden layers; the ball in raw observation units (SAC has no observation normaliser);
``delta`` shared by the critics of one row; every row of the batch perturbed (in MBPO 95% of them are model rows); step
``2.5 eps / steps`` (Madry et al.'s rule); the target critics are Polyak averages of the normalised weights (so their
layers' norms stay <= 1 too). The ``single-lipschitz`` preset of :mod:`dynlearn.algos.mbpo_online` adds ``eps`` 0.05,
coefficient 1 and one ascent step from the random start (Wong et al. 2020's "fast" adversarial training): on Hopper at
the CPU budget the single model's holdout MSE is about 0.03 (RMS 0.17 per target dimension), so 0.05 perturbs below the
model's own error, and ``eps`` 0.01 gave a term a thousandth of the critic loss in a 1,500-step check.
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array, Float, Key
from .networks import QEnsemble

LAYERS = ("hidden", "all")
"""Which critic layers :func:`normalise` normalises: every layer but the output, or every layer."""

_TINY = 1e-12  # PyTorch's spectral_norm eps


def _unit(x: Float[Array, "... d"]) -> Float[Array, "... d"]:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), _TINY)


def normalised_layers(critic: QEnsemble, layers: str) -> range:
    """Indices of the layers ``layers`` (one of :data:`LAYERS`) normalises."""
    n_layers = len(critic.net.members.weights)
    return range(n_layers - 1 if layers == "hidden" else n_layers)


# ----------------------------------------------------------------------------------------------
# Spectral normalisation


def _iterate(w: Float[Array, "i o"], u: Float[Array, " o"]) -> Float[Array, " o"]:
    """One power iteration for the top right singular vector of ``w`` (the layer maps ``x -> x @ w``)."""
    return _unit(w.T @ _unit(w @ u))


def _sigma(w: Float[Array, "i o"], u: Float[Array, " o"]) -> Float[Array, ""]:
    """``||w u||`` for a unit ``u``: ``w``'s largest singular value when ``u`` is its top right singular vector, below it
    otherwise (Miyato et al.'s ``u^T W v``)."""
    return jnp.linalg.norm(w @ u)


def power_step(critic: QEnsemble, vectors: tuple[Float[Array, "n o"], ...]) -> tuple[Float[Array, "n o"], ...]:
    """Every normalised layer's vector after one more power iteration on the critic's current (raw) weights; no gradient."""
    weights = critic.net.members.weights
    return tuple(jax.lax.stop_gradient(jax.vmap(_iterate)(weights[i], u)) for i, u in enumerate(vectors))


def power_vectors(critic: QEnsemble, layers: str, *, key: Key, iterations: int = 15) -> tuple[Float[Array, "n o"], ...]:
    """Start vectors, one per member and normalised layer: a normal draw, then ``iterations`` power iterations (PyTorch's
    ``parametrizations.spectral_norm`` does 15 when it is applied)."""
    weights = critic.net.members.weights
    keys = jax.random.split(key, len(weights))
    vectors = tuple(_unit(jax.random.normal(keys[i], (weights[i].shape[0], weights[i].shape[2]), jnp.float32))
                    for i in normalised_layers(critic, layers))
    for _ in range(iterations):
        vectors = power_step(critic, vectors)
    return vectors


def estimated_sigmas(critic: QEnsemble, vectors: tuple[Float[Array, "n o"], ...]) -> tuple[Float[Array, " n"], ...]:
    """The power-iteration estimate of each normalised layer's largest singular value, per member."""
    weights = critic.net.members.weights
    return tuple(jax.vmap(_sigma)(weights[i], u) for i, u in enumerate(vectors))


def normalise(critic: QEnsemble, vectors: tuple[Float[Array, "n o"], ...]) -> QEnsemble:
    """The critic whose first ``len(vectors)`` layers are ``W / sigma(W, u)``: what the losses and the actor see. The
    gradient flows through ``sigma`` (as in Miyato et al.), not through the vectors."""
    sigmas = estimated_sigmas(critic, vectors)
    weights = list(critic.net.members.weights)
    for i, s in enumerate(sigmas):
        weights[i] = weights[i] / s[:, None, None]
    return eqx.tree_at(lambda c: c.net.members.weights, critic, tuple(weights))


def effective_critic(state) -> QEnsemble:
    """The online critics a SAC-family state acts with: ``state.critic``, spectrally normalised when its config says so."""
    vectors = getattr(state, "critic_sn", None)
    return state.critic if vectors is None else normalise(state.critic, vectors)


def layer_norms(critic: QEnsemble) -> tuple[Float[Array, " n"], ...]:
    """Every layer's exact largest singular value, per member (an SVD)."""
    return tuple(jnp.linalg.svd(w, compute_uv=False)[..., 0] for w in critic.net.members.weights)


def spectral_bound(critic: QEnsemble) -> Float[Array, " n"]:
    """The product of the layers' spectral norms per member: an upper bound on each critic's Lipschitz constant in
    ``(s, a)`` (ReLU is 1-Lipschitz), hence on ``||d Q_i / d s||``."""
    norms = layer_norms(critic)
    out = norms[0]
    for s in norms[1:]:
        out = out * s
    return out


# ----------------------------------------------------------------------------------------------
# Robust (adversarial) regularisation


def adversarial_obs(q_fn: Callable, obs: Float[Array, "batch obs"], act: Float[Array, "batch act"], *, eps: float, steps: int,
                    key: Key) -> Float[Array, "batch obs"]:
    """``obs + delta`` with ``||delta||_inf <= eps`` per row chosen to make ``sum_i (Q_i(obs + delta, a) - Q_i(obs, a))^2``
    large: a uniform draw in the ball, then ``steps`` projected steps ``delta <- clip(delta + 2.5 eps / steps *
    sign(grad))``. ``q_fn(obs, act) -> [n, batch]``; the result carries no gradient."""
    q0 = jax.lax.stop_gradient(q_fn(obs, act))
    step = 2.5 * eps / steps

    def gap(delta):
        return jnp.sum((q_fn(obs + delta, act) - q0) ** 2)

    def ascend(delta, _):
        return jnp.clip(delta + step * jnp.sign(jax.grad(gap)(delta)), -eps, eps), None

    delta = jax.random.uniform(key, obs.shape, jnp.float32, -eps, eps)
    delta, _ = jax.lax.scan(ascend, delta, None, length=steps)
    return jax.lax.stop_gradient(obs + delta)


def adversarial_penalty(q_fn: Callable, obs_adv: Float[Array, "batch obs"], act: Float[Array, "batch act"],
                        q: Float[Array, "n batch"]) -> Float[Array, " n"]:
    """Each critic's ``mean_rows (Q_i(obs_adv, a) - Q_i(obs, a))^2`` with ``q = Q(obs, act)`` from the same parameters
    (both terms carry the gradient)."""
    return jnp.mean((q_fn(obs_adv, act) - q) ** 2, axis=-1)


# ----------------------------------------------------------------------------------------------
# Estimates of the value function's Lipschitz constant


def gradient_norms(fn: Callable, obs: Float[Array, "batch obs"]) -> Float[Array, " batch"]:
    """``||d fn(s) / d s||_2`` per row (``fn`` takes one state and returns a scalar): the local Lipschitz constant at each
    state; its maximum over states is a lower bound on the global one."""
    return jnp.linalg.norm(jax.vmap(jax.grad(fn))(obs), axis=-1)


@eqx.filter_jit
def value_lipschitz(state, obs: Float[Array, "batch obs"], *, quantile: float = 0.9) -> dict[str, Float[Array, ""]]:
    """How steep a SAC-family agent's value is in the state, over the states ``obs``:

    - ``value/max``, ``value/quantile``, ``value/mean``: ``||d V(s) / d s||`` for ``V(s) = min_i Q_i(s, pi(s))``, ``pi``
      the policy's mean action (the total derivative, through the policy too);
    - ``critic/max``, ``critic/mean``: ``||d min_i Q_i(s, a) / d s||`` at ``a = pi(s)`` held fixed (the critic alone);
    - ``bound``: the largest product of layer spectral norms over the critics (:func:`spectral_bound`), an upper bound on
      the critic's constant (not on ``V``'s, which also goes through the policy).
    """
    critic, actor, spec = effective_critic(state), state.actor, state.spec
    obs = jnp.asarray(obs, jnp.float32)

    def value(s):
        return jnp.min(critic(s, spec.to_env(actor.mode(s))))

    total = gradient_norms(value, obs)
    fixed = jax.lax.stop_gradient(spec.to_env(actor.mode(obs)))
    partial = jnp.linalg.norm(jax.vmap(jax.grad(lambda s, a: jnp.min(critic(s, a))))(obs, fixed), axis=-1)
    return {"value/max": jnp.max(total), "value/quantile": jnp.quantile(total, quantile), "value/mean": jnp.mean(total),
            "critic/max": jnp.max(partial), "critic/mean": jnp.mean(partial), "bound": jnp.max(spectral_bound(critic))}


__all__ = ["LAYERS", "adversarial_obs", "adversarial_penalty", "effective_critic", "estimated_sigmas", "gradient_norms",
           "layer_norms", "normalise", "normalised_layers", "power_step", "power_vectors", "spectral_bound", "value_lipschitz"]
