"""Training methods, one readable file each, and their public entry points.

>>> import dynlearn as dl
>>> cfg = dl.algos.ModelBasedConfig(method="mopo", preset="hopper-medium")
>>> dl.algos.train_model_based(data, task, cfg, "runs/mopo")          # offline model-based: mopo, mobile, ravl, mbpo, morec-*
>>> dl.algos.train_offline(data, task, dl.algos.OfflineConfig(agent="td3bc"), "runs/td3bc")   # offline model-free
>>> dl.algos.train_online(dl.algos.OnlineConfig(task="Hopper-v5"), "runs/sac")             # online SAC
>>> dl.algos.train_pets(dl.algos.PETSConfig(task="Pendulum-v1"), "runs/pets")            # PETS (planning, online)
"""

from .model_based import ModelBasedConfig, train_model_based
from .offline import OfflineConfig, train_offline
from .online import OnlineConfig, train_online
from .pets import PETSConfig, train_pets

__all__ = ["ModelBasedConfig", "OfflineConfig", "OnlineConfig", "PETSConfig", "train_model_based", "train_offline", "train_online",
           "train_pets"]
