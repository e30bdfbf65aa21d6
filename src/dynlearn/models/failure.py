"""A learned forward model with a failure head: local map, velocities and action -> next pose, velocities and P(failure).

In the spirit of the learned forward dynamics models of Kim et al. 2022 ("Learning Forward Dynamics Model and Informed
Trajectory Sampler for Safe Quadruped Navigation", RSS, arXiv 2204.08647: from a robot-centric occupancy map and a
velocity-command sequence, the future positions and the probability of collision) and Roth et al. 2025 ("Learned
Perceptive Forward Dynamics Model for Safe and Platform-aware Robotic Navigation", RSS, arXiv 2504.19322: from a height
scan and proprioception, future poses and a failure risk, trained with a pose loss plus a risk loss, planned over by MPPI).

One network, applied step by step: the input is the occupancy patch around the robot (``patch x patch`` cells at
``patch_cell``, robot frame; :func:`dynlearn.tasks.navigation.local_patch`), the velocities (scaled by the task's
bounds) and the action; a shared trunk feeds two heads, the **motion head** (the step ``(dx, dy, dheading)`` in the
robot's frame and the next velocities, standardised) and the **failure head** (the logit of a collision during the
step). Loss: mean squared error of the standardised motion + ``failure_coef`` x binary cross-entropy of the failure
flag. The motion target of a failed row is the motion the robot would have made: the failure head alone says whether
it is blocked (the papers' models keep predicting poses too, and Roth et al. add a loss that stops them after a failure;
the planner here stops counting progress by the survival probability instead).

What differs from the papers: a one-step (Markov) model rolled out by the planner, re-reading the patch at each
predicted pose from the grid perceived at planning time, instead of a recurrent sequence model that reads the map once;
no proprioceptive history (the task has none to learn from); deterministic motion (the task is deterministic).

The fit (:func:`fit_failure_model`) is Adam on minibatches drawn with replacement, ``block`` steps per compiled
``lax.scan``, driven by :func:`dynlearn.training.run` (checkpoints and resume: every key derives from the seed and the
step, so a stopped and resumed fit ends with the parameters of one that never stopped).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._types import Array, Float, Key
from ..checkpoint import arrays_digest, check_same_minor_version, load_leaves, read_header, save_module
from ..errors import ConfigError, DataError
from ..tasks.navigation import NavigationConfig
from ..tasks.navigation_data import NavigationData
from ..training import Checkpoint, Schedule, WallClock, fingerprint, key_data, run


@dataclasses.dataclass(frozen=True)
class FailureModelConfig:
    patch: int = 9
    """Cells per side of the local occupancy patch the model reads."""
    patch_cell: float = 0.2
    """Spacing of the patch (units)."""
    hidden: tuple[int, ...] = (128, 128)
    """Widths of the shared trunk's layers."""

    def __post_init__(self):
        if self.patch < 1 or self.patch_cell <= 0 or not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"FailureModelConfig: need patch >= 1, patch_cell > 0 and hidden widths >= 1, got {self}.")


@dataclasses.dataclass(frozen=True)
class FailureFitConfig:
    steps: int = 4000
    """Adam steps."""
    batch_size: int = 256
    """Rows per step (drawn with replacement)."""
    lr: float = 1e-3
    """Adam's learning rate."""
    failure_coef: float = 1.0
    """Weight of the failure head's cross-entropy against the motion error."""
    block: int = 500
    """Steps per compiled block (one host sync, one metrics row, a possible checkpoint)."""

    def __post_init__(self):
        if min(self.steps, self.batch_size, self.block) < 1 or not self.lr > 0 or self.failure_coef < 0:
            raise ConfigError(f"FailureFitConfig: need steps, batch_size, block >= 1, lr > 0, failure_coef >= 0; got {self}.")


