"""PETS against model-free SAC at equal real steps on Pendulum-v1 (swing-up) or Reacher-v5, seeds in turn.

    python benchmarks/planning.py run --seeds 0 1 2 [--task Pendulum-v1] [--steps 2000] [--runs runs/planning]
    python benchmarks/planning.py report [--task Pendulum-v1] [--save] [--figure benchmarks/figures/planning_pets_pendulum.png]
    python benchmarks/planning.py run --task Reacher-v5 --steps 2500 --seeds 0 1 2

PETS (``dynlearn.algos.pets``): one episode (200 steps) of uniformly random actions, then CEM over the ensemble refitted
every 200 real steps; the settings of ``PETS`` below (a CPU budget of mbrl-lib's: 5 members of 3 x 200, 100 epochs per
refit, horizon 15, population 100, 10 elites, 5 iterations, 5 particles, TS-inf, the task's reward function). Its score
at a step is the return of the episode the planner collected up to that step. SAC (``dynlearn.algos.online``, the
behaviour-policy trainer) at the same real steps: 1,000 random steps first (its default is 10,000; it would not act
before the budget ends), then one update per step; its score is the deterministic policy's return over 5 episodes
every 200 steps. ``report`` prints both curves (mean ± std over seeds at each 200 steps), the final-episode comparison
with Welch's test, and with ``--save`` writes ``benchmarks/results/planning/pets-pendulum.json``.

Reacher-v5 (50-step episodes, a new target each episode, the task's reward function): 5 random episodes (250 steps),
then CEM with population 200 and 20 elites (else as above), the ensemble refitted every 250 steps for 50 epochs; SAC as
above with its deterministic policy evaluated every 250 steps. A PETS point is the mean return of the planner's
episodes in the last 250 steps (5 episodes). ``--save`` writes ``pets-reacher.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dynlearn import agents
from dynlearn.algos.online import OnlineConfig, train_online
from dynlearn.algos.pets import PETSConfig, train_pets
from dynlearn.models import EnsembleConfig
from dynlearn.planning import CEMConfig, ObjectiveConfig
from dynlearn.stats import bootstrap_diff, welch

from _online import curves_figure  # benchmarks/_online.py

_MODEL = EnsembleConfig(members=5, elites=5, hidden=(200, 200, 200), weight_decay=(3.3e-5,) * 4)
TASKS = {  # task -> (folder slug, PETS settings, evaluation interval: PETS' window and SAC's evaluations)
    "Pendulum-v1": ("pendulum", dict(task="Pendulum-v1", initial_steps=200, train_every=200, fit_epochs=100, model=_MODEL,
                                     planner=CEMConfig(horizon=15, population=100, elites=10, iterations=5, alpha=0.134),
                                     objective=ObjectiveConfig(particles=5)), 200),
    "Reacher-v5": ("reacher", dict(task="Reacher-v5", initial_steps=250, train_every=250, fit_epochs=50, model=_MODEL,
                                   planner=CEMConfig(horizon=15, population=200, elites=20, iterations=5, alpha=0.134),
                                   objective=ObjectiveConfig(particles=5)), 250),
}
RESULTS = Path(__file__).parent / "results" / "planning"


def run(args) -> None:
    slug, pets, every = TASKS[args.task]
    for seed in args.seeds:
        pets_out = args.runs / f"pets-{slug}-{args.steps}" / f"seed_{seed}"
        if not (pets_out / "results.json").is_file():
            train_pets(PETSConfig(**pets, steps=args.steps, seed=seed), pets_out, resume=(pets_out / "config.json").is_file())
        sac_out = args.runs / f"sac-{slug}-{args.steps}" / f"seed_{seed}"
        if not (sac_out / "results.json").is_file():
            cfg = OnlineConfig(task=args.task, steps=args.steps, seed=seed, start_steps=1_000, update_every=50, eval_every=every,
                               eval_episodes=5, snapshot_every=0, checkpoint_every=1_000)
            train_online(cfg, sac_out, agent_config=agents.get("sac").Config(), resume=(sac_out / "config.json").is_file())


def _windowed(episodes: list[dict], every: int, steps: int) -> list[tuple[int, float]]:
    """``(s, mean return of the episodes that ended in (s - every, s])`` for s = every, 2 every, ..., steps."""
    out = []
    for s in range(every, steps + 1, every):
        inside = [e["return"] for e in episodes if s - every < e["end_step"] <= s]
        if inside:
            out.append((s, float(np.mean(inside))))
    return out


def _curves(runs: Path, slug: str, steps: int, every: int) -> tuple[dict, dict]:
    pets, sac = {}, {}
    for f in sorted((runs / f"pets-{slug}-{steps}").glob("seed_*/results.json")):
        r = json.loads(f.read_text())
        pets[r["scores"]["per_seed"][0]["seed"]] = _windowed(r["extra"]["episodes"], every, steps)
    for f in sorted((runs / f"sac-{slug}-{steps}").glob("seed_*/results.json")):
        seed = json.loads(f.read_text())["scores"]["per_seed"][0]["seed"]
        sac[seed] = [(e["step"], e["return_mean"]) for e in json.loads((f.parent / "evals.json").read_text())["evals"]]
    return pets, sac


def report(args) -> None:
    slug, _, every = TASKS[args.task]
    pets, sac = _curves(args.runs, slug, args.steps, every)
    seeds = sorted(set(pets) & set(sac))
    if not seeds:
        raise SystemExit(f"no finished seed of both methods under {args.runs}")
    grid = list(range(every, args.steps + 1, every))
    at = lambda curve, s: next((v for t, v in curve if t == s), np.nan)  # noqa: E731
    print(f"{args.task}, {args.steps:,} real steps, seeds {seeds}: return at each step (mean ± std over seeds)\n")
    print("| real steps | PETS (episode collected by the planner) | SAC (deterministic policy, 5 episodes) |\n|---|---|---|")
    table = []
    for s in grid:
        p = np.array([at(pets[k], s) for k in seeds])
        q = np.array([at(sac[k], s) for k in seeds])
        table.append({"step": s, "pets": p.tolist(), "sac": q.tolist()})
        fmt = lambda x: "" if np.isnan(x).all() else f"{np.nanmean(x):.1f} ± {np.nanstd(x):.1f}"  # noqa: E731
        print(f"| {s:,} | {fmt(p)} | {fmt(q)} |")
    last_p = [pets[k][-1][1] for k in seeds]
    last_q = [at(sac[k], args.steps) for k in seeds]
    w = welch(last_p, last_q)
    _, lo, hi = bootstrap_diff(last_p, last_q)
    print(f"\nat {args.steps:,} steps: PETS {np.mean(last_p):.1f} vs SAC {np.mean(last_q):.1f}; difference {w.diff:+.1f}, "
          f"Welch p {w.p:.3g}, bootstrap 95% [{lo:+.1f}, {hi:+.1f}]")
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"pets-{slug}.json"
        path.write_text(json.dumps({"task": args.task, "steps": args.steps, "seeds": seeds, "curves": table,
                                    "final": {"pets": last_p, "sac": last_q, "welch_p": w.p, "diff": w.diff,
                                              "bootstrap_95": [lo, hi]}}, indent=1))
        print(f"wrote {path}")
    if args.figure is not None:
        series = {name: np.array([row[key] for row in table], float).T for name, key in (("PETS", "pets"), ("SAC", "sac"))}
        curves_figure(args.figure, grid, series, title=f"{args.task}, {len(seeds)} seeds (band: min-max)", ylabel="episode return")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--task", choices=sorted(TASKS), default="Pendulum-v1")
    r.add_argument("--steps", type=int, default=2_000)
    r.add_argument("--runs", type=Path, default=Path("runs/planning"))
    p = sub.add_parser("report")
    p.add_argument("--steps", type=int, default=2_000)
    p.add_argument("--task", choices=sorted(TASKS), default="Pendulum-v1")
    p.add_argument("--runs", type=Path, default=Path("runs/planning"))
    p.add_argument("--save", action="store_true")
    p.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
