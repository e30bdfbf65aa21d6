"""Data-collection throughput: dynlearn's ``collect`` against a bare Gymnasium step loop in the same process.

    python benchmarks/collect_speed.py --steps 20000

Rows: environment steps per second for
- ``bare``: ``env.step`` with pre-drawn random actions in a plain Python loop (the floor any collector pays),
- ``collect random``: ``dl.tasks.collect`` with a random policy and 8 environments (recording obs, qpos, qvel, ...),
- ``collect mlp``: the same with a jitted 2x256 tanh-MLP policy (a typical SAC actor) batched over the 8 environments.
The ratio column is each row's throughput divided by ``bare`` (machines are shared; ratios are what to compare).
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import numpy as np

import dynlearn as dl


def bare_loop(task, steps: int, seed: int) -> float:
    env = task.make()
    rng = np.random.default_rng(seed)
    actions = rng.uniform(task.act_low, task.act_high, (steps, task.act_dim)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i])
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def mlp_policy(task, key):
    mlp = eqx.nn.MLP(task.obs_dim, task.act_dim, 256, 2, activation=jax.nn.relu, final_activation=jax.nn.tanh, key=key)
    forward = jax.jit(lambda obs, *, key: jax.vmap(mlp)(obs))
    forward(np.zeros((8, task.obs_dim), np.float32), key=key)
    return dl.tasks.JaxPolicy(forward)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--tasks", nargs="*", default=["Hopper-v5", "HalfCheetah-v5", "Pendulum-v1"])
    args = parser.parse_args()
    print("| task | runner | steps/s | ratio to bare |")
    print("|---|---|---|---|")
    for task_id in args.tasks:
        task = dl.tasks.get(task_id)
        bare = bare_loop(task, args.steps, 0)
        print(f"| {task.id} | bare env.step loop | {bare:,.0f} | 1.00 |", flush=True)
        for name, policy in (("collect random, 8 envs", dl.tasks.RandomPolicy(task)),
                             ("collect mlp 2x256, 8 envs", mlp_policy(task, jax.random.key(0)))):
            start = time.perf_counter()
            dl.tasks.collect(task, policy, steps=args.steps, seed=0, num_envs=8)
            rate = args.steps / (time.perf_counter() - start)
            print(f"| {task.id} | {name} | {rate:,.0f} | {rate / bare:.2f} |", flush=True)


if __name__ == "__main__":
    main()
