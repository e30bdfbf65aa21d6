"""Small datasets written by plain h5py/numpy, as other tools would write them."""

from __future__ import annotations

import h5py
import numpy as np


def episodes_arrays(lengths=(5, 7, 4), obs_dim=3, act_dim=2, ends=("terminal", "timeout", "cut"), seed=0):
    """Arrays of contiguous episodes; each episode's observations follow obs[t+1] = obs[t] + 1 (easy to check)."""
    rng = np.random.default_rng(seed)
    obs, act, rew, term, tout, nxt = [], [], [], [], [], []
    for e, (n, end) in enumerate(zip(lengths, ends)):
        base = 100.0 * e + np.arange(n + 1, dtype=np.float32)[:, None] * np.ones(obs_dim, np.float32)
        obs.append(base[:-1]), nxt.append(base[1:])
        act.append(rng.uniform(-1, 1, (n, act_dim)).astype(np.float32))
        rew.append(np.full(n, float(e + 1), np.float32))
        t, o = np.zeros(n, bool), np.zeros(n, bool)
        if end == "terminal":
            t[-1] = True
        elif end == "timeout":
            o[-1] = True
        term.append(t), tout.append(o)
    cat = np.concatenate
    return dict(observations=cat(obs), actions=cat(act), rewards=cat(rew), terminals=cat(term), timeouts=cat(tout),
                next_observations=cat(nxt))


def write_h5(path, arrays: dict) -> None:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
