"""dynlearn's SAC update against a float64 NumPy transcription of OfflineRL-Kit's ``SACPolicy.learn``.

The reference below is written from the kit's code (``offlinerlkit/policy/model_free/sac.py``, ``modules/actor_module.py``,
``modules/dist_module.py``, ``modules/critic_module.py``, ``nets/mlp.py``) with PyTorch's ``Adam`` and hand-written
backward passes; it calls no dynlearn code. From the same initial weights, batches and noise (``next_eps, eps`` as
``sac.update`` draws them), three updates of both must give the same losses, parameters (actor, critics, target
critics, log alpha) and Adam moments to about 1e-4 relative. The learning rates are large and the temperature starts
at 0.5, so that the updates move every part visibly and the clamp at 1 engages in the last update.

One deliberate difference is left out: the kit's tanh log-det is ``log(1 - tanh(u)^2 + 1e-6)``, dynlearn's the exact
``log(1 - tanh(u)^2)``; the reference takes the constant as ``logdet_eps`` and the comparison uses 0. Its size on
full-size networks is measured by ``benchmarks/component_parity.py`` (about 1e-5 relative on the losses).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import agents
from dynlearn.agents.base import AgentSpec
from dynlearn.data.transitions import Transitions

OBS, ACT, BATCH, HIDDEN, UPDATES = 3, 2, 16, (8, 8), 3
# The entropy target is above the initial policy's entropy (about 1.2), so the temperature rises: from 0.5 to the clamp
# at 1 in the third update.
CFG = dict(hidden=HIDDEN, actor_lr=3e-3, critic_lr=1e-2, alpha_lr=0.5, gamma=0.99, tau=0.05, init_alpha=0.5, alpha_max=1.0,
           target_entropy=3.0, batch_size=BATCH)
RTOL = 1e-4
B1, B2, ADAM_EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam defaults


# ----------------------------------------------------------------------------------------------------------- reference

def linear(p, x):
    """``nn.Linear`` with the weight stored ``[in, out]``."""
    return x @ p["w"] + p["b"]


def mlp_forward(layers, x):
    """``MLP`` (Linear, ReLU)*: returns the features and the pre-activations for the backward pass."""
    pre = []
    h = x
    for p in layers:
        z = linear(p, h)
        pre.append((h, z))
        h = np.maximum(z, 0.0)
    return h, pre


def mlp_backward(layers, pre, d_out):
    """Gradients of the MLP's layers and of its input, given the gradient at its output features."""
    grads = [None] * len(layers)
    d = d_out
    for i in reversed(range(len(layers))):
        h_in, z = pre[i]
        d = d * (z > 0.0)
        grads[i] = {"w": h_in.T @ d, "b": d.sum(axis=0)}
        d = d @ layers[i]["w"].T
    return grads, d


def critic_forward(c, obs, act):
    """``Critic``: backbone MLP on ``cat([obs, act])``, then ``last``."""
    x = np.concatenate([obs, act], axis=1)
    feat, pre = mlp_forward(c["backbone"], x)
    return linear(c["last"], feat), (feat, pre)


def critic_backward(c, cache, d_q):
    feat, pre = cache
    g_last = {"w": feat.T @ d_q, "b": d_q.sum(axis=0)}
    g_backbone, d_x = mlp_backward(c["backbone"], pre, d_q @ c["last"]["w"].T)
    return {"backbone": g_backbone, "last": g_last}, d_x


def actor_forward(a, obs, eps, logdet_eps):
    """``ActorProb`` + ``TanhDiagGaussian(unbounded=True, conditioned_sigma=True, max_mu=1)``, then ``rsample`` with the
    given noise and ``TanhNormalWrapper.log_prob(action, raw_action)``."""
    feat, pre = mlp_forward(a["backbone"], obs)
    mu = linear(a["mu"], feat)
    sigma_pre = linear(a["sigma"], feat)
    log_sigma = np.clip(sigma_pre, -5.0, 2.0)
    sigma = np.exp(log_sigma)
    raw = mu + sigma * eps
    action = np.tanh(raw)
    normal = -((raw - mu) ** 2) / (2 * sigma ** 2) - np.log(sigma) - math.log(math.sqrt(2 * math.pi))
    log_prob = normal.sum(axis=-1, keepdims=True) - np.log(1.0 * (1 - action ** 2) + logdet_eps).sum(axis=-1, keepdims=True)
    return action, log_prob, (feat, pre, mu, sigma_pre, sigma, raw, action)


