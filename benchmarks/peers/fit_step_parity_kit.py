#!/usr/bin/env python3
"""OfflineRL-Kit's side of the fit-step parity check (``benchmarks/fit_step_parity.py`` is dynlearn's side).

Runs in the kit's virtual environment (see README.md in this folder) and imports the kit as ``offlinerl_kit.py`` does
(``--kit PATH`` or ``$OFFLINERL_KIT``, gym stub). ``$W`` is a scratch folder shared with dynlearn's side.

    # the kit's initial weights for a seed (exactly those of `offlinerl_kit.py fit --seed 0 --split ...`), the scaler
    # fitted on the train rows, and the kit's own bootstrap draw for that seed
    python benchmarks/peers/fit_step_parity_kit.py init --data F.hdf5 --dataset hopper-medium-v5 --split SPLIT.npz \
        --seed 0 --out $W/kit_init.npz
    # K Adam steps of EnsembleDynamics.learn, one call per batch, on the batches dynlearn's side wrote
    python benchmarks/peers/fit_step_parity_kit.py steps --data F.hdf5 --dataset hopper-medium-v5 --split SPLIT.npz \
        --init $W/kit_init.npz --batches $W/batches.npz --out $W/kit_steps.npz
    # the kit's epoch loop (EnsembleDynamics.learn / validate, bootstrap and shuffles as EnsembleDynamics.train) for a
    # few epochs from given initial weights (e.g. dynlearn's init exported by fit_step_parity.py export-init)
    python benchmarks/peers/fit_step_parity_kit.py fit --data F.hdf5 --dataset hopper-medium-v5 --split SPLIT.npz \
        --init $W/dl_init.npz --epochs 4 --seed 0 --out $W/kit_fit_dlinit.json [--train-rows 50000]

Weights are exchanged as npz with the kit's names: ``backbones.{i}.weight [E, in, out]``, ``backbones.{i}.bias
[E, 1, out]``, ``output_layer.*``, ``max_logvar``, ``min_logvar``; the scaler as ``scaler_mu`` / ``scaler_std``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import offlinerl_kit as harness  # noqa: E402

STEP_SNAPSHOTS = (1, 10, 20, 50, 100)


def rows_of(loaded: dict, split: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the split's train and holdout file rows among the rows the harness keeps (as ``harness.fit``)."""
    s = np.load(split)
    pos = np.full(loaded["file_rows"], -1, np.int64)
    pos[loaded["rows"]] = np.arange(loaded["rows"].size)
    train, hold = pos[np.asarray(s["train"], np.int64)], pos[np.asarray(s["holdout"], np.int64)]
    if (train < 0).any() or (hold < 0).any():
        sys.exit(f"error: {split} names rows without a valid next observation.")
    return train, hold


def setup(args):
    import torch

    torch.set_num_threads(args.threads)
    _, prefix = harness.task_of(args.dataset)
    loaded = harness.load_data(Path(args.data).expanduser())
    kit = harness.import_kit(args.kit)
    train, hold = rows_of(loaded, Path(args.split))
    harness.seed_all(args.seed)
    dyn = harness.build_dynamics(kit, loaded["obs_dim"], loaded["act_dim"], prefix)
    data = loaded["data"]
    inputs, targets = dyn.format_samples_for_training({**data, "rewards": data["rewards"].reshape(-1, 1)})
    return kit, loaded, dyn, inputs, targets.astype(np.float32), train, hold


def params(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()
            if not k.split(".")[-1].startswith("saved_") and k != "elites"}


def load_params(model, z) -> None:
    import torch

    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k.split(".")[-1].startswith("saved_") or k == "elites":
                continue
            v.copy_(torch.as_tensor(np.asarray(z[k], np.float32)).reshape(v.shape))
        for layer in [*model.backbones, model.output_layer]:  # the snapshot starts at the initial weights, as in the kit
            layer.saved_weight.copy_(layer.weight)
            layer.saved_bias.copy_(layer.bias)


def cmd_init(args) -> None:
    kit, loaded, dyn, inputs, targets, train, hold = setup(args)
    # harness.fit draws the bootstrap right after building the model (nothing else uses NumPy's RNG in between)
    boot = np.random.randint(len(train), size=[harness.DYNAMICS["n_ensemble"], len(train)])
    dyn.scaler.fit(inputs[train])
    p = params(dyn.model)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **p, scaler_mu=np.asarray(dyn.scaler.mu, np.float32).reshape(-1),
             scaler_std=np.asarray(dyn.scaler.std, np.float32).reshape(-1), kit_boot=boot.astype(np.int64),
             meta_json=np.array(json.dumps({"seed": args.seed, "kit_commit": kit["commit"], "dataset": args.dataset,
                                            "train_rows": int(len(train)), "holdout_rows": int(len(hold))})))
    print(f"{args.out}: kit init for seed {args.seed}; " + ", ".join(f"{k} {v.shape} std {v.std():.5f}" for k, v in p.items()
                                                                       if k.endswith("weight")))


