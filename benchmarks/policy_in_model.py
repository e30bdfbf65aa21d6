"""Why a model-based policy fails in the real task: its own episodes, step by step, against its model and critic.

    python benchmarks/policy_in_model.py runs/mbrl/mopo-hopper-medium-v5-100k-3seeds --seed 0 --episodes 2

Runs the seed's final agent (deterministic) in the real task, then scores every real transition with the run's
dynamics model (one-step error of the elites' mean next state, the run's penalty read the run's way, the termination the
model predicts) and with the agent's critic (``min_k Q_k(s_t, a_t)`` against the discounted return-to-go the policy
actually collected, ``G_t = sum_k gamma^k r_{t+k}``). A critic far above ``G_t`` where the model is accurate points at
value overestimation (the edge-of-reach failure of Sims et al. 2024), not at model error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn import agents, penalties
from dynlearn.algos import load_config
from dynlearn.algos.model_source import build_model
from dynlearn.rollout import Penalty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a model-based run folder (dynlearn train mopo|mobile|ravl|mbpo ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--gamma", type=float, default=0.99)
    args = parser.parse_args()

    config = json.loads((args.run / "config.json").read_text())
    cfg = load_config(args.run)
    data = dl.data.load(config["dataset"]["name"])
    task = dl.tasks.get(config["task"])
    model, _ = build_model(data, task, cfg, log=lambda s: None)
    agent = agents.get(config["agent"]["name"])
    folder = args.run / f"seed_{args.seed}"
    if not (folder / "agent").is_dir():
        raise SystemExit(f"{folder} has no final agent (seed_K/agent): the seed has not finished; run it to its budget first")
    state = agent.load(folder / "agent")
    # the run's reward penalty (MOPO-style methods); methods without one (MOBILE, RAVL, MBPO) show MOPO's max aleatoric
    # std as a plain uncertainty reading, labelled so
    rollout_penalty = getattr(cfg, "penalty", "none") != "none"
    penalty_name = cfg.penalty if rollout_penalty else "max_aleatoric (not used by this run)"
    penalty = Penalty(penalties.PENALTIES[cfg.penalty if rollout_penalty else "max_aleatoric"], part=getattr(cfg, "penalty_part", "all"),
                      members=getattr(cfg, "penalty_members", "elites"))
    env = gym.make(task.id)
    act = jax.jit(lambda o, k: agent.act(state, o, key=k, deterministic=True))
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=1000 + ep)
        rows = []
        for t in range(1000):
            a = np.asarray(act(jnp.asarray(obs[None], jnp.float32), jax.random.key(t)))[0]
            nxt, r, term, trunc, _ = env.step(a)
            rows.append((obs, a, r, nxt, term))
            obs = nxt
            if term or trunc:
                break
        o = jnp.asarray(np.array([x[0] for x in rows]), jnp.float32)
        a = jnp.asarray(np.array([x[1] for x in rows]), jnp.float32)
        r = np.array([x[2] for x in rows])
        n = np.array([x[3] for x in rows])
        out = model.members(o, a)
        elite = out.elite()
        mean_next = np.asarray(o)[None] + np.asarray(elite.delta_mean)
        scale = np.asarray(data.transitions.obs, np.float64).var(axis=0) + 1e-8
        err = (((mean_next.mean(0) - n) ** 2) / scale).mean(-1)
        y = jnp.concatenate([jnp.asarray(n - np.asarray(o), jnp.float32), jnp.asarray(r[:, None], jnp.float32)], axis=-1)
        pen = np.asarray(penalty.uncertainty(out, y))
        pred_term = np.asarray(task.termination_fn(o, a, jnp.asarray(mean_next.mean(0), jnp.float32)))
        q = np.asarray(jnp.min(agent.q_values(state, o, a), axis=0))
        terminated = bool(rows[-1][4])
        # discounted return-to-go; after a time limit the episode would have gone on, so bootstrap with the critic there
        acc = 0.0 if terminated else float(jnp.min(agent.q_values(state, jnp.asarray(n[-1:], jnp.float32),
                                                                   act(jnp.asarray(n[-1:], jnp.float32), jax.random.key(0))), axis=0)[0])
        g = np.zeros(len(r))
        for t in range(len(r) - 1, -1, -1):
            acc = r[t] + args.gamma * acc
            g[t] = acc
        ended = "terminated" if terminated else "time limit (G_t bootstrapped with the critic at the last state)"
        coef = f"; penalty coef {cfg.penalty_coef}" if rollout_penalty else ""
        print(f"\nepisode {ep}: {len(r)} steps, return {r.sum():.1f} ({ended}){coef}; penalty column: {penalty_name}")
        print("| t | reward | model reward | one-step error (normalised) | penalty | terminal (model) | Q(s,a) | return-to-go G_t |")
        print("|---|---|---|---|---|---|---|---|")
        picks = sorted(set(list(range(0, len(r), max(len(r) // 6, 1))) + list(range(max(len(r) - 4, 0), len(r)))))
        for t in picks:
            print(f"| {t} | {r[t]:.2f} | {float(np.asarray(elite.reward_mean).mean(0)[t]):.2f} | {err[t]:.4f} | {pen[t]:.3f} | "
                  f"{bool(rows[t][4])} ({bool(pred_term[t])}) | {q[t]:.1f} | {g[t]:.1f} |")
        print(f"mean one-step error {err.mean():.4f}; "
              f"terminal predicted right on {(pred_term == np.array([x[4] for x in rows])).mean():.1%} "
              f"of steps; Q - G_t: mean {np.mean(q - g):.1f}, over the last 20 steps {np.mean((q - g)[-20:]):.1f}")


if __name__ == "__main__":
    main()
