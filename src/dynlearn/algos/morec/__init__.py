"""MOREC: Luo, Xu, Cao & Yu, "Reward-Consistent Dynamics Models are Strongly Generalizable for Offline Reinforcement
Learning", ICLR 2024 (arXiv 2310.05422): an offline model-based method (MOPO, MOBILE) whose model rollouts are filtered
by a learned *dynamics reward*.

- :mod:`~dynlearn.algos.morec.reward`: the dynamics reward ``r(s, a, s')``, an ensemble of historical discriminators;
- :mod:`~dynlearn.algos.morec.learning`: how it is learned from the data and a fitted ensemble (a reconstruction);
- :mod:`~dynlearn.algos.morec.reward_io`, :mod:`~dynlearn.algos.morec.diagnostics`: its folder, and how well it tells
  real transitions from the model's;
- :mod:`~dynlearn.algos.morec.filter`: the transition filter and truncation it drives, as rollout hooks;
- :mod:`~dynlearn.algos.morec.mopo`, :mod:`~dynlearn.algos.morec.mobile`: MOREC-MOPO and MOREC-MOBILE, their configs
  and the released run scripts' presets.

>>> reward, report = dl.algos.morec.learn_reward(dataset, model, key=jax.random.key(0))   # `dynlearn model reward`
>>> dl.algos.morec.save_reward("runs/reward", reward, report)
>>> dl.algos.train(dl.algos.MORECMOPOConfig.preset("hopper-medium", reward_model="runs/reward"), dataset, task, out="runs/morec")
"""

from .diagnostics import auc, reward_diagnostics
from .filter import MORECOptions, ScoreTruncation, TransitionFilter, filter_hooks
from .learning import learn_reward
from .mobile import MORECMOBILEConfig
from .mopo import MORECMOPOConfig
from .reward import DynamicsReward, DynamicsRewardConfig
from .reward_io import RewardReport, load_report, load_reward, save_reward

__all__ = ["DynamicsReward", "DynamicsRewardConfig", "MORECMOBILEConfig", "MORECMOPOConfig", "MORECOptions", "RewardReport",
           "ScoreTruncation", "TransitionFilter", "auc", "filter_hooks", "learn_reward", "load_report", "load_reward",
           "reward_diagnostics", "save_reward"]