def actor_backward(a, cache, d_action, d_log_prob, logdet_eps):
    """Gradients of the actor's parameters from ``dL/daction`` and ``dL/dlog_prob`` (reparameterised)."""
    feat, pre, mu, sigma_pre, sigma, raw, action = cache
    one_minus = 1.0 - action ** 2
    # log_prob = sum[-(raw - mu)^2 / (2 sigma^2) - log sigma - c] - sum log(1 - tanh(raw)^2 + e)
    d_raw = d_action * one_minus + d_log_prob * (-(raw - mu) / sigma ** 2 + 2 * action * one_minus / (one_minus + logdet_eps))
    d_mu = d_raw + d_log_prob * (raw - mu) / sigma ** 2
    d_sigma = d_raw * (raw - mu) / sigma + d_log_prob * ((raw - mu) ** 2 / sigma ** 3 - 1.0 / sigma)  # d raw / d sigma = eps
    d_sigma_pre = d_sigma * sigma * ((sigma_pre >= -5.0) & (sigma_pre <= 2.0))
    g_mu = {"w": feat.T @ d_mu, "b": d_mu.sum(axis=0)}
    g_sigma = {"w": feat.T @ d_sigma_pre, "b": d_sigma_pre.sum(axis=0)}
    d_feat = d_mu @ a["mu"]["w"].T + d_sigma_pre @ a["sigma"]["w"].T
    g_backbone, _ = mlp_backward(a["backbone"], pre, d_feat)
    return {"backbone": g_backbone, "mu": g_mu, "sigma": g_sigma}


def tree_map(f, *trees):
    if isinstance(trees[0], dict):
        return {k: tree_map(f, *(t[k] for t in trees)) for k in trees[0]}
    if isinstance(trees[0], list):
        return [tree_map(f, *xs) for xs in zip(*trees)]
    return f(*trees)


class Adam:
    """``torch.optim.Adam`` (no weight decay, no amsgrad) on a nested dict/list of arrays."""

    def __init__(self, params, lr):
        self.lr, self.t = lr, 0
        self.m = tree_map(np.zeros_like, params)
        self.v = tree_map(np.zeros_like, params)

    def step(self, params, grads):
        self.t += 1
        self.m = tree_map(lambda m, g: B1 * m + (1 - B1) * g, self.m, grads)
        self.v = tree_map(lambda v, g: B2 * v + (1 - B2) * g * g, self.v, grads)
        bc1, bc2 = 1 - B1 ** self.t, 1 - B2 ** self.t
        return tree_map(lambda p, m, v: p - self.lr / bc1 * m / (np.sqrt(v) / math.sqrt(bc2) + ADAM_EPS), params, self.m, self.v)


class KitSAC:
    """``SACPolicy`` with two critics and auto alpha, its ``learn`` transcribed (float64)."""

    def __init__(self, actor, critics, log_alpha, cfg, target_entropy, logdet_eps=0.0, perturb=None):
        self.actor, self.critics = actor, critics
        self.critics_old = tree_map(np.copy, critics)
        self.log_alpha = np.array([log_alpha])
        self.alpha = np.exp(self.log_alpha)  # SACPolicy.__init__: log_alpha.detach().exp(), no clamp
        self.cfg, self.target_entropy, self.logdet_eps, self.perturb = cfg, target_entropy, logdet_eps, perturb
        self.actor_optim = Adam(actor, cfg["actor_lr"])
        self.critic_optims = [Adam(c, cfg["critic_lr"]) for c in critics]
        self.alpha_optim = Adam(self.log_alpha, cfg["alpha_lr"])

    def learn(self, obs, actions, next_obs, rewards, terminals, next_eps, eps):
        gamma, tau, alpha = self.cfg["gamma"], self.cfg["tau"], self.alpha
        # update critic
        qs = [critic_forward(c, obs, actions) for c in self.critics]
        next_actions, next_log_probs, _ = actor_forward(self.actor, next_obs, next_eps, self.logdet_eps)
        next_q = np.minimum(critic_forward(self.critics_old[0], next_obs, next_actions)[0],
                            critic_forward(self.critics_old[1], next_obs, next_actions)[0])
        if self.perturb != "no entropy in the target":
            next_q = next_q - alpha * next_log_probs
        target_q = rewards + gamma * (1 - terminals) * next_q
        critic_losses = []
        old_critics = self.critics
        new_critics = []
        for c, (q, cache), opt in zip(self.critics, qs, self.critic_optims):
            critic_losses.append(float(((q - target_q) ** 2).mean()))
            grads, _ = critic_backward(c, cache, 2 * (q - target_q) / len(q))
            new_critics.append(opt.step(c, grads))
        self.critics = new_critics
        # update actor (against the updated critics)
        a, log_probs, a_cache = actor_forward(self.actor, obs, eps, self.logdet_eps)
        critics = old_critics if self.perturb == "old critics in the actor loss" else self.critics
        (q1a, c1), (q2a, c2) = critic_forward(critics[0], obs, a), critic_forward(critics[1], obs, a)
        actor_loss = float(-np.minimum(q1a, q2a).mean() + alpha[0] * log_probs.mean())
        n = len(obs)
        # torch.min routes the gradient to the smaller of the two
        d_q1, d_q2 = -(q1a <= q2a).astype(np.float64) / n, -(q1a > q2a).astype(np.float64) / n
        d_action = critic_backward(critics[0], c1, d_q1)[1][:, OBS:] + critic_backward(critics[1], c2, d_q2)[1][:, OBS:]
        grads = actor_backward(self.actor, a_cache, d_action, np.full_like(log_probs, alpha[0] / n), self.logdet_eps)
        self.actor = self.actor_optim.step(self.actor, grads)
        # auto alpha
        log_probs_t = log_probs + self.target_entropy
        alpha_loss = float(-(self.log_alpha * log_probs_t).mean())
        self.log_alpha = self.alpha_optim.step(self.log_alpha, -log_probs_t.mean(keepdims=True).reshape(1))
        self.alpha = np.clip(np.exp(self.log_alpha), 0.0, 1.0)
        # _sync_weight
        self.critics_old = tree_map(lambda o, c: o * (1.0 - tau) + c * tau, self.critics_old, self.critics)
        return {"loss/critic1": critic_losses[0], "loss/critic2": critic_losses[1], "loss/actor": actor_loss,
                "loss/alpha": alpha_loss, "alpha_used": float(alpha[0]), "alpha": float(self.alpha[0])}


