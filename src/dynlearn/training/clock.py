"""Wall time of a training run across the invocations that worked on it.

A run stopped (SIGTERM, Ctrl-C, a kill) and resumed is one run: its wall time is what the earlier invocations had spent
up to their last checkpoint plus what the current one has spent since it began. The loop stores :meth:`WallClock.total`
in every checkpoint (``wall_s``) and a resumed trainer starts its clock from that value, so ``results.json`` and the fit
reports give the whole run's time, not the last invocation's. Time an invocation spent after its last checkpoint is
lost with the work it did (it is redone, and counted, by the next one).
"""

from __future__ import annotations

import time


class WallClock:
    """``WallClock()`` at the start of an invocation; :meth:`resume_from` adds what a checkpoint recorded."""

    def __init__(self, earlier_s: float = 0.0, *, since: float | None = None):
        self.earlier_s = float(earlier_s)
        self.since = time.perf_counter() if since is None else since  # a perf_counter() reading: this invocation's start

    def resume_from(self, earlier_s: float) -> None:
        """Count ``earlier_s`` seconds of earlier invocations (a checkpoint's ``wall_s``) before this one's."""
        self.earlier_s = float(earlier_s)

    def total(self) -> float:
        """Seconds of the whole run so far: earlier invocations plus this one."""
        return self.earlier_s + time.perf_counter() - self.since
