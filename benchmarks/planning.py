"""PETS against model-free SAC at equal real steps on Pendulum-v1 (swing-up), seeds in turn.

    python benchmarks/planning.py run --seeds 0 1 2 [--steps 2000] [--runs runs/planning]
    python benchmarks/planning.py report [--save] [--figure benchmarks/figures/planning_pets_pendulum.png]

PETS (``dynlearn.algos.pets``): one episode (200 steps) of uniformly random actions, then CEM over the ensemble refitted
every 200 real steps; the settings of ``PETS`` below (a CPU budget of mbrl-lib's: 5 members of 3 x 200, 100 epochs per
refit, horizon 15, population 100, 10 elites, 5 iterations, 5 particles, TS-inf, the task's reward function). Its score
at a step is the return of the episode the planner collected up to that step. SAC (``dynlearn.algos.online``, the
behaviour-policy trainer) at the same real steps: 1,000 random steps first (its default is 10,000; it would not act
before the budget ends), then one update per step; its score is the deterministic policy's return over 5 episodes
every 200 steps. ``report`` prints both curves (mean ± std over seeds at each 200 steps), the final-episode comparison
with Welch's test, and with ``--save`` writes ``benchmarks/results/planning/pets-pendulum.json``.
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

PETS = dict(task="Pendulum-v1", initial_steps=200, train_every=200, fit_epochs=100,
            model=EnsembleConfig(members=5, elites=5, hidden=(200, 200, 200), weight_decay=(3.3e-5,) * 4),
            planner=CEMConfig(horizon=15, population=100, elites=10, iterations=5, alpha=0.134), objective=ObjectiveConfig(particles=5))
RESULTS = Path(__file__).parent / "results" / "planning" / "pets-pendulum.json"


def run(args) -> None:
    for seed in args.seeds:
        pets_out = args.runs / f"pets-pendulum-{args.steps}" / f"seed_{seed}"
        if not (pets_out / "results.json").is_file():
            train_pets(PETSConfig(**PETS, steps=args.steps, seed=seed), pets_out, resume=(pets_out / "config.json").is_file())
        sac_out = args.runs / f"sac-pendulum-{args.steps}" / f"seed_{seed}"
        if not (sac_out / "results.json").is_file():
            cfg = OnlineConfig(task="Pendulum-v1", steps=args.steps, seed=seed, start_steps=1_000, update_every=50, eval_every=200,
                               eval_episodes=5, snapshot_every=0, checkpoint_every=1_000)
            train_online(cfg, sac_out, agent_config=agents.get("sac").Config(), resume=(sac_out / "config.json").is_file())


def _curves(runs: Path, steps: int) -> tuple[dict, dict]:
    pets, sac = {}, {}
    for f in sorted((runs / f"pets-pendulum-{steps}").glob("seed_*/results.json")):
        r = json.loads(f.read_text())
        pets[r["scores"]["per_seed"][0]["seed"]] = [(e["end_step"], e["return"]) for e in r["extra"]["episodes"]]
    for f in sorted((runs / f"sac-pendulum-{steps}").glob("seed_*/results.json")):
        seed = json.loads(f.read_text())["scores"]["per_seed"][0]["seed"]
        sac[seed] = [(e["step"], e["return_mean"]) for e in json.loads((f.parent / "evals.json").read_text())["evals"]]
    return pets, sac


def report(args) -> None:
    pets, sac = _curves(args.runs, args.steps)
    seeds = sorted(set(pets) & set(sac))
    if not seeds:
        raise SystemExit(f"no finished seed of both methods under {args.runs}")
    grid = list(range(200, args.steps + 1, 200))
    at = lambda curve, s: next((v for t, v in curve if t == s), np.nan)  # noqa: E731
    print(f"Pendulum-v1, {args.steps:,} real steps, seeds {seeds}: return at each step (mean ± std over seeds)\n")
    print("| real steps | PETS (episode collected by the planner) | SAC (deterministic policy, 5 episodes) |\n|---|---|---|")
    table = []
    for s in grid:
        p = np.array([at(pets[k], s) for k in seeds])
        q = np.array([at(sac[k], s) for k in seeds])
        table.append({"step": s, "pets": p.tolist(), "sac": q.tolist()})
        fmt = lambda x: "" if np.isnan(x).all() else f"{np.nanmean(x):.0f} ± {np.nanstd(x):.0f}"  # noqa: E731
        print(f"| {s:,} | {fmt(p)} | {fmt(q)} |")
    last_p = [pets[k][-1][1] for k in seeds]
    last_q = [at(sac[k], args.steps) for k in seeds]
    w = welch(last_p, last_q)
    _, lo, hi = bootstrap_diff(last_p, last_q)
    print(f"\nat {args.steps:,} steps: PETS {np.mean(last_p):.0f} vs SAC {np.mean(last_q):.0f}; difference {w.diff:+.0f}, "
          f"Welch p {w.p:.3g}, bootstrap 95% [{lo:+.0f}, {hi:+.0f}]")
    if args.save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"task": "Pendulum-v1", "steps": args.steps, "seeds": seeds, "curves": table,
                                       "final": {"pets": last_p, "sac": last_q, "welch_p": w.p, "diff": w.diff,
                                                 "bootstrap_95": [lo, hi]}}, indent=1))
        print(f"wrote {RESULTS}")
    if args.figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, key in (("PETS", "pets"), ("SAC", "sac")):
            y = np.array([row[key] for row in table], float)
            ax.plot(grid, np.nanmean(y, 1), label=name)
            ax.fill_between(grid, np.nanmin(y, 1), np.nanmax(y, 1), alpha=0.2)
        ax.set_xlabel("real environment steps")
        ax.set_ylabel("episode return")
        ax.set_title(f"Pendulum-v1, {len(seeds)} seeds (band: min-max)")
        ax.legend()
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=120)
        print(f"wrote {args.figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--steps", type=int, default=2_000)
    r.add_argument("--runs", type=Path, default=Path("runs/planning"))
    p = sub.add_parser("report")
    p.add_argument("--steps", type=int, default=2_000)
    p.add_argument("--runs", type=Path, default=Path("runs/planning"))
    p.add_argument("--save", action="store_true")
    p.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
