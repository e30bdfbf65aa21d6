"""MOREC-MOPO: MOPO (Yu et al. 2020, arXiv 2005.13239) with MOREC's transition filter (Luo et al., ICLR 2024,
arXiv 2310.05422; :mod:`dynlearn.algos.morec.filter`).

Everything of :mod:`dynlearn.algos.mopo` (SAC, the reward penalty ``r - lambda u``, data mixing) plus the dynamics
reward filter: ``K`` candidate next states per step, the best-scored kept, branches cut below the threshold, rollouts
of ``h = 100``. Settings are the released run script's (polixir/morec ``generate_tmuxp_morec_mopo.py``): 2,000 start
states per rollout (the longer horizon keeps the rows per rollout near MOPO's), ``lambda = 0.1`` by default and the
per-dataset ``lambda`` and selection rule of its ``good_config``; automatic temperature; the reward combines 40
historical discriminators. The reward must be learned first (``reward_model``: a folder written by
:func:`dynlearn.algos.morec.reward_io.save_reward`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ...rollout import RolloutHooks
from ..mopo import MOPOConfig
from .filter import MORECOptions, check_options, filter_hooks


@dataclasses.dataclass(frozen=True)
class MORECMOPOConfig(MORECOptions, MOPOConfig):
    """MOREC-MOPO: MOPO with MOREC's transition filter (candidates scored by a learned dynamics reward, branches cut
    below a threshold) on rollouts of h = 100."""

    name: ClassVar[str] = "morec-mopo"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "hopper-medium": {"penalty_coef": 15.0, "selection": "softmax"},
        "hopper-medium-replay": {"penalty_coef": 15.0, "selection": "softmax"},
        "hopper-medium-expert": {"penalty_coef": 15.0, "selection": "softmax"},
        "hopper-random": {"penalty_coef": 10.0, "selection": "greedy"},
        "walker2d-medium": {"penalty_coef": 0.5, "selection": "softmax"},
        "walker2d-medium-replay": {"penalty_coef": 0.25, "selection": "greedy"},
        "walker2d-medium-expert": {"penalty_coef": 1.0, "selection": "softmax"},
        "walker2d-random": {"penalty_coef": 1.0, "selection": "softmax"},
        "halfcheetah-medium": {"penalty_coef": 0.5, "selection": "greedy"},
        "halfcheetah-medium-replay": {"penalty_coef": 0.5, "selection": "softmax"},
        "halfcheetah-medium-expert": {"penalty_coef": 0.5, "selection": "greedy"},
        "halfcheetah-random": {"penalty_coef": 0.5, "selection": "softmax"},
    }

    horizon: int = 100
    """rollout length h"""
    rollout_batch: int = 2_000
    """start states per rollout"""
    penalty_coef: float = 0.1
    """weight lambda of the penalty (the reward in rollouts is r - lambda u)"""

    def __post_init__(self):
        super().__post_init__()
        check_options(self)

    def hooks(self) -> RolloutHooks:
        """MOPO's reward penalty, MOREC's filter and truncation."""
        return filter_hooks(self, super().hooks())
