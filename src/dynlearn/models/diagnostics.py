"""Diagnostics of a fitted transition model: one-step errors, open-loop k-step errors and penalty calibration.

- :func:`one_step_error`: each member's and the elites' one-step MSE in data units, against the constant mean predictor.
- :func:`one_step_table`, :func:`k_step_table`, :func:`calibration_table` (all three: :func:`diagnostics`): the tables of
  ``dynlearn model train`` / ``model eval``, errors normalised per dimension by the training split's variance (of the
  target ``(delta obs, reward)`` for one-step errors, so the constant-delta baseline scores about 1; of the observation
  for k-step errors), measured against a :class:`Reference` of the training split (saved with the run, so a model can
  be evaluated without its training data); :class:`ModelEvalConfig` says how.
- :func:`fit_split`: the train/holdout split a fit used, as datasets (the holdout's whole episodes give open-loop windows).

The tables are rendered by :mod:`dynlearn.report.model_diagnostics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..data.dataset import Dataset
from ..data.transitions import Transitions
from ..errors import ConfigError
from ..metrics import calibration as cal
from ..metrics import model_error as me
from ..penalties import PENALTIES
from .ensemble import ProbabilisticEnsemble
from .fit_config import FitConfig
from .holdout import split_holdout
from .targets import target_mask, targets


@dataclasses.dataclass(frozen=True)
class ModelEvalConfig:
    """``dynlearn model eval``: diagnostics of a fitted model."""

    horizon: int = 20
    """open-loop k-step error for k = 1..horizon"""
    windows: int = 2000
    """most open-loop windows (start rows) per test set, drawn at random"""
    seed: int = 0
    """seed of the window draw and of the model's sampling"""
    part: str = "obs"
    """target part the penalties read and the calibration error measures: obs, reward or all"""

    def __post_init__(self):
        if self.horizon < 1 or self.windows < 1:
            raise ConfigError(f"ModelEvalConfig: horizon ({self.horizon}) and windows ({self.windows}) must be >= 1.")
        if self.part not in ("obs", "reward", "all"):
            raise ConfigError(f"ModelEvalConfig.part must be obs, reward or all, got {self.part!r}.")


@dataclasses.dataclass(frozen=True)
class OneStepError:
    """One-step errors of a model's mean predictions on some rows, per target dim ``(delta obs..., reward)``."""

    member_mse: np.ndarray
    """``[members, target]``: each member's mean prediction."""
    elite_mean_mse: np.ndarray
    """``[target]``: the mean over elites of their mean predictions."""
    baseline_mse: np.ndarray
    """``[target]``: the constant mean predictor (the rows' own mean delta and reward: their variance)."""

    @property
    def skill(self) -> np.ndarray:
        """``1 - elite_mean_mse / baseline_mse`` per target dim (> 0: better than the mean predictor)."""
        return np.asarray(me.skill(self.elite_mean_mse, self.baseline_mse))


@eqx.filter_jit
def _members(model, obs, act):
    return model.members(obs, act)


def one_step_error(model: ProbabilisticEnsemble, data: Dataset | Transitions, *, reference: np.ndarray | None = None) -> OneStepError:
    """Per member and per dim one-step MSE on ``data`` (rows without a successor skip the delta dims).

    ``reference``: the constant for the baseline (e.g. the training split's mean target); default the
    evaluated rows' own mean (the strictest constant).
    """
    t = data.transitions if isinstance(data, Dataset) else data
    y, mask = targets(t), target_mask(t)
    out = _members(model, jnp.asarray(t.obs, jnp.float32), jnp.asarray(t.act, jnp.float32))
    mean = out.mean
    return OneStepError(
        member_mse=np.asarray(me.member_mse(mean, y, mask)),
        elite_mean_mse=np.asarray(me.prediction_mse(jnp.mean(jnp.take(mean, model.elites, axis=0), axis=0), y, mask)),
        baseline_mse=np.asarray(me.mean_predictor_mse(y, mask, reference=reference)),
    )


# ----------------------------------------------------------------------------------------------
# The diagnostics tables of `dynlearn model train` / `model eval`


