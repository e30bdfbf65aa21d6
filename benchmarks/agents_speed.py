"""Agent update speed on HalfCheetah dimensions (obs 17, act 6, batch 256, the papers' 256x256 networks).

Updates run in ``update_block`` scans of ``--steps`` updates after a warm-up compile of the same
block; we report the best and the median of ``--repeats`` blocks. FLOPs per update count the matmuls
(2 * in * out per row and layer) of every network touched: a forward pass 1x, a training
forward+backward 3x, a forward+backward to the *input* only (a critic inside the actor loss) 2x.
The machine's matmul peak is measured in the same run (best of several jitted f32 matmuls).
XLA's own count (``cost_analysis`` of one jitted update) is printed as a cross-check; for TD3+BC it
counts both branches of the delayed actor update on every step. Agents above 2 GFLOP per update
(CQL) run blocks of ``--steps / 10``.

Reference: OfflineRL-Kit's PyTorch SAC runs about 120 updates/s on a 2-core machine of this kind
(``benchmarks/peers/`` runs it); the target for our SAC is >= 1.3x that.

``--parallel-seeds N`` also times N seeds trained together (states stacked, one ``vmap``-ed block: what
``dynlearn train --parallel-seeds`` runs) against the same N seeds one block after another, in the same process,
and prints the ratio of seed-updates per second (together / in turn).

    python benchmarks/agents_speed.py [--steps 1000] [--repeats 5] [--agents sac,td3bc,iql[,edac,cql,bc]] [--parallel-seeds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dynlearn import agents
from dynlearn.agents import AgentSpec
from dynlearn.agents.base import state_of
from dynlearn.data.transitions import Transitions

OBS, ACT, BATCH, ROWS = 17, 6, 256, 100_000
KIT_SAC_UPDATES_PER_S = 120.0


def mlp_flops(sizes) -> int:
    """Matmul FLOPs of one forward pass of one row."""
    return 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_per_update(name: str, cfg) -> float:
    h = cfg.hidden
    critic = mlp_flops((OBS + ACT, *h, 1))
    if name == "sac":
        actor = mlp_flops((OBS, *h, 2 * ACT))
        n = cfg.n_critics
        # actor on s' (1x) and trained on s (3x); critics: targets (1x), trained (3x), in the actor loss (2x)
        per_row = 4 * actor + n * critic * (1 + 3 + 2)
    elif name == "td3bc":
        actor = mlp_flops((OBS, *h, ACT))
        n = cfg.n_critics
        every_step = actor + n * critic + 3 * n * critic  # target actor, target critics, trained critics
        actor_step = 3 * actor + 2 * critic  # trained actor through critic 0 (input gradient only)
        per_row = every_step + actor_step / cfg.policy_delay
    elif name == "iql":
        actor = mlp_flops((OBS, *h, ACT))
        value = mlp_flops((OBS, *h, 1))
        n = cfg.n_critics
        # target critics at data actions (1x), value trained (3x) then on s and s' (2 rows x 1x),
        # actor trained (3x), critics trained (3x)
        per_row = n * critic + 3 * value + 2 * value + 3 * actor + 3 * n * critic
    elif name == "edac":
        actor = mlp_flops((OBS, *h, 2 * ACT))
        n = cfg.n_critics
        # SAC's count, but the trained critics also give their action gradients (input backward 1x)
        # and are differentiated through those for the parameters (about 2x more): 6x instead of 3x
        per_row = 4 * actor + n * critic * (1 + 2 + (6 if cfg.eta > 0 else 3))
    elif name == "cql":
        actor = mlp_flops((OBS, *h, 2 * ACT))
        n, r = cfg.n_critics, cfg.num_repeat_actions
        # actor trained (3x), sampled at s' for the target (1x) and r times at s and at s' (2r x 1x);
        # critics in the actor loss (2x), targets (1x), trained on the data row (3x) and on the 3r proposals (3x each)
        per_row = actor * (3 + 1 + 2 * r) + n * critic * (2 + 1 + 3 + 9 * r)
    elif name == "bc":
        per_row = 3 * mlp_flops((OBS, *h, ACT))
    else:
        raise ValueError(name)
    return per_row * cfg.batch_size


def timed_gflops(f, x, w, flops: float, repeats: int = 5) -> float:
    """Best GFLOP/s of the jitted ``f(x, w)`` doing ``flops`` per call (compiled first, ~4 GFLOP per timing)."""
    f(x, w).block_until_ready()
    reps = max(1, int(4e9 / flops))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(reps):
            y = f(x, w)
        y.block_until_ready()
        best = min(best, (time.perf_counter() - t) / reps)
    return flops / best / 1e9


def matmul_peak(repeats: int = 5) -> tuple[float, dict]:
    """Best GFLOP/s of jitted f32 matmuls of several sizes."""
    results = {}
    for b, m, k, n in [(8, 256, 256, 256), (1, 512, 512, 512), (1, 1024, 1024, 1024), (4, 1024, 1024, 1024)]:
        x = jax.random.normal(jax.random.key(0), (b, m, k), jnp.float32)
        w = jax.random.normal(jax.random.key(1), (b, k, n), jnp.float32)
        f = jax.jit(lambda x, w: jnp.einsum("bmk,bkn->bmn", x, w))
        results[f"{b}x{m}x{k}x{n}"] = timed_gflops(f, x, w, 2 * b * m * k * n, repeats)
    return max(results.values()), results


def make_data(seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    return Transitions(
        obs=rng.normal(size=(ROWS, OBS)).astype(np.float32),
        act=rng.uniform(-1, 1, (ROWS, ACT)).astype(np.float32),
        rew=rng.normal(size=ROWS).astype(np.float32),
        next_obs=rng.normal(size=(ROWS, OBS)).astype(np.float32),
        terminal=rng.random(ROWS) < 0.01, timeout=np.zeros(ROWS, bool), next_obs_valid=np.ones(ROWS, bool),
    ).to_device()


def xla_flops(agent, state, data) -> float | None:
    """XLA's own FLOP count of one jitted update (a cross-check of the matmul count; includes elementwise ops)."""
    batch = jax.tree_util.tree_map(lambda x: x[:BATCH], data)
    try:
        compiled = jax.jit(lambda s, b, k: agent.update(s, b, key=k)).lower(state, batch, jax.random.key(0)).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # cost analysis is best effort across backends
        return None


