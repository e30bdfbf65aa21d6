"""The dynamics reward of a dataset's cached model on other behaviour policies' data (``benchmarks/morec.md``, section 2).

For a reward learned with ``dynlearn model reward DATASET --out runs/reward/DATASET`` (no ``--model``: the cached
ensemble every model-based method trains on), prints one Markdown row per test set: the reward of real transitions
against the model's transitions from the same (s, a), the AUC of real > model, and the share of model transitions
MOREC's threshold (0.6) would truncate. The in-distribution row is the model fit's holdout split (the rows neither
the model nor the reward trained on).

    python benchmarks/reward_diagnostics.py hopper-medium-replay-v5 --ood hopper-random-v5 hopper-expert-v5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

import dynlearn as dl
from dynlearn.algos import MOPOConfig
from dynlearn.algos.model_source import build_model
from dynlearn.models import FitConfig
from dynlearn.algos.morec import load_reward, reward_diagnostics
from dynlearn.models.holdout import split_holdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--ood", nargs="*", default=["hopper-random-v5", "hopper-expert-v5"])
    parser.add_argument("--reward", type=Path, default=None, help="reward folder (default runs/reward/DATASET)")
    args = parser.parse_args()
    data = dl.data.load(args.dataset)
    task = dl.tasks.get(data.task or "Hopper-v5")
    cfg = MOPOConfig()  # the ensemble every method fits for the dataset
    model, _ = build_model(data, task, cfg, log=lambda line: None)
    reward = load_reward(args.reward or Path("runs/reward") / args.dataset)
    _, holdout, _, _ = split_holdout(data, FitConfig(max_epochs=cfg.model_max_epochs), seed=cfg.model_seed)
    print("| test set | rows | reward, real transitions | reward, model's transitions from the same (s, a) | AUC real > model | "
          "model transitions below 0.6 (truncated by MOREC) |\n|---|---|---|---|---|---|")
    for name, test in [(f"{args.dataset} holdout", holdout)] + [(name, dl.data.load(name)) for name in args.ood]:
        d = reward_diagnostics(reward, model, test, key=jax.random.key(0))
        print(f"| {name} | {d['rows']:,} | {d['reward_data']:.2f} | {d['reward_model']:.2f} | {d['auc']:.2f} | "
              f"{d['low_fraction_model']:.1%} |")


if __name__ == "__main__":
    main()
