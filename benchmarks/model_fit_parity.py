"""Model-fit parity: dynlearn's ensemble fits against OfflineRL-Kit's, on the same rows, scored on unseen episodes.

    python benchmarks/model_fit_parity.py --dataset hopper-medium-v5 --write-split runs/parity/hopper-medium-v5-split.npz
    python benchmarks/peers/offlinerl_kit.py fit ... --split runs/parity/hopper-medium-v5-split.npz --out runs/peers/fit-hopper
    python benchmarks/model_fit_parity.py --dataset hopper-medium-v5 --kit runs/peers/fit-hopper \
        --out benchmarks/results/model_fit_parity/hopper-medium-v5.json

dynlearn's fits are the cached models the model-based runs read (``dl.models.fitted``), one per rule:
``offlinerl-kit`` (``FitConfig.preset("offlinerl-kit")``: random ``min(20%, 1000)`` transitions held out, raw-unit holdout
MSE for early stopping and elites, no epoch cap; ``dynlearn train --model-holdout transitions --model-max-epochs 0``),
``normalized`` (the same, selecting on each target's MSE divided by its variance: ``--model-select-by normalized``),
``no-termination-head`` (Kit's rule on an ensemble without dynlearn's learned termination output, as Kit's model) and
``default`` (``FitConfig(max_epochs=60)``: whole episodes held out, at most 60 epochs). ``--write-split`` writes the rows
the ``offlinerl-kit`` rule holds out, so that the reference fits on exactly the same train and holdout rows; ``--kit DIR``
(a fit of ``benchmarks/peers/offlinerl_kit.py``) loads the reference's fitted weights into a dynlearn ensemble, scored by
the same code.

Every model is scored on a **test set of unseen episodes**: the same behaviour policy run again with another seed
(``--test-steps`` steps), so no score measures interpolation between neighbouring rows of a training episode:

- per-dim MSE of each elite's mean prediction, divided by the variance of that target over the test rows, averaged
  over the elites and over the dims of each group: positions (the ``qpos`` part of the observation), velocities
  (``qvel``), reward, and the termination variables (Hopper and Walker2d: torso height and angle); ``worst elite``
  gives the worst elite's value on the termination variables, because rollouts step a random elite;
- rollouts of the behaviour policy (stochastic, as it collected the data) in the model for ``--horizon`` steps from
  ``--starts`` test rows, a random elite and Gaussian noise per step, the task's termination function: the share of
  branches that terminate within the horizon and the mean reward per step, against the same quantities that the test
  data's own episodes show from those rows (each row's next ``horizon`` steps under the same policy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn.agents.export import load_policy
from dynlearn.data.normalize import Normalizer
from dynlearn.models import EnsembleConfig, FitConfig, ProbabilisticEnsemble
from dynlearn.tasks import suite

RULES = {  # name -> (the ensemble, how it is fitted)
    "offlinerl-kit": (EnsembleConfig(), FitConfig.preset("offlinerl-kit")),
    "normalized": (EnsembleConfig(), FitConfig.preset("offlinerl-kit", select_by="normalized")),
    "no-termination-head": (EnsembleConfig(termination_head=False), FitConfig.preset("offlinerl-kit")),
    "default": (EnsembleConfig(), FitConfig(max_epochs=60)),
}
# observation dims that decide termination (Gymnasium v5, current x position excluded from the observation)
TERMINATION_DIMS = {"Hopper-v5": (0, 1), "Walker2d-v5": (0, 1)}


def groups(task_id: str) -> dict[str, list[int]]:
    """Target dims ``(delta obs..., reward)`` by group for a MuJoCo locomotion task."""
    env = gym.make(task_id)
    nq = env.unwrapped.model.nq
    obs_dim = env.observation_space.shape[0]
    env.close()
    positions = list(range(nq - 1))
    out = {"positions": positions, "velocities": list(range(nq - 1, obs_dim)), "reward": [obs_dim]}
    if task_id in TERMINATION_DIMS:
        out["termination"] = list(TERMINATION_DIMS[task_id])
    return out


def kit_model(folder: Path, obs_dim: int, act_dim: int, task) -> ProbabilisticEnsemble:
    """OfflineRL-Kit's fitted ensemble (``model.npz`` of the peer harness) as a dynlearn ensemble (no termination head)."""
    z = np.load(folder / "model.npz")
    layers = sum(k.startswith("backbones.") and k.endswith(".weight") for k in z.files)
    hidden = tuple(int(z[f"backbones.{i}.weight"].shape[2]) for i in range(layers))
    members = int(z["output_layer.weight"].shape[0])
    elites = np.asarray(z["elites"], np.int32)
    cfg = EnsembleConfig(members=members, elites=len(elites), hidden=hidden, termination_head=False)
    model = ProbabilisticEnsemble.init(cfg, obs_dim, act_dim, key=jax.random.key(0))
    names = [f"backbones.{i}" for i in range(len(hidden))] + ["output_layer"]
    weights = tuple(jnp.asarray(z[f"{n}.weight"], jnp.float32) for n in names)
    biases = tuple(jnp.asarray(z[f"{n}.bias"], jnp.float32).reshape(members, -1) for n in names)
    net = dataclasses.replace(model.net, weights=weights, biases=biases, max_logvar=jnp.asarray(z["max_logvar"], jnp.float32).reshape(-1),
                              min_logvar=jnp.asarray(z["min_logvar"], jnp.float32).reshape(-1))
    norm = Normalizer(mean=jnp.asarray(z["scaler_mu"], jnp.float32).reshape(-1), std=jnp.asarray(z["scaler_std"], jnp.float32).reshape(-1))
    return dataclasses.replace(model, net=net, input_norm=norm, elites=jnp.asarray(elites)).with_task(task)


