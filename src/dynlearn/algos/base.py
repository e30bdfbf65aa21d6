"""What an offline model-based method is: a frozen config that holds its hyperparameters and builds its parts.

Every method (MOPO, MOBILE, RAVL, MBPO, MOREC-MOPO, MOREC-MOBILE, or one of a user's) is one module with one subclass
of :class:`ModelBasedConfig`: the fields every method shares are here, the subclass adds its own, names itself
(``name``), lists the papers' per-dataset values (``PRESETS``) and builds the three parts the one training loop
(:func:`dynlearn.algos.model_based.train_model_based`) asks it for:

- :meth:`~ModelBasedConfig.agent`: the agent module and its config (SAC, EDAC, ...);
- :meth:`~ModelBasedConfig.hooks`: the rollout hooks (:class:`dynlearn.rollout.RolloutHooks`: MOPO's reward penalty,
  MOREC's transition filter);
- :meth:`~ModelBasedConfig.target_adjust`: a change of the critic's target, or None (MOBILE's penalty).

Registered in :mod:`dynlearn.algos.registry`, a method gets its ``dynlearn train NAME`` command, whose flags are its
config's fields. ``MOPOConfig.preset("hopper-medium", **overrides)`` is a paper's setting; explicit values win.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar

from ..errors import ConfigError
from ..models.fit_config import HOLDOUTS, SELECT_BY
from ..rollout import RolloutHooks

FIT_OPTIONS = ("model_holdout", "model_min_epochs", "model_select_by")
"""Options of the ensemble's fit, refused where no ensemble is fitted (the oracle, a saved model, a model passed in)."""


