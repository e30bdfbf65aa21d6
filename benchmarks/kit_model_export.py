"""A fitted dynlearn ensemble written as OfflineRL-Kit's ``model.npz``, so both libraries can train from one model.

    python benchmarks/kit_model_export.py --model MODEL_FOLDER --task HalfCheetah-v5 --out runs/parity/shared-fit-halfcheetah
    $PEER/bin/python benchmarks/peers/offlinerl_kit.py mopo ... --model runs/parity/shared-fit-halfcheetah

``MODEL_FOLDER`` is a folder written by ``dynlearn.models.save``: a ``dynlearn model train`` run's ``model``, or the
cache entry a model-based run prints when it fits its ensemble. The layout is the inverse of ``model_fit_parity.kit_model``:
``backbones.{i}.weight [E, in, out]``, ``.bias [E, 1, out]``, ``output_layer.*`` (means then log-variances of
``(delta obs, reward)``), ``max_logvar``/``min_logvar``, ``elites``, and the input scaler's ``scaler_mu``/``scaler_std``.
The model must have no termination head (the kit's has none; model-based runs fit one only for tasks without a
termination function).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import dynlearn as dl


def kit_arrays(model) -> dict[str, np.ndarray]:
    """The ensemble's parameters under OfflineRL-Kit's ``EnsembleDynamicsModel`` state-dict names and shapes."""
    net = model.net
    if getattr(model.cfg, "termination_head", False):
        raise SystemExit("the model has a termination head, which OfflineRL-Kit's model cannot hold; export a model fitted "
                         "without one (EnsembleConfig(termination_head=False))")
    if model.cfg.normalize_targets:
        raise SystemExit("the model standardises its targets; OfflineRL-Kit's predicts them in data units")
    names = [f"backbones.{i}" for i in range(len(net.weights) - 1)] + ["output_layer"]
    out = {}
    for name, w, b in zip(names, net.weights, net.biases):
        w = np.asarray(w, np.float32)
        out[f"{name}.weight"] = w
        out[f"{name}.bias"] = np.asarray(b, np.float32).reshape(w.shape[0], 1, w.shape[2])
    out["max_logvar"] = np.asarray(net.max_logvar, np.float32).reshape(-1)
    out["min_logvar"] = np.asarray(net.min_logvar, np.float32).reshape(-1)
    out["elites"] = np.asarray(model.elites, np.int64)
    out["scaler_mu"] = np.asarray(model.input_norm.mean, np.float32).reshape(1, -1)
    out["scaler_std"] = np.asarray(model.input_norm.std, np.float32).reshape(1, -1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a folder written by dynlearn.models.save")
    parser.add_argument("--task", required=True, help="the task the model was fitted for, e.g. HalfCheetah-v5")
    parser.add_argument("--out", type=Path, required=True, help="folder to write model.npz and source.json into")
    args = parser.parse_args()
    task = dl.tasks.get(args.task)
    model = dl.models.load(args.model, task=task)
    arrays = kit_arrays(model)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"library": "dynlearn", "dynlearn_version": dl.__version__, "task": task.id, "obs_dim": task.obs_dim,
            "act_dim": task.act_dim, "source": args.model.name, "elites": arrays["elites"].tolist()}
    tmp = args.out / "model.tmp.npz"
    np.savez(tmp, **arrays, meta_json=np.array(json.dumps(meta)))
    os.replace(tmp, args.out / "model.npz")
    (args.out / "source.json").write_text(json.dumps(meta, indent=1))
    print(f"{args.out / 'model.npz'}: {len(arrays['elites'])} elites of {arrays['output_layer.weight'].shape[0]} members, "
          f"hidden {[arrays[f'backbones.{i}.weight'].shape[2] for i in range(len(model.net.weights) - 1)]}")


if __name__ == "__main__":
    main()
