"""The edge-of-reach experiment (Sims, Lu & Teh, NeurIPS 2024, arXiv 2402.12527, their Sec. 3-4) on our hopper-medium.

With the *true* dynamics in place of the learned model, MOPO's uncertainty penalty vanishes and what remains is SAC on
truncated rollouts (offline MBPO). The paper's claim: this still fails, because states reached only at the last
rollout step (the edge of reach) are bootstrapped from but never updated, so their Q-values grow without bound;
RAVL (an EDAC critic ensemble, no dynamics penalty) does not. Four runs, one seed each, same budget:

    mbpo  x {learned ensemble, oracle}     ravl x {learned ensemble, oracle}

Each run is an ordinary ``dynlearn train`` run folder under ``--root`` (resumable: rerunning continues it). Then
``--report-only`` draws return and mean Q over training for all four (``benchmarks/figures/edge_of_reach.png``) and
prints a Markdown table of the final numbers for ``benchmarks/edge_of_reach.md``.

    python benchmarks/edge_of_reach.py --steps 50000 [--runs mbpo-oracle,ravl-oracle] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

RUNS = ("mbpo-oracle", "ravl-oracle", "mbpo-learned", "ravl-learned")
HERE = Path(__file__).resolve().parent


def run(name: str, args) -> None:
    import dynlearn as dl
    from dynlearn.algos import method as method_config, train_model_based

    method, model = name.split("-")
    data = dl.data.load(args.dataset)
    task = dl.tasks.get("Hopper-v5")
    cfg = method_config(method).for_dataset(data.name, model="oracle" if model == "oracle" else "ensemble", steps=args.steps, seeds=1,
                                            rollout_batch=args.rollout_batch, eval_every=args.eval_every,
                                            eval_episodes=args.eval_episodes, checkpoint_every=args.eval_every)
    out = Path(args.root) / name
    resume = (out / "config.json").is_file()
    train_model_based(data, task, cfg, out, resume=resume, log=lambda line: print(f"[{name}] {line}", flush=True))


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_q) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    rows = []
    for name in RUNS:
        folder = Path(args.root) / name / "seed_0"
        progress_file = next((p for p in (folder / "checkpoint" / "progress.json", folder / "diverged.json") if p.is_file()), None)
        if progress_file is None:
            rows.append(f"| {name} | not run | | | |")
            continue
        progress = json.loads(progress_file.read_text())
        evals, history = progress["evals"], progress["history"]
        style = "-" if name.endswith("oracle") else "--"
        color = "tab:red" if name.startswith("mbpo") else "tab:blue"
        ax_r.plot([e["step"] for e in evals], [e["normalized"] for e in evals], style, color=color, label=name)
        ax_q.plot([h["step"] for h in history], [h["q/mean"] for h in history], style, color=color, label=name)
        last = evals[-1] if evals else {}
        diverged = " (critic diverged)" if progress_file.name == "diverged.json" else ""
        rows.append(f"| {name} | {progress['step']:,}{diverged} | {last.get('normalized', float('nan')):.1f} | "
                    f"{history[-1]['q/mean']:.3g} | {max(h['q/mean'] for h in history):.3g} |")
    ax_r.set(title="normalized return (hopper-medium-v5)", xlabel="agent step", ylabel="normalized score")
    ax_q.set(title="mean Q on training batches", xlabel="agent step", ylabel="Q", yscale="symlog")
    for ax in (ax_r, ax_q):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = HERE / "figures" / "edge_of_reach.png"
    fig.savefig(path)
    print(f"wrote {path}")
    print("| run | steps | final normalized return | final mean Q | max mean Q |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="runs/edge_of_reach")
    parser.add_argument("--dataset", default="hopper-medium-v5")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--rollout-batch", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        for name in args.runs.split(","):
            if name not in RUNS:
                sys.exit(f"unknown run {name!r}; choose from {', '.join(RUNS)}")
            run(name, args)
    report(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
