"""Learning curves of training runs: mean and spread over seeds per step, with reference lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._pyplot import pyplot, save_png


def learning_curve(path: str | Path, points, *, title: str, ylabel: str = "return", xlabel: str = "step",
                   references: dict[str, float] | None = None) -> Path:
    """Plot ``[(x, mean, std), ...]`` (one curve) or ``{label: [(x, mean, std), ...]}`` to ``path`` (PNG), with a
    dashed horizontal line for each ``{label: y}`` in ``references`` (e.g. the behaviour data's mean return)."""
    plt = pyplot()
    curves = points if isinstance(points, dict) else {None: points}
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for label, pts in curves.items():
        if not pts:
            continue
        x, m, s = (np.asarray(v, float) for v in zip(*pts))
        ax.plot(x, m, label=label)
        ax.fill_between(x, m - s, m + s, alpha=0.2)
    for label, y in (references or {}).items():
        if np.isfinite(y):
            ax.axhline(y, color="0.4", linestyle="--", linewidth=1, label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    if any(label is not None for label in curves) or any(np.isfinite(y) for y in (references or {}).values()):
        ax.legend(fontsize="small")
    return save_png(fig, plt, path)


def data_mean_return(dataset) -> float:
    """Mean return of a dataset's complete episodes (nan without one): the behaviour line of a learning curve."""
    returns = dataset.episode_returns()[dataset.episode_complete]
    return float(returns.mean()) if returns.size else float("nan")
