"""Component parity with OfflineRL-Kit: one fitted model, its penalty and rollouts, and SAC updates, in both libraries.

Three commands; the two sides exchange .npz files in a work folder (``--work``, e.g. under ``runs/``):

    python benchmarks/component_parity.py prepare --work runs/component_parity/hopper --kit-fit runs/peers/test-fit-hopper
    $PEER_VENV/bin/python benchmarks/peers/component_parity_kit.py --work runs/component_parity/hopper [--kit $OFFLINERL_KIT]
    python benchmarks/component_parity.py compare --work runs/component_parity/hopper \
        --out benchmarks/results/component_parity/hopper-medium-v5.json

``--kit-fit`` is a fit folder of ``benchmarks/peers/offlinerl_kit.py fit`` (its ``model.npz``; a 2-epoch fit is
enough for a component check). ``prepare`` writes ``inputs.npz`` (the rows, the open-loop actions, the SAC networks'
initial weights in the kit's layout, the batches and the noise) and ``dynlearn.npz`` (dynlearn's outputs); the kit
side writes ``kit.npz``; ``compare`` prints and writes the comparison.

1. **Model and MOPO penalty** on ``--rows`` fixed dataset rows (seeded choice): every member's mean and std of
   ``(delta obs, reward)`` in data units (the kit's model into dynlearn with ``model_fit_parity.kit_model``), the
   MOPO penalty (kit: ``EnsembleDynamics.step`` with ``uncertainty_mode="aleatoric"``, the max over all members of
   the 2-norm of the std vector; dynlearn: ``PENALTIES["max_aleatoric"]`` through ``rollout.Penalty`` with
   ``members="all"``, ``part="all"``), and the termination function on every member's and on the elites' mean next
   observation (kit's ``termination_fn_hopper`` against ``dl.tasks.get(...).termination_fn``).
2. **Rollouts**: ``--starts`` start rows, horizon ``--horizon``, the same open-loop actions (uniform in the action
   box) in both; each library draws its own elites and noise (kit: ``EnsembleDynamics.step``; dynlearn:
   ``dl.rollout.rollout`` with MOPO's penalty hook, one step per call so that step ``t`` takes the actions of step
   ``t``). Per step, over the branches still alive: mean, std, 5/50/95% quantiles of the model reward and the
   penalty, the terminal rate, and the two-sample Kolmogorov-Smirnov statistic. Tolerances: KS below its critical
   value at 0.001 (Bonferroni over the steps and the two quantities at a family level of about 1%), the difference
   of the means and of the terminal rates within 3.3 standard errors (independent-sample standard errors; the
   shared starts and actions correlate the two samples positively, so these bounds are conservative).
3. **SAC updates** (``--updates``, default 2) of dynlearn's ``sac`` with MOPO's settings
   (``algos.mopo.sac_config``) from one initialisation, on dataset batches of 256 rows (a few terminal rows forced
   in), with the noise ``update`` draws (``next_eps, eps = jax.random.normal(key, (2, B, act))``) handed to the kit
   (its ``rsample`` patched). Compared after every update: the losses, every parameter (actor, critics, target
   critics, log alpha; also in units of the learning rate, since a first Adam step moves each parameter by about
   ``lr * sign(gradient)``) and Adam's first moments (0.1 x the gradient after the first update). The kit side runs
   twice: as it is, and with its tanh log-det ``log(1 - tanh(u)^2 + 1e-6)`` replaced by dynlearn's exact
   ``2 (log 2 - u - softplus(-2u))``; the second run isolates the one equation that differs.
4. **MOBILE's penalty** on the first ``--mobile-rows`` rows: dynlearn's ``algos.mobile.BellmanInconsistency.uncertainty``
   against the kit's ``MOBILEPolicy.compute_lcb``, with the same model, the initial SAC networks of 3. and the same
   noise (dynlearn's draws from its key; the kit's ``torch.randn_like`` and ``rsample`` patched).

``--out`` gets every number; the ``summary`` block at its top collects the headline ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn import agents
from dynlearn.agents.base import AgentSpec
from dynlearn.algos import MOPOConfig, mopo
from dynlearn.data.transitions import Transitions
from dynlearn.penalties import PENALTIES
from dynlearn.rollout import Penalty, RolloutHooks, rollout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_fit_parity import kit_model  # noqa: E402  (benchmarks/model_fit_parity.py)

QUANTILES = (0.05, 0.5, 0.95)
# Next observations at the edges of Hopper's termination rule (Gymnasium v5: healthy iff height > 0.7, |angle| < 0.2 and
# every entry of state_vector()[2:] in (-100, 100)), changed from a healthy row; both sides evaluate them.
PROBES = ("healthy", "height 0.7", "height 0.7001", "angle 0.2", "angle -0.2", "angle -0.1999", "obs[5] 150", "obs[5] -150",
          "obs[10] 99.9", "obs[10] -99.9", "obs[5] nan", "obs[5] +inf", "obs[5] -inf")


def probe_next_obs(obs_dim: int) -> np.ndarray:
    healthy = np.zeros(obs_dim, np.float32)
    healthy[0] = 1.25
    rows = []
    for case in PROBES:
        x = healthy.copy()
        if case != "healthy":
            what, value = case.split(" ")
            i = {"height": 0, "angle": 1}.get(what) if what in ("height", "angle") else int(what[4:-1])
            x[i] = float(value)
        rows.append(x)
    return np.stack(rows)
KS_C = 1.949  # c(alpha) of the two-sample KS test at alpha = 0.001: D_crit = c * sqrt((n + m) / (n m))
Z_MEAN = 3.3  # two-sided z at 0.001
CRITIC = "loss/critic (dynlearn: mean of the critics' MSEs)"


# ----------------------------------------------------------------------------------------------------------- layouts

def actor_to_kit(actor) -> dict:
    """TanhGaussianPolicy (``x @ W + b``; last layer ``[mean | log_std]``) as the kit's ActorProb state dict."""
    w, b = [np.asarray(x) for x in actor.net.weights], [np.asarray(x) for x in actor.net.biases]
    out = {}
    for i in range(len(w) - 1):
        out[f"backbone.model.{2 * i}.weight"], out[f"backbone.model.{2 * i}.bias"] = w[i].T, b[i]
    a = w[-1].shape[1] // 2
    out["dist_net.mu.weight"], out["dist_net.mu.bias"] = w[-1][:, :a].T, b[-1][:a]
    out["dist_net.sigma.weight"], out["dist_net.sigma.bias"] = w[-1][:, a:].T, b[-1][a:]
    return out


