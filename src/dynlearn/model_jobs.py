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

This module is the job layer only: the diagnostics are :mod:`dynlearn.models.diagnostics`, their Markdown tables and
figures :mod:`dynlearn.report.model_diagnostics` (both importable from here too).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from .algos.morec.diagnostics import reward_diagnostics
from .algos.morec.reward_io import load_reward
from .checkpoint import latest_dir, remove_dir, write_json
from .data.dataset import Dataset
from .errors import ConfigError, DataError
from .models import EnsembleConfig, FitConfig, FitReport, fit, load, save, split_holdout
from .models.diagnostics import (
    ModelEvalConfig,
    Reference,
    diagnostics,
    fit_split,
    one_step_table,
)
from .report.model_diagnostics import (
    fit_curve_figure,
    k_step_figure,
    render_calibration,
    render_k_step,
    render_one_step,
    render_reward,
)
from .results import RunFolder, dataset_record, json_safe, make_results
from .tasks import get

__all__ = [
    "ModelEvalConfig", "ModelTrainConfig", "Reference", "diagnostics", "eval_model", "fit_curve_figure", "fit_split",
    "k_step_figure", "load_run", "one_step_table", "render_calibration", "render_k_step", "render_one_step", "render_reward",
    "train_model",
]

# OfflineRL-Kit's per-layer weight decay (EnsembleConfig's default: 4 hidden layers, then the output); other depths
# reuse its schedule
_KIT_DECAY_HIDDEN = EnsembleConfig.weight_decay[:-1]
_KIT_DECAY_OUTPUT = EnsembleConfig.weight_decay[-1]


def kit_weight_decay(depth: int) -> tuple[float, ...]:
    """OfflineRL-Kit's per-layer weight decay for ``depth`` hidden layers and the output (EnsembleConfig's default is
    its 4-layer schedule; other depths reuse the schedule, 7.5e-5 beyond the fourth hidden layer)."""
    return (*(_KIT_DECAY_HIDDEN[min(i, len(_KIT_DECAY_HIDDEN) - 1)] for i in range(depth)), _KIT_DECAY_OUTPUT)


@dataclasses.dataclass(frozen=True)
class ModelTrainConfig:
    """``dynlearn model train``: fit a probabilistic ensemble to a dataset (every field of its architecture and of the
    fit is a flag of the command)."""

    ensemble: EnsembleConfig = EnsembleConfig()
    """architecture and loss (OfflineRL-Kit's MOPO/MOBILE model by default)"""
    fit: FitConfig = FitConfig()
    """the fit: holdout, early stopping, elites, learning rate"""
    seed: int = 0
    """seed of the holdout split, bootstrap, initialisation and batches"""


def train_model(dataset: Dataset, task, cfg: ModelTrainConfig, out: str | Path, *, force: bool = False, resume: bool = False,
                progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Fit an ensemble to ``dataset`` and write the run folder ``out`` (module docstring). The fit checkpoints into
    ``out/checkpoint`` (every minute, and on SIGTERM / Ctrl-C); ``resume=True`` continues it."""
    out = Path(out)
    ecfg, fcfg = cfg.ensemble, dataclasses.replace(cfg.fit, progress=progress)
    config = {"model_train": {"seed": cfg.seed}, "ensemble": ecfg.to_dict(), "fit": fcfg.identity(),
              "task": None if task is None else task.id, "dataset": dataset_record(dataset)}
    run = RunFolder.open(out, config, resume=resume, force=force)
    if resume and run.file("results.json").is_file():
        log(f"{out} is finished; nothing to resume")
        return out
    log(f"fitting a {ecfg.members}-member ensemble on {dataset.name} ({len(dataset):,} transitions)")
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
        budget={"steps": report.steps, "seeds": 0, "epochs": report.epochs, "max_epochs": fcfg.max_epochs, "fit_seed": cfg.seed,
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
