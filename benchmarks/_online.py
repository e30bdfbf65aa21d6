"""What the online benchmarks share (mbpo_online.py, lipschitz_value.py, planning.py): each run's CPU seconds, and
learning curves over seeds on one figure."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def cpu_time(out: Path):
    """Add this process's CPU seconds inside the block to ``out/cpu.json`` (summed over a run's invocations: on a shared
    machine the wall time says little; compiles are included)."""
    path = out / "cpu.json"
    spent = json.loads(path.read_text())["cpu_s"] if path.is_file() else 0.0
    started = time.process_time()
    try:
        yield
    finally:
        if out.is_dir():
            path.write_text(json.dumps({"cpu_s": spent + time.process_time() - started}) + "\n")


def curves_figure(path: Path, grid: list[int], series: dict[str, np.ndarray], *, title: str, ylabel: str) -> None:
    """One line per series (the mean over seeds of a ``[seeds, len(grid)]`` array, NaN where a seed has no value) with
    its min-max band, against real environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, y in series.items():
        y = np.asarray(y, float)
        ax.plot(grid, np.nanmean(y, 0), label=label)
        ax.fill_between(grid, np.nanmin(y, 0), np.nanmax(y, 0), alpha=0.2)
    ax.set_xlabel("real environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