@dataclasses.dataclass(frozen=True)
class Reference:
    """What errors are measured against, from the training split: per-dim target mean and variance, observation
    variance, and the linear least-squares baseline. Saved in the run folder (``reference.npz``), so a model can be
    evaluated on any data without its training data."""

    target_mean: np.ndarray
    target_var: np.ndarray
    obs_var: np.ndarray
    linear_delta: tuple[np.ndarray, np.ndarray, np.ndarray]
    """:func:`~dynlearn.metrics.model_error.fit_linear` of the delta obs, on rows with a successor."""
    linear_reward: tuple[np.ndarray, np.ndarray, np.ndarray]
    """... of the reward, on every row."""

    @classmethod
    def of(cls, train: Dataset) -> Reference:
        t = train.transitions
        y, m = targets(t), target_mask(t)
        x = np.concatenate([t.obs, t.act], axis=1)
        valid = m[:, 0]
        d = t.obs.shape[1]
        return cls(target_mean=np.array([y[m[:, i], i].mean() for i in range(d + 1)]),
                   target_var=np.array([y[m[:, i], i].var() for i in range(d + 1)]),
                   obs_var=np.asarray(t.obs, np.float64).var(axis=0),
                   linear_delta=me.fit_linear(x, y[:, :d], mask=valid), linear_reward=me.fit_linear(x, y[:, d:]))

    def linear(self, obs, act) -> np.ndarray:
        """The linear baseline's ``(delta obs, reward)`` at ``(obs, act)``."""
        x = np.concatenate([obs, act], axis=1)
        return np.concatenate([me.predict_linear(self.linear_delta, x), me.predict_linear(self.linear_reward, x)], axis=1)

    def save(self, path: Path) -> Path:
        arrays = {"target_mean": self.target_mean, "target_var": self.target_var, "obs_var": self.obs_var}
        for name in ("linear_delta", "linear_reward"):
            for key, value in zip(("mu", "sd", "w"), getattr(self, name)):
                arrays[f"{name}_{key}"] = value
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> Reference:
        with np.load(path) as z:
            lin = lambda name: tuple(z[f"{name}_{k}"] for k in ("mu", "sd", "w"))
            return cls(target_mean=z["target_mean"], target_var=z["target_var"], obs_var=z["obs_var"],
                       linear_delta=lin("linear_delta"), linear_reward=lin("linear_reward"))


def fit_split(dataset: Dataset, fit_cfg: FitConfig, holdout_seed: int) -> tuple[Dataset, Dataset | None]:
    """The train/holdout split :func:`dynlearn.models.fit` used, as datasets (episodes kept); the holdout is None
    when the fit held out random transitions (no whole episodes: no open-loop windows)."""
    train_t, hold_t, mode, episodes = split_holdout(dataset, fit_cfg, seed=holdout_seed)
    if mode != "episodes":
        return dataclasses.replace(dataset, transitions=train_t, episode_starts=np.zeros(1, np.int64)), None
    train, hold = dataset.split(1e-9, min_holdout_episodes=episodes, seed=holdout_seed)
    if len(hold) != len(hold_t) or not np.array_equal(np.asarray(hold.transitions.obs), np.asarray(hold_t.obs)):
        raise RuntimeError("fit_split: could not reproduce the fit's holdout episodes")  # a bug, not bad input
    return train, hold


def one_step_table(model, ref: Reference, test: Dataset) -> dict[str, Any]:
    """Normalised one-step MSE per target dimension on ``test``: every member, the elites' mean, the constant
    delta (training mean) and the linear baseline, divided by the training split's target variance."""
    te = test.transitions
    y, m = targets(te), target_mask(te)
    members = _member_means(model, te.obs, te.act)  # [E, n, target]
    elite_mean = members[np.asarray(model.elites)].mean(axis=0)

    def nmse(pred):
        err = np.where(m, np.square(np.asarray(pred, np.float64) - y), 0.0).sum(axis=0) / np.maximum(m.sum(axis=0), 1)
        return err / np.maximum(ref.target_var, 1e-12)

    return {
        "rows": len(te), "dims": _dim_names(model.obs_dim),
        "ensemble": nmse(elite_mean).tolist(), "members": np.stack([nmse(p) for p in members]).tolist(),
        "elites": [int(e) for e in np.asarray(model.elites)],
        "constant_delta": nmse(np.broadcast_to(ref.target_mean, y.shape)).tolist(), "linear": nmse(ref.linear(te.obs, te.act)).tolist(),
    }


