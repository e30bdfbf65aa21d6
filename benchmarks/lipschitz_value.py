"""One model with a Lipschitz-regularised value against MBPO's ensemble at equal real steps (Zheng et al., ICLR 2023, "Is
Model Ensemble Necessary?", arXiv 2302.01244; issue 22, item 5), with each arm's value Lipschitz constant measured.

    python benchmarks/lipschitz_value.py run --task Hopper-v5 --steps 20000 --start-steps 1000 --every 1000 --seeds 0 1 2
    python benchmarks/lipschitz_value.py report --task Hopper-v5 --steps 20000

Arms (every one MBPO online, ``dynlearn.algos.mbpo_online``, with its CPU budget: 7/5 ensemble of 3 x 200 unless said,
refitted every 250 real steps for at most 20 epochs, 5,000 branched rollouts per refit, 5 SAC updates per real step, 5%
real rows per batch):

- ``single-lipschitz``: the ``single-lipschitz`` preset: one probabilistic model (members 1, elites 1) and SAC's critics
  spectrally normalised (hidden layers) with the adversarial state-perturbation term (``dynlearn.agents.lipschitz``);
- ``single`` (``--arms single-lipschitz single``): the same single model with plain SAC, which separates what the single
  model costs from what the regularisation gives back;
- ``mbpo``: the ensemble arm, which ``benchmarks/mbpo_online.py run --methods mbpo`` trains with the same flags into the
  same ``--runs`` folder; ``report`` reads it, ``run`` does not train it.

Every run writes ``RUNS/<arm>-<task>-<steps>/seed_K`` (the layout of ``benchmarks/mbpo_online.py``) and ``cpu.json`` (this
process's CPU seconds); a stopped ``run`` continues where it was. ``report`` prints each arm's final return (mean ± std over
seeds), Welch's test and a bootstrap interval of each single arm against the ensemble (``dynlearn.stats``, as
``benchmarks/stats.py``), and the Lipschitz estimates of every seed's final critic (``final/``):
``dynlearn.agents.lipschitz.value_lipschitz`` over the states of ``--episodes`` fresh episodes of that seed's own final
deterministic policy ("own"), and over the pool of all those episodes' states (every arm and seed, "pool", so that the arms
are compared on the same states): ``max`` and ``q90`` of ``||d V / d s||`` with ``V(s) = min_i Q_i(s, pi(s))``,
``critic``: the largest ``||d min_i Q_i(s, a) / d s||`` at ``a = pi(s)`` held fixed, and ``bound``: the largest product of
the critic's layer spectral norms (an upper bound on the critic's constant in ``(s, a)``). Which of these the paper reports
could not be read here (see ``dynlearn.agents.lipschitz``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from dynlearn import agents
from dynlearn.agents import lipschitz
from dynlearn.agents.sac import SACConfig
from dynlearn.algos.mbpo_online import MBPOOnlineConfig, train_mbpo_online
from dynlearn.stats import bootstrap_diff, welch
from dynlearn.tasks import get as get_task

from _online import cpu_time  # benchmarks/_online.py

TRAINED = ("single-lipschitz", "single")
"""Arms ``run`` trains."""
ARMS = ("mbpo", *TRAINED)
"""Arms ``report`` reads (``mbpo``: trained by benchmarks/mbpo_online.py)."""


def _folder(runs: Path, arm: str, task: str, steps: int, seed: int) -> Path:
    return runs / f"{arm}-{task}-{steps}" / f"seed_{seed}"


def config(arm: str, task: str, steps: int, seed: int, eval_every: int, start_steps: int) -> MBPOOnlineConfig:
    """The arm's config: the flags ``benchmarks/mbpo_online.py`` gives its MBPO arm, on the ``single-lipschitz`` preset
    (``single``: with SAC's defaults instead of the regularised critic)."""
    changes = dict(task=task, steps=steps, seed=seed, start_steps=start_steps, eval_every=eval_every,
                   checkpoint_every=max(eval_every, 1_000))
    if arm == "single":
        changes["sac"] = SACConfig()
    return MBPOOnlineConfig.preset("single-lipschitz", **changes)


def run(args) -> None:
    for seed in args.seeds:
        for arm in args.arms:
            out = _folder(args.runs, arm, args.task, args.steps, seed)
            if (out / "results.json").is_file():
                continue
            with cpu_time(out):
                cfg = config(arm, args.task, args.steps, seed, args.every, args.start_steps)
                train_mbpo_online(cfg, out, resume=(out / "config.json").is_file())


def _visited_states(state, task, episodes: int, seed: int) -> np.ndarray:
    """The observations of ``episodes`` episodes of the agent's deterministic policy (resets seeded by ``seed``)."""
    sac = agents.get("sac")
    env, rows = task.make(), []
    try:
        for episode in range(episodes):
            obs, done = np.asarray(env.reset(seed=int(np.random.SeedSequence([seed, episode]).generate_state(1)[0]))[0]), False
            while not done:
                rows.append(obs)
                action = sac.act(state, jnp.asarray(obs, jnp.float32)[None], deterministic=True)[0]
                obs, _, terminated, truncated, _ = env.step(np.asarray(action))
                done = terminated or truncated
    finally:
        env.close()
    return np.asarray(rows, np.float32)


def _estimates(state, obs: np.ndarray) -> dict[str, float]:
    return {k: float(v) for k, v in lipschitz.value_lipschitz(state, jnp.asarray(obs)).items()}


def _cell(values: list[float], digits: int = 1) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if values else "—"


def report(args) -> None:
    task, sac = get_task(args.task), agents.get("sac")
    arms = {}
    for arm in args.arms:
        folders = sorted(f.parent for f in (args.runs / f"{arm}-{args.task}-{args.steps}").glob("seed_*/results.json"))
        if folders:
            arms[arm] = folders
    if not arms:
        raise SystemExit(f"no finished run under {args.runs} for {args.task} at {args.steps} steps")
    finals = {arm: [json.loads((f / "results.json").read_text())["scores"]["per_seed"][0]["return_mean"] for f in folders]
              for arm, folders in arms.items()}

    grid = list(range(args.every, args.steps + 1, args.every))
    print(f"{args.task}, {args.steps:,} real steps: the final deterministic policy's return (mean ± std over seeds), evaluations "
          f"(mean over seeds) every {args.every:,} steps, CPU seconds per 10,000 real steps\n")
    print(f"| arm | seeds | final return | {' | '.join(f'{s:,}' for s in grid)} | CPU s / 10k |\n|---|---|---|{'---|' * len(grid)}---|")
    for arm, folders in arms.items():
        curves = [{e["step"]: e["return_mean"] for e in json.loads((f / "evals.json").read_text())["evals"]} for f in folders]
        cells = [f"{np.mean([c[s] for c in curves if s in c]):.0f}" if any(s in c for c in curves) else "" for s in grid]
        cpu = [json.loads((f / "cpu.json").read_text())["cpu_s"] for f in folders if (f / "cpu.json").is_file()]
        cpu_cell = f"{np.mean(cpu) * 10_000 / args.steps:,.0f}" if cpu else ""
        print(f"| {arm} | {len(folders)} | {_cell(finals[arm])} | {' | '.join(cells)} | {cpu_cell} |")

    if "mbpo" in finals:
        print("\nEach arm against the ensemble (mbpo), final returns: difference of means, Welch's two-sided test, 95% bootstrap "
              "interval (3 seeds a side make both coarse; a difference counts as shown only when both agree)\n")
        for arm in (a for a in finals if a != "mbpo"):
            a, b = finals[arm], finals["mbpo"]
            if len(a) < 2 or len(b) < 2:
                print(f"- {arm}: fewer than 2 seeds a side")
                continue
            w, (_, lo, hi) = welch(a, b), bootstrap_diff(a, b)
            print(f"- {arm} - mbpo: {w.diff:+.1f}, Welch t {w.t:.2f}, dof {w.dof:.1f}, p {w.p:.3f}, bootstrap [{lo:+.1f}, {hi:+.1f}]")

    states, visited = {}, {}
    for arm, folders in arms.items():
        for i, f in enumerate(folders):
            states[f] = sac.load(f / "final")
            visited[f] = _visited_states(states[f], task, args.episodes, seed=10_000 + i)
    pool = np.concatenate(list(visited.values()))
    print(f"\nLipschitz estimates of each seed's final critic (mean ± std over seeds): 'own' over {args.episodes} episodes of its own "
          f"policy, 'pool' over all {len(pool):,} of those states. value: ||dV/ds||, V(s) = min_i Q_i(s, pi(s)); critic: "
          "||d min_i Q_i(s, a)/ds|| at a = pi(s) fixed; bound: product of the layers' spectral norms\n")
    head = ["own max", "own q90", "own critic", "pool max", "pool q90", "pool critic", "bound"]
    print(f"| arm | {' | '.join(head)} |\n|---|{'---|' * len(head)}")
    table = {}
    for arm, folders in arms.items():
        own = [_estimates(states[f], visited[f]) for f in folders]
        shared = [_estimates(states[f], pool) for f in folders]
        columns = [[e["value/max"] for e in own], [e["value/quantile"] for e in own], [e["critic/max"] for e in own],
                   [e["value/max"] for e in shared], [e["value/quantile"] for e in shared], [e["critic/max"] for e in shared],
                   [e["bound"] for e in shared]]
        print(f"| {arm} | {' | '.join(_cell(c, 2) for c in columns)} |")
        table[arm] = {"final_return": finals[arm], "own": own, "pool": shared}
    if args.json is not None:
        body = {"task": args.task, "steps": args.steps, "episodes": args.episodes, "arms": table}
        args.json.write_text(json.dumps(body, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--task", default="Hopper-v5")
        p.add_argument("--steps", type=int, default=20_000)
        p.add_argument("--every", type=int, default=1_000, help="evaluation interval (a multiple of 50)")
        p.add_argument("--runs", type=Path, default=Path("runs/mbpo_online"))
        if name == "run":
            p.add_argument("--arms", nargs="+", default=["single-lipschitz"], choices=TRAINED)
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument("--start-steps", type=int, default=1_000, help="uniformly random steps first (a multiple of 50)")
        else:
            p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
            p.add_argument("--episodes", type=int, default=3, help="fresh episodes of each final policy for the Lipschitz states")
            p.add_argument("--json", type=Path, default=None, help="also write the table's numbers here")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
