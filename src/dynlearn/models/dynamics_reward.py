"""MOREC's dynamics reward lives with MOREC, in :mod:`dynlearn.algos.morec` (it is no transition model); these names
are importable from here too, for importers not yet moved."""

from ..algos.morec.diagnostics import auc, reward_diagnostics
from ..algos.morec.learning import learn_reward
from ..algos.morec.reward import DynamicsReward, DynamicsRewardConfig
from ..algos.morec.reward_io import RewardReport, load_report, load_reward, save_reward

__all__ = ["DynamicsReward", "DynamicsRewardConfig", "RewardReport", "auc", "learn_reward", "load_report", "load_reward",
           "reward_diagnostics", "save_reward"]
