"""The built-in default job behind ``dynlearn run``: a real job, end to end, sized for a laptop.

At this stage of the library it makes a small Pendulum-v1 dataset with a deliberately noisy behaviour
policy (the swing-up controller with action noise), validates it, writes it in the D4RL layout, evaluates
the behaviour and random policies, and writes a run folder with ``config.json``, ``results.json`` and a
report. Model learning and offline RL join this job as they land.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .data.d4rl import load_d4rl, write_d4rl
from .data.summary import summarize
from .results import RunFolder, SeedScore, dataset_record, make_results
from .tasks.collect import collect
from .tasks.controllers import PendulumSwingUp
from .tasks.evaluate import evaluate
from .tasks.policy import NoisyPolicy, RandomPolicy
from .tasks.registry import get


@dataclasses.dataclass(frozen=True)
class DefaultJobConfig:
    """``dynlearn run``: the default end-to-end job."""

    out: Path | None = None
    """run folder (default: runs/<date>-<time>-default)"""
    quick: bool = False
    """smoke-test size: fewer steps and evaluation episodes"""
    force: bool = False
    """overwrite an existing run folder"""
    seed: int = 0
    """seed for data collection and evaluation"""
    task: str = "Pendulum-v1"
    """task to run on (the default behaviour policy is a Pendulum controller)"""
    steps: int = 20_000
    """environment steps of behaviour data to collect (quick: 2,000)"""
    action_noise: float = 0.6
    """Gaussian action noise of the behaviour policy, in units of half the action range"""
    eval_episodes: int = 20
    """evaluation episodes per policy (quick: 5)"""


def run_default_job(cfg: DefaultJobConfig, *, log=print) -> Path:
    """Run the default job and return its run folder."""
    start = time.perf_counter()
    steps = 2_000 if cfg.quick else cfg.steps
    episodes = 5 if cfg.quick else cfg.eval_episodes
    out = cfg.out or Path("runs") / (time.strftime("%Y%m%d-%H%M%S") + "-default")
    run = RunFolder(out, force=cfg.force)
    run.write_config(dataclasses.asdict(cfg) | {"out": str(out), "steps_used": steps, "eval_episodes_used": episodes})
    task = get(cfg.task)

    behaviour = NoisyPolicy(PendulumSwingUp(), task, noise=cfg.action_noise)
    log(f"[1/3] collecting {steps:,} steps of {task.id} with a noisy swing-up controller (noise {cfg.action_noise})")
    t0 = time.perf_counter()
    dataset = collect(task, behaviour, steps=steps, seed=cfg.seed, name=f"{task.id.lower()}-noisy-controller", policy_name="noisy-swingup")
    collect_s = time.perf_counter() - t0
    path = write_d4rl(run.file("dataset.hdf5"), dataset)
    dataset = load_d4rl(path, task=task)  # read back through the validating loader
    summary = summarize(dataset, task)
    run.file("dataset_info.txt").write_text(summary.render() + "\n")

    log(f"[2/3] evaluating the behaviour and random policies ({episodes} episodes each)")
    key = cfg.seed
    behaviour_eval = evaluate(behaviour, task, episodes, key=key)
    random_eval = evaluate(RandomPolicy(task), task, episodes, key=key)

    log("[3/3] writing the run folder")
    wall = time.perf_counter() - start
    score = SeedScore(seed=cfg.seed, return_mean=behaviour_eval.mean, return_std=behaviour_eval.std,
                      normalized=behaviour_eval.normalized_mean, episodes=episodes)
    results = make_results(
        method="behaviour-policy", task=task.id, dataset=dataset_record(dataset), budget={"steps": 0, "seeds": 1, "env_steps": steps},
        seed_scores=[score], wall_time_s=wall, steps_per_s=steps / collect_s,
        extra={"behaviour": behaviour_eval.to_dict(), "random": random_eval.to_dict(), "dataset_summary": summary.to_dict()},
    )
    run.write_results(results)
    report = _report(task, summary, behaviour_eval, random_eval, wall, out)
    run.file("report.md").write_text(report)
    log(report)
    return out


def _report(task, summary, behaviour, random, wall, out) -> str:
    def score(r):
        return f"{r.mean:9.1f} ± {r.std:6.1f}" + (f"   (normalized {r.normalized_mean:6.1f})" if r.normalized_mean is not None else "")

    return "\n".join([
        f"# dynlearn run: {task.id}",
        "",
        f"dataset     {summary.transitions:,} transitions, {summary.episodes} episodes, return {summary.returns['mean']:.1f} ± {summary.returns['std']:.1f}",
        f"problems    {'none' if not summary.problems else '; '.join(summary.problems)}",
        f"behaviour   {score(behaviour)}",
        f"random      {score(random)}",
        f"reference   {task.ref_source}",
        f"wall time   {wall:.1f} s",
        f"run folder  {out}",
        "",
    ])