class FailureModel(eqx.Module):
    """The network and its target standardisation. ``model(patch, vel, act)`` handles one example (``vmap`` to batch)."""

    layers: list
    motion: eqx.nn.Linear
    failure: eqx.nn.Linear
    target_mean: Float[Array, "5"]
    target_std: Float[Array, "5"]
    scale: Float[Array, "2"]
    cfg: FailureModelConfig = eqx.field(static=True)

    @staticmethod
    def init(cfg: FailureModelConfig, nav: NavigationConfig, *, key: Key) -> "FailureModel":
        widths = (cfg.patch * cfg.patch + 4, *cfg.hidden)
        keys = jax.random.split(key, len(cfg.hidden) + 2)
        layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(widths[:-1], widths[1:], keys)]
        return FailureModel(layers=layers, motion=eqx.nn.Linear(widths[-1], 5, key=keys[-2]),
                            failure=eqx.nn.Linear(widths[-1], "scalar", key=keys[-1]), target_mean=jnp.zeros(5),
                            target_std=jnp.ones(5), scale=jnp.array([nav.max_speed, nav.max_turn], jnp.float32), cfg=cfg)

    def _trunk(self, patch, vel, act):
        h = jnp.concatenate([patch.reshape(-1), vel / self.scale, act]).astype(jnp.float32)
        for layer in self.layers:
            h = jax.nn.silu(layer(h))
        return h

    def raw(self, patch: Float[Array, "p p"], vel: Float[Array, "2"], act: Float[Array, "2"]):
        """``(standardised motion [5], failure logit [])``."""
        h = self._trunk(patch, vel, act)
        return self.motion(h), self.failure(h)

    def __call__(self, patch: Float[Array, "p p"], vel: Float[Array, "2"], act: Float[Array, "2"]):
        """``(motion (dx, dy, dheading) [3] in the robot's frame, next velocities [2], failure logit [])``."""
        z, logit = self.raw(patch, vel, act)
        y = self.target_mean + self.target_std * z
        return y[:3], y[3:], logit


def _trainable(model: FailureModel):
    """The filter spec of the weights (the standardisation and the velocity scale are not trained)."""
    nets = lambda m: (m.layers, m.motion, m.failure)  # noqa: E731
    spec = jax.tree_util.tree_map(lambda _: False, model)
    return eqx.tree_at(nets, spec, replace=jax.tree_util.tree_map(eqx.is_inexact_array, nets(model)))


def _targets(data: NavigationData) -> Float[Array, "n 5"]:
    return jnp.concatenate([data.delta, data.next_vel], axis=-1).astype(jnp.float32)


def loss(model: FailureModel, data: NavigationData, failure_coef: float):
    """``(loss, info)`` on a batch: motion MSE (standardised) + ``failure_coef`` x failure BCE."""
    z, logit = jax.vmap(model.raw)(data.patch, data.vel, data.act)
    target = (_targets(data) - model.target_mean) / model.target_std
    mse = jnp.mean(jnp.square(z - target))
    bce = jnp.mean(optax.sigmoid_binary_cross_entropy(logit, data.failed.astype(jnp.float32)))
    return mse + failure_coef * bce, {"loss/motion_mse": mse, "loss/failure_bce": bce}