def critic_to_kit(q, i: int) -> dict:
    """Member ``i`` of a QEnsemble as the kit's Critic state dict (``backbone`` MLP + ``last``)."""
    w = [np.asarray(x)[i] for x in q.net.members.weights]
    b = [np.asarray(x)[i] for x in q.net.members.biases]
    out = {}
    for j in range(len(w) - 1):
        out[f"backbone.model.{2 * j}.weight"], out[f"backbone.model.{2 * j}.bias"] = w[j].T, b[j]
    out["last.weight"], out["last.bias"] = w[-1].T, b[-1]
    return out


def sac_to_kit(state, n_critics: int) -> dict:
    out = {f"actor/{k}": v for k, v in actor_to_kit(state.actor).items()}
    for i in range(n_critics):
        out.update({f"critic{i + 1}/{k}": v for k, v in critic_to_kit(state.critic, i).items()})
        out.update({f"critic{i + 1}_old/{k}": v for k, v in critic_to_kit(state.target_critic, i).items()})
    out["log_alpha"] = np.asarray(state.log_alpha, np.float32).reshape(1)
    return out


def adam_moments(state, n_critics: int) -> dict:
    """Adam's first moments of actor, critics and log alpha in the kit's layout (optax: ``(ScaleByAdamState, ...)``)."""
    actor_m, critic_m, alpha_m = state.actor_opt[0].mu, state.critic_opt[0].mu, state.alpha_opt[0].mu
    out = {f"actor/{k}": v for k, v in actor_to_kit(eqx.tree_at(lambda a: a.net, state.actor, actor_m.net)).items()}
    for i in range(n_critics):
        out.update({f"critic{i + 1}/{k}": v for k, v in critic_to_kit(critic_m, i).items()})
    out["log_alpha"] = np.asarray(alpha_m, np.float32).reshape(1)
    return out


# ----------------------------------------------------------------------------------------------------------- dynlearn side

class OpenLoop(eqx.Module):
    """A rollout policy that returns fixed actions (one row per branch), whatever the observation."""

    act: jax.Array

    def __call__(self, obs, *, key):
        return self.act


def model_outputs(model, task, obs, act) -> dict:
    out = model.members(jnp.asarray(obs), jnp.asarray(act))
    hooks = RolloutHooks(penalty=Penalty(PENALTIES["max_aleatoric"], coef=1.0, part="all", members="all"))
    y = jnp.zeros(out.mean.shape[1:], jnp.float32)  # unused by max_aleatoric
    penalty = hooks.penalty.uncertainty(out, y)
    mean, std = np.asarray(out.mean), np.asarray(out.std)
    obs_dim = obs.shape[1]
    next_mean = obs[None] + mean[..., :obs_dim]                                     # [E, n, obs]
    elites = np.asarray(model.elites)
    term = np.stack([np.asarray(task.termination_fn(jnp.asarray(obs), jnp.asarray(act), jnp.asarray(m))) for m in next_mean])
    elite_next = next_mean[elites].mean(axis=0)
    term_elite = np.asarray(task.termination_fn(jnp.asarray(obs), jnp.asarray(act), jnp.asarray(elite_next)))
    probes = probe_next_obs(obs_dim)
    probe_term = np.asarray(task.termination_fn(jnp.asarray(obs[:len(probes)]), jnp.asarray(act[:len(probes)]), jnp.asarray(probes)))
    return {"model/mean": mean, "model/std": std, "model/penalty": np.asarray(penalty), "model/terminal_members": term,
            "model/terminal_elite_mean": term_elite, "model/next_obs_elite_mean": elite_next.astype(np.float32),
            "model/elites": elites, "probe/terminal": probe_term}


