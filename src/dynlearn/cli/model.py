"""``dynlearn model train|eval|reward``: fit a dynamics ensemble, diagnose it, learn MOREC's dynamics reward for it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import jax
import tyro

from ..algos.mbpo import MBPOConfig
from ..algos.model_source import build_model, ensemble_entry
from ..algos.morec import DynamicsRewardConfig, learn_reward, save_reward
from ..checkpoint import check_writable, latest_dir, remove_dir
from ..data import load
from ..data.dataset import check_trainable
from ..errors import ConfigError, check_minimums
from ..model_jobs import ModelEvalConfig, ModelTrainConfig, eval_model, kit_weight_decay, load_run, train_model
from ..models import EnsembleConfig, FitConfig
from ..tasks import get
from .checks import check_model_finite, check_run_files
from .data import task_of
from .parsing import unchecked, values


@dataclasses.dataclass(frozen=True)
class ModelTrain:
    """Fit a probabilistic dynamics ensemble to a dataset (DATA). Writes a run folder: model, fit curve, one-step errors.
    Every field of the ensemble's architecture (EnsembleConfig) and of the fit (FitConfig) is a flag; --hidden without
    --weight-decay takes OfflineRL-Kit's per-layer weight decay for that depth."""

    data: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")]
    """dataset (file, Minari id or named dataset, e.g. hopper-medium-v5)"""
    task: str | None = None
    """task the data comes from (its termination function is attached to the model); default: the dataset's"""
    out: Path = Path("runs/model")
    """run folder"""
    ensemble: Annotated[unchecked(EnsembleConfig), tyro.conf.arg(name="")] = unchecked(EnsembleConfig)()
    fit: Annotated[unchecked(FitConfig), tyro.conf.arg(name="")] = unchecked(FitConfig)()
    seed: int = 0
    """seed of the holdout split, bootstrap and initialisation"""
    force: bool = False
    """replace an existing run folder"""
    resume: bool = False
    """continue the fit in --out from its checkpoint (written every minute and on SIGTERM / Ctrl-C)"""


@dataclasses.dataclass(frozen=True)
class ModelEval:
    """Diagnose a fitted model (DIR from `model train`, a cached ensemble, or `cached`) on DATA (its holdout when DATA is
    the training data) and --ood data."""

    run: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DIR")]
    """run folder of `dynlearn model train`, a cached ensemble folder (~/.cache/dynlearn/models/<key>), or `cached`: the
    ensemble `dynlearn train mopo|mobile|ravl|...` uses for DATA (fitted first if it is not cached; needs --out)"""
    data: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")]
    """in-distribution test data (the training data: its holdout episodes are used)"""
    model_holdout: str | None = None
    """with `cached`: the ensemble fitted with this holdout rule, as `dynlearn train --model-holdout` (default episodes)"""
    ood: tuple[str, ...] = ()
    """datasets of other behaviour policies (e.g. hopper-random-v5 hopper-expert-v5)"""
    horizon: int = 20
    """open-loop k-step error for k = 1..horizon"""
    windows: int = 2000
    """most open-loop start rows per test set"""
    seed: int = 0
    """seed of the window draw and the model's sampling"""
    reward: Path | None = None
    """a dynamics reward folder (`dynlearn model reward`): also score real vs model transitions with it"""
    out: Path | None = None
    """output folder (default: DIR/eval; required for a cached ensemble)"""
    force: bool = False
    """replace an existing output folder"""


@dataclasses.dataclass(frozen=True)
class ModelReward:
    """Learn MOREC's dynamics reward for a fitted model on DATA: the ensemble `dynlearn train mopo|mobile|...` uses for
    DATA (cached; fitted now if missing), or --model, the run folder of `model train`.
    Writes the reward folder that `dynlearn train morec-mopo|morec-mobile --reward-model DIR` uses. The training state
    is kept in OUT.learning (every minute, and on SIGTERM / Ctrl-C): the same command with --resume continues from it."""

    data: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")]
    """the dataset the model was fitted on (file, Minari id or named dataset)"""
    model: Path | None = None
    """run folder of `dynlearn model train` or a cached ensemble folder (default: the model-based methods' cached
    ensemble for DATA)"""
    model_holdout: str | None = None
    """without --model: the cached ensemble fitted with this holdout rule, as `dynlearn train --model-holdout`"""
    out: Path = Path("runs/reward")
    """output folder (the dynamics reward: config.json + leaves + report)"""
    steps: int | None = None
    """adversarial training steps (default: DynamicsRewardConfig's 10,000; snapshots are spread over them)"""
    seed: int = 0
    """seed of the discriminators, the adversary and the batches"""
    force: bool = False
    """replace an existing output folder (and start over from an unfinished run's OUT.learning)"""
    resume: bool = False
    """continue the unfinished run whose training state is in OUT.learning (same data, model, steps and seed)"""