def auc(scores, labels) -> float:
    """Area under the ROC curve (rank statistic, ties averaged); nan when one class is missing."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def evaluate_model(model: FailureModel, data: NavigationData, chunk: int = 8192) -> dict[str, float]:
    """Held-out quality: motion RMSE per target, failure AUC, accuracy at 0.5, the base rate and mean P(failure)."""
    pred = eqx.filter_jit(lambda m, d: jax.vmap(m)(d.patch, d.vel, d.act))
    parts = [pred(model, data.take(slice(i, i + chunk))) for i in range(0, len(data), chunk)]
    delta, vel, logit = (np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(3))
    err = np.concatenate([delta, vel], -1) - np.asarray(_targets(data))
    rmse = np.sqrt(np.mean(err**2, axis=0))
    failed = np.asarray(data.failed)
    prob = 0.5 * (1 + np.tanh(0.5 * logit))  # the sigmoid, without overflow at large |logit|
    names = ("dx", "dy", "dheading", "v", "omega")
    return {**{f"rmse/{n}": float(r) for n, r in zip(names, rmse)}, "failure/auc": auc(logit, failed),
            "failure/accuracy": float(np.mean((prob > 0.5) == failed)), "failure/base_rate": float(failed.mean()),
            "failure/mean_prob": float(prob.mean())}


@eqx.filter_jit
def _block(state, static: FailureModel, data: NavigationData, key: Key, fit: FailureFitConfig):
    """``fit.block`` Adam steps on minibatches drawn with replacement: ``(state, mean metrics)``."""
    opt, n = optax.adam(fit.lr), data.failed.shape[0]

    def one(state, k):
        params, opt_state = state
        rows = jax.random.randint(k, (fit.batch_size,), 0, n)
        (value, info), grads = jax.value_and_grad(
            lambda p: loss(eqx.combine(p, static), data.take(rows), fit.failure_coef), has_aux=True)(params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with its int32 step count
            updates, opt_state = opt.update(grads, opt_state, params)
        return (eqx.apply_updates(params, updates), opt_state), {"loss/total": value, **info}

    state, info = jax.lax.scan(one, state, jax.random.split(key, fit.block))
    return state, jax.tree_util.tree_map(jnp.mean, info)


def fit_failure_model(data: NavigationData, nav: NavigationConfig, cfg: FailureModelConfig = FailureModelConfig(),
                      fit: FailureFitConfig = FailureFitConfig(), *, key: Key, holdout: NavigationData | None = None,
                      checkpoint: str | os.PathLike | None = None, until: int | None = None,
                      metrics: str | os.PathLike | None = None) -> tuple[FailureModel, dict[str, Any]]:
    """Fit a :class:`FailureModel` to ``data``; returns it and a report (steps, wall time, the last losses, and the
    held-out quality of :func:`evaluate_model` when ``holdout`` is given). ``checkpoint``: a folder for the training
    state (a call with the same inputs continues from it); ``until``: stop there, checkpointed (tests of resumption)."""
    if data.patch.shape[1:] != (cfg.patch, cfg.patch):
        raise DataError("navigation data", f"holds {data.patch.shape[1]}x{data.patch.shape[2]} patches, the model reads "
                        f"{cfg.patch}x{cfg.patch}.", "collect with CollectConfig(patch=...) equal to FailureModelConfig.patch.")
    if len(data) < 2:
        raise DataError("navigation data", f"holds {len(data)} rows.", "collect more transitions.")
    clock = WallClock()
    init_key, train_key = jax.random.split(key)
    model = FailureModel.init(cfg, nav, key=init_key)
    targets = np.asarray(_targets(data), np.float64)
    model = dataclasses.replace(model, target_mean=jnp.asarray(targets.mean(0), jnp.float32),
                                target_std=jnp.asarray(np.maximum(targets.std(0), 1e-6), jnp.float32))
    params, static = eqx.partition(model, _trainable(model))
    state = (params, optax.adam(fit.lr).init(params))
    n = len(data)

    def step_block(state, progress):
        state, info = _block(state, static, data, jax.random.fold_in(train_key, progress["step"]), fit)
        return state, {k: float(v) for k, v in jax.device_get(info).items()}

    progress: dict[str, Any] = {}
    store = None
    if checkpoint is not None:
        fp = fingerprint(dataclasses.asdict(cfg), dataclasses.asdict(fit), dataclasses.asdict(nav), arrays_digest(data),
                         key_data(key))
        store = Checkpoint(checkpoint, fp, owner="failure model fit", other="another fit (other data, config or key)")
        loaded = store.load(lambda _: state)
        if loaded is not None:
            state, progress = loaded
    start = time.perf_counter()
    schedule = Schedule(block=fit.block, total=fit.steps, until=until, checkpoint_every=fit.block)
    state, progress, done = run(step_block, state, progress, schedule=schedule, clock=clock, checkpoint=store, metrics=metrics)
    model = eqx.combine(state[0], static)
    report: dict[str, Any] = {"steps": progress["step"], "done": done, "wall_s": clock.total(),
                              "fit_s": time.perf_counter() - start, "rows": n, "failure_rate": float(np.mean(np.asarray(data.failed)))}
    if holdout is not None:
        report["holdout"] = evaluate_model(model, holdout)
    return model, report


KIND = "failure-model"
"""The ``kind`` of a saved failure model's ``config.json`` (:func:`save_failure_model`)."""


def save_failure_model(folder: str | os.PathLike, model: FailureModel, nav: NavigationConfig, *, force: bool = True):
    """Write ``model`` and the navigation task it was fitted in to ``folder`` (``config.json`` + ``leaves.eqx``, each
    written atomically; no pickle). :func:`load_failure_model` reads it back."""
    config = {"model": dataclasses.asdict(model.cfg), "nav": dataclasses.asdict(nav)}
    return save_module(folder, model, config, kind=KIND, force=force)


def load_failure_model(folder: str | os.PathLike) -> tuple[FailureModel, NavigationConfig]:
    """``(model, nav)`` from a folder :func:`save_failure_model` wrote (or a run folder holding it in ``model/``)."""
    from pathlib import Path

    folder = Path(folder)
    if not (folder / "leaves.eqx").is_file() and (folder / "model" / "leaves.eqx").is_file():
        folder = folder / "model"
    source = str(folder / "config.json")
    header = read_header(folder, kind=KIND)
    check_same_minor_version(header, source, what="failure model")
    body = header.get("config") or {}
    try:
        cfg = FailureModelConfig(**{**body["model"], "hidden": tuple(body["model"]["hidden"])})
        nav_body = dict(body["nav"])
        nav_cfg = NavigationConfig(**{**nav_body, "radius_range": tuple(nav_body["radius_range"])})
    except (KeyError, TypeError) as e:
        raise DataError(source, f"incomplete failure-model config ({e!r}).",
                        "pass a folder written by save_failure_model (dynlearn navigation fit).", key="config") from None
    like = FailureModel.init(cfg, nav_cfg, key=jax.random.key(0))
    return load_leaves(folder, like), nav_cfg
