"""When the training loop evaluates, checkpoints and stops: a run's cadence, in steps of the trainer's own unit."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When :func:`run` does what, in steps of the trainer's own unit (gradient steps, iterations, environment steps)."""

    block: int | None
    """Steps per block; None: the block function advances ``progress["step"]`` itself (variable blocks)."""
    total: int | None = None
    """The run's length; None: only ``finished`` ends it (early stopping without a cap)."""
    until: int | None = None
    """Stop unfinished at this step, checkpointed, as a kill would (tests of resumption; benchmarks' staged budgets)."""
    eval_every: int | None = None
    """Evaluate after each block that crosses a multiple of this (and after the last block)."""
    checkpoint_every: int | None = None
    """Checkpoint after each block that crosses a multiple of this many steps."""
    checkpoint_every_s: float | None = None
    """Checkpoint when this many seconds have passed since the last one (the fits: every minute)."""
    checkpoint_at_end: bool = False
    """Checkpoint the finished state too (run folders whose seeds' progress is read back when the run is resumed)."""
    unit: int = 1
    """The progress line counts ``step // unit`` (the ensemble fit: epochs)."""