def cmd_steps(args) -> None:
    import torch

    kit, loaded, dyn, inputs, targets, train, hold = setup(args)
    z = np.load(args.init)
    load_params(dyn.model, z)
    mu, std = z["scaler_mu"].reshape(1, -1), z["scaler_std"].reshape(1, -1)
    x = ((inputs[train] - mu) / std).astype(np.float32)
    y = targets[train]
    idx = np.asarray(np.load(args.batches)["idx"], np.int64)  # [K, E, B] train-row positions
    k_steps = len(idx) if args.steps is None else min(args.steps, len(idx))
    losses, out = [], {}
    t0 = time.perf_counter()
    teacher = set(args.teacher_steps)
    names = {id(p): n for n, p in dyn.model.named_parameters()}
    for k in range(k_steps):
        if k in teacher:  # the weights and Adam moments before step k + 1 (0-based k), for single-step comparisons
            out.update({f"pre{k}/{n}": v for n, v in params(dyn.model).items()})
            for p, st in dyn.optim.state.items():
                if names.get(id(p)) in params(dyn.model) and st:
                    out[f"pre{k}/adam_m/{names[id(p)]}"] = st["exp_avg"].numpy().copy()
                    out[f"pre{k}/adam_v/{names[id(p)]}"] = st["exp_avg_sq"].numpy().copy()
                    out[f"pre{k}/adam_step"] = np.asarray(float(st["step"]))
        losses.append(dyn.learn(x[idx[k]], y[idx[k]], idx.shape[2], harness.DYNAMICS["logvar_loss_coef"]))
        if k == 0:  # the gradient of the first step stays in .grad until the next learn() zeroes it
            for name, p in dyn.model.named_parameters():
                if p.grad is not None:
                    out[f"grad0/{name}"] = p.grad.detach().numpy().copy()
        if k in teacher:
            out.update({f"post{k}/{n}": v for n, v in params(dyn.model).items()})
        if k + 1 in STEP_SNAPSHOTS or k + 1 == k_steps:
            out.update({f"step{k + 1}/{n}": v for n, v in params(dyn.model).items()})
    with torch.no_grad():
        mean, _ = dyn.model(((inputs[hold] - mu) / std).astype(np.float32))
    holdout = ((mean.numpy() - targets[hold][None]) ** 2).mean(axis=(1, 2))
    np.savez(args.out, loss=np.asarray(losses, np.float64), holdout_mse=holdout, steps=k_steps, **out)
    print(f"{args.out}: {k_steps} steps in {time.perf_counter() - t0:.1f}s; loss {losses[0]:.5f} -> {losses[-1]:.5f}; "
          f"holdout MSE per member {np.round(holdout, 5).tolist()}")


def cmd_fit(args) -> None:
    """EnsembleDynamics.train's loop (as harness.fit) from the given initial weights, at most ``--epochs`` epochs."""
    kit, loaded, dyn, inputs, targets, train, hold = setup(args)
    E, n_elites = harness.DYNAMICS["n_ensemble"], harness.DYNAMICS["n_elites"]
    if args.train_rows:
        train = train[np.random.default_rng(args.seed).permutation(len(train))[:args.train_rows]]
    boot = np.random.randint(len(train), size=[E, len(train)])  # the NumPy draw harness.fit makes for this seed
    if args.init:
        load_params(dyn.model, np.load(args.init))
    dyn.scaler.fit(inputs[train])
    x, hx = dyn.scaler.transform(inputs[train]), dyn.scaler.transform(inputs[hold])
    y, hy = targets[train], targets[hold]

    def shuffle_rows(arr):
        idxes = np.argsort(np.random.uniform(size=arr.shape), axis=-1)
        return arr[np.arange(arr.shape[0])[:, None], idxes]

    history = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        loss = dyn.learn(x[boot], y[boot], harness.DYNAMICS["model_batch_size"], harness.DYNAMICS["logvar_loss_coef"])
        member = [float(v) for v in dyn.validate(hx, hy)]
        boot = shuffle_rows(boot)
        history.append({"epoch": epoch, "train_loss": float(loss), "holdout_elites": float(np.sort(member)[:n_elites].mean()),
                        "holdout_per_member": member, "time_s": time.perf_counter() - t0})
        print(json.dumps(history[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"init": str(Path(args.init).name) if args.init else f"kit seed {args.seed}",
                                          "seed": args.seed, "train_rows": int(len(train)), "history": history}, indent=1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("init", "steps", "fit"):
        sp = sub.add_parser(name)
        sp.add_argument("--kit", help="OfflineRL-Kit checkout (default: $OFFLINERL_KIT)")
        sp.add_argument("--data", required=True, help="D4RL-layout .hdf5 file")
        sp.add_argument("--dataset", required=True, help="dataset label, e.g. hopper-medium-v5")
        sp.add_argument("--split", required=True, help="npz with integer arrays 'train' and 'holdout' (file rows)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
        sp.add_argument("--out", required=True)
        if name in ("steps", "fit"):
            sp.add_argument("--init", required=name == "steps", help="npz of initial weights (kit names)")
        if name == "steps":
            sp.add_argument("--batches", required=True, help="npz with 'idx' [K, E, B]: train-row positions per step")
            sp.add_argument("--steps", type=int, default=None, help="at most this many steps (default: all in --batches)")
            sp.add_argument("--teacher-steps", type=int, nargs="*", default=[0, 5, 10, 12, 15, 20, 30, 50, 100, 199],
                            help="0-based steps before and after which the weights (and before: Adam's moments) are saved")
        if name == "fit":
            sp.add_argument("--epochs", type=int, default=4)
            sp.add_argument("--train-rows", type=int, default=0, help="a random subset of this many train rows (0: all)")
    args = p.parse_args(argv)
    {"init": cmd_init, "steps": cmd_steps, "fit": cmd_fit}[args.cmd](args)


if __name__ == "__main__":
    main()
