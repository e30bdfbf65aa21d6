"""The built-in default job behind ``dynlearn run``: offline model-based RL end to end, sized for a laptop.

1. **data**: Pendulum-v1 driven by a deliberately noisy behaviour policy (a swing-up controller whose actions get
   Gaussian noise of ``action_noise`` half-ranges), written in the D4RL layout and read back through the validating
   loader;
2. **model**: a probabilistic ensemble fitted on it (episode holdout, early stopping, elites), with its one-step
   error on the held-out episodes;
3. **use**: MOPO (:mod:`dynlearn.algos.mopo`) trained on model rollouts from the dataset's states;
4. **measure**: the learned policy, the behaviour policy and a random policy evaluated in the real task.

It writes a run folder (``config.json``, ``results.json``, ``report.md``, the dataset, the model, the MOPO run with
its learning curve) and prints the report. About 3 minutes on 2 cores; ``--quick`` is a one-minute smoke test.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from .algos.model_based import train_model_based
from .algos.mopo import MOPOConfig
from .data.d4rl import load_d4rl, write_d4rl
from .data.summary import summarize
from .errors import ConfigError, check_minimums
from .models import EnsembleConfig, FitConfig, fit, one_step_error, save, split_holdout
from .results import RunFolder, SeedScore, dataset_record, make_results
from .stats import welch_from_moments
from .tasks.collect import collect
from .tasks.controllers import PendulumSwingUp
from .tasks.evaluate import evaluate
from .tasks.policy import NoisyPolicy, RandomPolicy
from .tasks.registry import get


@dataclasses.dataclass(frozen=True)
class DefaultJobConfig:
    """``dynlearn run``: the default end-to-end job (noisy Pendulum data -> ensemble -> MOPO -> evaluation)."""

    out: Path | None = None
    """run folder (default: runs/<date>-<time>-default)"""
    quick: bool = False
    """smoke-test size (about a minute): less data, fewer model epochs and agent steps"""
    force: bool = False
    """overwrite an existing run folder"""
    seed: int = 0
    """seed for data collection, model fitting, training and evaluation"""
    steps: int = 20_000
    """environment steps of behaviour data (quick: 4,000)"""
    action_noise: float = 1.0
    """Gaussian action noise of the behaviour policy, in units of half the action range"""
    model_epochs: int = 25
    """ensemble training epochs at most (quick: 5)"""
    agent_steps: int = 10_000
    """MOPO gradient steps (quick: 1,000)"""
    eval_episodes: int = 20
    """evaluation episodes per policy (quick: 5)"""

    def __post_init__(self):
        check_minimums(self, {"steps": 1, "model_epochs": 1, "agent_steps": 1, "eval_episodes": 1, "action_noise": 0}, command="run")
        if not self.quick and self.agent_steps % _ROLLOUT_EVERY:
            nearest = max(1, round(self.agent_steps / _ROLLOUT_EVERY)) * _ROLLOUT_EVERY
            raise ConfigError(f"run: --agent-steps must be a multiple of {_ROLLOUT_EVERY} (MOPO's steps between model rollouts "
                              f"here), got {self.agent_steps}. Fix: pass --agent-steps {nearest}.")


_ROLLOUT_EVERY = 500
"""MOPO's agent steps between model rollouts in the full-size job."""


def _sizes(cfg: DefaultJobConfig) -> dict:
    if cfg.quick:
        return {"steps": 4_000, "model_epochs": 5, "agent_steps": 1_000, "eval_episodes": 5, "rollout_every": 250, "eval_every": 500}
    return {"steps": cfg.steps, "model_epochs": cfg.model_epochs, "agent_steps": cfg.agent_steps, "eval_episodes": cfg.eval_episodes,
            "rollout_every": _ROLLOUT_EVERY, "eval_every": 2_000 if cfg.agent_steps % 2_000 == 0 else cfg.agent_steps}


