"""What a transition model is trained and measured on: per row the target ``(next_obs - obs, reward)`` and where it
exists (a row without a successor observation has no delta target; its reward always counts)."""

from __future__ import annotations

import numpy as np

from ..data.transitions import Transitions


def targets(t: Transitions) -> np.ndarray:
    """``(next_obs - obs, rew)`` per row, 0 where there is no successor observation (masked everywhere)."""
    obs, nxt = np.asarray(t.obs, np.float32), np.asarray(t.next_obs, np.float32)
    valid = np.asarray(t.next_obs_valid, bool)
    with np.errstate(all="ignore"):  # whatever a row without successor holds never reaches an array we keep
        delta = np.where(valid[:, None], nxt - obs, 0.0).astype(np.float32)
    return np.concatenate([delta, np.asarray(t.rew, np.float32)[:, None]], axis=1)


def target_mask(t: Transitions) -> np.ndarray:
    """``[N, target]``: delta dims count where the row has a successor; the reward always counts."""
    valid = np.asarray(t.next_obs_valid, bool)
    return np.concatenate([np.repeat(valid[:, None], t.obs.shape[1], axis=1), np.ones((len(valid), 1), bool)], axis=1)
