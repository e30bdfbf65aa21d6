"""The JSONL metrics sink every training loop writes: one line per block, ``{"step", "wall_s", ...metrics}``.

The file is always written; other sinks (TensorBoard, W&B, MLflow) are switched on beside it (:mod:`.sinks`).

Lines are appended as blocks finish, so ``tail -f metrics.jsonl`` follows a run. A resumed run continues the file: the
lines of blocks the stopped invocation ran after its last checkpoint are dropped first (those blocks run again and are
logged again), so every step appears once. Values are strict JSON (NaN and inf as ``null``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write, json_text


class MetricsLog:
    """``MetricsLog(path, resume_step)``: appends rows to ``path`` (nothing when ``path`` is None).

    ``resume_step``: the step the run continues from; rows of later steps already in the file are removed (0: the file
    starts empty).
    """

    def __init__(self, path: str | os.PathLike | None, *, resume_step: int = 0):
        self.path = None if path is None else Path(path)
        if self.path is not None and self.path.is_file():
            keep = [line for line in self.path.read_text().splitlines() if _step(line) is not None and _step(line) <= resume_step]
            with atomic_write(self.path, "w") as f:
                f.write("".join(line + "\n" for line in keep))

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        """Append the line ``{"step": step, **metrics}``."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json_text({"step": step, **metrics}, indent=None) + "\n")

    def close(self) -> None:
        """Nothing to do: every line is written and closed as it comes (the :class:`.sinks.Sink` protocol)."""


def _step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a kill: dropped
