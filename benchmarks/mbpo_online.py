"""Online MBPO, COPlanner and model-free SAC at equal real steps in one task, seeds in turn.

    python benchmarks/mbpo_online.py run --task InvertedPendulum-v5 --steps 10000 --seeds 0 1 2 [--runs runs/mbpo_online]
    python benchmarks/mbpo_online.py report --task InvertedPendulum-v5 --steps 10000 [--runs runs/mbpo_online] [--save]
        [--figure benchmarks/figures/mbpo_online_invertedpendulum.png]

MBPO (``dynlearn.algos.mbpo_online``) and COPlanner (``dynlearn.algos.coplanner``) run their CPU preset (the default
configs: 500 random steps, a 7/5 ensemble of 3 x 200 refitted every 250 real steps for at most 20 epochs, 5,000 branched
rollouts per refit, 5 SAC updates per real step, 5% real rows per batch; COPlanner adds UP-MPC with the reference's 5
candidates, horizon 5, rates 2 and 1); SAC (``dynlearn.algos.online``) the same random steps, then one update per real
step. Every run writes its own folder ``RUNS/<method>-<task>-<steps>/seed_K`` with ``results.json`` (schema
``dynlearn.results/1``: the final deterministic policy's return); a stopped ``run`` continues where it was. ``run`` also
records each run's CPU seconds (``cpu.json``, this process's time, so the compiles are included): on a shared machine the
wall time says little. ``report`` prints the table: final return (mean ± std over seeds), the evaluation at each
``--every`` steps, and CPU and wall seconds per 10,000 real steps; then each pair of methods compared over the seeds
both finished (Welch's test and a 95% bootstrap interval of the difference of means) on the final return and on the
mean of the last ``--last`` evaluations (less noisy than one evaluation). ``--save`` writes the table's numbers to
``benchmarks/results/planning/mbpo-online-<task>-<steps>.json``; ``--figure`` draws the learning curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dynlearn import agents
from dynlearn.algos.coplanner import COPlannerConfig
from dynlearn.algos.mbpo_online import MBPOOnlineConfig, train_mbpo_online
from dynlearn.algos.online import OnlineConfig, train_online
from dynlearn.stats import bootstrap_diff, welch

from _online import cpu_time, curves_figure  # benchmarks/_online.py

METHODS = ("mbpo", "coplanner", "sac")
RESULTS = Path(__file__).parent / "results" / "planning"


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
            with cpu_time(out):
                _train(method, args.task, args.steps, seed, out, args.every, args.start_steps)


def _evals(out: Path) -> dict[int, float]:
    return {e["step"]: e["return_mean"] for e in json.loads((out / "evals.json").read_text())["evals"]}


def report(args) -> None:
    grid = list(range(args.every, args.steps + 1, args.every))
    print(f"{args.task}, {args.steps:,} real steps: the final deterministic policy's return (mean ± std over seeds), "
          f"evaluations (mean over seeds) every {args.every:,} steps, time per 10,000 real steps\n")
    head = " | ".join(f"{s // 1000}k" for s in grid)
    print(f"| method | seeds | final return | last {args.last} evaluations | {head} | CPU s / 10k | wall s / 10k |\n"
          f"|---|---|---|---|{'---|' * len(grid)}---|---|")
    found = {}
    for method in args.methods:
        folders = sorted((args.runs / f"{method}-{args.task}-{args.steps}").glob("seed_*/results.json"))
        if not folders:
            continue
        results = [json.loads(f.read_text()) for f in folders]
        seeds = [r["scores"]["per_seed"][0]["seed"] for r in results]
        final = np.array([r["scores"]["per_seed"][0]["return_mean"] for r in results])
        curves = [_evals(f.parent) for f in folders]
        last = np.array([np.mean([c[s] for s in grid[-args.last:] if s in c]) for c in curves])
        cells = [f"{np.mean([c[s] for c in curves if s in c]):.0f}" if any(s in c for c in curves) else "" for s in grid]
        cpu = [json.loads((f.parent / "cpu.json").read_text())["cpu_s"] for f in folders if (f.parent / "cpu.json").is_file()]
        per = 10_000 / args.steps
        cpu_cell = f"{np.mean(cpu) * per:,.0f}" if cpu else ""
        wall = np.mean([r["wall_time_s"] for r in results]) * per
        print(f"| {method} | {len(results)} | {final.mean():.0f} ± {final.std():.0f} | {last.mean():.0f} ± {last.std():.0f} | "
              f"{' | '.join(cells)} | {cpu_cell} | {wall:,.0f} |")
        found[method] = {"seeds": seeds, "final": final.tolist(), "last": last.tolist(),
                         "curves": [{str(k): v for k, v in c.items()} for c in curves], "cpu_s": cpu,
                         "wall_s": [r["wall_time_s"] for r in results]}
    if not found:
        raise SystemExit(f"no finished run under {args.runs} for {args.task} at {args.steps} steps")
    print("\nMBPO and COPlanner take 5 SAC updates per real step, SAC 1: equal real steps, not equal computation.\n")
    comparisons = {}
    for a, b in (("mbpo", "sac"), ("coplanner", "mbpo"), ("coplanner", "sac")):
        if a not in found or b not in found:
            continue
        both = sorted(set(found[a]["seeds"]) & set(found[b]["seeds"]))
        if len(both) < 2:
            continue
        for measure in ("final", "last"):
            x = [found[a][measure][found[a]["seeds"].index(k)] for k in both]
            y = [found[b][measure][found[b]["seeds"].index(k)] for k in both]
            w = welch(x, y)
            _, lo, hi = bootstrap_diff(x, y)
            comparisons[f"{a} - {b}: {measure}"] = {"seeds": both, "diff": w.diff, "welch_p": w.p, "bootstrap_95": [lo, hi]}
            print(f"{a} - {b} ({'final return' if measure == 'final' else f'last {args.last} evaluations'}, seeds {both}): "
                  f"{w.diff:+.0f}, Welch p {w.p:.3g}, bootstrap 95% [{lo:+.0f}, {hi:+.0f}]")
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"mbpo-online-{args.task.lower()}-{args.steps}.json"
        path.write_text(json.dumps({"task": args.task, "steps": args.steps, "every": args.every, "last": args.last,
                                    "methods": found, "comparisons": comparisons}, indent=1) + "\n")
        print(f"wrote {path}")
    if args.figure is not None:
        _figure(args, found, grid)


def _figure(args, found: dict, grid: list[int]) -> None:
    series = {f"{method} ({len(data['seeds'])} seeds)": [[c.get(str(s), np.nan) for s in grid] for c in data["curves"]]
              for method, data in found.items()}
    curves_figure(args.figure, grid, series, title=f"{args.task}, {args.steps:,} real steps (band: min-max over seeds)",
                  ylabel="evaluation return (deterministic policy)")


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
        if name == "report":
            p.add_argument("--last", type=int, default=5, help="evaluations averaged at the end of each run")
            p.add_argument("--save", action="store_true")
            p.add_argument("--figure", type=Path, default=None)
        if name == "run":
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument("--start-steps", type=int, default=500, help="uniformly random steps first (a multiple of 50)")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
