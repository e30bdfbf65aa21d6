"""Normalized score: ``100 * (R - random) / (expert - random)`` (D4RL's convention)."""

from __future__ import annotations

import numpy as np


def normalized_score(returns, random_return: float, expert_return: float):
    """Map raw returns onto 0 (random policy) .. 100 (expert policy). Works on scalars and arrays."""
    if expert_return == random_return:
        raise ValueError("expert and random reference returns are equal; the normalized score is undefined")
    return 100.0 * (np.asarray(returns, np.float64) - random_return) / (expert_return - random_return)
