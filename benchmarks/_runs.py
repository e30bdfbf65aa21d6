"""Reading run folders back for the benchmark tables (shared by offline_baselines.py and offline_mbrl.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dynlearn.checkpoint import latest_dir


def _evals(seed_folder: Path) -> list[dict]:
    """Every evaluation a seed logged, from its latest checkpoint (none before its first)."""
    saved = latest_dir(seed_folder / "checkpoint")
    if saved is None or not (saved / "progress.json").is_file():
        return []
    return json.loads((saved / "progress.json").read_text())["evals"]


def seed_scores(out: Path, at_step: int | None = None) -> list[float]:
    """Normalized score of every seed of a run folder: the final policy's (``seed_*/final.json``), or with
    ``at_step`` the evaluation logged at that step (every key derives from (seed, step), so the policy a run held at
    step k is the final policy of the same run with a budget of k steps)."""
    scores = []
    for folder in sorted(out.glob("seed_*")):
        if at_step is None:
            if (folder / "final.json").is_file():
                scores.append(json.loads((folder / "final.json").read_text())["normalized"])
            continue
        evals = {e["step"]: e for e in _evals(folder)}
        if at_step in evals:
            scores.append(evals[at_step]["normalized"])
    return scores


def seed_curves(out: Path, key: str = "normalized", until: int | None = None) -> dict[int, list[float]]:
    """``{step: [value of each seed evaluated at that step]}`` from every evaluation the seeds of a run folder logged
    (``key``: ``normalized``, ``return_mean``, ``q_mean``, ...), up to step ``until`` if given."""
    curves: dict[int, list[float]] = {}
    for folder in sorted(out.glob("seed_*")):
        for e in _evals(folder):
            if until is None or e["step"] <= until:
                curves.setdefault(e["step"], []).append(e[key])
    return dict(sorted(curves.items()))


def _run(out: Path) -> dict | None:
    """The run's own settings (``model_based`` or ``offline`` section of its config), None before it started."""
    if not (out / "config.json").is_file():
        return None
    config = json.loads((out / "config.json").read_text())
    return config.get("model_based") or config.get("offline")


def last_evals_cell(out: Path, at_step: int | None = None, count: int = 3) -> str:
    """Mean ± std over seeds of each seed's mean normalized score over its last ``count`` evaluations up to
    ``at_step`` (default: the run's budget), from the seeds that reached it: a steadier reading than one evaluation
    when a policy's score swings between evaluations. "—" when no seed has reached the step."""
    run = _run(out)
    if run is None:
        return "—"
    step = run["steps"] if at_step is None else at_step
    means = []
    for folder in sorted(out.glob("seed_*")):
        evals = [e for e in _evals(folder) if e["step"] <= step]
        if evals and evals[-1]["step"] == step:
            means.append(float(np.mean([e["normalized"] for e in evals[-count:]])))
    if not means:
        return "—"
    text = f"{np.mean(means):.1f} ± {np.std(means):.1f}"
    return text + ("" if len(means) == run["seeds"] else f" ({len(means)} of {run['seeds']} seeds)")


def cell(out: Path, at_step: int | None = None) -> tuple[str, str, str]:
    """``(score, budget, steps/s)`` of a run folder from the seeds that have finished (or reached ``at_step``).

    The score is the mean ± std over those seeds, then each seed's score in brackets (seed order), marked
    "(k of n seeds)" when some are missing; "not run" without a
    config, "not finished" without a seed. The budget is the run's own (or ``at_step``); steps/s comes from
    ``results.json`` once every seed has finished.
    """
    run = _run(out)
    if run is None:
        return "not run", "—", "—"
    steps = run["steps"] if at_step is None else at_step
    budget = f"{steps:,} steps x {run['seeds']} seed(s)"
    scores = np.array(seed_scores(out, at_step))
    if not len(scores):
        return ("not finished" if at_step is None else f"no evaluation at step {at_step:,} yet"), budget, "—"
    text = f"{scores.mean():.1f} ± {scores.std():.1f} [{', '.join(f'{s:.1f}' for s in scores)}]"
    text += "" if len(scores) == run["seeds"] else f" ({len(scores)} of {run['seeds']} seeds)"
    rate = "—"
    if (out / "results.json").is_file():
        rate = f"{json.loads((out / 'results.json').read_text())['steps_per_s']:.0f}"
    return text, budget, rate
