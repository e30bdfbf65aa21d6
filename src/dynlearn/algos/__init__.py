"""Training methods, one readable file each, and their public entry points.

>>> import dynlearn as dl
>>> cfg = dl.algos.MOPOConfig.preset("hopper-medium")          # the paper's values; explicit ones win: .preset(..., steps=50_000)
>>> dl.algos.train(cfg, data, task, out="runs/mopo")             # offline model-based: MOPO, MOBILE, RAVL, MBPO, MOREC-*
>>> dl.algos.train(dl.algos.OfflineConfig(agent="td3bc"), data, task, out="runs/td3bc")   # offline model-free
>>> dl.algos.train(dl.algos.OnlineConfig(task="Hopper-v5"), out="runs/sac")               # online SAC
>>> dl.algos.train(dl.algos.PETSConfig(task="Pendulum-v1"), out="runs/pets")              # PETS (planning, online)

A model-based method is a frozen config class (:class:`ModelBasedConfig`); :func:`register` adds one, and
``dynlearn train NAME`` trains it with its fields as flags. :func:`load_config` reads a run's config back.
"""

from .base import ModelBasedConfig
from .dispatch import train
from .mbpo import MBPOConfig
from .mobile import MOBILEConfig
from .model_based import train_model_based
from .mopo import MOPOConfig
from .morec.mobile import MORECMOBILEConfig
from .morec.mopo import MORECMOPOConfig
from .offline import OfflineConfig, train_offline
from .online import OnlineConfig, train_online
from .pets import PETSConfig, train_pets
from .ravl import RAVLConfig
from .registry import config_from_record, load_config, method, names, register

__all__ = ["MBPOConfig", "MOBILEConfig", "MOPOConfig", "MORECMOBILEConfig", "MORECMOPOConfig", "ModelBasedConfig", "OfflineConfig",
           "OnlineConfig", "PETSConfig", "RAVLConfig", "config_from_record", "load_config", "method", "names", "register", "train",
           "train_model_based", "train_offline", "train_online", "train_pets"]
