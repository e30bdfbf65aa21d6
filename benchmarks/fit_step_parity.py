"""Fit-step parity: dynlearn's ensemble fit against OfflineRL-Kit's, step by step from the same weights on the same batches.

dynlearn's side (this file, dynlearn's environment); the kit's side is ``benchmarks/peers/fit_step_parity_kit.py`` (the
kit's environment). ``$W`` is a scratch folder; ``F`` the dataset file (``~/.cache/dynlearn/datasets/NAME.hdf5``),
``SPLIT`` the train/holdout rows (``benchmarks/model_fit_parity.py --write-split``); ``KIT`` the kit's interpreter.

    # 1. the kit's initial weights for seed 0 (those of `offlinerl_kit.py fit --seed 0 --split SPLIT`) and its scaler
    KIT benchmarks/peers/fit_step_parity_kit.py init --data F --dataset hopper-medium-v5 --split SPLIT --out $W/kit_init.npz
    # 2. a fixed bootstrap and batch order for K steps: the order dynlearn's _epoch draws from (boot, key)
    python benchmarks/fit_step_parity.py batches --split SPLIT --steps 200 --out $W/batches.npz
    # 3. K steps of EnsembleDynamics.learn in the kit, then the same K steps in dynlearn (_loss + apply_optimizer step
    #    by step, and _epoch in one call) and the comparison: loss per step, first gradient, weights after 1, 10, 20, 50,
    #    100, K steps; single dynlearn steps from the kit's own weights and Adam moments; two yardsticks of pure float32
    #    drift (dynlearn against itself from weights nudged by one rounding, and with every batch's rows reversed)
    KIT benchmarks/peers/fit_step_parity_kit.py steps --data F --dataset hopper-medium-v5 --split SPLIT \
        --init $W/kit_init.npz --batches $W/batches.npz --out $W/kit_steps.npz
    python benchmarks/fit_step_parity.py steps --dataset hopper-medium-v5 --split SPLIT --init $W/kit_init.npz \
        --batches $W/batches.npz --kit $W/kit_steps.npz --out RESULTS.json
    # 4. init statistics: the kit's against dynlearn's own (also writes dynlearn's init with the kit's names)
    python benchmarks/fit_step_parity.py init-stats --dataset hopper-medium-v5 --kit-init $W/kit_init.npz \
        --export $W/dl_init.npz --out RESULTS.json
    # 5. dynlearn's real fit (dynlearn.models.fit, FitConfig.preset("offlinerl-kit")) for a few epochs from given
    #    initial weights (--init NPZ with the kit's names, 'normal' for its own draw, 'truncated' for its draw cut at
    #    2 std as before the fix, EnsembleConfig.weight_init), holding out SPLIT's holdout rows
    python benchmarks/fit_step_parity.py fit --dataset hopper-medium-v5 --split SPLIT --init $W/kit_init.npz --epochs 8 \
        --label kit-init --out RESULTS.json [--train-rows N] [--std-scale S]
    # 6. the kit's loop from dynlearn's initial weights (the reverse swap), and the kit curves into the results
    KIT benchmarks/peers/fit_step_parity_kit.py fit --data F --dataset hopper-medium-v5 --split SPLIT --init $W/dl_init.npz \
        --epochs 4 --out $W/kit_fit_dlinit.json
    python benchmarks/fit_step_parity.py record-kit --kit-json $W/kit_fit_dlinit.json --init-label dl_init.npz \
        --label dynlearn-init --out RESULTS.json
    #    (KITFIT: the folder of `offlinerl_kit.py fit --seed 0 --split SPLIT`; while it runs, its fit_checkpoint.pt's
    #    state["history"] dumped to json serves as well)
    python benchmarks/fit_step_parity.py record-kit --kit-json KITFIT/fit.json --init-label "kit seed 0" --epochs 8 \
        --source "offlinerl_kit.py fit --seed 0 --split SPLIT" --label kit-init --out RESULTS.json
    # 7. dynlearn's own fit with its own init (the cache entry of model_fit_parity.py's no-termination-head rule, fit
    #    key 0: the init of dl_init.npz), then all curves side by side with the conclusion
    python benchmarks/fit_step_parity.py record-report --report CACHE/fit_report.json --init-label "dynlearn's own" \
        --source "dl.models.fitted(no-termination-head rule, seed 0)" --label dynlearn-init --out RESULTS.json
    python benchmarks/fit_step_parity.py summarize --conclusion TEXT --out RESULTS.json

RESULTS.json is ``benchmarks/results/component_parity/fit_steps-hopper-medium-v5.json``; every command replaces its own
section of it. Run everything with one CPU thread (``taskset -c 1``) so both libraries sum in a fixed order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from dynlearn.agents.base import apply_optimizer
from dynlearn.data.normalize import Normalizer
from dynlearn.models import EnsembleConfig, FitConfig, ProbabilisticEnsemble
from dynlearn.models import fit_epoch as fitting

SNAPSHOTS = (1, 10, 20, 50, 100)


# ----------------------------------------------------------------------------------------------------------- helpers

def layer_names(n_layers: int) -> list[str]:
    return [f"backbones.{i}" for i in range(n_layers - 1)] + ["output_layer"]


def net_from_kit(z, obs_dim: int, act_dim: int, prefix: str = "") -> tuple[EnsembleConfig, fitting.EnsembleMLP]:
    """A dynlearn ``EnsembleMLP`` (no termination head) holding the kit-named weights ``prefix + name`` of ``z``."""
    n_layers = sum(k.startswith(prefix + "backbones.") and k.endswith(".weight") for k in z) + 1
    names = layer_names(n_layers)
    w = [np.asarray(z[f"{prefix}{n}.weight"], np.float32) for n in names]
    members = w[0].shape[0]
    cfg = EnsembleConfig(members=members, hidden=tuple(a.shape[2] for a in w[:-1]), termination_head=False)
    net = ProbabilisticEnsemble.init(cfg, obs_dim, act_dim, key=jax.random.key(0)).net
    net = dataclasses.replace(
        net, weights=tuple(jnp.asarray(a) for a in w),
        biases=tuple(jnp.asarray(np.asarray(z[f"{prefix}{n}.bias"], np.float32).reshape(members, -1)) for n in names),
        max_logvar=jnp.asarray(np.asarray(z[f"{prefix}max_logvar"], np.float32).reshape(-1)),
        min_logvar=jnp.asarray(np.asarray(z[f"{prefix}min_logvar"], np.float32).reshape(-1)))
    return cfg, net


def net_to_kit(net) -> dict[str, np.ndarray]:
    names = layer_names(len(net.weights))
    out = {f"{n}.weight": np.asarray(w) for n, w in zip(names, net.weights)}
    out.update({f"{n}.bias": np.asarray(b)[:, None, :] for n, b in zip(names, net.biases)})
    out.update(max_logvar=np.asarray(net.max_logvar), min_logvar=np.asarray(net.min_logvar))
    return out


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def compare_params(ours: dict, theirs: dict) -> dict:
    """Per parameter: max |diff| / max |kit| (float32 rounding: ~1e-7 after one step)."""
    return {k: rel_diff(ours[k], np.asarray(theirs[k]).reshape(ours[k].shape)) for k in ours}


def update_results(path: Path, section: str, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[section] = value
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{path}: wrote '{section}'")


def load_split(split: Path) -> tuple[np.ndarray, np.ndarray]:
    s = np.load(split)
    return np.asarray(s["train"], np.int64), np.asarray(s["holdout"], np.int64)


# ----------------------------------------------------------------------------------------------------------- commands

def batch_order(boot: np.ndarray, key, batch_size: int) -> np.ndarray:
    """``[steps, E, B]``: the rows ``fitting._epoch`` feeds step by step for this bootstrap and epoch key (its code)."""
    e, n = boot.shape
    steps = -(-n // batch_size)
    perm = jax.vmap(jax.random.permutation)(jax.random.split(key, e), jnp.asarray(boot))
    perm = jnp.concatenate([perm, perm[:, :steps * batch_size - n]], axis=1)
    return np.asarray(perm.reshape(e, steps, batch_size).transpose(1, 0, 2))


def cmd_batches(args) -> None:
    train, _ = load_split(args.split)
    boot = np.random.default_rng(args.seed).integers(0, len(train), size=(args.members, args.steps * args.batch_size))
    idx = batch_order(boot, jax.random.key(args.seed), args.batch_size)
    np.savez(args.out, boot=boot.astype(np.int32), key_seed=args.seed, idx=idx.astype(np.int64), batch_size=args.batch_size)
    print(f"{args.out}: {idx.shape[0]} steps x {idx.shape[1]} members x {idx.shape[2]} rows (positions among {len(train)} train rows)")


def rows_for(data, rows: np.ndarray, norm: Normalizer, target_dim: int) -> fitting._Rows:
    return fitting._rows(fitting._arrays(data.transitions.take(rows)), norm, Normalizer.identity(target_dim))


def cmd_steps(args) -> None:
    data = dl.data.load(args.dataset)
    t = data.transitions
    train_rows, hold_rows = load_split(args.split)
    z, b, kit = np.load(args.init), np.load(args.batches), np.load(args.kit)
    cfg, net0 = net_from_kit(z, t.obs_dim, t.act_dim)
    norm = Normalizer(mean=jnp.asarray(z["scaler_mu"]), std=jnp.asarray(z["scaler_std"]))  # the kit's scaler, as the kit
    own = Normalizer.fit(fitting._arrays(t.take(train_rows))[0])
    scaler_diff = {"mean": rel_diff(own.mean, z["scaler_mu"]), "std": rel_diff(own.std, z["scaler_std"])}
    train = rows_for(data, train_rows, norm, t.obs_dim + 1)
    holdout = rows_for(data, hold_rows, norm, t.obs_dim + 1)
    idx = jnp.asarray(b["idx"])
    k_steps = int(kit["steps"])
    lr = args.lr
    opt = fitting._adam(lr)

    @eqx.filter_jit
    def step(net, opt_state, i):
        x, y, m, term = train.x[i], train.y[i], train.mask[i], train.terminal[i]
        (loss, _), grads = jax.value_and_grad(fitting._loss, has_aux=True)(net, x, y, m, term, cfg)
        net, opt_state = apply_optimizer(opt, net, grads, opt_state)
        return net, opt_state, loss, grads

    def run(start, order=idx):
        net, opt_state = start, opt.init(start)
        losses, snaps, grad0 = [], {}, None
        for k in range(k_steps):
            net, opt_state, loss, grads = step(net, opt_state, order[k])
            losses.append(float(loss))
            if k == 0:
                grad0 = net_to_kit(grads)
            if k + 1 in SNAPSHOTS or k + 1 == k_steps:
                snaps[k + 1] = net_to_kit(net)
        return net, losses, snaps, grad0

    t0 = time.perf_counter()
    net, losses, snaps, grad0 = run(net0)
    loop_s = time.perf_counter() - t0
    kit_loss = np.asarray(kit["loss"])
    loss_rel = np.abs(np.asarray(losses) - kit_loss) / np.abs(kit_loss)

    # the same K steps through the real compiled epoch (bootstrap `boot`, epoch key from the same seed)
    e = net0.n_members
    _, _, _, _, mse, _, info = fitting._epoch(
        net0, opt.init(net0), net0, jnp.full((e,), 1e10, jnp.float32), train, holdout, jnp.asarray(b["boot"]),
        Normalizer.identity(t.obs_dim + 1), jax.random.key(int(b["key_seed"])), jnp.ones(t.obs_dim + 1, jnp.float32),
        cfg=cfg, lr=lr, batch_size=int(b["batch_size"]), min_improvement=0.01, chunk=4096)
    epoch_net = None
    if int(b["idx"].shape[0]) == k_steps:
        epoch_net = net_to_kit(fitting._epoch(
            net0, opt.init(net0), net0, jnp.full((e,), 1e10, jnp.float32), train, holdout, jnp.asarray(b["boot"]),
            Normalizer.identity(t.obs_dim + 1), jax.random.key(int(b["key_seed"])), jnp.ones(t.obs_dim + 1, jnp.float32),
            cfg=cfg, lr=lr, batch_size=int(b["batch_size"]), min_improvement=0.01, chunk=4096)[0])
    # single steps from the kit's own state (weights and Adam moments before kit step k + 1): does one dynlearn step
    # land where the kit's did? Measured as max |dynlearn - kit| over max |kit's update|, per parameter; the yardstick is
    # the same dynlearn step with the batch's rows reversed (the same sums in another rounding order)
    def from_kit_state(k):
        _, start = net_from_kit(kit, t.obs_dim, t.act_dim, prefix=f"pre{k}/")
        state = opt.init(start)
        if f"pre{k}/adam_step" in kit.files:
            _, mu = net_from_kit(kit, t.obs_dim, t.act_dim, prefix=f"pre{k}/adam_m/")
            _, nu = net_from_kit(kit, t.obs_dim, t.act_dim, prefix=f"pre{k}/adam_v/")
            state = (state[0]._replace(count=jnp.asarray(int(kit[f"pre{k}/adam_step"]), jnp.int32), mu=mu, nu=nu), *state[1:])
        return start, state

    single = {}
    for k in sorted({int(n[3:].split("/")[0]) for n in kit.files if n.startswith("pre")}):
        if k >= k_steps:
            continue
        start, state = from_kit_state(k)
        pre, post = {n[len(f"pre{k}/"):]: kit[n] for n in kit.files if n.startswith(f"pre{k}/") and "/adam" not in n}, \
            {n[len(f"post{k}/"):]: kit[n] for n in kit.files if n.startswith(f"post{k}/")}
        ours, _, loss, _ = step(start, state, idx[k])
        theirs_rev, _, loss_rev, _ = step(start, state, idx[k][:, ::-1])
        ours, theirs_rev = net_to_kit(ours), net_to_kit(theirs_rev)
        upd = {n: float(np.abs(post[n] - pre[n].reshape(post[n].shape)).max()) for n in post}
        vs_kit = {n: float(np.abs(ours[n] - post[n].reshape(ours[n].shape)).max() / max(upd[n], 1e-30)) for n in ours}
        vs_rev = {n: float(np.abs(ours[n] - theirs_rev[n]).max() / max(upd[n], 1e-30)) for n in ours}
        single[str(k + 1)] = {"loss_abs_diff_vs_kit": float(abs(float(loss) - kit_loss[k])),
                              "loss_abs_diff_rows_reversed": float(abs(float(loss) - float(loss_rev))),
                              "update_rel_diff_vs_kit_worst": max(vs_kit.values()),
                              "update_rel_diff_rows_reversed_worst": max(vs_rev.values()),
                              "update_rel_diff_vs_kit": vs_kit}

    # the yardstick for drift: dynlearn against itself from initial weights changed by about one float32 rounding
    noise = jax.random.split(jax.random.key(1), len(net0.weights))
    nudged = dataclasses.replace(net0, weights=tuple(w * (1.0 + 2.0 ** -24 * jax.random.normal(k_, w.shape))
                                                     for w, k_ in zip(net0.weights, noise)))
    _, nudged_losses, nudged_snaps, _ = run(nudged)
    # and against itself with every batch's rows in reverse order: the same sums, rounded in another order at every step
    _, rev_losses, rev_snaps, _ = run(net0, idx[:, :, ::-1])
    loop_mse = np.asarray(fitting._holdout_mse(net, holdout, Normalizer.identity(t.obs_dim + 1), 4096)).mean(axis=1)

    out = {
        "what": "K Adam steps from the kit's initial weights (seed 0) on the same batches (batch 256 per member, 7 members), "
                "the kit's scaler; kit: EnsembleDynamics.learn one batch per call; dynlearn: fitting._loss + apply_optimizer "
                "(the body of fitting._epoch) per step, and fitting._epoch over the same K steps in one call",
        "steps": k_steps, "lr": lr,
        "dynlearn_normalizer_vs_kit_scaler_rel_diff": scaler_diff,
        "loss": {"kit_first": float(kit_loss[0]), "dynlearn_first": losses[0], "kit_last": float(kit_loss[-1]),
                 "dynlearn_last": losses[-1],
                 "rel_diff_at_step": {str(s): float(loss_rel[s - 1]) for s in (*SNAPSHOTS, k_steps) if s <= k_steps},
                 "abs_diff_at_step": {str(s): float(abs(losses[s - 1] - kit_loss[s - 1])) for s in (*SNAPSHOTS, k_steps)
                                      if s <= k_steps},
                 "mean_last_quarter": {"kit": float(kit_loss[-(k_steps // 4):].mean()),
                                       "dynlearn": float(np.mean(losses[-(k_steps // 4):]))},
                 "kit_per_step": [round(float(v), 5) for v in kit_loss],
                 "dynlearn_per_step": [round(v, 5) for v in losses]},
        "grad_step1_rel_diff": compare_params(grad0, {k[len("grad0/"):]: kit[k] for k in kit.files if k.startswith("grad0/")}),
        "weights_rel_diff_after": {str(s): compare_params(snaps[s], {k.split("/", 1)[1]: kit[k] for k in kit.files
                                                                     if k.startswith(f"step{s}/")}) for s in snaps},
        "single_step_from_kit_state": single,
        "yardstick_dynlearn_vs_itself_from_weights_nudged_by_one_rounding": {
            "loss_abs_diff_at_step": {str(s): float(abs(losses[s - 1] - nudged_losses[s - 1])) for s in (*SNAPSHOTS, k_steps)
                                      if s <= k_steps},
            "weights_rel_diff_after": {str(s): compare_params(nudged_snaps[s], snaps[s]) for s in snaps}},
        "yardstick_dynlearn_vs_itself_with_batch_rows_reversed": {
            "loss_abs_diff_at_step": {str(s): float(abs(losses[s - 1] - rev_losses[s - 1])) for s in (*SNAPSHOTS, k_steps)
                                      if s <= k_steps},
            "weights_rel_diff_after": {str(s): compare_params(rev_snaps[s], snaps[s]) for s in snaps}},
        "holdout_mse_per_member_after": {"kit": [float(v) for v in kit["holdout_mse"]],
                                         "dynlearn_loop": [float(v) for v in loop_mse],
                                         "dynlearn_epoch": [float(v) for v in np.asarray(mse)]},
        "epoch_vs_loop_weights_rel_diff": None if epoch_net is None else compare_params(epoch_net, snaps[k_steps]),
        "dynlearn_loop_s": loop_s,
    }
    print(json.dumps(out, indent=1))
    update_results(args.out, "steps", out)


def init_stats(weights: list[np.ndarray]) -> list[dict]:
    out = []
    for w in weights:
        fan_in = w.shape[1]
        nominal = 1.0 / (2.0 * np.sqrt(fan_in))
        z = np.asarray(w, np.float64) / nominal
        out.append({"fan_in": int(fan_in), "std_over_nominal": float(z.std()), "max_abs_over_nominal": float(np.abs(z).max()),
                    "share_beyond_2_nominal_std": float((np.abs(z) > 2).mean())})
    return out


def cmd_init_stats(args) -> None:
    data = dl.data.load(args.dataset)
    t = data.transitions
    z = np.load(args.kit_init)
    names = layer_names(sum(k.startswith("backbones.") and k.endswith(".weight") for k in z.files) + 1)
    cfg = EnsembleConfig(termination_head=False, weight_init="truncated")  # the draw this comparison found at fault
    ours = ProbabilisticEnsemble.init(cfg, t.obs_dim, t.act_dim, key=jax.random.split(jax.random.key(args.seed), 4)[0]).net
    out = {"what": "weight std and tails over the nominal std 1/(2 sqrt(fan_in)), per layer; kit: nn.init.trunc_normal_(std=...) "
                   "(cut at +-2 absolute, so no cut); dynlearn: EnsembleMLP.init (truncated normal cut at 2 std, not rescaled)",
           "kit": init_stats([z[f"{n}.weight"] for n in names]), "dynlearn": init_stats([np.asarray(w) for w in ours.weights])}
    print(json.dumps(out, indent=1))
    if args.export:
        np.savez(args.export, **net_to_kit(ours), scaler_mu=z["scaler_mu"], scaler_std=z["scaler_std"])
        print(f"{args.export}: dynlearn's init (fit's init key for seed {args.seed}) with the kit's names")
    update_results(args.out, "init_stats", out)


def cmd_fit(args) -> None:
    data = dl.data.load(args.dataset)
    t = data.transitions
    train_rows, hold_rows = load_split(args.split)
    key = jax.random.key(args.seed)
    own = args.init in ("normal", "truncated")
    cfg = EnsembleConfig(termination_head=False, weight_init=args.init if own else "normal")
    model = ProbabilisticEnsemble.init(cfg, t.obs_dim, t.act_dim, key=jax.random.split(key, 4)[0])  # fit's own init
    if not own:
        _, net = net_from_kit(np.load(args.init), t.obs_dim, t.act_dim)
        model = dataclasses.replace(model, net=net)
    if args.std_scale != 1.0:
        model = dataclasses.replace(model, net=dataclasses.replace(
            model.net, weights=tuple(w * args.std_scale for w in model.net.weights)))
    if args.train_rows:  # a random subset of the train rows; the holdout stays
        keep = np.sort(np.random.default_rng(args.seed).permutation(train_rows)[:args.train_rows])
        rows = np.sort(np.concatenate([keep, hold_rows]))
        data = dataclasses.replace(data, transitions=t.take(rows), episode_starts=np.zeros(1, np.int64))  # one "episode"
        hold, train_rows = np.searchsorted(rows, hold_rows), keep
    else:
        hold = hold_rows
    # fit keeps a given model's normalisers: the ones a fresh fit would fit on the train rows
    model = dataclasses.replace(model, input_norm=Normalizer.fit(fitting._arrays(t.take(train_rows))[0]))
    fit_cfg = FitConfig.preset("offlinerl-kit", max_epochs=args.epochs, progress=False)
    t0 = time.perf_counter()
    _, report = dl.models.fit(model, data, key=key, cfg=fit_cfg, holdout_rows=hold)
    curve = [float(np.sort(h)[:cfg.elites].mean()) for h in report.history]
    out = {"init": args.init if args.init in ("normal", "truncated") else f"{Path(args.init).name}", "std_scale": args.std_scale,
           "seed": args.seed, "train_rows": report.train_size, "holdout_rows": report.holdout_size, "epochs": report.epochs,
           "holdout_elites_per_epoch": curve, "wall_s": time.perf_counter() - t0}
    print(json.dumps(out))
    update_results(args.out, f"fit/{args.label}", out)


def cmd_record_kit(args) -> None:
    """A kit fit's holdout curve (a ``fit_step_parity_kit.py fit`` json, or the harness's ``fit.json``) into the results."""
    d = json.loads(args.kit_json.read_text())
    curve = [float(h.get("holdout_elites", h.get("holdout_loss"))) for h in d["history"]][:args.epochs or None]
    out = {"source": args.source or args.kit_json.name, "init": args.init_label, "train_rows": d.get("train_rows"),
           "holdout_elites_per_epoch": curve}
    print(json.dumps(out))
    update_results(args.out, f"kit_fit/{args.label}", out)


def cmd_record_report(args) -> None:
    """A dynlearn fit's holdout curve from its ``fit_report.json`` (a ``dl.models.fitted`` cache entry) into the results."""
    r = json.loads(args.report.read_text())
    key = json.loads((args.report.parent / "key.json").read_text()) if (args.report.parent / "key.json").is_file() else {}
    elites = int(key.get("model", {}).get("elites", 5))
    curve = [float(np.sort(h)[:elites].mean()) for h in r["history"]]
    out = {"source": args.source, "init": args.init_label, "train_rows": r["train_size"], "holdout_rows": r["holdout_size"],
           "holdout_elites_per_epoch": curve}
    print(json.dumps(out))
    update_results(args.out, f"fit/{args.label}", out)


