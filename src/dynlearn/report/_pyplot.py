"""Matplotlib for the report figures: the non-interactive Agg backend, and an atomic PNG write.

``matplotlib.pyplot`` is imported on first use, not when the package is imported: choosing the backend at import time
would change it for a user's own plots in the same process.
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import atomic_path


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, plt, path: str | Path) -> Path:
    """Lay ``fig`` out tightly, write it to ``path`` as PNG atomically (a reader never sees half a file), close it."""
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
