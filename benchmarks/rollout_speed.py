"""Model-rollout speed: a 50,000 x 5 rollout on HalfCheetah dimensions, compiled, best of 3 after warm-up.

Setup (the MOPO/MBPO model as OfflineRL-Kit configures it): obs 17, act 6; the standard 7-member ensemble of 4 x 200
Swish layers with 5 elites and a random elite per sample (MOPO); a 2 x 256 tanh-Gaussian policy (SAC's actor,
sampled); penalty hook the max aleatoric std over (delta obs, reward). The whole rollout is one compiled call of
:func:`dynlearn.rollout.rollout` (``lax.scan`` over the 5 steps). ``--members elites`` (default) evaluates only the
5 elites (:func:`dynlearn.rollout.elite_view`: 5/7 of an all-member rollout's FLOPs, what RAVL and MBPO do);
``--members all`` reads the penalty over all 7 members as MOPO's code does (our MOPO's default).

FLOPs count the matmuls (``2 * in * out`` per row and layer): ensemble ``elites x (23*200 + 3*200*200 + 200*37)``
and policy ``17*256 + 256*256 + 256*12`` per row and step; XLA's own count of the compiled program is printed
as a cross-check. The matmul peak is measured in the same run (``agents_speed.matmul_peak``).

Peers on this 2-core machine type: OfflineRL-Kit (PyTorch) 10.6 s; a pure-JAX probe 3.5 s (all 7 members;
its FLOP floor ~2.2 s); unifloral (JAX, elites only) 4.1 s. The machine is shared: the load average is printed.

    python benchmarks/rollout_speed.py [--batch 50000] [--horizon 5] [--repeats 3] [--members elites|all]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agents_speed import matmul_peak  # noqa: E402

from dynlearn import models, penalties  # noqa: E402
from dynlearn.agents.networks import TanhGaussianPolicy  # noqa: E402
from dynlearn.rollout import Penalty, RolloutHooks, _rollout, rollout  # noqa: E402

OBS, ACT = 17, 6
PEERS = {"OfflineRL-Kit (PyTorch)": 10.6, "pure-JAX probe (all 7 members)": 3.5, "unifloral (JAX, elites)": 4.1}


class SampledPolicy(eqx.Module):
    actor: TanhGaussianPolicy

    def __call__(self, obs, *, key):
        return self.actor.sample(obs, key=key)[0]


def never(obs, act, next_obs):
    return jnp.zeros(next_obs.shape[:-1], bool)


class _Task:
    id, obs_dim, act_dim, termination_fn, reward_fn = "halfcheetah-dims", OBS, ACT, staticmethod(never), None


def matmul_flops(cfg: models.EnsembleConfig, batch: int, horizon: int, members: int) -> float:
    sizes = (OBS + ACT, *cfg.hidden, 2 * (OBS + 1) + int(cfg.termination_head))
    ensemble = members * sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    policy = 2 * (OBS * 256 + 256 * 256 + 256 * 2 * ACT)
    return float((ensemble + policy) * batch * horizon)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", choices=("elites", "all"), default="elites", help="members the penalty reads (MOPO: all)")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; load average at start "
          f"{tuple(round(x, 2) for x in os.getloadavg())}")

    cfg = models.EnsembleConfig()
    k_model, k_pol, k_obs, k_run = jax.random.split(jax.random.key(0), 4)
    model = models.ProbabilisticEnsemble.init(cfg, OBS, ACT, key=k_model).with_task(_Task())
    policy = SampledPolicy(TanhGaussianPolicy(OBS, ACT, (256, 256), log_std_min=-5.0, log_std_max=2.0, key=k_pol))
    start = jax.random.normal(k_obs, (args.batch, OBS), jnp.float32)
    hooks = RolloutHooks(penalty=Penalty(penalties.max_aleatoric, coef=1.0, part="all", members=args.members))

    t = time.perf_counter()
    jax.block_until_ready(rollout(model, policy, start, args.horizon, key=k_run, hooks=hooks))
    print(f"warm-up (compile + run): {time.perf_counter() - t:.2f} s")
    times = []
    for i in range(args.repeats):
        t = time.perf_counter()
        ro = jax.block_until_ready(rollout(model, policy, start, args.horizon, key=jax.random.fold_in(k_run, i), hooks=hooks))
        times.append(time.perf_counter() - t)
    best = min(times)

    evaluated = cfg.elites if args.members == "elites" else cfg.members
    flops = matmul_flops(cfg, args.batch, args.horizon, evaluated)
    xla = None
    try:
        dyn, static = eqx.partition((model, policy, hooks), eqx.is_array)

        def whole(dyn, start, key):  # the same traced program, through jax.jit so it can be lowered
            m, p, h = eqx.combine(dyn, static)
            return _rollout(m, p, start, args.horizon, key, None, h)

        cost = jax.jit(whole).lower(dyn, start, k_run).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        xla = float(cost["flops"])
    except Exception as e:  # best effort across versions
        print(f"(XLA cost analysis unavailable: {type(e).__name__})")
    peak, peaks = matmul_peak()

    print(f"rollout {args.batch} x {args.horizon}: best {best:.2f} s of {[round(x, 2) for x in times]} "
          f"({args.batch * args.horizon / best / 1e3:.0f}k model steps/s); valid rows {int(ro.valid.sum())}")
    print(f"matmul FLOPs {flops / 1e9:.0f} GFLOP ({evaluated} members + policy) -> {flops / best / 1e9:.0f} GFLOP/s; "
          f"XLA count {'n/a' if xla is None else f'{xla * args.horizon / 1e9:.0f} GFLOP (its scan body, counted once, x horizon)'}")
    print(f"matmul peak {peak:.0f} GFLOP/s ({', '.join(f'{k}: {v:.0f}' for k, v in peaks.items())}); "
          f"fraction of peak {flops / best / 1e9 / peak:.2f}; FLOP floor at peak {flops / peak / 1e9:.2f} s")
    for name, s in PEERS.items():
        print(f"  vs {name}: {s:.1f} s -> {s / best:.2f}x")
    print(f"load average at end {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