def cmd_summarize(args) -> None:
    """The holdout curves of every fit in the results side by side (mean of the 5 lowest members' MSE), and a conclusion."""
    results = json.loads(args.out.read_text())
    curves = {name: [round(v, 5) for v in sec["holdout_elites_per_epoch"]] for name, sec in results.items()
              if name.startswith(("fit/", "kit_fit/"))}
    out = {"holdout_elites_per_epoch": curves, "conclusion": args.conclusion}
    print(json.dumps(out, indent=1))
    update_results(args.out, "summary", out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("batches", help="a fixed bootstrap and batch order (npz)")
    sp.add_argument("--split", type=Path, required=True)
    sp.add_argument("--steps", type=int, default=200)
    sp.add_argument("--batch-size", type=int, default=256)
    sp.add_argument("--members", type=int, default=7)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", type=Path, required=True)
    sp = sub.add_parser("steps", help="dynlearn's K steps against the kit's; writes the 'steps' section")
    sp.add_argument("--dataset", default="hopper-medium-v5")
    sp.add_argument("--split", type=Path, required=True)
    sp.add_argument("--init", type=Path, required=True, help="the kit's init npz (fit_step_parity_kit.py init)")
    sp.add_argument("--batches", type=Path, required=True)
    sp.add_argument("--kit", type=Path, required=True, help="the kit's steps npz (fit_step_parity_kit.py steps)")
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument("--out", type=Path, required=True)
    sp = sub.add_parser("init-stats", help="the kit's and dynlearn's initial weights compared; writes 'init_stats'")
    sp.add_argument("--dataset", default="hopper-medium-v5")
    sp.add_argument("--kit-init", type=Path, required=True)
    sp.add_argument("--seed", type=int, default=0, help="fit's key seed (its init key is the first of split(key, 4))")
    sp.add_argument("--export", type=Path, default=None, help="write dynlearn's init with the kit's names here")
    sp.add_argument("--out", type=Path, required=True)
    sp = sub.add_parser("fit", help="dynlearn.models.fit for a few epochs from given initial weights; writes 'fit/LABEL'")
    sp.add_argument("--dataset", default="hopper-medium-v5")
    sp.add_argument("--split", type=Path, required=True)
    sp.add_argument("--init", default="normal",
                    help="npz of initial weights with the kit's names, or dynlearn's own draw: 'normal' (the default) or "
                         "'truncated' (cut at 2 std, dynlearn's draw before the fix)")
    sp.add_argument("--std-scale", type=float, default=1.0, help="multiply the initial weights by this")
    sp.add_argument("--epochs", type=int, default=8)
    sp.add_argument("--seed", type=int, default=0, help="fit's key (bootstrap, batch order)")
    sp.add_argument("--train-rows", type=int, default=0, help="a random subset of this many train rows (0: all)")
    sp.add_argument("--label", required=True)
    sp.add_argument("--out", type=Path, required=True)
    sp = sub.add_parser("record-kit", help="a kit fit's holdout curve into the results; writes 'kit_fit/LABEL'")
    sp.add_argument("--kit-json", type=Path, required=True, help="fit_step_parity_kit.py fit output, or the harness's fit.json")
    sp.add_argument("--init-label", required=True, help="which initial weights the kit fit started from")
    sp.add_argument("--source", default=None, help="how the kit fit was run (default: the file's name)")
    sp.add_argument("--epochs", type=int, default=0, help="keep the first this many epochs (0: all)")
    sp.add_argument("--label", required=True)
    sp.add_argument("--out", type=Path, required=True)
    sp = sub.add_parser("record-report", help="a dynlearn fit's curve from its fit_report.json; writes 'fit/LABEL'")
    sp.add_argument("--report", type=Path, required=True)
    sp.add_argument("--init-label", required=True)
    sp.add_argument("--source", required=True, help="how that fit was run")
    sp.add_argument("--label", required=True)
    sp.add_argument("--out", type=Path, required=True)
    sp = sub.add_parser("summarize", help="all curves side by side and the conclusion; writes 'summary'")
    sp.add_argument("--conclusion", required=True)
    sp.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    {"record-report": cmd_record_report, "summarize": cmd_summarize, "batches": cmd_batches, "steps": cmd_steps,
     "init-stats": cmd_init_stats, "fit": cmd_fit,
     "record-kit": cmd_record_kit}[args.cmd](args)


if __name__ == "__main__":
    main()
