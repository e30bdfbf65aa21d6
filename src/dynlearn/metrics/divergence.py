"""When a generated (free-running) trajectory counts as diverged, and what the DSR metrics do then.

:func:`is_diverged` flags NaN/inf and finite blow-ups. Every metric of :mod:`dynlearn.metrics.dsr` and
:mod:`dynlearn.metrics.lyapunov` takes ``on_diverged`` (:data:`OnDiverged`): ``"raise"`` (default: raise
:class:`TrajectoryDivergedError`, a ``DataError``) or ``"nan"`` (return ``nan``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .._types import ArrayLike, Float
from ..errors import ConfigError, DataError

OnDiverged = Literal["raise", "nan"]


class TrajectoryDivergedError(DataError):
    """A generated (free-running) trajectory holds NaN/inf or left the region the metric covers."""


def check_on_diverged(on_diverged: str) -> None:
    """Refuse an ``on_diverged`` other than ``"raise"`` or ``"nan"``."""
    if on_diverged not in ("raise", "nan"):
        raise ConfigError(f"on_diverged must be 'raise' or 'nan', got {on_diverged!r}.")


def is_diverged(x: Float[ArrayLike, "... n"], reference: Float[ArrayLike, "t n"] | None = None, *,
                factor: float = 10.0, max_abs: float = 1e6) -> bool:
    """Whether a generated trajectory blew up: any NaN/inf, any ``|x| > max_abs``, or, given the true data
    ``reference``, any point farther from the reference mean than ``factor`` times the reference's largest
    deviation from its mean in that channel."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return False
    if not np.all(np.isfinite(x)) or np.max(np.abs(x)) > max_abs:
        return True
    if reference is not None:
        ref = np.asarray(reference, np.float64).reshape(-1, x.shape[-1])
        centre = ref.mean(axis=0)
        radius = np.max(np.abs(ref - centre), axis=0)
        if np.any(np.abs(x.reshape(-1, x.shape[-1]) - centre) > factor * np.maximum(radius, 1e-12)):
            return True
    return False