@dataclasses.dataclass(frozen=True)
class ModelBasedConfig(abc.ABC):
    """An offline model-based method: the hyperparameters every method shares; a subclass adds its own and builds the
    method's agent, rollout hooks and critic-target adjustment."""

    name: ClassVar[str]
    """the method's name: its command (``dynlearn train NAME``) and the ``method`` of its results"""
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    """the papers' per-dataset values, preset name (``hopper-medium``) -> field values"""

    preset: str | None = None
    """the paper's per-dataset hyperparameters this config starts from, e.g. hopper-medium (on the command line
    default: the preset named by DATA's name, where the method has one; flags given beside it win)"""
    steps: int = 100_000
    """agent gradient steps per seed"""
    seeds: int = 3
    """seeds, run one after another"""
    seed: int = 0
    """first seed"""
    model: str = "ensemble"
    """ensemble (fitted on the dataset, cached) | oracle (the true simulator) | a model folder (dynlearn model train)"""
    model_seed: int = 0
    """seed of the ensemble fit (one model per dataset, shared by every method and agent seed)"""
    model_max_epochs: int | None = 60
    """cap on ensemble training epochs (0 or None: no cap, early stopping only)"""
    model_min_epochs: int = 0
    """ensemble training runs at least this many epochs, the learning rate lowered x 0.3 at the first plateau before
    them (the edge-of-reach/RAVL reference: 350); 0: early stopping only"""
    model_holdout: str = "episodes"
    """what the ensemble fit holds out for early stopping: episodes | transitions (OfflineRL-Kit's random rows, as the
    published methods fit their models)"""
    model_select_by: str = "mse"
    """the holdout error the ensemble fit stops on and picks elites by: mse (data units, OfflineRL-Kit's) | normalized
    (each target dim divided by its variance)"""
    horizon: int = 5
    """rollout length h"""
    real_ratio: float = 0.05
    """share of each batch drawn from the dataset (the rest from model rollouts)"""
    rollout_batch: int = 50_000
    """start states per rollout"""
    rollout_every: int = 1_000
    """agent steps between rollouts (also the compiled update block)"""
    retain_epochs: int = 5
    """rollouts the model buffer keeps (capacity rollout_batch * horizon * retain_epochs)"""
    auto_alpha: bool = True
    """tune SAC's temperature"""
    alpha: float = 1.0
    """SAC's (initial) temperature"""
    actor_lr_schedule: str = "constant"
    """constant | cosine: the policy's learning rate annealed to 0 over the run's steps, in steps of rollout_every
    updates (OfflineRL-Kit's MOPO and MOBILE)"""
    eval_every: int = 10_000
    """evaluate the policy every this many steps (a multiple of rollout_every)"""
    eval_episodes: int = 10
    """episodes per evaluation (the final policy gets the same number)"""
    checkpoint_every: int = 10_000
    """write a resumable checkpoint every this many steps (a multiple of rollout_every)"""

    def __post_init__(self):
        me = type(self).__name__
        if self.model_max_epochs == 0:  # 0 and None both mean no cap; the config holds None
            object.__setattr__(self, "model_max_epochs", None)
        for name in ("steps", "seeds", "eval_every", "eval_episodes", "checkpoint_every", "horizon", "rollout_batch",
                     "rollout_every", "retain_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{me}.{name} must be >= 1, got {getattr(self, name)}.")
        if self.preset is not None and self.preset not in self.PRESETS:
            raise ConfigError(f"{me}.preset: {unknown_preset(type(self), self.preset)}")
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ConfigError(f"{me}.real_ratio must be in [0, 1], got {self.real_ratio}.")
        if self.model_holdout not in HOLDOUTS:
            raise ConfigError(f"{me}.model_holdout must be one of {', '.join(HOLDOUTS)}, got {self.model_holdout!r}.")
        if self.model_select_by not in SELECT_BY:
            raise ConfigError(f"{me}.model_select_by must be one of {', '.join(SELECT_BY)}, got {self.model_select_by!r}.")
        if self.model_max_epochs is not None and self.model_max_epochs < 0:
            raise ConfigError(f"{me}.model_max_epochs must be >= 0 (0: no cap), got {self.model_max_epochs}.")
        if self.model_min_epochs < 0:
            raise ConfigError(f"{me}.model_min_epochs must be >= 0, got {self.model_min_epochs}.")
        if self.model_min_epochs and self.model_max_epochs is not None and self.model_min_epochs > self.model_max_epochs:
            raise ConfigError(f"{me}: model_min_epochs {self.model_min_epochs} is above model_max_epochs {self.model_max_epochs} "
                              "(default 60), which would end the fit first. Fix: lift the cap (0 or None) or set "
                              "model_max_epochs to at least model_min_epochs.")
        for name in FIT_OPTIONS:
            if self.model != "ensemble" and getattr(self, name) != field_default(type(self), name):
                raise ConfigError(f"{me}.{name} chooses how the learned ensemble is fitted; model={self.model!r} is not fitted "
                                  f"here. Fix: drop {name} (--{name.replace('_', '-')}), or use model='ensemble'.")
        if self.actor_lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"{me}.actor_lr_schedule must be constant or cosine, got {self.actor_lr_schedule!r}.")
        if self.steps % self.rollout_every or self.eval_every % self.rollout_every or self.checkpoint_every % self.rollout_every:
            raise ConfigError(f"steps ({self.steps}), eval_every ({self.eval_every}) and checkpoint_every ({self.checkpoint_every}) "
                              f"must be multiples of rollout_every ({self.rollout_every}).")

    # ------------------------------------------------------------------------------------------
    # The method's parts

    @abc.abstractmethod
    def agent(self) -> tuple[Any, Any]:
        """The agent module (:mod:`dynlearn.agents`) and its config."""

    @abc.abstractmethod
    def hooks(self) -> RolloutHooks:
        """The rollout hooks (penalty, candidate selection, stop rule); built once per run."""

    @abc.abstractmethod
    def target_adjust(self, model, agent, n_real: int):
        """The critic-target adjustment (:mod:`dynlearn.agents.base`, ``target_adjust``), or None; ``n_real`` is the
        number of dataset rows that start each batch."""

    # ------------------------------------------------------------------------------------------
    # Presets and records

    @classmethod
    def for_dataset(cls, dataset_name: str | None, **overrides):
        """The method's preset for a dataset's name (``hopper-medium-v5`` -> ``hopper-medium``) where it has one, else
        its defaults; ``overrides`` win over either."""
        key = preset_of(dataset_name, cls.PRESETS)
        return cls(**overrides) if key is None else cls.preset(key, **overrides)

    def record(self) -> dict[str, Any]:
        """The method's name and every field, as ``config.json`` holds them (non-finite floats as text: strict JSON has
        none); :func:`dynlearn.algos.registry.config_from_record` rebuilds this config from it."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"method": self.name, **{k: _json_value(v) for k, v in values.items()}}

    @property
    def buffer_capacity(self) -> int:
        """Rows the model buffer holds."""
        return self.rollout_batch * self.horizon * self.retain_epochs


def _preset(cls, name: str, **overrides):
    """The paper's hyperparameters: ``name`` is a preset (``hopper-medium``) or a dataset's name (``hopper-medium-v5``:
    the longest preset it starts with); ``overrides`` (field values) win over the preset's.

    >>> MOPOConfig.preset("hopper-medium", steps=50_000)
    """
    key = name if name in cls.PRESETS else preset_of(name, cls.PRESETS)
    if key is None:
        raise ConfigError(f"{cls.__name__}.preset: {unknown_preset(cls, name)}")
    return cls(**(cls.PRESETS[key] | overrides | {"preset": key}))


# The class method shares its name with the field: ``MOPOConfig.preset(...)`` builds a config, ``cfg.preset`` is the
# label the built config carries (an instance's field hides the class's method). Set after the class is made, so
# that the field's default stays None.
ModelBasedConfig.preset = classmethod(_preset)  # type: ignore[assignment]


def preset_of(dataset_name: str | None, presets: dict) -> str | None:
    """The preset whose name starts the dataset's name (``hopper-medium-replay-v5`` -> ``hopper-medium-replay``)."""
    if not dataset_name:
        return None
    matches = [p for p in presets if dataset_name == p or dataset_name.startswith(p + "-v")]
    return max(matches, key=len) if matches else None


def unknown_preset(cls, name: str) -> str:
    known = ", ".join(sorted(cls.PRESETS))
    if not known:
        return f"{cls.name} has no presets, so {name!r} names none. Fix: drop the preset (the defaults are the paper's)."
    return f"{cls.name} has no preset {name!r}; known: {known}. Fix: choose one of them, or none."


def field_default(cls, name: str):
    """The default of a config class's field."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _json_value(value):
    """``inf``, ``-inf`` and ``nan`` as text (strict JSON has no such numbers); everything else as it is."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value
