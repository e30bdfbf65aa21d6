"""MOREC-MOBILE: MOBILE (Sun et al., ICML 2023) with MOREC's transition filter (Luo et al., ICLR 2024, arXiv
2310.05422; :mod:`dynlearn.algos.morec`).

Everything of :mod:`dynlearn.algos.mobile` (the Bellman-inconsistency penalty in the critic target) plus the dynamics
reward filter on rollouts of ``h = 100``. Settings are the released run script's (polixir/morec
``generate_tmuxp_morec_mobile.py``): 2,000 start states per rollout, softmax selection, automatic temperature, the
reward thinned to 10 historical discriminators (every 40th of the last 400), and its per-dataset ``beta`` (and
``real_ratio``) from ``good_config``. The released MOBILE decays the actor's learning rate (cosine); ours does not
(as our MOBILE). The reward must be learned first (``reward_model``).
"""

from __future__ import annotations

from ..rollout import RolloutHooks
from . import mobile, morec

DEFAULTS = mobile.DEFAULTS | morec.DEFAULTS | {"horizon": 100, "rollout_batch": 2_000, "auto_alpha": True, "alpha": 0.1,
                                               "selection": "softmax", "reward_discriminators": 10}
PRESETS = {
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


def agent(cfg):
    """MOBILE's SAC."""
    return mobile.agent(cfg)


def hooks(cfg) -> RolloutHooks:
    """No rollout penalty (MOBILE's is in the critic target); MOREC's filter and truncation."""
    return morec.filter_hooks(cfg, mobile.hooks(cfg))


def target_adjust(cfg, model, agent, n_real):
    """MOBILE's Bellman-inconsistency penalty."""
    return mobile.target_adjust(cfg, model, agent, n_real)
