"""Offline MBPO: MOPO's loop with no uncertainty penalty (Janner et al., NeurIPS 2019, arXiv 1906.08253, run on a
fixed dataset). The baseline of the edge-of-reach experiment (Sims, Lu & Teh, NeurIPS 2024, arXiv 2402.12527): with
the true dynamics every penalty of :mod:`dynlearn.penalties` vanishes, and this is what remains.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .. import agents
from ..rollout import RolloutHooks
from .base import ModelBasedConfig
from .mopo import sac_config


@dataclasses.dataclass(frozen=True)
class MBPOConfig(ModelBasedConfig):
    """Offline MBPO: SAC on unpenalised model rollouts mixed with dataset rows (MOPO with no penalty)."""

    name: ClassVar[str] = "mbpo"

    def agent(self):
        """MOPO's SAC."""
        return agents.get("sac"), sac_config(self)

    def hooks(self) -> RolloutHooks:
        """No rollout penalty."""
        return RolloutHooks()

    def target_adjust(self, model, agent, n_real):
        """The critic target as it is."""
        return None
