"""Offline model-based methods (MOPO with two penalties, MOBILE, RAVL, MOREC-MOPO, MOREC-MOBILE) on the suite's
datasets, beside the model-free baselines and published D4RL numbers.

    python benchmarks/offline_mbrl.py --datasets hopper-medium-v5 hopper-medium-replay-v5 \
        --methods mopo mopo-pairwise mobile ravl --seeds 3 --steps 100000
    python benchmarks/offline_mbrl.py --datasets hopper-medium-v5 --methods morec-mopo morec-mobile --seeds 3 --steps 100000

``morec-mopo-mopo-lambda`` is MOREC-MOPO with MOPO's penalty weight for the dataset instead of MOREC's (15 on Hopper):
the filter and the long horizon alone; ``mopo-h100`` is MOPO with MOREC-MOPO's rollouts (2,000 x 100) and no filter:
the long horizon alone, and ``mobile-h100`` the same for MOREC-MOBILE (benchmarks/morec.md, section 3).
``ravl-edac-init`` is RAVL with its reference code's network initialisation (EDAC's; ``SACConfig.init``);
``mobile-beta1.5`` is MOBILE with hopper-medium's penalty weight (beta = 1.5) whatever the dataset.
MOREC's methods read the dynamics reward learned for the dataset (``dynlearn model reward DATASET --out
runs/reward/DATASET``; ``--rewards`` names the parent folder; with ``--model-holdout transitions``, the reward of that
model: ``dynlearn model reward DATASET --model-holdout transitions --out runs/reward/DATASET-kitfit``).

Each (method, dataset, budget) is one run folder under ``--runs`` (default runs/mbrl, e.g.
``mopo-hopper-medium-v5-100k-3seeds``), trained with
``dynlearn.algos.model_based.train_model_based`` with the paper presets for the dataset (``mopo``: max aleatoric
penalty, ``mopo-pairwise``: max pairwise difference, same lambda and h). Every method uses the same dynamics model per
dataset (fitted once, cached). Resumable: finished runs are read back, interrupted ones continue from their
checkpoints. ``--report-only`` tabulates whatever seeds have finished (partial cells are marked, missing ones
"not run"), with the model-free rows read from ``--baselines`` (benchmarks/offline_baselines.py's run folders).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

import dynlearn as dl
from dynlearn.algos import MOPOConfig, method, train_model_based
from dynlearn.report import learning_curve

from _runs import cell, last_evals_cell, seed_curves  # benchmarks/_runs.py

# method label -> the method ("method") and its config's overrides of the dataset's preset
METHODS = {
    "mopo": {"method": "mopo", "penalty": "max_aleatoric"},
    "mopo-pairwise": {"method": "mopo", "penalty": "max_pairwise_diff"},
    "mobile": {"method": "mobile"},
    "ravl": {"method": "ravl"},
    "mbpo": {"method": "mbpo"},
    "morec-mopo": {"method": "morec-mopo"},
    "morec-mobile": {"method": "morec-mobile"},
    "morec-mopo-mopo-lambda": {"method": "morec-mopo"},  # + MOPO's lambda for the dataset: the filter's effect alone
    # MOPO with MOREC-MOPO's rollout shape (2,000 branches x 100 steps) and no filter: the horizon's effect alone
    "mopo-h100": {"method": "mopo", "penalty": "max_aleatoric", "horizon": 100, "rollout_batch": 2_000},
    # MOBILE with MOREC-MOBILE's settings (2,000 x 100, tuned temperature from 0.1) and no filter
    "mobile-h100": {"method": "mobile", "horizon": 100, "rollout_batch": 2_000, "auto_alpha": True, "alpha": 0.1},
    # MOBILE with hopper-medium's beta on any dataset: is hopper-medium-replay's preset (0.1) too weak for our smaller data?
    "mobile-beta1.5": {"method": "mobile", "penalty_coef": 1.5},
    # RAVL with EDAC's network initialisation (hidden biases 0.1, last layers +-3e-3 / +-1e-3), as its reference code
    "ravl-edac-init": {"method": "ravl"},
}
AGENT_OVERRIDES = {"ravl-edac-init": {"init": "edac"}}  # label -> fields of the method's agent config
MOREC = ("morec-mopo", "morec-mobile", "morec-mopo-mopo-lambda")
MOPO_LAMBDA = ("morec-mopo-mopo-lambda",)
# Published D4RL v2 normalized scores of the corresponding D4RL datasets (our datasets are our own behaviour
# policies on MuJoCo v5: a familiar scale, not a one-to-one comparison). MOPO: OfflineRL-Kit's re-run (4 seeds);
# MOBILE: its paper (Sun et al. 2023, table 1).
PUBLISHED = {
    ("mopo", "hopper-medium"): (62.8, "Kit re-run"), ("mopo", "hopper-medium-replay"): (92.7, "Kit re-run"),
    ("mobile", "hopper-medium"): (106.6, "paper"), ("mobile", "hopper-medium-replay"): (103.9, "paper"),
}
# MOREC's paper tables could not be read here (only its abstract is reachable; benchmarks/morec.md, section 3)
# and neither could RAVL's (Sims et al. 2024: its tables are in the PDF; its code's README gives none)
PUBLISHED |= {(m, d): (None, "not found") for m in (*MOREC, "ravl", "ravl-edac-init") for d in ("hopper-medium", "hopper-medium-replay")}
PUBLISHED[("mobile-beta1.5", "hopper-medium")] = PUBLISHED[("mobile", "hopper-medium")]  # the same beta as the preset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium-v5", "hopper-medium-replay-v5"])
    parser.add_argument("--methods", nargs="+", default=["mopo", "mopo-pairwise", "mobile", "ravl"], choices=list(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rollout-batch", type=int, default=None,
                        help="start states per rollout (default: each method's preset; 50,000 for MOPO/MOBILE/RAVL, 2,000 for MOREC)")
    parser.add_argument("--rewards", type=Path, default=Path("runs/reward"), help="MOREC: the folder of per-dataset dynamics rewards")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--runs", type=Path, default=Path("runs/mbrl"))
    parser.add_argument("--baselines", type=Path, default=Path("runs/baselines"))
    parser.add_argument("--until", type=int, default=None,
                        help="bring every seed to this many steps first (checkpointed; a later run without it continues)")
    parser.add_argument("--at", type=int, default=None,
                        help="tabulate the evaluations logged at this step (default: the final policies of finished seeds)")
    parser.add_argument("--model-holdout", choices=("episodes", "transitions"), default="episodes",
                        help="what the ensemble fit holds out: episodes (ours) or transitions (OfflineRL-Kit's rule; run "
                             "folders get a -kitfit suffix)")
    parser.add_argument("--model-max-epochs", type=int, default=60,
                        help="cap on the ensemble fit's epochs (0: none, early stopping only, as OfflineRL-Kit fits; run "
                             "folders get a -nocap or -epochsN suffix when it is not the default 60)")
    parser.add_argument("--parallel-seeds", action="store_true", help="train the seeds together (vmapped; for a GPU)")
    parser.add_argument("--only-seed", type=int, default=None,
                        help="train only this seed of each cell (one process per CPU core, each its own seed, the same command "
                             "otherwise; start the second once the first has written the cell's config.json)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--figures", type=Path, default=None,
                        help="also draw each dataset's learning curves (normalized score and critic Q, mean ± std over "
                             "the seeds evaluated at each step, up to --at): PREFIX_DATASET[-AT]_score.png and _q.png")
    args = parser.parse_args()
    if args.model_max_epochs != 60 and set(args.methods) & set(MOREC) and not args.report_only:
        parser.error("MOREC's dynamics rewards are learned for the default fit (60-epoch cap): drop --model-max-epochs")
    rows = []
    for name in args.datasets:
        data = dl.data.load(name)
        task = dl.tasks.get(data.task)
        behaviour = dl.data.summarize(data, task).normalized_returns["mean"]
        folders = {}
        for label in args.methods:
            kit = args.model_holdout == "transitions"
            cap = {60: "", 0: "-nocap"}.get(args.model_max_epochs, f"-epochs{args.model_max_epochs}")
            out = args.runs / f"{label}-{name}-{args.steps // 1000}k-{args.seeds}seeds{'-kitfit' if kit else ''}{cap}"
            if not args.report_only and not (out / "results.json").is_file():
                # MOREC reads the reward learned against the very model it rolls out (its own split, too)
                extra = {"reward_model": str(args.rewards / f"{name}{'-kitfit' if kit else ''}")} if label in MOREC else {}
                if kit:
                    extra["model_holdout"] = "transitions"
                if cap:
                    extra["model_max_epochs"] = args.model_max_epochs or None
                if label in MOPO_LAMBDA:  # MOREC's filter and horizon with MOPO's own penalty weight for this dataset
                    extra["penalty_coef"] = MOPOConfig.for_dataset(name).penalty_coef
                settings = METHODS[label] | ({} if args.rollout_batch is None else {"rollout_batch": args.rollout_batch})
                settings = {k: v for k, v in settings.items() if k != "method"}
                cfg = method(METHODS[label]["method"]).for_dataset(name, steps=args.steps, seeds=args.seeds,
                                                                   eval_episodes=args.eval_episodes, **settings, **extra)
                agent_config = None
                if label in AGENT_OVERRIDES:
                    agent_config = dataclasses.replace(cfg.agent()[1], **AGENT_OVERRIDES[label])
                start = time.perf_counter()
                train_model_based(data, task, cfg, out, resume=(out / "config.json").is_file(), until=args.until,
                                  agent_config=agent_config, parallel_seeds=args.parallel_seeds, only_seed=args.only_seed,
                                  log=lambda s, tag=f"[{label} {name}]": print(f"{tag} {s}", flush=True))
                state = ("done" if (out / "results.json").is_file() else "not every seed finished" if args.until is None
                         else f"seeds at --until {args.until:,}")
                print(f"[{label} {name}] {state} after {time.perf_counter() - start:.0f} s", flush=True)
            folders[label] = out
            score, budget, rate = cell(out, args.at)
            pub = PUBLISHED.get((label, name.removesuffix("-v5")))
            published = "—" if pub is None else pub[1] if pub[0] is None else f"{pub[0]:.1f} ({pub[1]})"
            fit = (" (Kit-style model fit)" if kit else "") + {"": "", "-nocap": " (model fit without an epoch cap)"}.get(
                cap, f" (model fit capped at {args.model_max_epochs} epochs)")
            rows.append((name, label + fit, score, last_evals_cell(out, args.at), budget, behaviour, published, rate))
        if args.figures is not None:
            draw_curves(args.figures, name, folders, args.at, behaviour)
        for algo in ("bc", "td3bc", "iql"):
            score, budget, rate = cell(args.baselines / f"{algo}-{name}", args.at)
            if score != "not run":
                rows.append((name, f"{algo} (model-free)", score, last_evals_cell(args.baselines / f"{algo}-{name}", args.at),
                             budget, behaviour, "see offline_baselines.md", rate))
    policy = "final policy" if args.at is None else f"policy at step {args.at:,}"
    print(f"\n| dataset | method | ours: normalized score ({policy}, mean ± std over seeds) | mean of each seed's last 3 "
          "evaluations | budget | behaviour data | published on D4RL v2 | training steps/s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]} | {row[5]:.1f} | {row[6]} | {row[7]} |")


def draw_curves(prefix: Path, name: str, runs: dict[str, Path], until: int | None, behaviour: float) -> None:
    """Two figures per dataset: normalized score and critic Q over training, one curve per method with the band of
    ± one std over the seeds evaluated at each step (a cell still running has fewer seeds at its later steps: the
    legend gives the range)."""
    for key, ylabel, tag in (("normalized", "normalized score", "score"), ("q_mean", "critic Q (mean over a batch)", "q")):
        curves = {}
        for label, out in runs.items():
            by_step = seed_curves(out, key, until)
            if by_step:
                counts = sorted({len(v) for v in by_step.values()})
                seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
                curves[f"{label} ({seeds} seed{'' if seeds == '1' else 's'})"] = [
                    (step, float(np.mean(v)), float(np.std(v))) for step, v in by_step.items()]
        if curves:
            budget = "" if until is None else f"-{until // 1000}k"
            refs = {"behaviour data": behaviour} if key == "normalized" else None
            path = learning_curve(prefix.with_name(f"{prefix.name}_{name}{budget}_{tag}.png"), curves, ylabel=ylabel, title=name,
                                  references=refs)
            print(f"wrote {path}")


if __name__ == "__main__":
    try:
        main()
    except dl.interrupt.Stopped as stopped:  # SIGTERM / Ctrl-C: the running seed checkpointed its last block
        raise SystemExit(f"{stopped} (here: the same command)") from None
