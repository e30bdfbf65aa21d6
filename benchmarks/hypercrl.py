"""HyperCRL against fine-tuning, multitask replay and a coreset on one task sequence, seeds in turn.

    python benchmarks/hypercrl.py run --seeds 0 1 2 [--sequence pendulum-mass] [--methods ...] [--runs runs/hypercrl]
    python benchmarks/hypercrl.py report [--sequence pendulum-mass] [--runs runs/hypercrl]
    python benchmarks/hypercrl.py run --smoke --seeds 0 --runs /tmp/hypercrl-smoke     # minutes: tiny budget, 2 tasks

Each run is :func:`dynlearn.algos.hypercrl.train_hypercrl` with :class:`~dynlearn.algos.hypercrl.HyperCRLConfig`'s
defaults (the reference's Pendulum settings on a CPU budget of 2,000 real steps per task; see that module) and only
``method`` and ``seed`` changed, into ``RUNS/SEQUENCE/METHOD/seed_K`` (``results.json`` each; an unfinished run is
resumed). ``report`` prints, per method, the mean over seeds of every task's return after each task, the forgetting
per earlier task (its return right after it was learned minus after the last task) and the final mean return over the
tasks, mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dynlearn.algos.hypercrl import METHODS, SEQUENCES, HyperCRLConfig, train_hypercrl
from dynlearn.models.hypernet import HyperNetConfig
from dynlearn.planning import CEMConfig

SMOKE = dict(tasks=2, steps_per_task=300, initial_steps=100, train_every=100, train_iters=50, coreset_size=20, eval_episodes=1,
             model=HyperNetConfig(batch_size=20), planner=CEMConfig(horizon=8, population=32, elites=4, iterations=2))


def run(args) -> None:
    for seed in args.seeds:
        for method in args.methods:
            out = args.runs / args.sequence / method / f"seed_{seed}"
            if (out / "results.json").is_file():
                continue
            cfg = HyperCRLConfig(method=method, sequence=args.sequence, seed=seed, **(SMOKE if args.smoke else {}))
            train_hypercrl(cfg, out, resume=(out / "config.json").is_file())


def _mean_std(values) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.0f} ± {v.std():.0f}"


def report(args) -> None:
    found = {m: [json.loads(f.read_text()) for f in sorted((args.runs / args.sequence / m).glob("seed_*/results.json"))]
             for m in args.methods}
    found = {m: r for m, r in found.items() if r}
    if not found:
        raise SystemExit(f"no finished run under {args.runs / args.sequence}")
    tasks = len(next(iter(found.values()))[0]["extra"]["returns_after_task"])
    print(f"{args.sequence}: {SEQUENCES[args.sequence][0]} with {next(iter(found.values()))[0]['extra']['variants']}\n")
    print("return on each task after learning the last (mean ± std over seeds), forgetting per earlier task "
          "(return right after learning it minus after the last task), and the mean over tasks\n")
    head = [f"task {j}" for j in range(tasks)] + [f"forgetting {j}" for j in range(tasks - 1)]
    print("| method | seeds | " + " | ".join(head) + " | mean return | mean forgetting |")
    print("|---" * (len(head) + 4) + "|")
    for method, runs in found.items():
        final = [r["extra"]["returns_after_task"][-1] for r in runs]
        lost = [r["extra"]["forgetting"] for r in runs]
        cells = [_mean_std([f[j] for f in final]) for j in range(tasks)] + [_mean_std([x[j] for x in lost]) for j in range(tasks - 1)]
        print(f"| {method} | {len(runs)} | " + " | ".join(cells) + f" | {_mean_std([np.mean(f) for f in final])} | "
              f"{_mean_std([r['extra']['mean_forgetting'] for r in runs])} |")
    print("\nreturn on task j right after learning task i (rows i, mean over seeds):")
    for method, runs in found.items():
        rows = [np.mean([r["extra"]["returns_after_task"][i] for r in runs], axis=0) for i in range(tasks)]
        print(f"  {method}: " + "; ".join(" ".join(f"{v:.0f}" for v in row) for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--sequence", choices=sorted(SEQUENCES), default="pendulum-mass")
    parser.add_argument("--runs", type=Path, default=Path("runs/hypercrl"))
    parser.add_argument("--smoke", action="store_true", help="a tiny budget (2 tasks of 300 steps) to check the pipeline")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)
    if args.command == "run":
        report(args)


if __name__ == "__main__":
    main()
