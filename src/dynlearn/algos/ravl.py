"""RAVL (Reach-Aware Value Learning): Sims, Lu & Teh, "The Edge-of-Reach Problem in Offline Model-Based
Reinforcement Learning", NeurIPS 2024 (arXiv 2402.12527).

The paper shows that offline model-based methods fail mainly through *edge-of-reach* states: states reached
only at the last step of truncated rollouts, never updated as a state themselves, so their Q-values are never
corrected and errors there bootstrap upward without bound, even with the true dynamics. RAVL applies no dynamics
penalty; it makes value learning pessimistic where the critics are uncertain, with an EDAC critic ensemble (An
et al. 2021: the minimum over N critics plus a gradient-diversity term) trained on the same mixed model/real
batches as MBPO/MOPO.

Defaults are the reference code's (anyasims/edge-of-reach, ``train_ravl_agent.py``): N = 10 critics, eta = 1,
learning rates 3e-4, automatic temperature, h = 5, 5% real data, 50,000 rollouts every 1,000 updates kept for
5 rollouts. Critics and actor have 3 hidden layers of 256 (CORL's EDAC, which the reference code follows). The
reference also initialises as CORL's EDAC; here that is ``agent_config=EDACConfig(..., init="edac")`` (the default
keeps PyTorch's initialisation, which the runs in benchmarks/offline_mbrl.md used).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .. import agents
from ..errors import ConfigError
from ..rollout import RolloutHooks
from .base import ModelBasedConfig


@dataclasses.dataclass(frozen=True)
class RAVLConfig(ModelBasedConfig):
    """RAVL: an EDAC critic ensemble (the minimum over N critics plus a gradient-diversity term) on unpenalised model
    rollouts mixed with dataset rows."""

    name: ClassVar[str] = "ravl"

    critics: int = 10
    """critics in EDAC's ensemble (N)"""
    eta: float = 1.0
    """EDAC's gradient-diversity weight"""

    def __post_init__(self):
        super().__post_init__()
        if self.critics < 1:
            raise ConfigError(f"{type(self).__name__}.critics must be >= 1, got {self.critics}.")

    def agent(self):
        """EDAC (SAC-N with the diversity term) with the reference code's settings."""
        edac = agents.get("edac")
        return edac, edac.Config(n_critics=self.critics, eta=self.eta, auto_alpha=self.auto_alpha, init_alpha=self.alpha)

    def hooks(self) -> RolloutHooks:
        """No rollout penalty: RAVL's pessimism is in the critic ensemble."""
        return RolloutHooks()

    def target_adjust(self, model, agent, n_real):
        """The critic target as it is."""
        return None