# ----------------------------------------------------------------------------------------------------------- dynlearn

def kit_layout_actor(policy) -> dict:
    """A TanhGaussianPolicy (or an optimiser moment shaped like one) as the kit's ActorProb: backbone, mu, sigma."""
    w = [np.asarray(x, np.float64) for x in policy.net.weights]
    b = [np.asarray(x, np.float64) for x in policy.net.biases]
    return {"backbone": [{"w": w[i], "b": b[i]} for i in range(len(w) - 1)],
            "mu": {"w": w[-1][:, :ACT], "b": b[-1][:ACT]}, "sigma": {"w": w[-1][:, ACT:], "b": b[-1][ACT:]}}


def kit_layout_critics(q) -> list[dict]:
    """A QEnsemble (or a moment shaped like one) as the kit's two Critic modules."""
    w = [np.asarray(x, np.float64) for x in q.net.members.weights]
    b = [np.asarray(x, np.float64) for x in q.net.members.biases]
    return [{"backbone": [{"w": w[j][i], "b": b[j][i]} for j in range(len(w) - 1)], "last": {"w": w[-1][i], "b": b[-1][i]}}
            for i in range(w[0].shape[0])]


def batches():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(UPDATES):
        term = np.zeros(BATCH, bool)
        term[rng.choice(BATCH, 3, replace=False)] = True
        out.append(dict(obs=rng.normal(size=(BATCH, OBS)).astype(np.float32),
                        act=rng.uniform(-1, 1, (BATCH, ACT)).astype(np.float32),
                        rew=rng.normal(size=BATCH).astype(np.float32),
                        next_obs=rng.normal(size=(BATCH, OBS)).astype(np.float32), terminal=term))
    return out


@pytest.fixture(scope="module")
def runs():
    """dynlearn's three updates: initial state, then per update the state, info and the noise it drew."""
    sac = agents.get("sac")
    spec = AgentSpec(OBS, ACT, (-1.0,) * ACT, (1.0,) * ACT)
    cfg = sac.Config(**CFG)
    state = sac.init(jax.random.key(0), spec, cfg)
    init = state
    steps = []
    for u, b in enumerate(batches()):
        key = jax.random.fold_in(jax.random.key(1), u)
        next_eps, eps = jax.random.normal(key, (2, BATCH, ACT), jnp.float32)  # what sac.update draws from `key`
        batch = Transitions(obs=jnp.asarray(b["obs"]), act=jnp.asarray(b["act"]), rew=jnp.asarray(b["rew"]),
                            next_obs=jnp.asarray(b["next_obs"]), terminal=jnp.asarray(b["terminal"]),
                            timeout=jnp.zeros(BATCH, bool), next_obs_valid=jnp.ones(BATCH, bool))
        state, info = sac.update(state, batch, key=key)
        steps.append((state, {k: float(v) for k, v in info.items()}, np.asarray(next_eps, np.float64), np.asarray(eps, np.float64), b))
    return init, steps


