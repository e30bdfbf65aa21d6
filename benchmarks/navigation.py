"""A learned forward model with a failure head, planned over by MPPI, in the 2-D navigation task: success rates.

    python benchmarks/navigation.py run [--seeds 0 1 2] [--episodes 100] [--save]
    python benchmarks/navigation.py report

Task: :mod:`dynlearn.tasks.navigation` with its defaults (16 x 16 arena, up to 14 disc obstacles kept 1.2 apart, a
unicycle with velocity lag, slip and drift, 41 x 41 robot-centric occupancy grid at 0.25, time limit 80 steps). Per
seed: 51,200 transitions of the noisy goal-seeking behaviour policy (:mod:`dynlearn.tasks.navigation_data`, 256 robots
x 200 steps) and 12,800 held-out ones from other maps; a :class:`~dynlearn.models.failure.FailureModel` (9 x 9 patch at
0.2, trunk 128-128) fitted with 4,000 Adam steps. The evaluation scenes are the same for every planner and seed:
``--episodes`` solvable maps drawn from key 10,000. Planners, all MPPI with the same settings (``MPPI`` below) and the
same sampling key per seed:

- ``learned + failure head``: the learned model, objective with the failure term (``FailureCostConfig()``);
- ``learned, head ignored``: the same model, ``use_failure=False``;
- ``true model``: the exact dynamics and collision check on the world map;
- ``true dynamics, collisions ignored``: the exact dynamics, ``use_failure=False`` (what ignoring failure costs when the
  motion model is exact);
- ``learned + failure head, 1,600 rows`` and ``400 rows``: the first planner with a model fitted (same fit settings) to
  16 robots x 100 steps and 8 robots x 50 steps of the same behaviour policy: how much data the failure head needs.

``run`` prints the table and, with ``--save``, writes ``benchmarks/results/planning/navigation.json``; ``report``
prints the table of that file. Seeds are those of the model fit (data, initialisation, minibatches) and of MPPI's
sampling; the true-model rows vary only the latter.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynlearn.models.failure import FailureFitConfig, FailureModelConfig, fit_failure_model
from dynlearn.planning import MPPIConfig
from dynlearn.planning.failure_cost import FailureCostConfig, LearnedRollout, TrueRollout
from dynlearn.planning.navigation_mpc import run_navigation
from dynlearn.stats import bootstrap_diff, welch
from dynlearn.tasks import navigation as nav
from dynlearn.tasks.navigation_data import CollectConfig, collect

NAV = nav.NavigationConfig()
MPPI = MPPIConfig(horizon=15, samples=128, temperature=0.1, noise_beta=2.0)
COST = FailureCostConfig(failure_cost=10.0)
MODEL, FIT = FailureModelConfig(), FailureFitConfig(steps=4000)
DATA, HOLDOUT = CollectConfig(envs=256, steps=200), CollectConfig(envs=64, steps=200)
SCENE_KEY = 10_000
RESULTS = Path(__file__).parent / "results" / "planning" / "navigation.json"
ROWS = {"learned_head": "learned + failure head", "learned_no_head": "learned, head ignored", "true": "true model",
        "true_no_failure": "true dynamics, collisions ignored", "learned_head_1600": "learned + failure head, 1,600 rows",
        "learned_head_400": "learned + failure head, 400 rows"}
SMALL = {"learned_head_1600": CollectConfig(envs=16, steps=100), "learned_head_400": CollectConfig(envs=8, steps=50)}
COMMAND = "taskset -c 0 python benchmarks/navigation.py run --seeds 0 1 2 --episodes 100 --save"
"""The command that wrote the saved results."""


def _ood_step(model, data) -> dict[str, float]:
    """Mean predicted step length on the rows' own patches and on fully occupied ones (inside an obstacle: a patch
    the data never holds)."""
    step = lambda patch: jnp.linalg.norm(jax.vmap(model)(patch, data.vel, data.act)[0][:, :2], axis=-1).mean()  # noqa: E731
    return {"step_own_patch": float(step(data.patch)), "step_occupied_patch": float(step(jnp.ones_like(data.patch))),
            "step_true": float(jnp.linalg.norm(data.delta[:, :2], axis=-1).mean())}


def run(args) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    scenes = nav.scenes(NAV, args.episodes, key=jax.random.key(SCENE_KEY))
    per_seed = {name: [] for name in ROWS}
    models = []
    for seed in args.seeds:
        key = jax.random.key(seed)
        data_key, holdout_key, fit_key, plan_key = jax.random.split(key, 4)
        t0 = time.perf_counter()
        data, holdout = collect(NAV, DATA, key=data_key), collect(NAV, HOLDOUT, key=holdout_key)
        model, report = fit_failure_model(data, NAV, MODEL, FIT, key=fit_key, holdout=holdout)
        report |= {"seed": seed, "collect_fit_s": time.perf_counter() - t0, "ood": _ood_step(model, holdout.take(slice(0, 4096)))}
        models.append(report | {"data": "learned_head"})
        print(f"seed {seed}: {len(data):,} rows ({report['failure_rate']:.1%} failed), fit {report['fit_s']:.0f} s; held out: "
              f"failure AUC {report['holdout']['failure/auc']:.4f}, accuracy {report['holdout']['failure/accuracy']:.4f}, "
              f"dx RMSE {report['holdout']['rmse/dx']:.4f}", flush=True)
        planners = {"learned_head": (LearnedRollout(model=model, nav=NAV), COST),
                    "learned_no_head": (LearnedRollout(model=model, nav=NAV), FailureCostConfig(use_failure=False)),
                    "true": (TrueRollout(nav=NAV), COST),
                    "true_no_failure": (TrueRollout(nav=NAV), FailureCostConfig(use_failure=False))}
        for name, small in SMALL.items():
            few = collect(NAV, small, key=data_key)
            few_model, few_report = fit_failure_model(few, NAV, MODEL, FIT, key=fit_key, holdout=holdout)
            models.append(few_report | {"seed": seed, "data": name, "ood": _ood_step(few_model, holdout.take(slice(0, 4096)))})
            planners[name] = (LearnedRollout(model=few_model, nav=NAV), COST)
        for name, (rollout, cost) in planners.items():
            t0 = time.perf_counter()
            out = run_navigation(rollout, scenes, MPPI, cost, key=plan_key).summary()
            out |= {"seed": seed, "wall_s": time.perf_counter() - t0}
            per_seed[name].append(out)
            print(f"  {ROWS[name]}: success {out['success']:.2f}, collision {out['collision']:.2f}, "
                  f"steps to goal {out['steps_to_goal']:.1f} ({out['wall_s']:.0f} s)", flush=True)
    result = {"task": "navigation", "config": {"nav": _asdict(NAV), "mppi": _asdict(MPPI), "cost": _asdict(COST),
                                               "model": _asdict(MODEL), "fit": _asdict(FIT), "data": _asdict(DATA),
                                               "holdout": _asdict(HOLDOUT), "scene_key": SCENE_KEY},
              "episodes": args.episodes, "seeds": list(args.seeds), "command": COMMAND, "models": models, "planners": per_seed,
              "comparisons": _comparisons(per_seed), "wall_s": time.perf_counter() - start,
              "cpu_s": time.process_time() - cpu}
    print(_table(result))
    if args.save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1))
        print(f"wrote {RESULTS}")
    return result


def _asdict(cfg) -> dict:
    import dataclasses

    return dataclasses.asdict(cfg)


def _comparisons(per_seed: dict) -> dict:
    """Welch's test and the bootstrap interval over seeds of success and collision rates, for the pairs of interest."""
    out = {}
    for a, b in (("learned_head", "learned_no_head"), ("learned_head", "true"), ("true", "true_no_failure"),
                 ("learned_no_head", "true_no_failure"), ("learned_head", "learned_head_400"),
                 ("learned_head", "learned_head_1600")):
        for metric in ("success", "collision"):
            x, y = [r[metric] for r in per_seed[a]], [r[metric] for r in per_seed[b]]
            if len(x) < 2:
                continue
            w = welch(x, y)
            diff, lo, hi = bootstrap_diff(x, y)
            out[f"{a} - {b}: {metric}"] = {"diff": diff, "welch_p": w.p, "bootstrap_95": [lo, hi]}
    return out


