"""Learned transition models for control: ``(obs, act) -> next_obs, reward, terminal``.

>>> import dynlearn as dl
>>> import dynlearn.models
>>> model, report = dl.models.fit(dl.models.EnsembleConfig(), dataset, key=jax.random.key(0), task=task)
>>> state = model.init_state(obs, key=k0)
>>> state, pred = model.step(state, obs, act, key=k1)   # pred.next_obs, pred.reward, pred.terminal
>>> dl.models.save("runs/model", model); model = dl.models.load("runs/model", task=task)
"""

from .base import AbstractTransitionModel, MemberOutputs, ModelState, Prediction
from .ensemble import EnsembleConfig, EnsembleMLP, EnsembleState, ProbabilisticEnsemble
from .fit_config import FitConfig
from .fit_report import FitReport
from .fitting import fit
from .holdout import split_holdout, split_seed, transition_holdout
from .diagnostics import OneStepError, one_step_error
from .cache import fitted
from .io import load, save

__all__ = [
    "AbstractTransitionModel", "EnsembleConfig", "EnsembleMLP", "EnsembleState", "FitConfig", "FitReport", "MemberOutputs",
    "ModelState", "OneStepError", "Prediction", "ProbabilisticEnsemble", "fit", "fitted", "load", "one_step_error", "save",
    "split_holdout", "split_seed", "transition_holdout",
]