def _member_means(model, obs, act, chunk: int = 16_384) -> np.ndarray:
    """``model.members(obs, act).mean`` in chunks, on the host ``[E, n, target]``."""
    return np.concatenate([np.asarray(model.members(jnp.asarray(obs[i:i + chunk]), jnp.asarray(act[i:i + chunk])).mean)
                           for i in range(0, len(obs), chunk)], axis=1)


def k_step_table(model, ref: Reference, test: Dataset, cfg: ModelEvalConfig, *, state_fn: Callable | None = None) -> dict[str, Any]:
    """Open-loop error on ``test``'s episodes for k = 1..H: the mean of a random elite kept per window ("mean")
    and the model's own sampling ("sample"), normalised per observation dim by the training observation variance.
    ``state_fn(rows) -> state`` gives a model state for the window start rows (the oracle's simulator state)."""
    t = test.transitions
    h = cfg.horizon
    windows = me.k_step_windows(test.episode_starts, len(test), h, max_windows=cfg.windows, seed=cfg.seed)
    if len(windows) == 0:
        return {"windows": 0, "horizon": h}
    obs0, acts, tgt, mask = me.k_step_targets(t.obs, t.act, t.next_obs, t.next_obs_valid, test.episode_starts, windows, h)
    scale = ref.obs_var
    out: dict[str, Any] = {"windows": len(windows), "horizon": h, "steps_with_data": mask.sum(axis=1).tolist()}
    state = None if state_fn is None else state_fn(windows)
    for i, mode in enumerate(("mean", "sample")):
        pred = me.open_loop(model, obs0, acts, key=jax.random.fold_in(jax.random.key(cfg.seed), i), mode=mode, state=state)
        per_dim = np.asarray(me.k_step_error(pred, tgt, mask, scale), np.float64)
        out[mode] = per_dim.mean(axis=1).tolist()
        out[f"{mode}_per_dim"] = per_dim.tolist()
    return out


def calibration_table(model, ref: Reference, sets: dict[str, Dataset], cfg: ModelEvalConfig) -> dict[str, Any]:
    """Spearman correlation of every penalty with the true normalised one-step error, per test set and pooled over
    all of them (``in-distribution + others``); median penalties and errors per set."""
    scale = ref.target_var
    results, parts = {}, []
    for name, data in sets.items():
        t = data.transitions
        c = cal.calibrate(model, t.obs, t.act, targets(t), scale, PENALTIES, part=cfg.part, mask=np.asarray(t.next_obs_valid, bool))
        parts.append(c)
        results[name] = _calibration_entry(c)
    if len(parts) > 1:
        results["pooled"] = _calibration_entry(cal.Calibration.pooled(parts))
    return {"part": cfg.part, "penalties": list(PENALTIES), "sets": results}


def _calibration_entry(c: cal.Calibration) -> dict:
    return {"rows": len(c), "spearman": c.spearman, "median_penalty": c.median_penalty(), "median_error": c.median_error,
            "mean_error": c.mean_error}


def diagnostics(model, ref: Reference, test: Dataset, others: dict[str, Dataset], cfg: ModelEvalConfig, *,
                test_name: str = "holdout", log: Callable[[str], None] = print) -> dict[str, Any]:
    """One-step errors, k-step errors and penalty calibration on ``test`` and every set in ``others``."""
    sets = {test_name: test, **others}
    out: dict[str, Any] = {"one_step": {}, "k_step": {}}
    for name, data in sets.items():
        log(f"one-step and {cfg.horizon}-step errors on {name} ({len(data):,} rows)")
        out["one_step"][name] = one_step_table(model, ref, data)
        out["k_step"][name] = k_step_table(model, ref, data, cfg)
    log(f"penalty calibration on {', '.join(sets)}")
    out["calibration"] = calibration_table(model, ref, sets, cfg)
    return out


def _dim_names(obs_dim: int) -> list[str]:
    return [f"d{i}" for i in range(obs_dim)] + ["reward"]
