"""HyperCRL against fine-tuning, multitask replay and a coreset on one task sequence, seeds in turn.

    python benchmarks/hypercrl.py run --seeds 0 1 2 [--sequence pendulum-mass] [--methods ...] [--runs runs/hypercrl]
    python benchmarks/hypercrl.py report [--sequence pendulum-mass] [--runs runs/hypercrl] [--save]
    python benchmarks/hypercrl.py run --preset reference --seeds 0 1 2     # the reference's gravity sequence and budget
    python benchmarks/hypercrl.py run --smoke --seeds 0 --runs runs/hypercrl-smoke   # minutes: tiny budget, 2 tasks

Each run is :func:`dynlearn.algos.hypercrl.train_hypercrl` with :class:`~dynlearn.algos.hypercrl.HyperCRLConfig`'s
defaults (the reference's Pendulum settings on a CPU budget of 2,000 real steps per task; see that module) and only
``method`` and ``seed`` changed, into ``RUNS/SEQUENCE/METHOD/seed_K`` (``results.json`` each; an unfinished run is
resumed). ``report`` prints, per method, the mean over seeds of every task's return after each task, the forgetting
per earlier task (its return right after it was learned minus after the last task) and the final mean return over the
tasks, mean ± std over seeds, then HyperCRL against each baseline over the seeds both finished (Welch's test and a 95%
bootstrap interval of the difference of means, on the mean forgetting and the mean final return). ``--preset
reference`` runs :meth:`~dynlearn.algos.hypercrl.HyperCRLConfig.preset` ``"reference"`` (the reference's Pendulum
gravity sequence, 10,400 steps per task) into ``RUNS/reference-pendulum-gravity/...``. ``--save`` writes the numbers
to ``benchmarks/results/planning/hypercrl-<preset>-<sequence>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dynlearn.algos.hypercrl import METHODS, SEQUENCES, HyperCRLConfig, train_hypercrl
from dynlearn.models.hypernet import HyperNetConfig
from dynlearn.planning import CEMConfig
from dynlearn.stats import bootstrap_diff, welch

RESULTS = Path(__file__).parent / "results" / "planning"

SMOKE = dict(tasks=2, steps_per_task=300, initial_steps=100, train_every=100, train_iters=50, coreset_size=20, eval_episodes=1,
             model=HyperNetConfig(batch_size=20), planner=CEMConfig(horizon=8, population=32, elites=4, iterations=2))


def _sequence(args) -> str:
    return "pendulum-gravity" if args.preset == "reference" and args.sequence is None else (args.sequence or "pendulum-mass")


def _folder(args) -> Path:
    return args.runs / (_sequence(args) if args.preset == "cpu" else f"{args.preset}-{_sequence(args)}")


def run(args) -> None:
    for seed in args.seeds:
        for method in args.methods:
            out = _folder(args) / method / f"seed_{seed}"
            if (out / "results.json").is_file():
                continue
            cfg = HyperCRLConfig.preset(args.preset, method=method, sequence=_sequence(args), seed=seed,
                                        **(SMOKE if args.smoke else {}))
            train_hypercrl(cfg, out, resume=(out / "config.json").is_file())


def _mean_std(values) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.0f} ± {v.std():.0f}"


def report(args) -> None:
    folder, sequence = _folder(args), _sequence(args)
    found = {m: [json.loads(f.read_text()) for f in sorted((folder / m).glob("seed_*/results.json"))] for m in args.methods}
    found = {m: r for m, r in found.items() if r}
    if not found:
        raise SystemExit(f"no finished run under {folder}")
    tasks = len(next(iter(found.values()))[0]["extra"]["returns_after_task"])
    first = next(iter(found.values()))[0]
    print(f"{sequence}: {SEQUENCES[sequence][0]} with {first['extra']['variants']}, {first['budget']['steps_per_task']:,} steps "
          f"per task ({args.preset} preset)\n")
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
    comparisons = _comparisons(found)
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"hypercrl-{args.preset}-{sequence}.json"
        per_method = {m: [{"seed": r["scores"]["per_seed"][0]["seed"], "returns_after_task": r["extra"]["returns_after_task"],
                           "forgetting": r["extra"]["forgetting"], "wall_s": r["wall_time_s"]} for r in runs]
                      for m, runs in found.items()}
        path.write_text(json.dumps({"sequence": sequence, "preset": args.preset, "variants": first["extra"]["variants"],
                                    "budget": first["budget"], "methods": per_method, "comparisons": comparisons}, indent=1) + "\n")
        print(f"wrote {path}")


def _comparisons(found: dict) -> dict:
    """HyperCRL against each baseline, over the seeds both finished: Welch's test and the bootstrap interval."""
    if "hypercrl" not in found:
        return {}
    by_seed = {m: {r["scores"]["per_seed"][0]["seed"]: r["extra"] for r in runs} for m, runs in found.items()}
    out = {}
    print()
    for other in (m for m in found if m != "hypercrl"):
        seeds = sorted(set(by_seed["hypercrl"]) & set(by_seed[other]))
        if len(seeds) < 2:
            continue
        for measure in ("mean_forgetting", "final_mean_return"):
            x = [by_seed["hypercrl"][k][measure] for k in seeds]
            y = [by_seed[other][k][measure] for k in seeds]
            w = welch(x, y)
            _, lo, hi = bootstrap_diff(x, y)
            out[f"hypercrl - {other}: {measure}"] = {"seeds": seeds, "diff": w.diff, "welch_p": w.p, "bootstrap_95": [lo, hi]}
            print(f"hypercrl - {other}, {measure.replace('_', ' ')} (seeds {seeds}): {w.diff:+.0f}, Welch p {w.p:.3g}, "
                  f"bootstrap 95% [{lo:+.0f}, {hi:+.0f}]")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--sequence", choices=sorted(SEQUENCES), default=None,
                        help="default: pendulum-mass (preset cpu), pendulum-gravity (preset reference)")
    parser.add_argument("--preset", choices=("cpu", "reference"), default="cpu")
    parser.add_argument("--save", action="store_true", help="report: write benchmarks/results/planning/hypercrl-*.json")
    parser.add_argument("--runs", type=Path, default=Path("runs/hypercrl"))
    parser.add_argument("--smoke", action="store_true", help="a tiny budget (2 tasks of 300 steps) to check the pipeline")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)
    if args.command == "run":
        report(args)


if __name__ == "__main__":
    main()
