"""Model-free offline baselines on the suite's datasets, beside published D4RL numbers.

    python benchmarks/offline_baselines.py --datasets hopper-medium-replay-v5 hopper-medium-v5 \
        --algos bc td3bc iql --seeds 3 --steps 100000

Each (algorithm, dataset) pair is one run folder under ``--runs`` (default runs/baselines), trained with
``dynlearn.algos.offline.train_offline`` and the agents' default (paper) hyperparameters. The script is
resumable: finished runs are read back, interrupted ones continue from their checkpoints. It prints a
Markdown table of final-policy normalized scores (mean ± std over seeds, 10 evaluation episodes each).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import dynlearn as dl
from dynlearn.algos.offline import OfflineConfig, train_offline

from _runs import cell  # benchmarks/_runs.py

# Published D4RL v2 normalized scores of the corresponding D4RL datasets (not comparable one to one: our
# datasets come from our own behaviour policies on MuJoCo v5, not D4RL's). Sources: BC and EDAC from the
# CORL re-runs (README of tinkoff-ai/CORL); TD3+BC from its paper (Fujimoto & Gu 2021, table 1); IQL from its
# paper (Kostrikov et al. 2022, table 1); CQL as re-run in the IQL paper.
PUBLISHED = {
    ("bc", "hopper-medium"): (53.5, "CORL"), ("bc", "hopper-medium-replay"): (29.8, "CORL"),
    ("td3bc", "hopper-medium"): (59.3, "paper"), ("td3bc", "hopper-medium-replay"): (60.9, "paper"),
    ("iql", "hopper-medium"): (66.3, "paper"), ("iql", "hopper-medium-replay"): (94.7, "paper"),
    ("cql", "hopper-medium"): (58.5, "IQL paper"), ("cql", "hopper-medium-replay"): (95.0, "IQL paper"),
    ("edac", "hopper-medium"): (101.7, "CORL"), ("edac", "hopper-medium-replay"): (99.7, "CORL"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium-replay-v5", "hopper-medium-v5"])
    parser.add_argument("--algos", nargs="+", default=["bc", "td3bc", "iql"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--runs", type=Path, default=Path("runs/baselines"))
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; tabulate the finished seeds of existing run folders (partial runs are marked)")
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        data = dl.data.load(name)
        task = dl.tasks.get(data.task)
        behaviour = dl.data.summarize(data, task).normalized_returns["mean"]
        for algo in args.algos:
            out = args.runs / f"{algo}-{name}"
            cfg = OfflineConfig(agent=algo, steps=args.steps, seeds=args.seeds)
            if args.report_only:
                score, _, rate = cell(out)
                rows.append((name, algo, score, behaviour, rate))
                continue
            if not (out / "results.json").is_file():
                start = time.perf_counter()
                train_offline(data, task, cfg, out, resume=(out / "config.json").is_file(),
                              log=lambda s, tag=f"[{algo} {name}]": print(f"{tag} {s}", flush=True))
                print(f"[{algo} {name}] done in {time.perf_counter() - start:.0f} s", flush=True)
            results = json.loads((out / "results.json").read_text())
            pub = PUBLISHED.get((algo, name.removesuffix("-v5")))
            rows.append((name, algo, f"{results['scores']['mean']:.1f} ± {results['scores']['std']:.1f}", behaviour,
                         f"{results['steps_per_s']:.0f}"))
    print(f"\n| dataset | algorithm | ours: normalized score (final policy, {args.seeds} seeds) | behaviour data | "
          "published on D4RL v2 | training steps/s (runs since 2026-11-29; earlier: incl. evaluation) |")
    print("|---|---|---|---|---|---|")
    for name, algo, score, behaviour, rate in rows:
        pub = PUBLISHED.get((algo, name.removesuffix("-v5")))
        published = f"{pub[0]:.1f} ({pub[1]})" if pub else "—"
        print(f"| {name} | {algo} | {score} | {behaviour:.1f} | {published} | {rate} |")


if __name__ == "__main__":
    main()
