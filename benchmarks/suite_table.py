"""Generate the suite's datasets for a task and tabulate them (size, episodes, behaviour return, normalized score).

    python benchmarks/suite_table.py --task hopper

Datasets are generated from the kept policies (``dynlearn/tasks/suite_policies/<task>/``) into the cache
(``$DYNLEARN_DATA_DIR``, default ``~/.cache/dynlearn/datasets``) on first use, then read back from it.
"""

from __future__ import annotations

import argparse
import time

import dynlearn as dl
from dynlearn.tasks import suite


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="hopper")
    args = parser.parse_args()
    task = dl.tasks.get(suite.TASKS[args.task])
    print("| dataset | transitions | episodes | behaviour return (mean ± std) | normalized score | generation s |")
    print("|---|---|---|---|---|---|")
    for tier in suite.TIERS:
        name = f"{args.task}-{tier}-v5"
        start = time.perf_counter()
        data = dl.data.load(name)
        elapsed = time.perf_counter() - start
        s = dl.data.summarize(data, task)
        print(f"| {name} | {s.transitions:,} | {s.episodes:,} | {s.returns['mean']:.1f} ± {s.returns['std']:.1f} | "
              f"{s.normalized_returns['mean']:.1f} | {elapsed:.0f} |", flush=True)


if __name__ == "__main__":
    main()
