"""Reading run folders back for the benchmark tables (shared by offline_baselines.py and offline_mbrl.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def cell(out: Path) -> tuple[str, str, str]:
    """``(score, budget, steps/s)`` of a run folder from the seeds that have finished (final policy of each).

    The score is the mean ± std of the finished seeds' normalized scores, marked "(k of n seeds)" when some are
    missing; "not run" without a config, "not finished" without a finished seed. The budget comes from the run's own
    config (offline or model-based); steps/s from ``results.json`` once every seed has finished.
    """
    if not (out / "config.json").is_file():
        return "not run", "—", "—"
    config = json.loads((out / "config.json").read_text())
    run = config.get("model_based") or config.get("offline")
    budget = f"{run['steps']:,} steps x {run['seeds']} seed(s)"
    finals = sorted(out.glob("seed_*/final.json"))
    if not finals:
        return "not finished", budget, "—"
    scores = np.array([json.loads(f.read_text())["normalized"] for f in finals])
    text = f"{scores.mean():.1f} ± {scores.std():.1f}" + ("" if len(finals) == run["seeds"] else f" ({len(finals)} of {run['seeds']} seeds)")
    rate = "—"
    if (out / "results.json").is_file():
        rate = f"{json.loads((out / 'results.json').read_text())['steps_per_s']:.0f}"
    return text, budget, rate
