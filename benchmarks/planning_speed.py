"""Planning speed: planned actions per second of CEM and MPPI on HalfCheetah dimensions, against the FLOP floor.

Setup (PETS' planner over the MOPO/MBPO model): obs 17, act 6; the standard 7-member ensemble of 4 x 200 Swish layers
with 5 elites and the task's termination function; TS-inf propagation with ``--particles`` particles per candidate.
CEM: ``--population`` candidates x ``--iterations`` refits (PETS: 500 x 5, 50 elites); MPPI: ``--population`` samples,
one update. One planned action is one compiled call of :meth:`dynlearn.planning.MPC.act` for one observation (timed
best of ``--repeats`` after a warm-up call).

FLOPs count the matmuls of the model evaluations, ``2 * in * out`` per row and layer:
``population x particles x horizon x iterations`` rows, each evaluated by its own elite (the elite-block path,
:meth:`~dynlearn.models.ProbabilisticEnsemble.step_elite_blocks`) or by all 7 members (``--particles`` not a multiple of
the 5 elites: the generic path, which evaluates every member on every row and keeps one). The floor is those FLOPs at
the matmul peak measured in the same run (``agents_speed.matmul_peak``); the ratio says how far the planner is from it.

    python benchmarks/planning_speed.py [--horizon 30] [--population 500] [--particles 20] [--iterations 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agents_speed import matmul_peak  # noqa: E402

from dynlearn import models, planning  # noqa: E402

OBS, ACT = 17, 6


def never(obs, act, next_obs):
    return jnp.zeros(next_obs.shape[:-1], bool)


class _Task:
    id, obs_dim, act_dim, termination_fn, reward_fn = "halfcheetah-dims", OBS, ACT, staticmethod(never), None


def row_flops(cfg: models.EnsembleConfig) -> float:
    sizes = (OBS + ACT, *cfg.hidden, 2 * (OBS + 1) + int(cfg.termination_head))
    return float(sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:])))


def time_act(mpc: planning.MPC, repeats: int) -> float:
    obs, state = jnp.zeros((1, OBS)), mpc.init(1)
    act, _ = mpc.act(state, obs, jax.random.key(0))
    act.block_until_ready()
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        act, _ = mpc.act(state, obs, jax.random.key(r + 1))
        act.block_until_ready()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--horizon", type=int, default=30)
    p.add_argument("--population", type=int, default=500)
    p.add_argument("--particles", type=int, default=20)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; load average at start {tuple(round(x, 2) for x in os.getloadavg())}")

    cfg = models.EnsembleConfig()
    model = models.ProbabilisticEnsemble.init(cfg, OBS, ACT, key=jax.random.key(0)).with_task(_Task())
    peak = matmul_peak()[0] * 1e9  # GFLOP/s -> FLOP/s
    per_row = row_flops(cfg)
    bounds = dict(low=-jnp.ones(ACT), high=jnp.ones(ACT))
    planners = {
        "CEM": (planning.CEMConfig(horizon=args.horizon, population=args.population, elites=max(1, args.population // 10),
                                   iterations=args.iterations), args.iterations),
        "MPPI": (planning.MPPIConfig(horizon=args.horizon, samples=args.population), 1),
    }
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s; one model row {per_row / 1e3:.0f} kFLOP per member\n")
    print("| planner | particles | path | model rows per action | s per action | actions/s | FLOP floor (s) | time / floor |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (planner, iterations) in planners.items():
        for particles, path, members in ((args.particles, "elite blocks", cfg.elites), (args.particles + 1, "all members", cfg.members)):
            mpc = planning.MPC(model, planner, objective=planning.ObjectiveConfig(particles=particles), **bounds)
            rows = args.population * particles * args.horizon * iterations
            floor = rows * per_row * (1 if path == "elite blocks" else members) / peak
            s = time_act(mpc, args.repeats)
            print(f"| {name} | {particles} | {path} | {rows:,} | {s:.3f} | {1 / s:.2f} | {floor:.3f} | {s / floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()
