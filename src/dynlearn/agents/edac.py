"""SAC-N and EDAC: An, Moon, Kim & Song 2021, "Uncertainty-Based Offline RL with Diversified Q-Ensemble"
(arXiv 2110.01548).

SAC-N is SAC with N critics: the minimum over a large ensemble penalises actions where the critics
disagree, which keeps the policy near the data without a behaviour-cloning term. EDAC adds a term
that makes the critics' action gradients diverse, ``eta * mean_rows sum_{i != j} cos(grad_a Q_i,
grad_a Q_j) / (N - 1)``, so far fewer critics suffice. This is :mod:`dynlearn.agents.sac` (same
functions, same state) with EDAC's defaults; ``eta=0`` gives SAC-N.
Defaults: the paper's for HalfCheetah (N = 10, eta = 1; Hopper uses N = 50, Walker2d N = 10), and 3
hidden layers of 256 for actor and critics as in the paper and CORL. Differences from the paper:
none in the algorithm; log-probabilities are in the unit box (see :mod:`dynlearn.agents.sac`). The networks start
from PyTorch's default initialisation unless ``init="edac"``, which is the paper's code's (hidden biases 0.1, last
layers near 0; CORL's EDAC and the RAVL reference use it too).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import equinox as eqx

from . import base
from .base import AgentSpec
from .sac import SACConfig, SACState, act, q_values, sample_action, update, update_block
from .sac import init as _sac_init

NAME = "edac"


@dataclasses.dataclass(frozen=True)
class EDACConfig(SACConfig):
    """SAC's fields with EDAC's defaults (An et al. 2021, HalfCheetah settings)."""

    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the actor and of each critic (3 x 256 in the paper)."""
    n_critics: int = 10
    """Ensemble size N (10 HalfCheetah/Walker2d, 50 Hopper in the paper)."""
    eta: float = 1.0
    """Weight of the gradient-diversity term (0 is SAC-N)."""


Config = EDACConfig
State = SACState


@eqx.filter_jit
def init(key, spec: AgentSpec, cfg: EDACConfig = EDACConfig()) -> SACState:
    """Fresh networks and optimiser states (:func:`dynlearn.agents.sac.init` with EDAC's config)."""
    return _sac_init(key, spec, cfg)


def save(folder: str | os.PathLike, state: SACState) -> Path:
    """Save networks, targets, optimiser states and step, with spec and config (no pickle)."""
    return base.save_state(folder, state, name=NAME)


def load(folder: str | os.PathLike) -> SACState:
    """Load what :func:`save` wrote; training resumes exactly."""
    return base.load_state(folder, name=NAME, init=init, config_cls=EDACConfig)


__all__ = ["NAME", "Config", "EDACConfig", "State", "act", "init", "load", "q_values", "sample_action", "save",
           "update", "update_block"]
