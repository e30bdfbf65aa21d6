"""MOPO: Yu, Thomas, Yu, Ermon, Zou, Levine, Finn & Ma, "Model-based Offline Policy Optimization",
NeurIPS 2020 (arXiv 2005.13239).

SAC trained on short model rollouts (horizon ``h``) branched from dataset states, mixed with dataset rows
(``real_ratio``), whose reward is penalised by the model's uncertainty: ``r~ = r - lambda u(s, a)`` (the paper's
Eq. 6; ``u`` is ``max_i ||Sigma_i||_F``, the largest aleatoric std over the elites, in its experiments). Any
heuristic of :mod:`dynlearn.penalties` can stand in for ``u``, the design choice Lu et al. (ICLR 2022, arXiv
2110.04135) study together with ``h``, ``lambda``, the number of members and the real-data ratio.

Defaults follow OfflineRL-Kit's MOPO (its ``run_example/run_mopo.py``): SAC 256x256, actor and temperature lr
1e-4, critic lr 3e-4, automatic temperature; rollouts of 50,000 start states every 1,000 steps, buffer kept for
5 rollouts, 5% real data. Per-dataset ``h`` and ``lambda`` are the original code's (tianheyu927/mopo,
``examples/config/d4rl``). The penalty reads every target dimension (``part="all"``) of every member, non-elites
included (``penalty_members="all"``), as the original code and Kit's do; transitions are sampled from the elites.
As Kit's SAC, the temperature the losses use is clamped at 1. Kit anneals the actor's learning rate (cosine, over
the run's epochs): ``actor_lr_schedule="cosine"`` does the same; the default keeps it constant.
"""

from __future__ import annotations

from .. import agents, penalties
from ..rollout import Penalty, RolloutHooks

DEFAULTS = {"horizon": 5, "penalty": "max_aleatoric", "penalty_coef": 1.0, "penalty_part": "all", "penalty_members": "all",
            "real_ratio": 0.05, "rollout_batch": 50_000, "rollout_every": 1_000, "retain_epochs": 5, "critics": 2,
            "auto_alpha": True, "alpha": 1.0}
PRESETS = {
    "hopper-medium": {"horizon": 5, "penalty_coef": 5.0},
    "halfcheetah-medium": {"horizon": 5, "penalty_coef": 0.5},  # OfflineRL-Kit's (the original code: h 1, lambda 1)
    "hopper-medium-replay": {"horizon": 5, "penalty_coef": 1.0},
    "hopper-medium-expert": {"horizon": 5, "penalty_coef": 1.0},
}


def agent(cfg):
    """SAC with MOPO's learning rates."""
    sac = agents.get("sac")
    return sac, sac_config(cfg)


def sac_config(cfg):
    """OfflineRL-Kit's SAC for MOPO and MOBILE: actor and temperature lr 1e-4, critic lr 3e-4, temperature clamped at 1,
    the actor's lr cosine-annealed over the run (in steps of ``rollout_every`` updates) when ``actor_lr_schedule`` says
    so."""
    cosine = cfg.actor_lr_schedule == "cosine"
    return agents.get("sac").Config(actor_lr=1e-4, critic_lr=3e-4, alpha_lr=1e-4, n_critics=cfg.critics, auto_alpha=cfg.auto_alpha,
                                    init_alpha=cfg.alpha, alpha_max=1.0, actor_lr_decay_steps=cfg.steps if cosine else None,
                                    actor_lr_decay_every=cfg.rollout_every)


def hooks(cfg) -> RolloutHooks:
    """The reward penalty ``lambda u`` in rollouts (none when ``penalty`` is none or lambda is 0)."""
    if cfg.penalty in (None, "none") or cfg.penalty_coef == 0:
        return RolloutHooks()
    return RolloutHooks(penalty=Penalty(penalties.PENALTIES[cfg.penalty], coef=cfg.penalty_coef, part=cfg.penalty_part,
                                        members=cfg.penalty_members or "elites"))


def target_adjust(cfg, model, agent, n_real):
    """MOPO leaves the critic target alone."""
    return None
