"""Dynamics-ensemble training speed: gradient steps/s of the 7 x (4 x 200) ensemble on HalfCheetah dimensions.

One gradient step updates all 7 members, each on its own batch of 256 rows (obs 17, act 6 -> targets 17 + 1,
plus the termination head). Steps run inside :func:`dynlearn.models.fit`'s scanned epochs (the real code path,
holdout evaluation and snapshot update included); we report the best and the median epoch after the first
(compiling) one. FLOPs per step count the matmuls: forward ``2 * sum(in * out)`` per row and member; training is
3x that, minus the first layer's input gradient, which is never formed. The machine's matmul peak is measured in
the same run (agents_speed.matmul_peak), plus a batched matmul of the ensemble's own hidden-layer shape.

Peers on a 2-core machine of this kind: OfflineRL-Kit (PyTorch) 63-75 steps/s,
unifloral (JAX) 73-80 steps/s. The machine is shared: the load average is printed at start and end.

    python benchmarks/ensemble_speed.py [--rows 200000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import dynlearn as dl
from agents_speed import matmul_peak, timed_gflops
from dynlearn import models
from dynlearn.agents.base import apply_optimizer
from dynlearn.models import EnsembleConfig, FitConfig

from dynlearn.models import fit_epoch as fit_module

OBS, ACT = 17, 6
PEERS = {"OfflineRL-Kit (PyTorch)": (63, 75), "unifloral (JAX)": (73, 80)}


def synthetic_dataset(rows: int, episode_length: int = 1000, seed: int = 0) -> dl.data.Dataset:
    """A smooth random nonlinear system with HalfCheetah's dimensions (the speed does not depend on the values)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(OBS + ACT, OBS)).astype(np.float32) / np.sqrt(OBS + ACT)
    obs = rng.normal(size=(rows, OBS)).astype(np.float32)
    act = rng.uniform(-1, 1, (rows, ACT)).astype(np.float32)
    nxt = obs + 0.1 * np.tanh(np.concatenate([obs, act], 1) @ w) + 0.01 * rng.normal(size=(rows, OBS)).astype(np.float32)
    timeout = np.zeros(rows, bool)
    timeout[episode_length - 1::episode_length] = True
    return dl.data.from_arrays(obs=obs, act=act, next_obs=nxt, rew=rng.normal(size=rows).astype(np.float32),
                               terminal=np.zeros(rows, bool), timeout=timeout, name="synthetic-halfcheetah-dims")


def flops_per_step(cfg: EnsembleConfig, batch: int) -> float:
    sizes = (OBS + ACT, *cfg.hidden, 2 * (OBS + 1) + int(cfg.termination_head))
    layers = list(zip(sizes[:-1], sizes[1:]))
    forward = 2 * sum(a * b for a, b in layers)
    train = 3 * forward - 2 * layers[0][0] * layers[0][1]  # no gradient w.r.t. the inputs
    return float(train * cfg.members * batch)


def xla_flops_per_step(cfg: EnsembleConfig, batch: int) -> float | None:
    """XLA's own count of one jitted step (loss, gradient, Adam), as a cross-check."""
    try:
        model = models.ProbabilisticEnsemble.init(cfg, OBS, ACT, key=jax.random.key(0))
        opt = fit_module._adam(1e-3)
        e, t = cfg.members, OBS + 1
        x = jnp.zeros((e, batch, OBS + ACT))
        y, m = jnp.zeros((e, batch, t)), jnp.ones((e, batch, t))
        term = jnp.zeros((e, batch))

        def step(net, opt_state):
            (_, _), grads = jax.value_and_grad(fit_module._loss, has_aux=True)(net, x, y, m, term, cfg)
            return apply_optimizer(opt, net, grads, opt_state)

        cost = jax.jit(step).lower(model.net, opt.init(model.net)).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # best effort across backends
        return None


def ensemble_shape_peak(cfg: EnsembleConfig, batch: int, repeats: int = 5) -> float:
    """GFLOP/s of the batched matmul [E, B, 200] x [E, 200, 200] (the hidden layers' shape)."""
    h = cfg.hidden[1]
    x = jax.random.normal(jax.random.key(0), (cfg.members, batch, h), jnp.float32)
    w = jax.random.normal(jax.random.key(1), (cfg.members, h, h), jnp.float32)
    f = jax.jit(lambda x, w: jnp.einsum("eni,eio->eno", x, w))
    return timed_gflops(f, x, w, 2 * cfg.members * batch * h * h, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="transitions in the dataset (holdout: 10 episodes of 1000)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs to run (the first compiles and is not timed)")
    args = parser.parse_args()

    cfg, fit_cfg = EnsembleConfig(), FitConfig(max_epochs=args.epochs, progress=False)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, load average at start "
          f"{tuple(round(x, 2) for x in os.getloadavg())}")
    peak, sizes = matmul_peak()
    shape_peak = ensemble_shape_peak(cfg, fit_cfg.batch_size)
    print("matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()) + f"  -> peak {peak:.0f}; "
          f"ensemble shape {cfg.members}x{fit_cfg.batch_size}x{cfg.hidden[1]}x{cfg.hidden[1]} {shape_peak:.0f}")
    data = synthetic_dataset(args.rows)
    flops = flops_per_step(cfg, fit_cfg.batch_size)
    xla = xla_flops_per_step(cfg, fit_cfg.batch_size)
    t = time.perf_counter()
    _, report = models.fit(cfg, data, key=jax.random.key(0), cfg=fit_cfg)
    total = time.perf_counter() - t
    steps = report.steps_per_epoch
    rates = [steps / s for s in report.epoch_s[1:]] or [report.steps_per_s]
    best, median = max(rates), statistics.median(rates)
    print(f"ensemble {cfg.members} x ({'x'.join(map(str, cfg.hidden))}) {cfg.activation}, batch {fit_cfg.batch_size} per member, "
          f"HalfCheetah dims (obs {OBS}, act {ACT}); {report.train_size} train rows, {report.holdout_size} holdout rows "
          f"({report.holdout_mode}), {steps} steps per epoch")
    print(f"MFLOP/step {flops / 1e6:.0f} (XLA count {xla / 1e6:.0f})" if xla else f"MFLOP/step {flops / 1e6:.0f}")
    print(f"epoch wall s: {', '.join(f'{s:.1f}' for s in report.epoch_s)} (first includes compilation); fit total {total:.1f} s")
    print(f"steps/s best {best:.1f}, median {median:.1f}; GFLOP/s {flops * best / 1e9:.0f} = {flops * best / 1e9 / peak:.0%} of the "
          f"matmul peak ({flops * best / 1e9 / shape_peak:.0%} of the ensemble-shape matmul)")
    for name, (lo, hi) in PEERS.items():
        print(f"vs {name} {lo}-{hi} steps/s: {best / hi:.2f}x-{best / lo:.2f}x (best), {median / hi:.2f}x-{median / lo:.2f}x (median)")
    print(f"load average at end {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