def bench_agent(name: str, data: Transitions, steps: int, repeats: int) -> dict:
    agent = agents.get(name)
    cfg = agent.Config()
    if flops_per_update(name, cfg) > 2e9:
        steps = max(10, steps // 10)
    spec = AgentSpec(OBS, ACT, (-1.0,) * ACT, (1.0,) * ACT)
    state = agent.init(jax.random.key(0), spec, cfg)
    t = time.perf_counter()
    state, info = agent.update_block(state, data, key=jax.random.key(1), steps=steps)
    jax.block_until_ready(state)
    compile_and_first = time.perf_counter() - t
    rates = []
    for i, key in enumerate(jax.random.split(jax.random.key(2), repeats)):
        t = time.perf_counter()
        state, info = agent.update_block(state, data, key=key, steps=steps)
        jax.block_until_ready((state, info))
        rates.append(steps / (time.perf_counter() - t))
    return {"name": name, "cfg": cfg, "steps": steps, "rates": rates, "first_block_s": compile_and_first,
            "flops": flops_per_update(name, cfg), "xla_flops": xla_flops(agent, state, data),
            "finite": all(bool(jnp.isfinite(v)) for v in info.values())}


def bench_parallel_seeds(name: str, data: Transitions, steps: int, repeats: int, seeds: int) -> tuple[float, float]:
    """Seed-updates per second (best of ``repeats``) of ``seeds`` seeds in turn and together (vmapped)."""
    agent = agents.get(name)
    cfg = agent.Config()
    if flops_per_update(name, cfg) > 2e9:
        steps = max(10, steps // 10)
    spec = AgentSpec(OBS, ACT, (-1.0,) * ACT, (1.0,) * ACT)
    keys = jax.random.split(jax.random.key(0), seeds)
    stacked = eqx.filter_vmap(agent.init, in_axes=(0, None, None))(keys, spec, cfg)
    together = eqx.filter_jit(eqx.filter_vmap(lambda st, k, d: agent.update_block(st, d, key=k, steps=steps), in_axes=(0, 0, None)))
    in_turn = eqx.filter_jit(lambda st, k, d: agent.update_block(st, d, key=k, steps=steps))
    singles = [state_of(stacked, i) for i in range(seeds)]
    jax.block_until_ready(together(stacked, keys, data))  # compile both
    jax.block_until_ready(in_turn(singles[0], keys[0], data))
    rate_turn = rate_together = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(seeds):
            singles[i], _ = in_turn(singles[i], keys[i], data)
        jax.block_until_ready(singles)
        rate_turn = max(rate_turn, seeds * steps / (time.perf_counter() - t))
        t = time.perf_counter()
        stacked, _ = together(stacked, keys, data)
        jax.block_until_ready(stacked)
        rate_together = max(rate_together, seeds * steps / (time.perf_counter() - t))
    return rate_turn, rate_together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="updates per update_block scan")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per agent")
    parser.add_argument("--agents", default="sac,td3bc,iql", help="comma-separated agent names (also edac, cql, bc)")
    parser.add_argument("--parallel-seeds", type=int, default=0, help="also time this many seeds together vs in turn")
    args = parser.parse_args()

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print(f"HalfCheetah dims: obs {OBS}, act {ACT}, batch {BATCH}, {ROWS} rows on device; "
          f"blocks of {args.steps} updates, best and median of {args.repeats}")
    peak, sizes = matmul_peak()
    print("matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()) + f"  -> peak {peak:.0f}")
    data = make_data()
    print(f"{'agent':7s} {'hidden':>11s} {'block':>5s} {'MFLOP/upd':>9s} {'XLA MFLOP':>9s} {'upd/s best':>10s} {'median':>7s} "
          f"{'GFLOP/s':>8s} {'of peak':>7s} {'1st block s':>11s}")
    results = []
    for name in args.agents.split(","):
        r = bench_agent(name.strip(), data, args.steps, args.repeats)
        results.append(r)
        best, median = max(r["rates"]), statistics.median(r["rates"])
        gflops = r["flops"] * best / 1e9
        xla = f"{r['xla_flops'] / 1e6:9.0f}" if r["xla_flops"] else f"{'n/a':>9s}"
        hidden = "x".join(map(str, r["cfg"].hidden))
        print(f"{r['name']:7s} {hidden:>11s} {r['steps']:5d} {r['flops'] / 1e6:9.0f} {xla} {best:10.1f} {median:7.1f} "
              f"{gflops:8.1f} {gflops / peak:7.0%} {r['first_block_s']:11.1f}" + ("" if r["finite"] else "  NON-FINITE INFO"))
    for r in results:
        if r["name"] == "sac":
            best, median = max(r["rates"]), statistics.median(r["rates"])
            print(f"SAC vs OfflineRL-Kit PyTorch SAC ({KIT_SAC_UPDATES_PER_S:.0f} updates/s): "
                  f"{best / KIT_SAC_UPDATES_PER_S:.2f}x best, {median / KIT_SAC_UPDATES_PER_S:.2f}x median "
                  f"(target >= 1.30x)")
    if args.parallel_seeds > 1:
        print(f"{args.parallel_seeds} seeds together (stacked, one vmapped block) vs in turn, seed-updates/s, best of {args.repeats}:")
        for name in args.agents.split(","):
            turn, together = bench_parallel_seeds(name.strip(), data, args.steps, args.repeats, args.parallel_seeds)
            print(f"  {name.strip():7s} in turn {turn:8.1f}  together {together:8.1f}  together / in turn {together / turn:.2f}x")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