def run_model_train(args: list[str], prog: str) -> None:
    """``dynlearn model train DATA``: the ensemble and fit configs checked once parsed (one-line errors); the weight
    decay follows --hidden's depth unless --weight-decay is given."""
    parsed = tyro.cli(ModelTrain, args=args, prog=prog, description=ModelTrain.__doc__)
    ensemble = values(parsed.ensemble)
    typed = {a.split("=", 1)[0] for a in args}
    if "--weight-decay" not in typed:
        ensemble["weight_decay"] = kit_weight_decay(len(ensemble["hidden"]))
    job = ModelTrainConfig(ensemble=EnsembleConfig(**ensemble), fit=FitConfig(**values(parsed.fit)), seed=parsed.seed)
    dataset = load(parsed.data, task=parsed.task)
    check_trainable(dataset, successors=True)
    train_model(dataset, get(parsed.task) if parsed.task else task_of(dataset), job, parsed.out, force=parsed.force,
                resume=parsed.resume, progress=job.fit.progress)


def cached_ensemble(data: str, model_holdout: str | None, *, fix: str):
    """The cache folder of the ensemble ``dynlearn train mopo|mobile|...`` uses for dataset ``data`` (fitted now if
    missing), and the dataset, loaded once with its recorded task; ``fix`` says what to pass instead when the dataset
    does not record its task."""
    dataset = load(data)
    if dataset.task is None:
        raise ConfigError(f"{data} does not record its task, so its cached ensemble cannot be found. Fix: {fix}.")
    # every method fits the same ensemble for the same fit options: any method's config names it
    task, mb = get(dataset.task), MBPOConfig(model_holdout="episodes" if model_holdout is None else model_holdout)
    build_model(dataset, task, mb, log=print)
    return ensemble_entry(dataset, task, mb), dataset


def model_eval(cfg: ModelEval) -> None:
    check_minimums(cfg, {"horizon": 1, "windows": 1}, command="model eval")
    run, dataset = cfg.run, None
    if str(run) == "cached":  # the ensemble the model-based methods use for DATA (fitted now if it is not cached)
        run, dataset = cached_ensemble(cfg.data, cfg.model_holdout, fix="pass a run folder of `dynlearn model train` as DIR")
    elif cfg.model_holdout is not None:
        raise ConfigError("--model-holdout chooses among the cached ensembles: it applies to DIR `cached` only. "
                          "Fix: drop --model-holdout, or pass DIR cached.")
    check_run_files(run, what="DIR")
    model, task, _, _ = load_run(run)
    check_model_finite(model, run, flag="DIR")
    job = ModelEvalConfig(horizon=cfg.horizon, windows=cfg.windows, seed=cfg.seed)
    if dataset is None:
        dataset = load(cfg.data, task=task)
    eval_model(run, dataset, [load(d, task=task) for d in cfg.ood], job, out=cfg.out, force=cfg.force, reward=cfg.reward)


def model_reward(cfg: ModelReward) -> None:
    check_minimums(cfg, {"steps": 1}, command="model reward")
    check_writable(cfg.out, force=cfg.force, folder=True)
    partial = cfg.out.with_name(cfg.out.name + ".learning")  # the training state: a stopped run continues from it
    if latest_dir(partial) is not None and not cfg.resume:
        if not cfg.force:
            raise ConfigError(f"{partial} holds the training state of an unfinished `dynlearn model reward` run. Fix: pass "
                              "--resume to continue it, or --force to start over.")
        remove_dir(partial)
    if cfg.resume and latest_dir(partial) is None:
        raise ConfigError(f"--resume: there is no unfinished run to continue ({partial} does not exist). Fix: drop --resume.")
    dataset = None
    if cfg.model is None:  # the ensemble the model-based methods train on (same cache entry)
        run, dataset = cached_ensemble(cfg.data, cfg.model_holdout, fix="pass --model (the run folder of `dynlearn model train`)")
    elif cfg.model_holdout is not None:
        raise ConfigError("--model-holdout chooses among the cached ensembles; with --model the fit's own holdout rule is used. "
                          "Fix: drop one of them.")
    else:
        run = cfg.model
        check_run_files(run, what="--model")
    model, task, config, fit_report = load_run(run)  # a model train folder or a cache entry: both record the FitConfig
    check_model_finite(model, run, flag="--model" if cfg.model is not None else "the cached ensemble")
    fit_cfg = FitConfig.from_dict(config["fit"], source=str(run))
    reward_cfg = DynamicsRewardConfig()
    if cfg.steps is not None:  # keep the number of snapshots: spread them over the shorter training
        every = min(reward_cfg.snapshot_every, max(1, cfg.steps // reward_cfg.snapshots))
        reward_cfg = dataclasses.replace(reward_cfg, steps=cfg.steps, snapshot_every=every)
    if dataset is None:
        dataset = load(cfg.data, task=task)
    reward, report = learn_reward(dataset, model, reward_cfg, key=jax.random.key(cfg.seed),
                                  holdout_seed=fit_report.holdout_seed, fit_cfg=fit_cfg, log=print, checkpoint=partial)
    save_reward(cfg.out, reward, report, force=cfg.force)
    remove_dir(partial)
    print(f"wrote {cfg.out}: {report.discriminators} discriminators; held-out data reward {report.holdout_reward_data:.3f}, "
          f"model reward {report.holdout_reward_model:.3f}, AUC data > model {report.holdout_auc:.3f}")
