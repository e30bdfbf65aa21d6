"""Dynamics-model jobs behind ``dynlearn model train`` and ``dynlearn model eval``: fit, diagnose, write run folders.

``dynlearn model train DATA --task TASK --out DIR`` fits a :class:`~dynlearn.models.ProbabilisticEnsemble`
(:func:`dynlearn.models.fit`: episode holdout, bootstrap, early stopping, elites) and writes::

    DIR/config.json        what was asked (model and fit configs, task, dataset record)
    DIR/results.json       the results schema (dynlearn.results); fit report and one-step errors in "extra"
    DIR/model/             the model (dynlearn.models.save: config.json + leaves.eqx)
    DIR/fit_report.json    the FitReport (epochs, holdout split seed, per-epoch holdout MSE of every member)
    DIR/fit_curve.png      holdout MSE per member and epoch
    DIR/reference.npz      training-split statistics (target mean/variance, observation variance) and the linear
                           baseline, so ``model eval`` needs no training data
    DIR/one_step.md        one-step error on the fit's holdout episodes: per member and per dimension, beside the
                           constant-delta and linear least-squares baselines

``dynlearn model eval DIR DATA [--ood DATA2 ...]`` writes ``DIR/eval/`` (or ``--out``): ``results.json``,
``one_step.md``, ``k_step.md`` + ``k_step.png`` (open-loop error, k = 1..H), ``calibration.md`` (Spearman rank
correlation of every penalty of :mod:`dynlearn.penalties` with the true one-step error). DATA's rows are the
in-distribution test set: the fit's own holdout episodes when DATA is the training data (same content hash),
else all of DATA. Every ``--ood`` dataset (another behaviour policy's data) is a further test set.

Errors are normalised per dimension by the training split's variance: of the target ``(delta obs, reward)``
for one-step errors (so the constant-delta baseline scores about 1), of the observation for k-step errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .checkpoint import remove_dir, write_json
from .data.dataset import Dataset
from .errors import ConfigError, DataError
from .metrics import calibration as cal
from .metrics import model_error as me
from .models import EnsembleConfig, FitConfig, FitReport, fit, load, save, split_holdout
from .penalties import PENALTIES
from .results import RunFolder, dataset_record, json_safe, make_results

# OfflineRL-Kit's per-layer weight decay for 4 hidden layers and the output; other depths reuse its schedule
_KIT_DECAY_HIDDEN = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5)
_KIT_DECAY_OUTPUT = 1e-4


@dataclasses.dataclass(frozen=True)
class ModelTrainConfig:
    """``dynlearn model train``: fit a probabilistic ensemble to a dataset."""

    members: int = 7
    """ensemble members"""
    elites: int = 5
    """members kept for prediction (lowest holdout MSE)"""
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    """hidden layer widths of every member"""
    max_epochs: int | None = None
    """stop after this many epochs (None: early stopping only)"""
    patience: int = 5
    """early stopping: epochs without a member improving by 1%"""
    holdout: str | None = None
    """held out for early stopping and elites: episodes (default) | transitions (OfflineRL-Kit's random rows)"""
    min_epochs: int | None = None
    """early stopping cannot end the fit before this epoch; the first plateau lowers the learning rate x 0.3 instead
    (the edge-of-reach/RAVL reference: 350); None: Kit's rule"""
    seed: int = 0
    """seed of the holdout split, bootstrap, initialisation and batches"""

    def __post_init__(self):
        self.ensemble_config()  # EnsembleConfig and FitConfig reject bad values with their own messages
        self.fit_config()

    def ensemble_config(self) -> EnsembleConfig:
        """The defaults of :class:`EnsembleConfig` with these sizes; weight decay follows OfflineRL-Kit's schedule
        (2.5e-5, 5e-5, 7.5e-5, 7.5e-5 for hidden layers, 7.5e-5 beyond the fourth, 1e-4 for the output)."""
        decay = tuple(_KIT_DECAY_HIDDEN[i] if i < len(_KIT_DECAY_HIDDEN) else _KIT_DECAY_HIDDEN[-1] for i in range(len(self.hidden)))
        return EnsembleConfig(members=self.members, elites=self.elites, hidden=tuple(self.hidden), weight_decay=(*decay, _KIT_DECAY_OUTPUT))

    def fit_config(self, progress: bool = True) -> FitConfig:
        return FitConfig(max_epochs=self.max_epochs, patience=self.patience, holdout="episodes" if self.holdout is None else self.holdout,
                         min_epochs=0 if self.min_epochs is None else self.min_epochs, progress=progress)


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


# ----------------------------------------------------------------------------------------------
# Splits and targets


def targets(t) -> np.ndarray:
    """``(next_obs - obs, rew)`` per row, 0 where there is no successor observation (masked everywhere)."""
    obs, nxt = np.asarray(t.obs, np.float32), np.asarray(t.next_obs, np.float32)
    valid = np.asarray(t.next_obs_valid, bool)
    with np.errstate(all="ignore"):
        delta = np.where(valid[:, None], nxt - obs, 0.0).astype(np.float32)
    return np.concatenate([delta, np.asarray(t.rew, np.float32)[:, None]], axis=1)


def target_mask(t) -> np.ndarray:
    """``[N, target]``: delta dims count where the row has a successor; the reward always counts."""
    valid = np.asarray(t.next_obs_valid, bool)
    return np.concatenate([np.repeat(valid[:, None], t.obs.shape[1], axis=1), np.ones((len(valid), 1), bool)], axis=1)


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


# ----------------------------------------------------------------------------------------------
# Diagnostics (used by the jobs and by benchmarks/model_error.py)


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
    import jax.numpy as jnp

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


# ----------------------------------------------------------------------------------------------
# Jobs


def train_model(dataset: Dataset, task, cfg: ModelTrainConfig, out: str | Path, *, force: bool = False, resume: bool = False,
                progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Fit an ensemble to ``dataset`` and write the run folder ``out`` (module docstring). The fit checkpoints into
    ``out/checkpoint`` (every minute, and on SIGTERM / Ctrl-C); ``resume=True`` continues it."""
    out = Path(out)
    ecfg, fcfg = cfg.ensemble_config(), cfg.fit_config(progress)
    config = {"model_train": dataclasses.asdict(cfg), "ensemble": ecfg.to_dict(),
              "fit": fcfg.identity(),
              "task": None if task is None else task.id, "dataset": dataset_record(dataset)}
    run = RunFolder.open(out, config, resume=resume, force=force, legacy={"model_train.holdout": "episodes"})  # runs before the option
    if resume and run.file("results.json").is_file():
        log(f"{out} is finished; nothing to resume")
        return out
    log(f"fitting a {cfg.members}-member ensemble on {dataset.name} ({len(dataset):,} transitions)")
    model, report = fit(ecfg, dataset, key=jax.random.key(cfg.seed), cfg=fcfg, task=task, checkpoint=out / "checkpoint",
                        metrics=out / "metrics.jsonl")
    wall = report.wall_s  # every invocation's, when the fit was stopped and resumed
    remove_dir(out / "checkpoint")  # the fit is done: its training state is spent
    save(out / "model", model)
    write_json(out / "fit_report.json", dataclasses.asdict(report))
    train, hold = fit_split(dataset, fcfg, report.holdout_seed)
    test = hold if hold is not None else _holdout_rows(dataset, fcfg, report.holdout_seed)
    ref = Reference.of(train)
    ref.save(out / "reference.npz")
    one_step = one_step_table(model, ref, test)
    (out / "one_step.md").write_text(render_one_step({"holdout": one_step},
                                                     title=f"One-step error on the holdout of {dataset.name}") + "\n")
    fit_curve_figure(out / "fit_curve.png", report, title=f"ensemble on {dataset.name}")
    results = make_results(
        method="probabilistic-ensemble", task=None if task is None else task.id, dataset=dataset_record(dataset),
        budget={"steps": report.steps, "seeds": 0, "epochs": report.epochs, "max_epochs": cfg.max_epochs, "fit_seed": cfg.seed,
                "note": "a model fit: no policy is trained, so there are no policy seeds or scores"},
        seed_scores=[], wall_time_s=wall, steps_per_s=report.steps_per_s,
        extra={"fit": {"epochs": report.epochs, "stopped_early": report.stopped_early, "elites": list(report.elites),
                       "holdout_mse": list(report.holdout_mse), "elite_holdout_mse": report.elite_holdout_mse,
                       "train_size": report.train_size, "holdout_size": report.holdout_size, "holdout_mode": report.holdout_mode,
                       "lr_lowered_at": report.lr_lowered_at},
               "one_step_holdout": one_step})
    run.write_results(json_safe(results))
    ens, const, lin = (float(np.mean(one_step[k])) for k in ("ensemble", "constant_delta", "linear"))
    lowered = "" if report.lr_lowered_at is None else f", learning rate x {fcfg.plateau_lr_factor} after epoch {report.lr_lowered_at}"
    log(f"fitted in {wall:.0f} s, {report.epochs} epochs ({'early stop' if report.stopped_early else 'max_epochs'}{lowered}); normalised "
        f"holdout MSE {ens:.4f} (constant delta {const:.4f}, linear {lin:.4f}); run folder {out}")
    return out


def _holdout_rows(dataset: Dataset, fcfg: FitConfig, seed: int) -> Dataset:
    """The fit's random-transition holdout as a dataset of one-row episodes (one-step errors only)."""
    _, hold_t, _, _ = split_holdout(dataset, fcfg, seed=seed)
    return Dataset(transitions=hold_t, episode_starts=np.arange(len(hold_t), dtype=np.int64), name=dataset.name, source=dataset.source,
                   task=dataset.task)


def load_run(run_dir: str | Path):
    """``(model, task, config, fit_report)`` of a ``dynlearn model train`` run folder or of a cached ensemble.

    A cached ensemble is an entry of :func:`dynlearn.models.cache.cache_root` (``~/.cache/dynlearn/models/<key>``:
    the model every ``dynlearn train mopo|mobile|ravl|...`` and ``dynlearn model reward DATA`` of a dataset use).
    Its ``config`` has the run folder's shape: ``task``, ``fit`` and ``dataset`` (``{"hash": ...}``; the cache does
    not record the dataset's name), plus ``"cached": True``.
    """
    from .tasks import get

    run_dir = Path(run_dir)
    if (run_dir / "key.json").is_file() and not (run_dir / "config.json").is_file():
        return _load_cached(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file() or not (run_dir / "model").is_dir():
        raise DataError(str(run_dir), "is not a model run folder (no config.json and model/) nor a cached ensemble (no key.json).",
                        "pass the --out folder of `dynlearn model train`, or a cached ensemble (~/.cache/dynlearn/models/<key>, "
                        "named in the log of the job that fitted it).")
    config = json.loads(cfg_path.read_text())
    if "model_train" not in config:
        raise DataError(str(cfg_path), "was not written by `dynlearn model train`.", "pass the --out folder of `dynlearn model train`.")
    task = get(config["task"]) if config.get("task") else None
    report = FitReport.from_dict(json.loads((run_dir / "fit_report.json").read_text()))
    return load(run_dir / "model", task=task), task, config, report


def _load_cached(entry: Path):
    from .checkpoint import latest_dir
    from .tasks import get

    saved = latest_dir(entry)
    if saved is None or not (saved / "model").is_dir() or not (saved / "fit_report.json").is_file():
        raise DataError(str(entry), "is an incomplete cached ensemble (no model/ or fit_report.json).",
                        "delete the folder; the next job on its dataset fits the model again.")
    key = json.loads((saved / "key.json").read_text())
    if not {"dataset", "fit"} <= key.keys():
        raise DataError(str(saved / "key.json"), "is not a dynlearn model-cache key (no dataset/fit).", "pass a cached ensemble folder.")
    task = get(key["task"]) if key.get("task") else None
    config = {"task": key.get("task"), "fit": key["fit"], "dataset": {"hash": key["dataset"], "name": None}, "cached": True}
    report = FitReport.from_dict(json.loads((saved / "fit_report.json").read_text()))
    return load(saved / "model", task=task), task, config, report


def eval_model(run_dir: str | Path, dataset: Dataset, ood: list[Dataset], cfg: ModelEvalConfig = ModelEvalConfig(), *,
               out: str | Path | None = None, force: bool = False, reward: str | Path | None = None,
               log: Callable[[str], None] = print) -> Path:
    """Diagnose the model of a train run on ``dataset`` (its holdout when it is the training data) and on ``ood``.

    ``reward``: a dynamics reward folder (``dynlearn model reward``): each test set's real transitions are scored
    against the model's transitions from the same ``(s, a)`` (MOREC's dynamics reward as a diagnostic, ``reward.md``).
    """
    run_dir = Path(run_dir)
    model, task, config, report = load_run(run_dir)
    if config.get("cached") and dataset.content_hash() != config["dataset"]["hash"]:
        raise ConfigError(f"{run_dir} is a cached ensemble, which keeps no reference statistics of its training data, and "
                          f"{dataset.name} is not that data (content hash {dataset.content_hash()}, the cache key says "
                          f"{config['dataset']['hash']}). Fix: pass the dataset it was fitted on as DATA and the others with --ood.")
    if out is None and config.get("cached"):
        raise ConfigError(f"{run_dir} is a cached ensemble: its eval would be written into the cache. Fix: pass --out DIR.")
    out = Path(out) if out is not None else run_dir / "eval"
    eval_config = {"model_eval": dataclasses.asdict(cfg), "run": str(run_dir), "dataset": dataset_record(dataset),
                   "ood": [dataset_record(d) for d in ood], "reward": None if reward is None else str(reward)}
    dynamics_reward = None
    if reward is not None:
        from .models.dynamics_reward import load_reward

        dynamics_reward = load_reward(reward)  # before any work: a wrong folder fails fast
        if (dynamics_reward.obs_dim, dynamics_reward.act_dim) != (model.obs_dim, model.act_dim):
            raise ConfigError(f"the dynamics reward in {reward} was learned for obs/act dims {dynamics_reward.obs_dim}/"
                              f"{dynamics_reward.act_dim}, the model has {model.obs_dim}/{model.act_dim}. Fix: pass the reward "
                              "learned for this model's task (dynlearn model reward).")
    run = RunFolder.open(out, eval_config, force=force)
    start = time.perf_counter()
    fcfg = FitConfig.from_dict({k: v for k, v in config["fit"].items()}, source=str(run_dir / "config.json"))
    training_data = dataset.content_hash() == config["dataset"]["hash"]
    if (run_dir / "reference.npz").is_file():
        ref = Reference.load(run_dir / "reference.npz")
    else:  # a cached ensemble: the reference is rebuilt from its training split (checked above: DATA is its data)
        ref = Reference.of(fit_split(dataset, fcfg, report.holdout_seed)[0])
    if training_data:
        _, hold = fit_split(dataset, fcfg, report.holdout_seed)
        test = hold if hold is not None else _holdout_rows(dataset, fcfg, report.holdout_seed)
        test_name = f"{dataset.name} (holdout)"
    else:
        test, test_name = dataset, dataset.name
        log(f"{dataset.name} is not the training data ({config['dataset']['name']}): all of it is test data")
    others = {}
    for d in ood:
        name = d.name if d.name not in others and d.name != test_name else f"{d.name} ({len(others) + 1})"
        others[name] = d
    diag = diagnostics(model, ref, test, others, cfg, test_name=test_name, log=log)
    if dynamics_reward is not None:
        from .models.dynamics_reward import reward_diagnostics

        diag["dynamics_reward"] = {name: reward_diagnostics(dynamics_reward, model, d, key=jax.random.key(cfg.seed))
                                   for name, d in {test_name: test, **others}.items()}
        (out / "reward.md").write_text(render_reward(diag["dynamics_reward"]) + "\n")
        log(render_reward(diag["dynamics_reward"]))
    wall = time.perf_counter() - start
    (out / "one_step.md").write_text(render_one_step(diag["one_step"], title="One-step error (normalised MSE)") + "\n")
    (out / "k_step.md").write_text(render_k_step(diag["k_step"]) + "\n")
    (out / "calibration.md").write_text(render_calibration(diag["calibration"]) + "\n")
    k_step_figure(out / "k_step.png", diag["k_step"], title=f"open-loop error, model of {config['dataset']['name']}")
    results = make_results(method="probabilistic-ensemble-eval", task=None if task is None else task.id, dataset=dataset_record(dataset),
                           budget={"steps": 0, "seeds": 0, "horizon": cfg.horizon, "windows": cfg.windows,
                                   "fit_epochs": report.epochs, "note": "diagnostics of a fitted model: no policy seeds or scores"},
                           seed_scores=[], wall_time_s=wall, steps_per_s=None,
                           extra={"run": str(run_dir), "ood": [d.name for d in ood], **diag})
    run.write_results(json_safe(results))
    log(render_calibration(diag["calibration"]))
    log(f"wrote {out}")
    return out


# ----------------------------------------------------------------------------------------------
# Tables and figures


def _dim_names(obs_dim: int) -> list[str]:
    return [f"d{i}" for i in range(obs_dim)] + ["reward"]


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.2e}"


def render_one_step(tables: dict[str, dict], *, title: str) -> str:
    """Markdown: per test set, normalised MSE per dimension (and the mean over the obs dims) of the ensemble, every
    member and the baselines."""
    lines = [f"## {title}", "", ("Normalised MSE per target dimension (divided by the training split's variance of the target; "
             "the constant-delta baseline is then about 1). `obs mean` averages the delta-obs dims."), ""]
    for name, t in tables.items():
        dims = t["dims"]
        lines += [f"### {name} ({t['rows']:,} rows)", "", "| predictor | obs mean | " + " | ".join(dims) + " |",
                  "|---|---|" + "---|" * len(dims)]
        rows = [("ensemble (elites' mean)", t["ensemble"])]
        rows += [(f"member {i}{' (elite)' if i in t['elites'] else ''}", m) for i, m in enumerate(t["members"])]
        rows += [("constant delta", t["constant_delta"]), ("linear least squares", t["linear"])]
        for label, v in rows:
            lines.append(f"| {label} | {_fmt(float(np.mean(v[:-1])))} | " + " | ".join(_fmt(x) for x in v) + " |")
        lines.append("")
    return "\n".join(lines)


def render_reward(tables: dict[str, dict]) -> str:
    """Markdown: the dynamics reward of real vs model transitions per test set."""
    lines = ["## Dynamics reward (MOREC): real transitions vs the model's", "",
             ("Mean dynamics reward of each test set's real transitions and of the model's sampled transitions from the same "
              "(s, a); AUC = P(real scores above model). Near 0.5 the reward cannot tell them apart; near 1 the model's "
              "transitions look unlike the data's there (do not trust long rollouts). `below 0.6`: share of model "
              "transitions MOREC's filter would truncate."), "",
             "| test set | rows | reward, real | reward, model | AUC real > model | model below 0.6 |", "|---|---|---|---|---|---|"]
    for name, t in tables.items():
        lines.append(f"| {name} | {t['rows']:,} | {_fmt(t['reward_data'])} | {_fmt(t['reward_model'])} | {_fmt(t['auc'])} | "
                     f"{t['low_fraction_model']:.1%} |")
    return "\n".join(lines)


def render_k_step(tables: dict[str, dict]) -> str:
    lines = ["## Open-loop k-step error", "", ("Normalised MSE of the observation after k steps of replaying recorded actions "
             "(mean over dims; divided by the training split's observation variance). `mean`: a random elite per window, its "
             "mean prediction; `sample`: the model's own sampling (random elite and noise every step)."), ""]
    for name, t in tables.items():
        if not t.get("windows"):
            lines += [f"### {name}: no windows", ""]
            continue
        lines += [f"### {name} ({t['windows']} windows)", "", "| k | windows with data | mean | sample |", "|---|---|---|---|"]
        for k in range(t["horizon"]):
            lines.append(f"| {k + 1} | {t['steps_with_data'][k]} | {_fmt(t['mean'][k])} | {_fmt(t['sample'][k])} |")
        lines.append("")
    return "\n".join(lines)


def render_calibration(table: dict) -> str:
    sets = table["sets"]
    names = table["penalties"]
    lines = ["## Penalty calibration", "", (f"Spearman rank correlation between each penalty (part `{table['part']}`) and the true "
             "normalised one-step error of the elites' mean, per test set; `pooled` ranks all sets' rows together."), "",
             "| penalty | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for p in names:
        lines.append(f"| {p} | " + " | ".join(_fmt(sets[s]["spearman"][p]) for s in sets) + " |")
    lines += ["", "Median penalty and median true error per set:", "", "| | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    lines.append("| true error | " + " | ".join(_fmt(sets[s]["median_error"]) for s in sets) + " |")
    for p in names:
        lines.append(f"| {p} | " + " | ".join(_fmt(sets[s]["median_penalty"][p]) for s in sets) + " |")
    return "\n".join(lines)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: Path) -> Path:
    from .checkpoint import atomic_path

    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def fit_curve_figure(path: Path, report: FitReport, *, title: str) -> Path:
    """Holdout MSE of every member after every epoch (log scale); elites solid, others dashed."""
    plt = _figure()
    history = np.asarray(report.history)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    epochs = np.arange(1, len(history) + 1)
    for i in range(history.shape[1]):
        ax.plot(epochs, history[:, i], "-" if i in report.elites else "--", label=f"member {i}")
    ax.set(title=title, xlabel="epoch", ylabel="holdout MSE (data units)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, plt, Path(path))


def k_step_figure(path: Path, tables: dict[str, dict], *, title: str) -> Path:
    """k-step normalised MSE per test set: the elite's mean (solid) and sampled rollouts (dashed), log scale."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for i, (name, t) in enumerate(tables.items()):
        if not t.get("windows"):
            continue
        k = np.arange(1, t["horizon"] + 1)
        color = f"C{i}"
        ax.plot(k, t["mean"], "-", color=color, label=f"{name}: mean")
        ax.plot(k, t["sample"], "--", color=color, label=f"{name}: sample")
    ax.set(title=title, xlabel="k (steps)", ylabel="normalised MSE", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, plt, Path(path))


