"""Online MBPO, COPlanner and model-free SAC at equal real steps in one task, seeds in turn.

    python benchmarks/mbpo_online.py run --task InvertedPendulum-v5 --steps 10000 --seeds 0 1 2 [--runs runs/mbpo_online]
    python benchmarks/mbpo_online.py report --task InvertedPendulum-v5 --steps 10000 [--runs runs/mbpo_online]

MBPO (``dynlearn.algos.mbpo_online``) and COPlanner (``dynlearn.algos.coplanner``) run their CPU preset (the default
configs: 500 random steps, a 7/5 ensemble of 3 x 200 refitted every 250 real steps for at most 20 epochs, 5,000 branched
rollouts per refit, 5 SAC updates per real step, 5% real rows per batch; COPlanner adds UP-MPC with the reference's 5
candidates, horizon 5, rates 2 and 1); SAC (``dynlearn.algos.online``) the same random steps, then one update per real
step. Every run writes its own folder ``RUNS/<method>-<task>-<steps>/seed_K`` with ``results.json`` (schema
``dynlearn.results/1``: the final deterministic policy's return); a stopped ``run`` continues where it was. ``run`` also
records each run's CPU seconds (``cpu.json``, this process's time, so the compiles are included): on a shared machine the
wall time says little. ``report`` prints the table: final return (mean ± std over seeds), the evaluation at each
``--every`` steps, and CPU and wall seconds per 10,000 real steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dynlearn import agents
from dynlearn.algos.coplanner import COPlannerConfig
from dynlearn.algos.mbpo_online import MBPOOnlineConfig, train_mbpo_online
from dynlearn.algos.online import OnlineConfig, train_online

METHODS = ("mbpo", "coplanner", "sac")


def _folder(runs: Path, method: str, task: str, steps: int, seed: int) -> Path:
    return runs / f"{method}-{task}-{steps}" / f"seed_{seed}"


def _train(method: str, task: str, steps: int, seed: int, out: Path, eval_every: int, start_steps: int) -> None:
    resume = (out / "config.json").is_file()
    if method in ("mbpo", "coplanner"):
        cls = MBPOOnlineConfig if method == "mbpo" else COPlannerConfig
        cfg = cls(task=task, steps=steps, seed=seed, start_steps=start_steps, eval_every=eval_every,
                  checkpoint_every=max(eval_every, 1_000))
        train_mbpo_online(cfg, out, resume=resume)
    else:
        cfg = OnlineConfig(task=task, steps=steps, seed=seed, start_steps=start_steps, update_every=50, eval_every=eval_every,
                           eval_episodes=5, snapshot_every=0, checkpoint_every=max(eval_every, 1_000))
        train_online(cfg, out, agent_config=agents.get("sac").Config(), resume=resume)


def run(args) -> None:
    for seed in args.seeds:
        for method in args.methods:
            out = _folder(args.runs, method, args.task, args.steps, seed)
            if (out / "results.json").is_file():
                continue
            spent = json.loads((out / "cpu.json").read_text())["cpu_s"] if (out / "cpu.json").is_file() else 0.0
            started = time.process_time()
            try:
                _train(method, args.task, args.steps, seed, out, args.every, args.start_steps)
            finally:
                if out.is_dir():
                    (out / "cpu.json").write_text(json.dumps({"cpu_s": spent + time.process_time() - started}) + "\n")


def _evals(out: Path) -> dict[int, float]:
    return {e["step"]: e["return_mean"] for e in json.loads((out / "evals.json").read_text())["evals"]}


def report(args) -> None:
    rows, grid = [], list(range(args.every, args.steps + 1, args.every))
    print(f"{args.task}, {args.steps:,} real steps: the final deterministic policy's return (mean ± std over seeds), "
          f"evaluations (mean over seeds) every {args.every:,} steps, time per 10,000 real steps\n")
    head = " | ".join(f"{s:,}" for s in grid)
    print(f"| method | seeds | final return | {head} | CPU s / 10k | wall s / 10k |\n|---|---|---|{'---|' * len(grid)}---|---|")
    for method in args.methods:
        folders = sorted((args.runs / f"{method}-{args.task}-{args.steps}").glob("seed_*/results.json"))
        if not folders:
            continue
        results = [json.loads(f.read_text()) for f in folders]
        final = np.array([r["scores"]["per_seed"][0]["return_mean"] for r in results])
        curves = [_evals(f.parent) for f in folders]
        cells = [f"{np.mean([c[s] for c in curves if s in c]):.0f}" if any(s in c for c in curves) else "" for s in grid]
        cpu = [json.loads((f.parent / "cpu.json").read_text())["cpu_s"] for f in folders if (f.parent / "cpu.json").is_file()]
        per = 10_000 / args.steps
        cpu_cell = f"{np.mean(cpu) * per:,.0f}" if cpu else ""
        wall = np.mean([r["wall_time_s"] for r in results]) * per
        print(f"| {method} | {len(results)} | {final.mean():.1f} ± {final.std():.1f} | {' | '.join(cells)} | {cpu_cell} | {wall:,.0f} |")
        rows.append({"method": method, "final": final.tolist(), "curves": curves, "cpu_s": cpu})
    if not rows:
        raise SystemExit(f"no finished run under {args.runs} for {args.task} at {args.steps} steps")
    print("\nMBPO and COPlanner take 5 SAC updates per real step, SAC 1: equal real steps, not equal computation.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--task", default="InvertedPendulum-v5")
        p.add_argument("--steps", type=int, default=10_000)
        p.add_argument("--every", type=int, default=1_000, help="evaluation interval (a multiple of 50)")
        p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
        p.add_argument("--runs", type=Path, default=Path("runs/mbpo_online"))
        if name == "run":
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument("--start-steps", type=int, default=500, help="uniformly random steps first (a multiple of 50)")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
