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

from .. import agents
from ..rollout import RolloutHooks

DEFAULTS = {"horizon": 5, "penalty": "none", "penalty_coef": 0.0, "penalty_part": "obs", "real_ratio": 0.05,
            "rollout_batch": 50_000, "rollout_every": 1_000, "retain_epochs": 5, "critics": 10, "eta": 1.0,
            "auto_alpha": True, "alpha": 1.0}
PRESETS: dict[str, dict] = {}


def agent(cfg):
    """EDAC (SAC-N with the diversity term) with the reference code's settings."""
    edac = agents.get("edac")
    return edac, edac.Config(n_critics=cfg.critics, eta=cfg.eta, auto_alpha=cfg.auto_alpha, init_alpha=cfg.alpha)


def hooks(cfg) -> RolloutHooks:
    """No rollout penalty: RAVL's pessimism is in the critic ensemble."""
    return RolloutHooks()


def target_adjust(cfg, model, agent, n_real):
    return None
