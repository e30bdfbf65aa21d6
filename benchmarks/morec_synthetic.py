"""MOREC on a synthetic task whose behaviour data cover only part of the state-action space: model error far from the
data with and without the dynamics-reward filter, against the true dynamics.

The MOREC paper (Luo et al., ICLR 2024, arXiv 2310.05422, Sec. 5.1) opens with a low-dimensional example of this kind;
we could not read its exact system, so this one is ours, built the same way: a 1-D thermostat-like system

    s' = s + 0.1 * (-s + 2 a + 0.5 sin(3 s)) + 0.01 * noise,      s in [-2.5, 2.5], a in [-1, 1]

logged under a proportional controller ``a = clip(-0.6 s + 0.2 noise, -1, 1)`` from random starts, so the data lie
in a band of the (s, a) plane. Then, on a grid over the whole plane:

1. fit the standard ensemble (7 members, 5 elites) to the data;
2. learn the dynamics reward (dynlearn.algos.morec, our reconstruction) against it;
3. at every grid point draw the elites' Gaussian outputs once and compare, against the true noiseless next state:
   the elites' mean, a random elite's sample (MOPO's rule), MOREC's kept candidate (greedy and softmax over
   K = 10 resamples) and the best of those 10 candidates (what a perfect scorer would keep, a lower bound);
4. bin the errors by the point's distance from the data (nearest data point, standardised (s, a));
5. report which share of points the truncation rule (kept score < 0.6) would cut, by distance.

    nohup python benchmarks/morec_synthetic.py > morec_synthetic.log 2>&1 &

Writes benchmarks/morec_synthetic.json and benchmarks/figures/morec_synthetic.png (numbers copied into
benchmarks/morec.md). Sized to run in a few minutes on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn.algos.morec import DynamicsRewardConfig, TransitionFilter, learn_reward
from dynlearn.checkpoint import write_json
from dynlearn.models import EnsembleConfig, FitConfig

HERE = Path(__file__).parent
S_RANGE, A_RANGE = (-2.5, 2.5), (-1.0, 1.0)
NOISE = 0.01
BINS = (0.0, 0.1, 0.3, 0.6, 1.0, 1.5, np.inf)


def true_next(s, a):
    return s + 0.1 * (-s + 2.0 * a + 0.5 * np.sin(3.0 * s))


def behaviour_data(episodes: int, length: int, seed: int) -> dl.data.Dataset:
    rng = np.random.default_rng(seed)
    obs, act, nxt, tout = [], [], [], []
    for _ in range(episodes):
        s = rng.uniform(*S_RANGE)
        for t in range(length):
            a = float(np.clip(-0.6 * s + 0.2 * rng.normal(), *A_RANGE))
            s2 = float(true_next(s, a) + NOISE * rng.normal())
            obs.append([s]), act.append([a]), nxt.append([s2]), tout.append(t == length - 1)
            s = s2
    n = len(obs)
    return dl.data.from_arrays(obs=np.asarray(obs, np.float32), act=np.asarray(act, np.float32), next_obs=np.asarray(nxt, np.float32),
                               rew=np.zeros(n, np.float32), terminal=np.zeros(n, bool), timeout=np.asarray(tout), name="morec-synthetic")


def distance_to_data(points: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Nearest-neighbour distance in the data's standardised (s, a)."""
    mean, std = data.mean(0), data.std(0)
    p, d = (points - mean) / std, (data - mean) / std
    out = np.empty(len(p))
    for i in range(0, len(p), 512):
        out[i:i + 512] = np.sqrt(((p[i:i + 512, None, :] - d[None]) ** 2).sum(-1)).min(1)
    return out


@eqx.filter_jit
def compare(filt: TransitionFilter, model, obs, act, key):
    """Next states of every rule for one draw at every grid point: mean, random elite, greedy, softmax, best candidate;
    plus the kept (greedy) score."""
    out = model.members(obs, act)
    elites = out.elite()
    k_member, k_rand, k_prop, k_soft = jax.random.split(key, 4)
    member = jax.random.randint(k_member, obs.shape[:1], 0, elites.mean.shape[0])
    mean = jnp.mean(elites.delta_mean, axis=0)
    pick = lambda x, i: jnp.take_along_axis(x, i.reshape(1, -1, *(1,) * (x.ndim - 2)), axis=0)[0]
    rand = pick(elites.delta_mean, member) + pick(elites.std[..., :1], member) * jax.random.normal(k_rand, obs.shape)
    c = filt.propose(obs, act, out, key=k_prop)
    greedy_i = jnp.argmax(c.scores, axis=0)
    soft_i = jax.random.categorical(k_soft, c.scores / filt.temperature, axis=0)
    member_mean = lambda i: obs + pick(elites.delta_mean, i)
    e = elites.mean.shape[0]
    return {"elite mean": obs + mean, "random elite (MOPO)": obs + rand, "MOREC greedy": pick(c.next_obs, greedy_i),
            "MOREC softmax": pick(c.next_obs, soft_i), "candidates": c.next_obs, "score": pick(c.scores, greedy_i),
            "random elite's mean": member_mean(member), "MOREC greedy elite's mean": member_mean(greedy_i % e)}


