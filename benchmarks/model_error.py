"""Dynamics-model accuracy on suite data: one-step error beside baselines, open-loop k-step error, penalty calibration,
and the MuJoCo oracle (exactness, float32 rounding, speed).

Models come from :func:`dynlearn.models.fitted` (the shared cache), with the settings the MOPO runs use, so the
numbers here are those of the model they train on: ``EnsembleConfig()`` (7 x 4 x 200, 5 elites),
``FitConfig(max_epochs=60)`` (early stopping with patience 5 may end it sooner: the epochs run are reported),
seed 0, the task's termination function attached. Errors are normalised per dimension by the training split's
variance (of the target for one-step errors, so the constant-delta baseline scores about 1; of the observation
for k-step errors); see dynlearn/model_jobs.py.

    python benchmarks/model_error.py --only hopper        # hopper-medium-v5 model; hopper-random/expert as other policies
    python benchmarks/model_error.py --only halfcheetah   # halfcheetah-random-v5 model
    python benchmarks/model_error.py --only halfcheetah-medium   # halfcheetah-medium-v5; random/expert as other policies
    python benchmarks/model_error.py --only oracle        # oracle: exactness, float32 rounding, 50,000 x 5 rollout speed

Each section prints Markdown tables (copied into benchmarks/model_error.md) and, with ``--json PATH``, writes every
number; figures go to benchmarks/figures/. The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn import model_jobs
from dynlearn.checkpoint import write_json
from dynlearn.results import json_safe
from dynlearn.metrics import model_error as me
from dynlearn.models import EnsembleConfig, FitConfig

HERE = Path(__file__).parent
FIT = FitConfig(max_epochs=60, progress=False)  # the cache key ignores `progress`: same entry as the MOPO runs
OOD_ROWS = 20_000


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def fitted(name: str, task_id: str):
    data = dl.data.load(name)
    task = dl.tasks.get(task_id)
    t0 = time.perf_counter()
    model, report = dl.models.fitted(data, EnsembleConfig(), FIT, seed=0, task=task, log=print)
    print(f"{name}: model ready in {time.perf_counter() - t0:.0f} s ({report.epochs} epochs, "
          f"{'early stop' if report.stopped_early else 'max_epochs'}, fit wall {report.wall_s:.0f} s)")
    return data, task, model, report


def subset(data, rows: int, seed: int = 0):
    """Whole episodes, drawn at random until ``rows`` rows (so k-step windows stay inside episodes)."""
    order = np.random.default_rng(seed).permutation(data.n_episodes)
    take = order[: int(np.searchsorted(np.cumsum(data.episode_lengths[order]), rows)) + 1]
    return data.select_episodes(np.sort(take))


def model_section(name: str, task_id: str, others: list[str], cfg: model_jobs.ModelEvalConfig) -> dict:
    data, _, model, report = fitted(name, task_id)
    train, hold = model_jobs.fit_split(data, FIT, report.holdout_seed)
    ref = model_jobs.Reference.of(train)
    sets = {n: subset(dl.data.load(n), OOD_ROWS) for n in others}
    t0 = time.perf_counter()
    diag = model_jobs.diagnostics(model, ref, hold, sets, cfg, test_name=f"{name} holdout")
    out = {"dataset": name, "task": task_id, "load_avg": load_avg(), "diagnostics_s": time.perf_counter() - t0,
           "fit": {"epochs": report.epochs, "stopped_early": report.stopped_early, "max_epochs": FIT.max_epochs,
                   "wall_s": report.wall_s, "steps": report.steps, "elites": list(report.elites), "holdout_mse": list(report.holdout_mse),
                   "holdout_episodes": report.holdout_episodes, "holdout_size": report.holdout_size, "train_size": report.train_size},
           "other_rows": {n: len(d) for n, d in sets.items()}, **diag}
    budget = f"{report.epochs} epochs"
    print(model_jobs.render_one_step(diag["one_step"], title=f"One-step error, model of {name} ({budget})"))
    print(model_jobs.render_k_step(diag["k_step"]))
    print(model_jobs.render_calibration(diag["calibration"]))
    model_jobs.k_step_figure(HERE / "figures" / f"model_error_kstep_{name}.png", diag["k_step"], title=f"model of {name} ({budget})")
    return out


def oracle_section(horizon: int = 20, long_horizon: int = 200) -> dict:
    import equinox as eqx

    from dynlearn.rollout import rollout
    from dynlearn.tasks.oracle import OracleModel

    class Uniform(eqx.Module):
        def __call__(self, obs, *, key):
            return jax.random.uniform(key, (obs.shape[0], 3), jnp.float32, -1.0, 1.0)

    data = dl.data.load("hopper-medium-v5")
    t = data.transitions
    qpos, qvel = data.metadata["qpos"], data.metadata["qvel"]
    out: dict = {"load_avg_start": load_avg(), "cpu_count": os.cpu_count()}

    # 1. one step from every recorded state: exact vs plain float32 state
    rows = np.arange(0, len(data), 10)
    for exact in (True, False):
        oracle = OracleModel.for_task("Hopper-v5", exact=exact)
        _, pred = oracle.step(oracle.state_from(qpos[rows], qvel[rows]), jnp.asarray(t.obs[rows]), jnp.asarray(t.act[rows]))
        err = np.abs(np.asarray(pred.next_obs) - t.next_obs[rows])
        out[f"one_step_{'exact' if exact else 'float32'}"] = {
            "rows": len(rows), "max_abs_obs_err": float(err.max()),
            "max_abs_reward_err": float(np.abs(np.asarray(pred.reward) - t.rew[rows]).max()),
            "terminal_agreement": float((np.asarray(pred.terminal) == t.terminal[rows]).mean())}

    # 2. open loop along recorded episodes: the exact oracle vs the data (0), the float32 state vs the data
    for h in (horizon, long_horizon):
        w = me.k_step_windows(data.episode_starts, len(data), h, min_length=h, max_windows=500, seed=0)
        obs0, acts, tgt, mask = me.k_step_targets(t.obs, t.act, t.next_obs, t.next_obs_valid, data.episode_starts, w, h)
        scale = np.asarray(t.obs, np.float64).var(axis=0)
        for exact in (True, False):
            oracle = OracleModel.for_task("Hopper-v5", exact=exact)
            pred = me.open_loop(oracle, obs0, acts, key=jax.random.key(0), state=oracle.state_from(qpos[w], qvel[w]))
            err = np.asarray(me.k_step_error(pred, tgt, mask, scale)).mean(axis=1)
            absmax = np.nanmax(np.where(mask[..., None], np.abs(np.asarray(pred) - tgt), 0), axis=(1, 2))
            out[f"open_loop_{h}_{'exact' if exact else 'float32'}"] = {
                "windows": len(w), "normalised_mse": err.tolist(), "max_abs_err": absmax.tolist()}

    # 3. speed: 50,000 x 5 rollout through dynlearn.rollout (uniform random policy), the backends side by side
    rows = np.random.default_rng(0).choice(len(data), 50_000, replace=False)
    obs = jnp.asarray(t.obs[rows])
    speed = {}
    for backend, n in (("rollout", None), ("rollout", 1)):
        oracle = OracleModel.for_task("Hopper-v5", backend=backend, nthread=n)
        state = oracle.state_from(qpos[rows], qvel[rows])
        runs = []
        for i in range(3):
            w0, c0 = time.perf_counter(), time.process_time()
            ro = rollout(oracle, Uniform(), obs, 5, key=jax.random.key(i), model_state=state)
            jax.block_until_ready(ro.obs)
            runs.append((time.perf_counter() - w0, time.process_time() - c0))
        speed[f"{backend} nthread={oracle.sim.nthread}"] = {"wall_s": [r[0] for r in runs], "cpu_s": [r[1] for r in runs],
                                                           "valid_rows": int(np.asarray(ro.valid).sum())}
    # the env loop (Gymnasium's own step per row) and bare mj_step, on 5,000 rows, scaled to 250,000 row-steps
    import mujoco

    few = rows[:5000]
    env_sim = OracleModel.for_task("Hopper-v5", backend="env").sim
    w0, c0 = time.perf_counter(), time.process_time()
    env_sim.step64(qpos[few], qvel[few], np.asarray(t.act[few], np.float64))
    speed["env loop (per row us)"] = {"wall_us": (time.perf_counter() - w0) / 5000 * 1e6, "cpu_us": (time.process_time() - c0) / 5000 * 1e6}
    m = env_sim.model
    d = mujoco.MjData(m)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in few:
        d.qpos[:], d.qvel[:], d.ctrl[:] = qpos[i], qvel[i], t.act[i]
        mujoco.mj_step(m, d, nstep=4)
    speed["bare mj_step x4 (per row us)"] = {"wall_us": (time.perf_counter() - w0) / 5000 * 1e6,
                                             "cpu_us": (time.process_time() - c0) / 5000 * 1e6}
    out["speed_50000x5"] = speed
    out["load_avg_end"] = load_avg()
    print(json.dumps(out, indent=1))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=("hopper", "halfcheetah", "halfcheetah-medium", "oracle"), required=True)
    p.add_argument("--horizon", type=int, default=20)
    p.add_argument("--windows", type=int, default=2000)
    p.add_argument("--json", type=Path, default=None, help="write every number to this file")
    args = p.parse_args()
    print(f"load average at start: {load_avg()}")
    cfg = model_jobs.ModelEvalConfig(horizon=args.horizon, windows=args.windows)
    if args.only == "hopper":
        result = model_section("hopper-medium-v5", "Hopper-v5", ["hopper-random-v5", "hopper-expert-v5"], cfg)
    elif args.only == "halfcheetah":
        result = model_section("halfcheetah-random-v5", "HalfCheetah-v5", [], cfg)
    elif args.only == "halfcheetah-medium":
        result = model_section("halfcheetah-medium-v5", "HalfCheetah-v5", ["halfcheetah-random-v5", "halfcheetah-expert-v5"], cfg)
    else:
        result = oracle_section(args.horizon)
    result["command"] = f"python benchmarks/model_error.py --only {args.only} --horizon {args.horizon} --windows {args.windows}"
    if args.json is not None:
        write_json(args.json, json_safe(result))
        print(f"wrote {args.json}")
    print(f"load average at end: {load_avg()}")


if __name__ == "__main__":
    main()
