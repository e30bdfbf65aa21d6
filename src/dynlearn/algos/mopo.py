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

import dataclasses
from typing import Any, ClassVar

from .. import agents, penalties
from ..errors import ConfigError
from ..rollout import Penalty, RolloutHooks
from .base import ModelBasedConfig

PENALTY_PARTS = ("obs", "reward", "all")
PENALTY_MEMBERS = ("elites", "all")


@dataclasses.dataclass(frozen=True)
class MOPOConfig(ModelBasedConfig):
    """MOPO: SAC on model rollouts whose reward is penalised by the model's uncertainty, ``r - lambda u(s, a)``."""

    name: ClassVar[str] = "mopo"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "hopper-medium": {"horizon": 5, "penalty_coef": 5.0},
        "halfcheetah-medium": {"horizon": 5, "penalty_coef": 0.5},  # OfflineRL-Kit's (the original code: h 1, lambda 1)
        "hopper-medium-replay": {"horizon": 5, "penalty_coef": 1.0},
        "hopper-medium-expert": {"horizon": 5, "penalty_coef": 1.0},
    }

    penalty: str = "max_aleatoric"
    """the reward penalty u: max_aleatoric, max_pairwise_diff, ensemble_std, ensemble_var, llv, loo_kl or none"""
    penalty_coef: float = 1.0
    """weight lambda of the penalty (the reward in rollouts is r - lambda u)"""
    penalty_part: str = "all"
    """which targets the penalty reads: obs | reward | all"""
    penalty_members: str = "all"
    """which members the penalty reads: all (MOPO's code: non-elites too) | elites (Lu et al.)"""

    def __post_init__(self):
        super().__post_init__()
        me = type(self).__name__
        if self.penalty != "none" and self.penalty not in penalties.PENALTIES:
            raise ConfigError(f"{me}.penalty: unknown penalty {self.penalty!r}; choose one of {', '.join(penalties.PENALTIES)} or none.")
        if self.penalty_coef < 0:
            raise ConfigError(f"{me}.penalty_coef must be >= 0, got {self.penalty_coef}.")
        if self.penalty_part not in PENALTY_PARTS:
            raise ConfigError(f"{me}.penalty_part must be obs, reward or all, got {self.penalty_part!r}.")
        if self.penalty_members not in PENALTY_MEMBERS:
            raise ConfigError(f"{me}.penalty_members must be elites or all, got {self.penalty_members!r}.")

    def agent(self):
        """SAC with MOPO's learning rates."""
        return agents.get("sac"), sac_config(self)

    def hooks(self) -> RolloutHooks:
        """The reward penalty ``lambda u`` in rollouts (none when ``penalty`` is none or lambda is 0)."""
        if self.penalty == "none" or self.penalty_coef == 0:
            return RolloutHooks()
        return RolloutHooks(penalty=Penalty(penalties.PENALTIES[self.penalty], coef=self.penalty_coef, part=self.penalty_part,
                                            members=self.penalty_members))

    def target_adjust(self, model, agent, n_real):
        """MOPO leaves the critic target alone."""
        return None


def sac_config(cfg: ModelBasedConfig):
    """OfflineRL-Kit's SAC for MOPO and MOBILE: 2 critics, actor and temperature lr 1e-4, critic lr 3e-4, temperature
    clamped at 1, the actor's lr cosine-annealed over the run (in steps of ``rollout_every`` updates) when
    ``actor_lr_schedule`` says so."""
    cosine = cfg.actor_lr_schedule == "cosine"
    return agents.get("sac").Config(actor_lr=1e-4, critic_lr=3e-4, alpha_lr=1e-4, n_critics=2, auto_alpha=cfg.auto_alpha,
                                    init_alpha=cfg.alpha, alpha_max=1.0, actor_lr_decay_steps=cfg.steps if cosine else None,
                                    actor_lr_decay_every=cfg.rollout_every)
