"""MOPO's reward penalty on a dataset's own transitions, for the cached dynamics model each method trains on.

    python benchmarks/penalty_on_data.py --datasets hopper-medium-v5 hopper-medium-replay-v5
    python benchmarks/penalty_on_data.py --datasets hopper-medium-v5 --model-holdout transitions
    python benchmarks/penalty_on_data.py --datasets hopper-medium-replay-v5 --model-max-epochs 0

For each dataset and penalty weight it prints what ``train_model_based`` logs before training
(:func:`dynlearn.algos.penalty_scale.penalty_on_data`: u's median, mean and 90th percentile, the share of real
transitions that ``r - lambda u`` turns into losses, and the target dim that holds most of the predicted variance),
then u's median per member (MOPO's code takes the max over all members, so the worst member sets the penalty).
The model is the one ``benchmarks/offline_mbrl.py`` uses (fitted once and cached; fitted here if it is not cached
yet). ``benchmarks/offline_mbrl.md``, "The penalty's scale on our data", quotes this output.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn.algos import MOPOConfig
from dynlearn.algos.model_source import build_model, real_rows
from dynlearn.algos.penalty_scale import describe, penalty_on_data, sample_rows
from dynlearn.rollout import Penalty


@eqx.filter_jit
def _member_u(model, obs, act):
    """Each member's own max-aleatoric u: the norm of its predicted std over (delta obs, reward), the target part MOPO's
    preset reads (``penalty_part="all"``)."""
    return jnp.linalg.norm(model.members(obs, act).std, axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium-v5", "hopper-medium-replay-v5"])
    parser.add_argument("--coefs", nargs="+", type=float, default=None,
                        help="penalty weights to report (default: 1, 5, the dataset's MOPO preset, and MOREC-MOPO's 15)")
    parser.add_argument("--model-holdout", choices=("episodes", "transitions"), default="episodes")
    parser.add_argument("--model-max-epochs", type=int, default=60, help="the fit's epoch cap (0: none), as offline_mbrl.py's")
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    for name in args.datasets:
        data = dl.data.load(name)
        task = dl.tasks.get(data.task)
        cfg = MOPOConfig.for_dataset(name, model_holdout=args.model_holdout, model_max_epochs=args.model_max_epochs or None)
        model, _ = build_model(data, task, cfg, log=lambda s, tag=f"[{name}]": print(f"{tag} {s}", flush=True))
        real = real_rows(data)
        preset = cfg.hooks().penalty
        coefs = args.coefs or sorted({1.0, 5.0, float(cfg.penalty_coef), 15.0})
        for coef in coefs:
            penalty = Penalty(preset.fn, coef=coef, part=preset.part, members=preset.members)
            print(f"[{name}] lambda {coef:g}: {describe(penalty_on_data(model, penalty, real, max_rows=args.rows))}",
                  flush=True)
        rows = sample_rows(real, args.rows)  # the rows penalty_on_data measured
        u = np.asarray(_member_u(model, jnp.asarray(rows.obs, jnp.float32), jnp.asarray(rows.act, jnp.float32)))
        elites = set(np.asarray(model.elites).tolist())
        per_member = ", ".join(f"{np.median(x):.3g}{'*' if i in elites else ''}" for i, x in enumerate(u))
        print(f"[{name}] u's median per member (* elite; the penalty, {preset.fn.__name__}, reads {preset.members}): "
              f"{per_member}", flush=True)


if __name__ == "__main__":
    main()
