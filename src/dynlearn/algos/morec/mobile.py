"""MOREC-MOBILE: MOBILE (Sun et al., ICML 2023) with MOREC's transition filter (Luo et al., ICLR 2024, arXiv
2310.05422; :mod:`dynlearn.algos.morec.filter`).

Everything of :mod:`dynlearn.algos.mobile` (the Bellman-inconsistency penalty in the critic target) plus the dynamics
reward filter on rollouts of ``h = 100``. Settings are the released run script's (polixir/morec
``generate_tmuxp_morec_mobile.py``): 2,000 start states per rollout, softmax selection, automatic temperature, the
reward thinned to 10 historical discriminators (every 40th of the last 400), and its per-dataset ``beta`` (and
``real_ratio``) from ``good_config``. The released MOBILE decays the actor's learning rate (cosine); ours does not
(as our MOBILE). The reward must be learned first (``reward_model``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ...rollout import RolloutHooks
from ..mobile import MOBILEConfig
from .filter import MORECOptions, check_options, filter_hooks


@dataclasses.dataclass(frozen=True)
class MORECMOBILEConfig(MORECOptions, MOBILEConfig):
    """MOREC-MOBILE: MOBILE with MOREC's transition filter (candidates scored by a learned dynamics reward, branches cut
    below a threshold) on rollouts of h = 100."""

    name: ClassVar[str] = "morec-mobile"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "hopper-medium": {"penalty_coef": 1.5},
        "hopper-medium-replay": {"penalty_coef": 0.5},
        "hopper-medium-expert": {"penalty_coef": 1.5},
        "hopper-random": {"penalty_coef": 7.5},
        "walker2d-medium": {"penalty_coef": 0.75},
        "walker2d-medium-replay": {"penalty_coef": 0.1},
        "walker2d-medium-expert": {"penalty_coef": 0.25},
        "walker2d-random": {"penalty_coef": 1.0},
        "halfcheetah-medium": {"penalty_coef": 0.25},
        "halfcheetah-medium-replay": {"penalty_coef": 0.25},
        "halfcheetah-medium-expert": {"penalty_coef": 1.0, "real_ratio": 0.5},
        "halfcheetah-random": {"penalty_coef": 0.25},
    }

    horizon: int = 100
    """rollout length h"""
    rollout_batch: int = 2_000
    """start states per rollout"""
    alpha: float = 0.1
    """SAC's (initial) temperature"""
    reward_discriminators: int = 10
    """historical discriminators combined into the reward (the latest ones)"""

    def __post_init__(self):
        super().__post_init__()
        check_options(self)

    def hooks(self) -> RolloutHooks:
        """No rollout penalty (MOBILE's is in the critic target); MOREC's filter and truncation."""
        return filter_hooks(self, super().hooks())