def test_scores(model: ProbabilisticEnsemble, test: dl.data.Dataset, dims: dict[str, list[int]], policy, task, *, horizon: int,
                starts: int, key) -> dict:
    t = test.transitions
    obs, act = np.asarray(t.obs, np.float32), np.asarray(t.act, np.float32)
    y = np.concatenate([np.asarray(t.next_obs, np.float32) - obs, np.asarray(t.rew, np.float32)[:, None]], axis=1)
    var = y.var(axis=0) + 1e-12
    out = model.members(jnp.asarray(obs), jnp.asarray(act))
    elites = np.asarray(model.elites)
    mean = np.asarray(out.mean)[elites]                                   # [elites, n, target]
    nmse = ((mean - y[None]) ** 2).mean(axis=1) / var                     # [elites, target]
    scores = {"one_step_normalized_mse": {g: float(nmse[:, d].mean()) for g, d in dims.items()}}
    if "termination" in dims:
        scores["one_step_normalized_mse"]["termination (worst elite)"] = float(nmse[:, dims["termination"]].mean(axis=1).max())
    scores["one_step_normalized_mse"]["all"] = float(nmse.mean())

    # the data's own future from each start row: terminated within the horizon, and reward per step until then
    rng = np.random.default_rng(0)
    term = np.asarray(t.terminal, bool)
    bounds = np.append(np.asarray(test.episode_starts), len(test))
    episode_end = np.repeat(bounds[1:], np.diff(bounds))
    ends_terminal = np.repeat(term[bounds[1:] - 1], np.diff(bounds))
    # rows whose next `horizon` steps are all in the data, or whose episode terminates before the horizon is up
    eligible = np.flatnonzero((episode_end - np.arange(len(test)) >= horizon) | ends_terminal)
    rows = rng.choice(eligible, size=min(starts, len(eligible)), replace=False)
    rew = np.asarray(t.rew, np.float64)
    data_term, data_rew = [], []
    for i in rows:
        seg = slice(i, min(i + horizon, episode_end[i]))
        hit = np.flatnonzero(term[seg])
        stop = i + (hit[0] + 1 if hit.size else min(horizon, episode_end[i] - i))
        data_term.append(bool(hit.size))
        data_rew.append(rew[i:stop].mean())
    r = dl.rollout.rollout(model, lambda o, *, key: policy(o, key=key, deterministic=False), jnp.asarray(obs[rows]), horizon, key=key)
    valid = np.asarray(r.valid)
    model_term = np.asarray(r.terminal & r.valid).any(axis=0)
    model_rew = (np.where(valid, np.asarray(r.rew), 0.0).sum(axis=0) / np.maximum(valid.sum(axis=0), 1))
    scores["rollouts"] = {"horizon": horizon, "starts": int(len(rows)),
                          "terminal_rate_model": float(model_term.mean()), "terminal_rate_data": float(np.mean(data_term)),
                          "reward_per_step_model": float(model_rew.mean()), "reward_per_step_data": float(np.mean(data_rew)),
                          "reward_per_step_abs_error": float(np.abs(model_rew - np.asarray(data_rew)).mean())}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="hopper-medium-v5")
    parser.add_argument("--kit", type=Path, default=None, help="a peer-harness fit folder (split.npz, model.npz, fit.json)")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--write-split", type=Path, default=None,
                        help="only write the train/holdout rows that the offlinerl-kit rule holds out with the first seed "
                             "(.npz of 'train' and 'holdout' row indices) for the peer harness's fit, and exit")
    parser.add_argument("--test-steps", type=int, default=50_000)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--starts", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=None, help="write the table's numbers as JSON here")
    args = parser.parse_args()

    data = dl.data.load(args.dataset)
    task = dl.tasks.get(data.task)
    holdout = dl.models.transition_holdout(len(data), RULES["offlinerl-kit"][1], seed=dl.models.split_seed(jax.random.key(args.seeds[0])))
    if args.write_split is not None:
        train = np.setdiff1d(np.arange(len(data)), holdout)
        args.write_split.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.write_split, train=train, holdout=holdout)
        print(f"{args.write_split}: {len(train)} train and {len(holdout)} holdout rows of {args.dataset}")
        return
    short, tier = suite.parse(args.dataset)
    test = suite.generate(args.dataset, seed=101, steps=args.test_steps)  # the same policy, unseen episodes
    policy = load_policy(suite.POLICY_DIR / short / suite.manifest(short)[tier]["path"])
    dims = groups(task.id)
    score = lambda model: test_scores(model, test, dims, policy, task, horizon=args.horizon, starts=args.starts,  # noqa: E731
                                      key=jax.random.key(7))

    rows = []
    if args.kit is not None:
        fit = json.loads((args.kit / "fit.json").read_text())
        kit_holdout = np.asarray(np.load(args.kit / "split.npz")["holdout"])
        same_rows = bool(np.array_equal(np.sort(kit_holdout), holdout))
        model = kit_model(args.kit, task.obs_dim, task.act_dim, task)
        rows.append({"library": "OfflineRL-Kit", "rule": "its own", "seed": fit.get("seed"), "epochs": fit["epochs"],
                     "same_rows_as_dynlearn": same_rows, "elites": [int(e) for e in np.asarray(model.elites)],
                     "wall_s": fit.get("wall_s"), **score(model)})
        print(json.dumps(rows[-1]), flush=True)
    for rule in args.rules:
        for seed in args.seeds:
            # the cache entry the model-based runs read (dynlearn train --model-holdout transitions --model-max-epochs 0 ...)
            model, report = dl.models.fitted(data, *RULES[rule], seed=seed, task=task, log=print)
            rows.append({"library": "dynlearn", "rule": rule, "seed": seed, "epochs": report.epochs, "elites": list(report.elites),
                         "holdout_mode": report.holdout_mode, "wall_s": report.wall_s, **score(model)})
            print(json.dumps(rows[-1]), flush=True)

    names = list(rows[0]["one_step_normalized_mse"])
    print(f"\n{args.dataset}: holdout {len(holdout)} random rows; test {len(test)} rows ({test.n_episodes} unseen episodes); "
          f"rollouts h {args.horizon} from {args.starts} test rows")
    print("| library | rule | seed | epochs | " + " | ".join(names) + " | terminal rate (model / data) | reward/step (model / data) |")
    print("|---" * (6 + len(names)) + "|")
    for r in rows:
        ro = r["rollouts"]
        print(f"| {r['library']} | {r['rule']} | {r['seed']} | {r['epochs']} | "
              + " | ".join(f"{r['one_step_normalized_mse'][n]:.4f}" for n in names)
              + f" | {ro['terminal_rate_model']:.3f} / {ro['terminal_rate_data']:.3f} | {ro['reward_per_step_model']:.3f} / "
                f"{ro['reward_per_step_data']:.3f} |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"dataset": args.dataset, "holdout_rows": int(len(holdout)), "test_rows": len(test),
                                        "test_episodes": test.n_episodes, "horizon": args.horizon, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