def model_rollouts(model, start_obs, actions, seed: int) -> dict:
    """h steps of ``dl.rollout.rollout`` (one step per call, MOPO's penalty hook); dead branches masked out."""
    hooks = RolloutHooks(penalty=Penalty(PENALTIES["max_aleatoric"], coef=1.0, part="all", members="all"))
    h, b = actions.shape[:2]
    obs = jnp.asarray(start_obs)
    alive = np.ones(b, bool)
    rew, pen, term, live = (np.full((h, b), np.nan, np.float32), np.full((h, b), np.nan, np.float32), np.zeros((h, b), bool),
                            np.zeros((h, b), bool))
    key = jax.random.key(seed)
    for t in range(h):
        r = rollout(model, OpenLoop(jnp.asarray(actions[t])), obs, 1, key=jax.random.fold_in(key, t), hooks=hooks)
        live[t] = alive
        rew[t] = np.where(alive, np.asarray(r.rew[0]), np.nan)
        pen[t] = np.where(alive, np.asarray(r.penalty[0]), np.nan)
        term[t] = alive & np.asarray(r.terminal[0])
        obs = jnp.where(jnp.asarray(alive & ~term[t])[:, None], r.next_obs[0], obs)
        alive = alive & ~term[t]
    return {"rollout/reward": rew, "rollout/penalty": pen, "rollout/terminal": term, "rollout/alive": live}


def sac_batches(t: Transitions, rng, updates: int, size: int, terminals: int) -> list[dict]:
    term = np.flatnonzero(np.asarray(t.terminal))
    valid = np.flatnonzero(np.asarray(t.next_obs_valid) & ~np.asarray(t.terminal))
    out = []
    for _ in range(updates):
        rows = np.concatenate([rng.choice(term, terminals, replace=False), rng.choice(valid, size - terminals, replace=False)])
        rows = rng.permutation(rows)
        out.append({"rows": rows, "observations": np.asarray(t.obs)[rows], "actions": np.asarray(t.act)[rows],
                    "next_observations": np.asarray(t.next_obs)[rows], "rewards": np.asarray(t.rew, np.float32)[rows, None],
                    "terminals": np.asarray(t.terminal, np.float32)[rows, None]})
    return out


def sac_updates(task, cfg, batches: list[dict], seed: int) -> tuple[dict, dict]:
    """dynlearn's SAC from ``key(seed)``: the initial weights, the noise of each update (as ``update`` draws it) and
    everything after each update, in the kit's layout."""
    sac = agents.get("sac")
    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    state = sac.init(jax.random.key(seed), spec, cfg)
    inputs = {f"sac/init/{k}": v for k, v in sac_to_kit(state, cfg.n_critics).items()}
    outputs = {}
    for u, batch in enumerate(batches):
        key = jax.random.fold_in(jax.random.key(seed + 1), u)
        next_eps, eps = jax.random.normal(key, (2, len(batch["rows"]), task.act_dim), jnp.float32)  # as sac.update draws it
        inputs[f"sac/u{u}/next_eps"], inputs[f"sac/u{u}/eps"] = np.asarray(next_eps), np.asarray(eps)
        for k in ("observations", "actions", "next_observations", "rewards", "terminals"):
            inputs[f"sac/u{u}/{k}"] = batch[k]
        b = Transitions(obs=jnp.asarray(batch["observations"]), act=jnp.asarray(batch["actions"]), rew=jnp.asarray(batch["rewards"][:, 0]),
                        next_obs=jnp.asarray(batch["next_observations"]), terminal=jnp.asarray(batch["terminals"][:, 0] > 0),
                        timeout=jnp.zeros(len(batch["rows"]), bool), next_obs_valid=jnp.ones(len(batch["rows"]), bool))
        old_alpha = state.log_alpha
        state, info = sac.update(state, b, key=key)
        # per-critic MSEs (info has their mean), from the pre-update critics: recomputed here from the info's pieces
        outputs.update({f"sac/u{u}/param/{k}": v for k, v in sac_to_kit(state, cfg.n_critics).items()})
        outputs.update({f"sac/u{u}/adam_m/{k}": v for k, v in adam_moments(state, cfg.n_critics).items()})
        alpha_after = float(jnp.exp(state.log_alpha)) if cfg.alpha_max is None else min(float(jnp.exp(state.log_alpha)), cfg.alpha_max)
        for name, value in (("loss/critic", info["loss/critic"]), ("loss/actor", info["loss/actor"]), ("loss/alpha", info["loss/alpha"]),
                            ("alpha_used", info["policy/alpha"]), ("alpha_after", alpha_after), ("entropy", info["policy/entropy"]),
                            ("log_alpha_before", old_alpha)):
            outputs[f"sac/u{u}/{name}"] = np.asarray(value, np.float64)
    return inputs, outputs


