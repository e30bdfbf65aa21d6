"""MOREC-MOPO: MOPO (Yu et al. 2020, arXiv 2005.13239) with MOREC's transition filter (Luo et al., ICLR 2024,
arXiv 2310.05422; :mod:`dynlearn.algos.morec`).

Everything of :mod:`dynlearn.algos.mopo` (SAC, the reward penalty ``r - lambda u``, data mixing) plus the dynamics
reward filter: ``K`` candidate next states per step, the best-scored kept, branches cut below the threshold, rollouts
of ``h = 100``. Settings are the released run script's (polixir/morec ``generate_tmuxp_morec_mopo.py``): 2,000 start
states per rollout (the longer horizon keeps the rows per rollout near MOPO's), ``lambda = 0.1`` by default and the
per-dataset ``lambda`` and selection rule of its ``good_config``; automatic temperature; the reward combines 40
historical discriminators. The reward must be learned first (``reward_model``: a folder written by
:func:`dynlearn.models.dynamics_reward.save_reward`).
"""

from __future__ import annotations

from ..rollout import RolloutHooks
from . import mopo, morec

DEFAULTS = mopo.DEFAULTS | morec.DEFAULTS | {"horizon": 100, "rollout_batch": 2_000, "penalty_coef": 0.1, "auto_alpha": True,
                                             "reward_discriminators": 40}
PRESETS = {
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


def agent(cfg):
    """MOPO's SAC."""
    return mopo.agent(cfg)


def hooks(cfg) -> RolloutHooks:
    """MOPO's reward penalty, MOREC's filter and truncation."""
    return morec.filter_hooks(cfg, mopo.hooks(cfg))


def target_adjust(cfg, model, agent, n_real):
    """MOPO leaves the critic target alone."""
    return
