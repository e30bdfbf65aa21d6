"""Measure the reference returns registered for tasks without D4RL constants.

    python benchmarks/reference_returns.py --episodes 100

Random: uniform actions. Expert: the hand-written controllers in dynlearn.tasks.controllers where one
exists (Pendulum-v1 swing-up; InvertedPendulum-v5 balance, whose maximum return is 1000; Reacher-v5 Jacobian-transpose
reaching). Reacher-v5 also gets the zero action (the arm left where it starts).
"""

from __future__ import annotations

import argparse

import numpy as np

import dynlearn as dl
from dynlearn.tasks.controllers import InvertedPendulumBalance, PendulumSwingUp, ReacherReach

EXPERTS = {"Pendulum-v1": PendulumSwingUp, "InvertedPendulum-v5": InvertedPendulumBalance, "Reacher-v5": ReacherReach}
ZERO = ("Reacher-v5",)  # tasks where standing still is a telling baseline (no action cost, a distance to pay)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--tasks", nargs="*", default=["Ant-v5", "InvertedPendulum-v5", "Pendulum-v1", "Reacher-v5"])
    args = parser.parse_args()
    print("| task | policy | episodes | mean return | std |")
    print("|---|---|---|---|---|")
    for task_id in args.tasks:
        task = dl.tasks.get(task_id)
        policies = {"random": dl.tasks.RandomPolicy(task)}
        if task.id in EXPERTS:
            policies["controller"] = EXPERTS[task.id]()
        if task.id in ZERO:
            policies["zero action"] = lambda obs, rng, n=task.act_dim: np.zeros((obs.shape[0], n), np.float32)
        for name, policy in policies.items():
            r = dl.tasks.evaluate(policy, task, args.episodes, key=12345)
            print(f"| {task.id} | {name} | {args.episodes} | {r.mean:.3f} | {r.std:.3f} |", flush=True)


if __name__ == "__main__":
    main()