def mobile_penalty(model, task, cfg, obs, act, seed: int, samples: int) -> tuple[dict, dict]:
    """MOBILE's Bellman-inconsistency ``u`` (``algos.mobile.BellmanInconsistency.uncertainty``) with the initial SAC
    networks, and the noise it draws from its key (next-state noise, then the policy's), for the kit."""
    from dynlearn.algos import mobile
    from dynlearn.rollout import elite_view

    sac = agents.get("sac")
    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    state = sac.init(jax.random.key(seed), spec, cfg)
    hook = mobile.BellmanInconsistency(elite_view(model), jnp.float32(1.0), jnp.float32(0.0), 0, samples, sac.sample_action, sac.q_values)
    key = jax.random.key(seed + 3)
    u = hook.uncertainty(state, jnp.asarray(obs), jnp.asarray(act), key=key)
    noise_key, act_key = jax.random.split(key)  # as BellmanInconsistency.uncertainty splits it
    e = int(model.elites.shape[0])
    eps_obs = jax.random.normal(noise_key, (samples, e, len(obs), task.obs_dim), jnp.float32)
    eps_act = jax.random.normal(act_key, (samples, e, len(obs), task.act_dim), jnp.float32)  # TanhGaussianPolicy.sample
    return ({"mobile/obs": obs, "mobile/act": act, "mobile/eps_obs": np.asarray(eps_obs), "mobile/eps_act": np.asarray(eps_act)},
            {"mobile/penalty": np.asarray(u)})