def run_default_job(cfg: DefaultJobConfig, *, log=print) -> Path:
    """Run the default job and return its run folder."""
    start = time.perf_counter()
    size = _sizes(cfg)
    out = cfg.out if cfg.out is not None else Path("runs") / (time.strftime("%Y%m%d-%H%M%S") + "-default")
    task = get("Pendulum-v1")
    name = f"{task.id.lower()}-noisy-controller"
    # checked here, before the run folder is written
    mopo = MOPOConfig(steps=size["agent_steps"], seeds=1, seed=cfg.seed, rollout_batch=5_000, rollout_every=size["rollout_every"],
                      retain_epochs=5, eval_every=size["eval_every"], checkpoint_every=size["agent_steps"],
                      eval_episodes=size["eval_episodes"])
    run = RunFolder(out, force=cfg.force)
    run.write_config(dataclasses.asdict(cfg) | {"out": str(out), "sizes": size})

    behaviour = NoisyPolicy(PendulumSwingUp(), task, noise=cfg.action_noise)
    log(f"[1/4] data: {size['steps']:,} steps of {task.id} with a noisy swing-up controller (noise {cfg.action_noise})")
    dataset = collect(task, behaviour, steps=size["steps"], seed=cfg.seed, name=name, policy_name="noisy-swingup")
    dataset = load_d4rl(write_d4rl(run.file(f"{dataset.name}.hdf5"), dataset), task=task)  # read back through the validating loader
    summary = summarize(dataset, task)
    run.file("dataset_info.txt").write_text(summary.render() + "\n")

    log(f"[2/4] model: a probabilistic ensemble (7 members, 5 elites), at most {size['model_epochs']} epochs")
    model_cfg = EnsembleConfig(hidden=(200, 200, 200), weight_decay=(2.5e-5, 5e-5, 7.5e-5, 1e-4))
    fit_cfg = FitConfig(max_epochs=size["model_epochs"], progress=False)
    model, report = fit(model_cfg, dataset, key=jax.random.key(cfg.seed), cfg=fit_cfg, task=task)
    save(run.file("model"), model)
    _, holdout, _, _ = split_holdout(dataset, fit_cfg, seed=report.holdout_seed)
    error = one_step_error(model, holdout)
    skill = error.skill
    log(f"      {report.epochs} epochs, holdout one-step skill (1 - MSE / variance) {np.mean(skill[:-1]):.3f} on the state, "
        f"{skill[-1]:.3f} on the reward ({report.holdout_size:,} held-out transitions)")

    log(f"[3/4] MOPO: {size['agent_steps']:,} SAC steps on model rollouts (h = 5, 5,000 rollouts every {size['rollout_every']} steps)")
    mopo_dir = train_model_based(dataset, task, mopo, run.file("mopo"), model=model, force=True,
                                 log=lambda line: log("      " + line))
    learned = json.loads((mopo_dir / "results.json").read_text())

    log(f"[4/4] evaluating the behaviour and random policies ({size['eval_episodes']} episodes each)")
    behaviour_eval = evaluate(behaviour, task, size["eval_episodes"], key=cfg.seed)
    random_eval = evaluate(RandomPolicy(task), task, size["eval_episodes"], key=cfg.seed)

    wall = time.perf_counter() - start
    seed_score = learned["scores"]["per_seed"][0]
    score = SeedScore(**{k: seed_score[k] for k in ("seed", "return_mean", "return_std", "normalized", "episodes")})
    model_error = {"holdout_skill": skill.tolist(), "holdout_mse": error.elite_mean_mse.tolist(), "epochs": report.epochs,
                   "elite_holdout_mse": report.elite_holdout_mse}
    comparison = versus_behaviour(score, behaviour_eval)
    results = make_results(
        method="mopo", task=task.id, dataset=dataset_record(dataset),
        budget={"steps": size["agent_steps"], "seeds": 1, "env_steps": size["steps"], "model_epochs": report.epochs},
        seed_scores=[score], wall_time_s=wall, steps_per_s=learned["steps_per_s"],
        extra={"behaviour": behaviour_eval.to_dict(), "random": random_eval.to_dict(), "model_error": model_error,
               "dataset_summary": summary.to_dict(), **comparison})
    run.write_results(results)
    text = _report(task, summary, score, behaviour_eval, random_eval, skill, report, wall, out, comparison["versus_behaviour"])
    run.file("report.md").write_text(text)
    log(text)
    return out


def versus_behaviour(learned: SeedScore, behaviour) -> dict:
    """Welch's test of the learned policy's episode returns against the behaviour policy's (each evaluated over its own
    episodes): ``verdict`` is "higher" or "lower" at p < 0.05, else "none". One training seed, so this is a claim about
    this policy, not about the method."""
    n_l, n_b = int(learned.episodes), int(behaviour.returns.size)
    sd = lambda std, n: float(std) * (n / (n - 1)) ** 0.5  # noqa: E731 (evaluation stds are over episodes, ddof=0)
    w = welch_from_moments(learned.return_mean, sd(learned.return_std, n_l), n_l, behaviour.mean, sd(behaviour.std, n_b), n_b)
    verdict = "none" if not w.p < 0.05 else ("higher" if w.diff > 0 else "lower")
    return {"beats_behaviour": verdict == "higher",
            "versus_behaviour": {"diff": w.diff, "t": w.t, "dof": w.dof, "p": w.p, "episodes": [n_l, n_b], "verdict": verdict}}


def _report(task, summary, learned, behaviour, random, skill, fit_report, wall, out, test: dict) -> str:
    def line(mean, std, normalized):
        return f"{mean:9.1f} ± {std:6.1f}" + (f"   (normalized {normalized:6.1f})" if normalized is not None else "")

    verdict = {"higher": "beats", "lower": "scores below", "none": "shows no difference from"}[test["verdict"]]
    return "\n".join([
        f"# dynlearn run: offline model-based RL on {task.id}",
        "",
        f"dataset       {summary.transitions:,} transitions, {summary.episodes} episodes of a noisy controller, "
        f"return {summary.returns['mean']:.1f} ± {summary.returns['std']:.1f}",
        f"model         ensemble fitted in {fit_report.epochs} epochs; held-out one-step skill {np.mean(skill[:-1]):.3f} (state), "
        f"{skill[-1]:.3f} (reward)",
        f"MOPO policy   {line(learned.return_mean, learned.return_std, learned.normalized)}",
        f"behaviour     {line(behaviour.mean, behaviour.std, behaviour.normalized_mean)}",
        f"random        {line(random.mean, random.std, random.normalized_mean)}",
        f"verdict       the policy learned offline {verdict} the policy that collected the data "
        f"(Welch p = {test['p']:.3g}, {test['episodes'][0]} + {test['episodes'][1]} episodes; one training seed)",
        f"reference     {task.ref_source}",
        f"wall time     {wall:.0f} s",
        f"run folder    {out}  (report.md, results.json, mopo/learning_curve.png, model/, the dataset)",
        "",
    ])