def reference_run(init, steps, **kw):
    ref = KitSAC(kit_layout_actor(init.actor), kit_layout_critics(init.critic), float(init.log_alpha), CFG,
                 target_entropy=CFG["target_entropy"], **kw)
    out = []
    for _, _, next_eps, eps, b in steps:
        f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
        res = ref.learn(f64(b["obs"]), f64(b["act"]), f64(b["next_obs"]), f64(b["rew"])[:, None], f64(b["terminal"])[:, None],
                        next_eps, eps)
        out.append((res, tree_map(np.copy, {"actor": ref.actor, "critics": ref.critics, "critics_old": ref.critics_old,
                                            "log_alpha": ref.log_alpha, "m": {"actor": ref.actor_optim.m,
                                                                              "critics": [o.m for o in ref.critic_optims],
                                                                              "log_alpha": ref.alpha_optim.m},
                                            "v": {"actor": ref.actor_optim.v, "critics": [o.v for o in ref.critic_optims],
                                                  "log_alpha": ref.alpha_optim.v}})))
    return out


def flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k2: v for k, sub in tree.items() for k2, v in flatten(sub, f"{prefix}/{k}" if prefix else k).items()}
    if isinstance(tree, list):
        return {k2: v for i, sub in enumerate(tree) for k2, v in flatten(sub, f"{prefix}/{i}").items()}
    return {prefix: np.asarray(tree, np.float64)}


def dynlearn_tree(state) -> dict:
    return {"actor": kit_layout_actor(state.actor), "critics": kit_layout_critics(state.critic),
            "critics_old": kit_layout_critics(state.target_critic), "log_alpha": np.asarray(state.log_alpha).reshape(1),
            "m": {"actor": kit_layout_actor(state.actor_opt[0].mu), "critics": kit_layout_critics(state.critic_opt[0].mu),
                  "log_alpha": np.asarray(state.alpha_opt[0].mu).reshape(1)},
            "v": {"actor": kit_layout_actor(state.actor_opt[0].nu), "critics": kit_layout_critics(state.critic_opt[0].nu),
                  "log_alpha": np.asarray(state.alpha_opt[0].nu).reshape(1)}}


def mismatches(init, steps, reference) -> list[str]:
    """Every loss, parameter, parameter change and Adam moment that differs by more than RTOL (norm-wise per tensor)."""
    bad = []
    prev_ours = prev_theirs = flatten(dynlearn_tree(init))
    for u, ((state, info, *_), (res, ref_tree)) in enumerate(zip(steps, reference)):
        losses = {"loss/critic": (info["loss/critic"], (res["loss/critic1"] + res["loss/critic2"]) / 2),
                  "loss/actor": (info["loss/actor"], res["loss/actor"]), "loss/alpha": (info["loss/alpha"], res["loss/alpha"]),
                  "alpha used": (info["policy/alpha"], res["alpha_used"]),
                  "alpha after": (min(math.exp(float(state.log_alpha)), CFG["alpha_max"]), res["alpha"])}
        for name, (got, want) in losses.items():
            if abs(got - want) > RTOL * abs(want) + 1e-7:
                bad.append(f"update {u}: {name} {got:.7g} != {want:.7g}")
        ours, theirs = flatten(dynlearn_tree(state)), flatten(ref_tree)
        assert ours.keys() == theirs.keys()
        for name in ours:
            got, want = ours[name], theirs[name]
            if np.linalg.norm(got - want) > RTOL * np.linalg.norm(want) + 1e-12:
                bad.append(f"update {u}: {name} (rel {np.linalg.norm(got - want) / np.linalg.norm(want):.1e})")
            if not name.startswith(("m/", "v/")):  # the change in this update, the part Adam and the gradients decide
                d_got, d_want = got - prev_ours[name], want - prev_theirs[name]
                if np.linalg.norm(d_got - d_want) > RTOL * np.linalg.norm(d_want) + 1e-12:
                    bad.append(f"update {u}: change of {name} (rel {np.linalg.norm(d_got - d_want) / np.linalg.norm(d_want):.1e})")
        prev_ours, prev_theirs = ours, theirs
    return bad


def test_sac_update_equals_the_kits_equations(runs):
    init, steps = runs
    reference = reference_run(init, steps)
    assert mismatches(init, steps, reference) == []
    # the test exercises what it claims: terminals, both regimes of the clamped temperature, moving parameters
    alphas = [r["alpha_used"] for r, _ in reference]
    assert alphas[0] == pytest.approx(0.5) and alphas[1] < 1.0 and alphas[-1] == 1.0
    assert all(b["terminal"].any() for *_, b in steps)


@pytest.mark.parametrize("perturb, where", [("old critics in the actor loss", "m/actor"),
                                            ("no entropy in the target", "loss/critic")])
def test_a_wrong_equation_is_caught(runs, perturb, where):
    init, steps = runs
    bad = mismatches(init, steps, reference_run(init, steps, perturb=perturb))
    assert any(where in b for b in bad), bad
