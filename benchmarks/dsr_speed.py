"""DSR training speed: iterations/s of ``dl.dsr.fit_dsr`` for the GTF paper's Lorenz-63 model, vs the matmul peak.

Model and batch as in Hess et al. 2023 (arXiv 2306.04406, GTF-shPLRNN ``settings/defaults.json``): clipped shPLRNN
M = 3, H = 100, batches of 16 sequences of T = 200 steps, RAdam. Three forcing modes run through the real code path
(``fit_dsr``: batch sampling, forced rollout, gradient, RAdam, all in compiled blocks): constant-alpha GTF, adaptive
GTF (alpha re-estimated every 5 iterations) and sparse TF (tau = 16). We report the best and the median block after
the first (compiling) one.

FLOPs per iteration count the matmuls: per time step and sequence the forward pass does ``W2 z`` (2 H M) and
``W1 h`` (2 M H); training adds the input and weight gradients of both (2x more), so 12 M H B T per iteration
(11.5 MFLOP at the paper's sizes). aGTF adds, every 5th iteration, the Jacobians at the B T data states (2 H M^2 each):
+1.15 MFLOP per iteration on average; it is left out of the count (the rate shows its cost). The machine's matmul peak
is measured in the same run (``agents_speed.matmul_peak``).

The recurrence is sequential: an iteration is 200 dependent steps forward and 200 backward on [16 x 3] x [3 x 100]
matrices, far too small for the matmul units, so the rate is bound by per-step latency, not FLOPs. The script also
times a forward-only free run of the same batch (200 steps) to show that floor. The machine is shared: the load
average is printed at start and end.

    python benchmarks/dsr_speed.py [--iterations 3000] [--block 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from agents_speed import matmul_peak

from dynlearn import dsr
from dynlearn.data import systems


def flops_per_iteration(m: int, h: int, batch: int, seq_len: int) -> float:
    """Matmul FLOPs of one training iteration: 3 x (2 H M + 2 M H) per step and sequence."""
    return float(12 * m * h * batch * seq_len)


def free_run_step_us(model, x0: jax.Array, steps: int, repeats: int = 20) -> float:
    """Microseconds per step of a jitted batched free run (forward only): the sequential latency floor."""
    run = jax.jit(jax.vmap(lambda x: model.generate(steps, x0=x)))
    run(x0).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run(x0).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return best / (steps - 1) * 1e6


def load_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {os.getloadavg()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000, help="iterations per forcing mode (a multiple of --block)")
    parser.add_argument("--block", type=int, default=500, help="iterations per compiled block (the first block compiles)")
    parser.add_argument("--hidden", type=int, default=100, help="shPLRNN hidden width H")
    parser.add_argument("--latent", type=int, default=3, help="latent dimension M")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=200)
    parser.add_argument("--modes", default="gtf,adaptive,sparse", help="comma-separated forcing modes")
    args = parser.parse_args()

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; at start: {load_line()}")
    peak, sizes = matmul_peak()
    print("matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()) + f"  -> peak {peak:.0f}")
    x = np.asarray(systems.simulate(systems.Lorenz63(), 100_000, 0.01, key=jax.random.key(0), standardize=True).values[0])
    flops = flops_per_iteration(args.latent, args.hidden, args.batch, args.seq_len)
    print(f"clipped shPLRNN M {args.latent}, H {args.hidden} ({2 * args.latent * args.hidden + 2 * args.latent + args.hidden} "
          f"parameters), batch {args.batch} x T {args.seq_len}; Lorenz-63 (Tsit5) dt 0.01, {len(x)} points; "
          f"{flops / 1e6:.2f} MFLOP (matmuls) per iteration")

    for mode in args.modes.split(","):
        cfg = dsr.FitDSRConfig.preset("lorenz63-shplrnn", latent_dim=args.latent, hidden_dim=args.hidden, batch_size=args.batch,
                                      seq_len=args.seq_len, iterations=args.iterations, block=args.block, forcing=mode,
                                      alpha=1.0 if mode == "adaptive" else 0.1)
        _, report = dsr.fit_dsr(x, cfg, key=jax.random.key(0), progress=False)
        rates = [args.block / s for s in report.block_s[1:]] or [report.iterations_per_s]
        best, median = max(rates), statistics.median(rates)
        step_us = 1e6 / best / (2 * args.seq_len)
        print(f"{mode:9s} it/s best {best:7.1f}, median {median:7.1f} (first block incl. compile {report.first_block_s:.1f} s); "
              f"GFLOP/s {flops * best / 1e9:.2f} = {flops * best / 1e9 / peak:.2%} of the matmul peak; "
              f"{step_us:.1f} us per sequential step (forward or backward)")

    model = dsr.ShallowPLRNN.init(args.latent, args.latent, args.hidden, key=jax.random.key(0))
    x0 = jnp.asarray(x[: args.batch])
    print(f"forward-only free run of the batch: {free_run_step_us(model, x0, args.seq_len + 1):.1f} us per step "
          f"(the sequential latency floor)")
    print(f"at end: {load_line()}")


if __name__ == "__main__":
    main()