def _table(result: dict) -> str:
    lines = [f"{result['episodes']} scenes, seeds {result['seeds']}; mean ± std over seeds (per-seed values)\n",
             "| planner | success | collision | time-out | steps to goal |", "|---|---|---|---|---|"]
    for name, label in ROWS.items():
        rows = result["planners"][name]
        cell = lambda k, rows=rows: (f"{np.mean([r[k] for r in rows]):.2f} ± {np.std([r[k] for r in rows]):.2f} "  # noqa: E731
                                     f"({', '.join(f'{r[k]:.2f}' for r in rows)})")
        steps = np.nanmean([r["steps_to_goal"] for r in rows])
        lines.append(f"| {label} | {cell('success')} | {cell('collision')} | {cell('timeout')} | {steps:.1f} |")
    lines.append("")
    for pair, c in result["comparisons"].items():
        lines.append(f"{pair}: {c['diff']:+.3f}, Welch p {c['welch_p']:.3g}, bootstrap 95% [{c['bootstrap_95'][0]:+.3f}, "
                     f"{c['bootstrap_95'][1]:+.3f}]")
    for m in result["models"]:
        h, o = m["holdout"], m["ood"]
        lines.append(f"model seed {m['seed']}, {m['rows']:,} rows ({m['failure_rate']:.1%} failed): failure AUC "
                     f"{h['failure/auc']:.4f}, accuracy {h['failure/accuracy']:.4f} "
                     f"(base rate {h['failure/base_rate']:.3f}); RMSE dx {h['rmse/dx']:.4f}, dy {h['rmse/dy']:.4f}, dheading "
                     f"{h['rmse/dheading']:.4f}; step length true {o['step_true']:.3f}, predicted {o['step_own_patch']:.3f}, "
                     f"on an occupied patch {o['step_occupied_patch']:.3f}")
    lines.append(f"wall time {result['wall_s']:.0f} s, CPU time {result['cpu_s']:.0f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--episodes", type=int, default=100)
    r.add_argument("--save", action="store_true")
    sub.add_parser("report")
    args = parser.parse_args()
    if args.cmd == "run":
        run(args)
    else:
        print(_table(json.loads(RESULTS.read_text())))


if __name__ == "__main__":
    main()
