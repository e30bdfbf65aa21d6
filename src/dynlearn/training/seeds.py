"""Seeds trained together: one stacked state, one checkpoint per seed.


With ``parallel_seeds`` a trainer vmaps its block over the seeds' states stacked on a leading axis. Each seed still
has its own folder and checkpoint (so a run can be resumed either way, seeds in turn or together): :class:`SeedCheckpoints`
looks like one :class:`Checkpoint` to the loop and splits the stacked state and the progress between the seeds' folders.

The loop's progress for stacked seeds is ``{"step", "wall_s", "train_s", "seeds": [each seed's own progress]}``; every
seed's file gets the shared step and an equal share of the wall and training time, so the seeds' times add up to the
run's whichever way it ran.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ..agents.base import stack_states, state_of
from ..errors import ConfigError
from .checkpoints import Checkpoint

SHARED = ("step", "wall_s", "train_s")
"""Progress keys the loop keeps; the rest of a seed's progress is its own."""


def require_same_step(steps: Sequence[int | None], out: str | os.PathLike) -> None:
    """Seeds continue together only from checkpoints of one step (None: a seed without one)."""
    if len(set(steps)) != 1:
        raise ConfigError(f"{out}: the seeds' checkpoints are at different steps ({sorted(map(str, set(steps)))}), so they "
                          "cannot continue together. Fix: resume without --parallel-seeds (seeds one after another).")


class SeedCheckpoints:
    """The checkpoints of seeds trained together; ``where`` (the run folder) is what a stop names."""

    def __init__(self, checkpoints: Sequence[Checkpoint], where: str | os.PathLike):
        self.checkpoints, self.where = list(checkpoints), Path(where)

    def load(self, like: Callable[[dict], Any]) -> tuple[Any, dict] | None:
        """The seeds' stacked state and joint progress, or None when no seed has a checkpoint (refused when only some
        have one, or they are at different steps)."""
        found = [c.load(like) for c in self.checkpoints]
        require_same_step([None if f is None else f[1]["step"] for f in found], self.where)
        if found[0] is None:
            return None
        progresses = [p for _, p in found]
        joint = {"step": progresses[0]["step"], "wall_s": sum(p.get("wall_s", 0.0) for p in progresses),
                 "train_s": sum(p.get("train_s", 0.0) for p in progresses),
                 "seeds": [{k: v for k, v in p.items() if k not in SHARED} for p in progresses]}
        return stack_states([s for s, _ in found]), joint

    def save(self, state: Any, progress: dict) -> None:
        n = len(self.checkpoints)
        for i, c in enumerate(self.checkpoints):
            c.save(state_of(state, i), {**progress["seeds"][i], "step": progress["step"],
                                        "wall_s": progress.get("wall_s", 0.0) / n, "train_s": progress.get("train_s", 0.0) / n})
