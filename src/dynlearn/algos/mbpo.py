"""Offline MBPO: MOPO's loop with no uncertainty penalty (Janner et al., NeurIPS 2019, arXiv 1906.08253, run on a
fixed dataset). The baseline of the edge-of-reach experiment (Sims, Lu & Teh, NeurIPS 2024, arXiv 2402.12527): with
the true dynamics every penalty of :mod:`dynlearn.penalties` vanishes, and this is what remains.
"""

from __future__ import annotations

from . import mopo

DEFAULTS = mopo.DEFAULTS | {"penalty": "none", "penalty_coef": 0.0, "penalty_members": None}
PRESETS: dict[str, dict] = {}
agent, hooks, target_adjust = mopo.agent, mopo.hooks, mopo.target_adjust
