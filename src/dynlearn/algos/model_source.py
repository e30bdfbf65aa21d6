"""Where a model-based run's model and start states come from: the learned ensemble (fitted once per dataset and fit
options, cached), the true simulator (``model="oracle"``, started from the dataset's recorded ``qpos``/``qvel``: the
edge-of-reach experiment of Sims et al., 2024), or a saved model folder; and the dataset rows an agent learns from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..data.dataset import Dataset
from ..data.transitions import Transitions
from ..errors import ConfigError, DataError
from ..models import fitted, load
from ..models.cache import cache_entry
from ..models.ensemble import EnsembleConfig
from ..models.fit_config import FitConfig
from ..tasks.oracle import OracleModel
from .base import ModelBasedConfig



def build_model(dataset: Dataset, task, cfg: ModelBasedConfig, log: Callable[[str], None]):
    """The learned ensemble (cached), the oracle, or a saved model folder."""
    if cfg.model == "oracle":
        if "qpos" not in dataset.metadata or "qvel" not in dataset.metadata:
            raise DataError(dataset.source, "has no simulator states (infos/qpos, infos/qvel), which the oracle model starts from.",
                            "use a dataset collected by dynlearn (dynlearn data generate) or one with infos/qpos and infos/qvel.",
                            key="infos/qpos")
        return OracleModel.for_task(task), None
    if cfg.model == "ensemble":
        model, report = fitted(dataset, *ensemble_configs(cfg, task), seed=cfg.model_seed, task=task, log=log)
        return model, report
    folder = Path(cfg.model)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model {cfg.model!r} is not 'ensemble', 'oracle' or a model folder (no {folder / 'config.json'}). "
                          "Fix: pass --model ensemble, --model oracle or the run folder of `dynlearn model train`.")
    return load(folder, task=task), None


def ensemble_configs(cfg: ModelBasedConfig, task):
    """The learned ensemble's configs. The termination head is fitted only for a task without a termination function:
    with one, rollouts never read the head, and training it beside the dynamics slowed the fit on hopper-medium-v5
    (early stopping at epoch 12 instead of the reference's 30+; ``benchmarks/parity.md``, section 1)."""
    return EnsembleConfig(termination_head=getattr(task, "termination_fn", None) is None), FitConfig(
        max_epochs=cfg.model_max_epochs, holdout=cfg.model_holdout, min_epochs=cfg.model_min_epochs, select_by=cfg.model_select_by)


def ensemble_entry(dataset: Dataset, task, cfg: ModelBasedConfig) -> Path:
    """The cache folder of the learned ensemble :func:`build_model` uses for ``dataset`` (once fitted)."""
    return cache_entry(dataset, *ensemble_configs(cfg, task), seed=cfg.model_seed, task=task)


class StartStates:
    """Rollout start states on the device: observations, and the simulator state for the oracle."""

    def __init__(self, dataset: Dataset, model):
        t = dataset.transitions
        self.obs = jnp.asarray(t.obs, jnp.float32)
        self.state_from = getattr(model, "state_from", None)
        if self.state_from is not None:  # host float64: the oracle keeps the simulator state's full precision
            self.qpos = np.asarray(dataset.metadata["qpos"], np.float64)
            self.qvel = np.asarray(dataset.metadata["qvel"], np.float64)

    def draw(self, n: int, *, key) -> tuple[jax.Array, Any]:
        index = jax.random.randint(key, (n,), 0, self.obs.shape[0])
        if self.state_from is None:
            return self.obs[index], None
        rows = np.asarray(index)
        return self.obs[index], self.state_from(self.qpos[rows], self.qvel[rows])

    @staticmethod
    def draw_obs(obs: jax.Array, n: int, *, key) -> jax.Array:
        """:meth:`draw`'s observations as a pure function of the observation array (for vmapped seeds)."""
        return obs[jax.random.randint(key, (n,), 0, obs.shape[0])]


def real_rows(dataset: Dataset) -> Transitions:
    """The dataset's rows an agent can learn from (a successor observation, or terminal), on the device."""
    t = dataset.transitions
    usable = np.asarray(t.next_obs_valid) | np.asarray(t.terminal)
    return t.take(np.flatnonzero(usable)).to_device()