RULES = ("elite mean", "random elite (MOPO)", "MOREC greedy", "MOREC softmax", "best of 10 candidates")
MEMBER_RULES = ("random elite's mean", "MOREC greedy elite's mean")


def evaluate(filt: TransitionFilter, model, obs, act, truth, draws: int) -> tuple[dict, np.ndarray]:
    """Per grid point, the mean |error| of every rule over ``draws`` draws, and the kept (greedy) score."""
    errors = {r: np.zeros(len(obs)) for r in (*RULES, *MEMBER_RULES, "MOREC greedy, kept rows")}
    kept_score = np.zeros(len(obs))
    kept_count = np.zeros(len(obs))
    for d in range(draws):
        res = compare(filt, model, jnp.asarray(obs), jnp.asarray(act), jax.random.key(1000 + d))
        for r in (*RULES[:4], *MEMBER_RULES):
            errors[r] += np.abs(np.asarray(res[r]) - truth)[:, 0] / draws
        errors["best of 10 candidates"] += np.abs(np.asarray(res["candidates"]) - truth[None])[..., 0].min(0) / draws
        score = np.asarray(res["score"])
        keep = score >= 0.6
        errors["MOREC greedy, kept rows"] += np.where(keep, np.abs(np.asarray(res["MOREC greedy"]) - truth)[:, 0], 0.0)
        kept_count += keep
        kept_score += score / draws
    errors["MOREC greedy, kept rows"] = np.where(kept_count > 0, errors["MOREC greedy, kept rows"] / np.maximum(kept_count, 1), np.nan)
    errors["cut fraction"] = 1.0 - kept_count / draws
    return errors, kept_score


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--epochs", type=int, default=40, help="cap on ensemble epochs (early stopping may end sooner)")
    p.add_argument("--reward-steps", type=int, default=3000)
    p.add_argument("--reward-seeds", type=int, default=3, help="dynamics rewards learned (seeds 1..n) against the one model")
    p.add_argument("--generator", default="fresh", help="the adversary of reward learning: fresh | model | frozen")
    p.add_argument("--generator-lr", type=float, default=DynamicsRewardConfig.generator_lr)
    p.add_argument("--grid", type=int, default=61)
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "morec_synthetic.json"))
    p.add_argument("--figure", default=str(HERE / "figures" / "morec_synthetic.png"))
    args = p.parse_args()
    started = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.1f}")

    data = behaviour_data(args.episodes, args.length, args.seed)
    t = data.transitions
    t0 = time.perf_counter()
    model, fit_report = dl.models.fitted(data, EnsembleConfig(), FitConfig(max_epochs=args.epochs, progress=False), seed=args.seed)
    fit_s = time.perf_counter() - t0
    print(f"ensemble (cached fits are reused): {fit_report.epochs} epochs, "
          f"elite holdout MSE {fit_report.elite_holdout_mse:.2e}, {fit_s:.0f} s")

    s_grid = np.linspace(*S_RANGE, args.grid, dtype=np.float32)
    a_grid = np.linspace(*A_RANGE, args.grid, dtype=np.float32)
    ss, aa = np.meshgrid(s_grid, a_grid, indexing="xy")
    obs, act = ss.reshape(-1, 1), aa.reshape(-1, 1)
    truth = true_next(obs, act)
    dist = distance_to_data(np.concatenate([obs, act], 1), np.concatenate([np.asarray(t.obs), np.asarray(t.act)], 1))

    rcfg = DynamicsRewardConfig(steps=args.reward_steps, snapshot_every=max(1, args.reward_steps // 40), snapshots=40,
                                generator=args.generator, generator_lr=args.generator_lr, progress=False)
    runs, rewards = [], []
    for seed in range(1, args.reward_seeds + 1):
        reward, rreport = learn_reward(data, model, rcfg, key=jax.random.key(seed))
        print(f"dynamics reward seed {seed}: {rreport.steps} steps in {rreport.wall_s:.0f} s; held-out reward data "
              f"{rreport.holdout_reward_data:.3f}, model {rreport.holdout_reward_model:.3f}, AUC {rreport.holdout_auc:.3f}")
        errors, kept_score = evaluate(TransitionFilter(reward, candidates=10), model, obs, act, truth, args.draws)
        runs.append((errors, kept_score))
        rewards.append({"seed": seed, "holdout_auc": rreport.holdout_auc, "holdout_reward_data": rreport.holdout_reward_data,
                        "holdout_reward_model": rreport.holdout_reward_model, "wall_s": rreport.wall_s,
                        "expert_minus_learner_logit": [h["snapshot/expert_logit"] - h["snapshot/learner_logit"] for h in rreport.history]})

    columns = (*RULES, *MEMBER_RULES, "MOREC greedy, kept rows", "cut fraction")
    bins = []
    for lo, hi in itertools.pairwise(BINS):
        m = (dist >= lo) & (dist < hi)
        if not m.any():
            continue
        row = {"distance": f"[{lo}, {hi})", "points": int(m.sum())}
        for c in columns:
            per_seed = [float(np.nanmean(e[c][m])) for e, _ in runs]
            row[c] = float(np.mean(per_seed))
            row[c + " (std over reward seeds)"] = float(np.std(per_seed))
        bins.append(row)
    print("| distance from data | points | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for b in bins:
        cells = [f"{b[c]:.0%}" if c == "cut fraction" else f"{b[c]:.4f}" for c in columns]
        print(f"| {b['distance']} | {b['points']} | " + " | ".join(cells) + " |")

    total = time.perf_counter() - started
    results = {"system": "s' = s + 0.1 (-s + 2a + 0.5 sin 3s) + 0.01 noise", "behaviour": "a = clip(-0.6 s + 0.2 noise, -1, 1)",
               "episodes": args.episodes, "length": args.length, "transitions": len(data),
               "fit": {"epochs": fit_report.epochs, "elite_holdout_mse": fit_report.elite_holdout_mse, "wall_s": fit_s},
               "reward_config": rcfg.to_dict(), "rewards": rewards, "grid": args.grid, "draws": args.draws, "candidates": 10,
               "error": "mean |s'_rule - s'_true| over draws (noiseless truth; the data's noise std is 0.01)",
               "bins": bins, "wall_s": total, "load_average": os.getloadavg()[0]}
    write_json(Path(args.out), results)
    errors, kept_score = runs[0]
    figure(Path(args.figure), data, s_grid, a_grid, errors, kept_score, bins)
    print(f"wrote {args.out} and {args.figure} in {total:.0f} s")


def figure(path: Path, data, s_grid, a_grid, errors, score, bins) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = data.transitions
    shape = (len(a_grid), len(s_grid))
    extent = (s_grid[0], s_grid[-1], a_grid[0], a_grid[-1])
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    vmax = float(np.quantile(errors["random elite (MOPO)"], 0.98))
    for ax, rule in zip(axes[:2], ("random elite (MOPO)", "MOREC greedy")):
        im = ax.imshow(errors[rule].reshape(shape), origin="lower", extent=extent, aspect="auto", vmin=0, vmax=vmax, cmap="magma")
        ax.scatter(np.asarray(t.obs)[::5, 0], np.asarray(t.act)[::5, 0], s=1, c="cyan", alpha=0.3)
        ax.set(title=f"|s' error|: {rule} (reward seed 1)", xlabel="state s", ylabel="action a")
        fig.colorbar(im, ax=ax)
    im = axes[2].imshow(score.reshape(shape), origin="lower", extent=extent, aspect="auto", cmap="viridis")
    axes[2].contour(s_grid, a_grid, score.reshape(shape), levels=[0.6], colors="w")
    axes[2].set(title="kept candidate's dynamics reward (white: 0.6)", xlabel="state s", ylabel="action a")
    fig.colorbar(im, ax=axes[2])
    x = np.arange(len(bins))
    for rule in (*RULES, "MOREC greedy, kept rows"):
        axes[3].errorbar(x, [b[rule] for b in bins], yerr=[b[rule + " (std over reward seeds)"] for b in bins], marker="o",
                         capsize=2, label=rule)
    axes[3].set_xticks(x, [b["distance"] for b in bins], rotation=30)
    axes[3].set(yscale="log", xlabel="distance from data (standardised)", ylabel="mean |s' error|", title="error by distance")
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
