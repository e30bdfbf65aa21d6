"""Agreement of each task's termination (and reward) function with Gymnasium v5, on real transitions.

    python benchmarks/termination_agreement.py --steps 20000

For each task: collect ``--steps`` transitions with a uniform-random policy (Hopper, Walker2d and the
pendulum fall often, so terminal transitions are well represented), then compare
``task.termination_fn(obs, act, next_obs)`` with the environment's ``terminated`` flag on every row,
and ``task.reward_fn`` with the reward where the task declares one.
"""

from __future__ import annotations

import argparse

import numpy as np

import dynlearn as dl


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5",
                                                       "InvertedPendulum-v5", "Pendulum-v1"])
    args = parser.parse_args()
    print("| task | transitions | env terminals | predicted terminals | disagreements | agreement | reward fn max abs error |")
    print("|---|---|---|---|---|---|---|")
    for task_id in args.tasks:
        task = dl.tasks.get(task_id)
        t = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=args.steps, seed=args.seed).transitions
        pred = np.asarray(task.termination_fn(t.obs, t.act, t.next_obs))
        disagree = int((pred != t.terminal).sum())
        reward = "n/a (learned)"
        if task.reward_fn is not None:
            reward = f"{float(np.abs(np.asarray(task.reward_fn(t.obs, t.act, t.next_obs)) - t.rew).max()):.2e}"
        print(f"| {task.id} | {len(t):,} | {int(t.terminal.sum()):,} | {int(pred.sum()):,} | {disagree} | "
              f"{100 * (1 - disagree / len(t)):.3f}% | {reward} |", flush=True)


if __name__ == "__main__":
    main()