def prepare(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = dl.data.load(args.dataset)
    task = dl.tasks.get(data.task)
    t = data.transitions
    rng = np.random.default_rng(args.seed)
    valid = np.flatnonzero(np.asarray(t.next_obs_valid))
    rows = np.sort(rng.choice(valid, args.rows, replace=False))
    obs, act = np.asarray(t.obs)[rows], np.asarray(t.act)[rows]
    starts = np.sort(rng.choice(valid, args.starts, replace=False))
    low, high = np.asarray(task.act_low, np.float32), np.asarray(task.act_high, np.float32)
    actions = rng.uniform(low, high, (args.horizon, args.starts, task.act_dim)).astype(np.float32)
    model = kit_model(Path(args.kit_fit), task.obs_dim, task.act_dim, task)

    mcfg = MOPOConfig.for_dataset(args.dataset)
    cfg = mopo.sac_config(mcfg)
    batches = sac_batches(t, rng, args.updates, cfg.batch_size, args.batch_terminals)
    sac_in, sac_out = sac_updates(task, cfg, batches, args.seed)
    mobile_in, mobile_out = mobile_penalty(model, task, cfg, obs[:args.mobile_rows], act[:args.mobile_rows], args.seed,
                                           args.mobile_samples)

    meta = {"dataset": args.dataset, "task": task.id, "kit_fit": str(args.kit_fit), "seed": args.seed, "rows": args.rows,
            "starts": args.starts, "horizon": args.horizon, "updates": args.updates, "obs_dim": task.obs_dim, "act_dim": task.act_dim,
            "sac_config": dataclasses.asdict(cfg), "mopo": {"penalty": mcfg.penalty, "part": mcfg.penalty_part,
                                                                         "members": mcfg.penalty_members, "coef": mcfg.penalty_coef},
            "dataset_hash": data.content_hash() if hasattr(data, "content_hash") else None,
            "n_critics": cfg.n_critics, "gamma": cfg.gamma, "tau": cfg.tau, "actor_lr": cfg.actor_lr, "critic_lr": cfg.critic_lr,
            "alpha_lr": cfg.alpha_lr, "target_entropy": -float(task.act_dim) if cfg.target_entropy is None else cfg.target_entropy}
    np.savez(work / "inputs.npz", meta_json=np.array(json.dumps(meta, default=str)), rows=rows, obs=obs, act=act,
             start_rows=starts, start_obs=np.asarray(t.obs)[starts], actions=actions,
             probe_next_obs=probe_next_obs(task.obs_dim), **sac_in, **mobile_in)
    outputs = {**model_outputs(model, task, obs, act), **model_rollouts(model, np.asarray(t.obs)[starts], actions, args.seed + 2),
               **sac_out, **mobile_out}
    np.savez(work / "dynlearn.npz", **outputs)
    print(f"{work}/inputs.npz and dynlearn.npz: {args.rows} rows, {args.starts} rollout starts (h {args.horizon}), "
          f"{args.updates} SAC updates of {cfg.batch_size} rows")


# ----------------------------------------------------------------------------------------------------------- comparison

def diff(a, b, scale=None) -> dict:
    """Max abs difference, max relative (elementwise, to |b|), and relative to ``scale`` (norm-wise if None)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = np.abs(a - b)
    out = {"max_abs": float(d.max(initial=0.0)),
           "max_rel": float((d / np.maximum(np.abs(b), 1e-30)).max(initial=0.0)),
           "norm_rel": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))}
    if scale is not None:
        out["max_abs_over_scale"] = float((d / scale).max(initial=0.0))
    return out


def ks(x, y) -> float:
    x, y = np.sort(x), np.sort(y)
    grid = np.concatenate([x, y])
    return float(np.max(np.abs(np.searchsorted(x, grid, "right") / len(x) - np.searchsorted(y, grid, "right") / len(y))))


def summary(x) -> dict:
    return {"n": int(len(x)), "mean": float(np.mean(x)), "std": float(np.std(x)),
            **{f"q{int(q * 100):02d}": float(np.quantile(x, q)) for q in QUANTILES}}


def compare_model(d, k, inputs, meta) -> dict:
    obs_dim = meta["obs_dim"]
    mean_d, mean_k, std_d, std_k = d["model/mean"], k["model/mean"], d["model/std"], k["model/std"]
    scale = std_k.mean(axis=(0, 1))  # each target's typical predicted std: the scale of the sampling noise
    out = {"rows": int(len(inputs["rows"])), "members": int(mean_d.shape[0]),
           "elites_same": bool(np.array_equal(np.sort(d["model/elites"]), np.sort(k["model/elites"]))),
           "mean": {**diff(mean_d, mean_k, scale),
                    "max_abs_over_dim_rms": float((np.abs(mean_d - mean_k) / np.sqrt((mean_k ** 2).mean(axis=(0, 1)))).max())},
           "std": diff(std_d, std_k),
           "mean_per_member_max_abs_over_scale": [float((np.abs(mean_d[e] - mean_k[e]) / scale).max()) for e in range(mean_d.shape[0])],
           "std_per_member_max_rel": [diff(std_d[e], std_k[e])["max_rel"] for e in range(std_d.shape[0])],
           "penalty": {**diff(d["model/penalty"], k["model/penalty"]), "kit_mean": float(k["model/penalty"].mean()),
                       "dynlearn_mean": float(d["model/penalty"].mean())}}
    term = {}
    td, tk = d["model/terminal_members"], k["model/terminal_members"]
    term["members_own_means"] = {"cases": int(td.size), "disagree": int((td != tk).sum()), "kit_rate": float(tk.mean()),
                                 "dynlearn_rate": float(td.mean())}
    tks = k["model/terminal_members_on_dynlearn_next_obs"]
    term["members_same_next_obs"] = {"cases": int(td.size), "disagree": int((td != tks).sum())}
    te, tke = d["model/terminal_elite_mean"], k["model/terminal_elite_mean"]
    term["elite_mean_next_obs"] = {"cases": int(te.size), "disagree": int((te != tke).sum()), "kit_rate": float(tke.mean()),
                                   "dynlearn_rate": float(te.mean())}
    term["elite_mean_next_obs_diff"] = diff(d["model/next_obs_elite_mean"], k["model/next_obs_elite_mean"])
    probe_d, probe_k = d["probe/terminal"], k["probe/terminal"]
    term["probes"] = [{"case": c, "dynlearn": bool(a), "kit": bool(b)} for c, a, b in zip(PROBES, probe_d, probe_k)]
    term["probes_disagree"] = [c for c, a, b in zip(PROBES, probe_d, probe_k) if a != b]
    out["termination"] = term
    out["dims"] = [f"delta_obs[{i}]" for i in range(obs_dim)] + ["reward"]
    return out


def compare_rollouts(d, k) -> list[dict]:
    steps = []
    for t in range(d["rollout/alive"].shape[0]):
        ad, ak = d["rollout/alive"][t], k["rollout/alive"][t]
        row = {"step": t, "alive_dynlearn": int(ad.sum()), "alive_kit": int(ak.sum())}
        n, m = int(ad.sum()), int(ak.sum())
        crit = KS_C * np.sqrt((n + m) / (n * m))
        for name in ("reward", "penalty"):
            x, y = d[f"rollout/{name}"][t][ad], k[f"rollout/{name}"][t][ak]
            se = np.sqrt(x.var() / n + y.var() / m)
            row[name] = {"dynlearn": summary(x), "kit": summary(y), "ks": ks(x, y), "ks_critical": float(crit),
                         "mean_diff": float(x.mean() - y.mean()), "mean_diff_se": float(se),
                         "agree": bool(ks(x, y) < crit and abs(x.mean() - y.mean()) < Z_MEAN * se)}
        pd_, pk = d["rollout/terminal"][t][ad].mean(), k["rollout/terminal"][t][ak].mean()
        se = np.sqrt(pd_ * (1 - pd_) / n + pk * (1 - pk) / m)
        row["terminal_rate"] = {"dynlearn": float(pd_), "kit": float(pk), "diff": float(pd_ - pk), "se": float(se),
                                "agree": bool(abs(pd_ - pk) <= max(Z_MEAN * se, 1.0 / min(n, m)))}
        steps.append(row)
    return steps


def sac_group(key: str) -> str:
    return key.split("/")[0]


def compare_sac(d, k, meta, prefix: str) -> dict:
    out = []
    for u in range(meta["updates"]):
        p = f"sac/u{u}"
        crit_k = np.array([k[f"{prefix}/u{u}/loss/critic1"], k[f"{prefix}/u{u}/loss/critic2"]], np.float64)
        crit_d, actor_d, actor_k = float(d[f"{p}/loss/critic"]), float(d[f"{p}/loss/actor"]), float(k[f"{prefix}/u{u}/loss/actor"])
        row = {"update": u,
               CRITIC: {"dynlearn": crit_d, "kit critic1": float(crit_k[0]), "kit critic2": float(crit_k[1]),
                        "rel": abs(crit_d - crit_k.mean()) / abs(crit_k.mean())},
               "loss/actor": {"dynlearn": actor_d, "kit": actor_k, "rel": abs(actor_d - actor_k) / abs(actor_k)},
               "loss/alpha": {"dynlearn": float(d[f"{p}/loss/alpha"]), "kit": float(k[f"{prefix}/u{u}/loss/alpha"]),
                              "abs": float(abs(d[f"{p}/loss/alpha"] - k[f"{prefix}/u{u}/loss/alpha"]))},
               "alpha after the update": {"dynlearn": float(d[f"{p}/alpha_after"]), "kit": float(k[f"{prefix}/u{u}/alpha"]),
                                          "abs": float(abs(d[f"{p}/alpha_after"] - k[f"{prefix}/u{u}/alpha"]))}}
        if f"{prefix}/u{u}/entropy" in k:
            row["policy entropy (-mean log pi)"] = {"dynlearn": float(d[f"{p}/entropy"]), "kit": float(k[f"{prefix}/u{u}/entropy"]),
                                                    "abs": float(abs(d[f"{p}/entropy"] - k[f"{prefix}/u{u}/entropy"]))}
        lr = {"actor": meta["actor_lr"], "critic1": meta["critic_lr"], "critic2": meta["critic_lr"], "log_alpha": meta["alpha_lr"],
              "critic1_old": meta["critic_lr"] * meta["tau"], "critic2_old": meta["critic_lr"] * meta["tau"]}
        for what in ("param", "adam_m"):
            groups: dict[str, dict] = {}
            worst_tensor = {}
            for name in d.files:
                if not name.startswith(f"{p}/{what}/"):
                    continue
                short = name[len(f"{p}/{what}/"):]
                a, b = d[name], k[f"{prefix}/u{u}/{what}/{short}"]
                g = sac_group(short)
                dd = diff(a, b)
                if what == "param":  # an Adam step moves a parameter by about lr: a flipped gradient sign shows as 2 lr
                    dd["max_abs_over_lr"] = dd["max_abs"] / lr[g]
                    dd["over_tenth_lr"] = int((np.abs(a.astype(np.float64) - b) > 0.1 * lr[g]).sum())
                cur = groups.setdefault(g, {"tensors": 0, "elements": 0, "max_abs": 0.0, "norm_rel_max": 0.0, "max_abs_over_lr": 0.0,
                                            "elements_off_by_over_0.1_lr": 0})
                cur["tensors"] += 1
                cur["elements"] += int(a.size)
                cur["max_abs"] = max(cur["max_abs"], dd["max_abs"])
                cur["norm_rel_max"] = max(cur["norm_rel_max"], dd["norm_rel"])
                if what == "param":
                    cur["max_abs_over_lr"] = max(cur["max_abs_over_lr"], dd["max_abs_over_lr"])
                    cur["elements_off_by_over_0.1_lr"] += dd["over_tenth_lr"]
                else:
                    cur.pop("max_abs_over_lr", None)
                    cur.pop("elements_off_by_over_0.1_lr", None)
                if dd["norm_rel"] >= worst_tensor.get(g, ("", -1.0))[1]:
                    worst_tensor[g] = (short, dd["norm_rel"])
            for g in groups:
                groups[g]["worst_tensor"] = worst_tensor[g][0]
            row["parameters after the update" if what == "param" else "Adam first moments"] = groups
        out.append(row)
    return out


def summarize(r: dict) -> dict:
    """The headline numbers of a comparison."""
    m, term = r["model"], r["model"]["termination"]

    def sac(label):
        rows = r["sac"][label]
        return {"losses_max_rel": max(max(x[CRITIC]["rel"], x["loss/actor"]["rel"]) for x in rows),
                "log_alpha_max_abs": max(x["parameters after the update"]["log_alpha"]["max_abs"] for x in rows),
                "params_norm_rel_max": max(g["norm_rel_max"] for x in rows for g in x["parameters after the update"].values()),
                "params_max_abs_over_lr": max(g["max_abs_over_lr"] for x in rows for g in x["parameters after the update"].values()),
                "params_elements_off_by_over_0.1_lr": sum(g["elements_off_by_over_0.1_lr"] for x in rows
                                                          for g in x["parameters after the update"].values()),
                "adam_first_moments_norm_rel_max": max(g["norm_rel_max"] for x in rows for g in x["Adam first moments"].values())}

    steps = r["rollouts"]["steps"]
    return {"model_mean_max_abs": m["mean"]["max_abs"], "model_mean_max_abs_over_dim_rms": m["mean"]["max_abs_over_dim_rms"],
            "model_std_max_rel": m["std"]["max_rel"], "mopo_penalty_max_rel": m["penalty"]["max_rel"],
            "termination_disagreements": {"member_means": term["members_own_means"]["disagree"],
                                          "elite_mean": term["elite_mean_next_obs"]["disagree"],
                                          "edge_cases": term["probes_disagree"]},
            "rollouts_agree_within_sampling_noise": r["rollouts"]["all_agree"],
            "rollouts_max_ks": {n: max(s[n]["ks"] for s in steps) for n in ("reward", "penalty")},
            "rollouts_min_ks_critical": min(s["reward"]["ks_critical"] for s in steps),
            "sac_vs_kit_as_is": sac("kit_as_is"), "sac_vs_kit_with_dynlearn_tanh_logdet": sac("kit_with_dynlearn_tanh_logdet"),
            "mobile_penalty_kit_over_dynlearn": r["mobile_penalty"]["ratio_kit_over_dynlearn"]["mean"],
            "mobile_penalty_max_rel_after_sqrt_e_over_e_minus_1": r["mobile_penalty"]["dynlearn_times_sqrt_e_over_e_minus_1"]["max_rel"]}


def compare(args) -> None:
    work = Path(args.work)
    inputs = np.load(work / "inputs.npz")
    meta = json.loads(str(inputs["meta_json"]))
    d, k = np.load(work / "dynlearn.npz"), np.load(work / "kit.npz")
    kit_meta = json.loads(str(k["meta_json"]))
    result = {"dataset": meta["dataset"], "task": meta["task"], "kit_fit": meta["kit_fit"], "kit": kit_meta,
              "dynlearn_version": dl.__version__, "jax_version": jax.__version__,
              "model": compare_model(d, k, inputs, meta),
              "rollouts": {"starts": meta["starts"], "horizon": meta["horizon"],
                           "tolerance": f"KS < {KS_C} sqrt((n+m)/(nm)) (alpha 0.001 per test); |mean diff| < {Z_MEAN} SE; "
                                        f"|terminal rate diff| < max({Z_MEAN} SE, 1/n)",
                           "steps": compare_rollouts(d, k)},
              "sac": {"config": meta["sac_config"], "updates": meta["updates"], "batch": int(len(inputs["sac/u0/rewards"])),
                      "terminals_per_batch": int(inputs["sac/u0/terminals"].sum()),
                      "kit_as_is": compare_sac(d, k, meta, "kit"),
                      "kit_with_dynlearn_tanh_logdet": compare_sac(d, k, meta, "kit_exact")}}
    u_d, u_k = d["mobile/penalty"], k["mobile/penalty"]
    e = int(inputs["mobile/eps_obs"].shape[1])
    bessel = np.sqrt(e / (e - 1))
    result["mobile_penalty"] = {
        "rows": int(len(u_d)), "samples": int(inputs["mobile/eps_obs"].shape[0]), "elites": e,
        "note": "same model, SAC networks and noise; the kit's std over elites is torch's unbiased one (n - 1), dynlearn's "
                "jnp.std (n)",
        "as_is": diff(u_d, u_k), "ratio_kit_over_dynlearn": summary(u_k / u_d),
        "dynlearn_times_sqrt_e_over_e_minus_1": diff(u_d * bessel, u_k), "kit_mean": float(u_k.mean()),
        "dynlearn_mean": float(u_d.mean())}
    result["rollouts"]["all_agree"] = all(s[n]["agree"] for s in result["rollouts"]["steps"]
                                          for n in ("reward", "penalty", "terminal_rate"))
    fit_json = Path(meta["kit_fit"]) / "fit.json"
    if fit_json.is_file():
        fit = json.loads(fit_json.read_text())
        result["kit_fit_info"] = {k: fit.get(k) for k in ("epochs", "elites", "holdout_mse_kit", "seed", "kit_commit")}
    result = {"summary": summarize(result), **result}
    m = result["model"]
    print(f"model: mean max |diff| {m['mean']['max_abs']:.2e} ({m['mean']['max_abs_over_dim_rms']:.2e} of the dim's RMS), "
          f"std max rel {m['std']['max_rel']:.2e}, "
          f"penalty max rel {m['penalty']['max_rel']:.2e}; termination disagreements: "
          f"{m['termination']['members_own_means']['disagree']}/{m['termination']['members_own_means']['cases']} (own means), "
          f"{m['termination']['members_same_next_obs']['disagree']} (same next obs), "
          f"{m['termination']['elite_mean_next_obs']['disagree']}/{m['termination']['elite_mean_next_obs']['cases']} (elite mean); "
          f"edge cases that differ: {m['termination']['probes_disagree']}")
    mp = result["mobile_penalty"]
    print(f"MOBILE penalty on {mp['rows']} rows: max rel diff {mp['as_is']['max_rel']:.2e}, "
          f"kit / dynlearn {mp['ratio_kit_over_dynlearn']['mean']:.6f} (sqrt(E/(E-1)) = {bessel:.6f}); "
          f"dynlearn x sqrt(E/(E-1)) vs kit: max rel {mp['dynlearn_times_sqrt_e_over_e_minus_1']['max_rel']:.2e}")
    for s in result["rollouts"]["steps"]:
        print(f"rollout step {s['step']}: alive {s['alive_dynlearn']}/{s['alive_kit']}  reward mean {s['reward']['dynlearn']['mean']:.4f}/"
              f"{s['reward']['kit']['mean']:.4f} KS {s['reward']['ks']:.4f}  penalty mean {s['penalty']['dynlearn']['mean']:.4f}/"
              f"{s['penalty']['kit']['mean']:.4f} KS {s['penalty']['ks']:.4f} (crit {s['penalty']['ks_critical']:.4f})  "
              f"terminal {s['terminal_rate']['dynlearn']:.4f}/{s['terminal_rate']['kit']:.4f}")
    for label in ("kit_as_is", "kit_with_dynlearn_tanh_logdet"):
        for row in result["sac"][label]:
            print(f"SAC vs {label}, update {row['update']}: critic rel {row[CRITIC]['rel']:.2e}, "
                  f"actor rel {row['loss/actor']['rel']:.2e}, alpha loss abs {row['loss/alpha']['abs']:.2e}, alpha abs "
                  f"{row['alpha after the update']['abs']:.2e}")
            for what in ("parameters after the update", "Adam first moments"):
                print("    " + what + ": " + "; ".join(f"{g} norm-rel {v['norm_rel_max']:.1e} max-abs {v['max_abs']:.1e}"
                                                        + (f" ({v['max_abs_over_lr']:.2f} lr; "
                                                              f"{v['elements_off_by_over_0.1_lr']}/{v['elements']} off by > 0.1 lr)"
                                                           if "max_abs_over_lr" in v else "")
                                                        for g, v in row[what].items()))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"wrote {out}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("prepare", help="write inputs.npz and dynlearn.npz")
    sp.add_argument("--work", required=True, help="folder the two sides exchange files in")
    sp.add_argument("--kit-fit", default="runs/peers/test-fit-hopper", help="a fit folder of benchmarks/peers/offlinerl_kit.py (model.npz)")
    sp.add_argument("--dataset", default="hopper-medium-v5")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--rows", type=int, default=10_000)
    sp.add_argument("--starts", type=int, default=5_000)
    sp.add_argument("--horizon", type=int, default=5)
    sp.add_argument("--updates", type=int, default=2)
    sp.add_argument("--batch-terminals", type=int, default=8, help="terminal rows forced into each SAC batch")
    sp.add_argument("--mobile-rows", type=int, default=1_000, help="rows (the first of --rows) for MOBILE's penalty")
    sp.add_argument("--mobile-samples", type=int, default=10, help="MOBILE's next-state samples per elite (M)")
    sp = sub.add_parser("compare", help="compare dynlearn.npz with the kit side's kit.npz")
    sp.add_argument("--work", required=True)
    sp.add_argument("--out", default=None, help="write the comparison as JSON")
    args = p.parse_args(argv)
    prepare(args) if args.cmd == "prepare" else compare(args)


if __name__ == "__main__":
    main()
