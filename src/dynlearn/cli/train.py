"""``dynlearn train``: one command per registered model-based method (``train mopo DATA``, its config's fields as flags,
generated from the registry when the commands are built), and ``train ALGO`` for the model-free agents, offline or
online."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import tyro

from .. import agents
from ..algos import model_based
from ..algos import offline as offline_trainer
from ..algos import online as online_trainer
from ..algos.offline import OfflineConfig
from ..algos.online import OnlineConfig
from ..algos.registry import method, names
from ..data import load
from ..data.dataset import check_trainable
from ..errors import ConfigError, check_minimums
from ..models import load as load_model
from ..tasks import get
from .checks import check_model_finite
from .parsing import flag_names, parse, unchecked, values


@dataclasses.dataclass(frozen=True)
class Train:
    """Train a model-free agent offline on a dataset (DATA), or online in the task (--online). Writes a run folder.
    The model-based methods have their own commands: dynlearn train METHOD DATA (mopo, mobile, ...; each with --help)."""

    algo: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ALGO")]
    """model-free agent: sac, edac, td3bc, iql, cql, bc (dynlearn.agents)"""
    data: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")] = None
    """dataset (file, Minari id or named dataset); omit with --online"""
    out: Path = Path("runs/train")
    """run folder"""
    task: str | None = None
    """task to evaluate in (required with --online; else read from the dataset when it records one)"""
    online: bool = False
    """train by interacting with the task instead of from a dataset"""
    steps: int | None = None
    """gradient steps per seed (default: 100,000 offline; 500,000 online)"""
    seeds: int = 3
    """offline: seeds run one after another (online runs one seed: --seed)"""
    seed: int = 0
    """first seed"""
    parallel_seeds: bool = False
    """offline: train the seeds together, one vmapped program for all (meant for a GPU; on one CPU core it takes as long
    as running them in turn); the same run folder either way, resumable either way"""
    eval_every: int = 10_000
    """evaluate the policy every this many steps"""
    eval_episodes: int = 10
    """evaluation episodes"""
    resume: bool = False
    """continue the run in --out from its checkpoint"""
    force: bool = False
    """replace an existing run folder"""


@dataclasses.dataclass(frozen=True)
class MethodJob:
    """What every ``dynlearn train METHOD`` command takes beside the method's config (whose fields are its other
    flags)."""

    data: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")]
    """dataset (file, Minari id or named dataset, e.g. hopper-medium-v5); its name picks the method's preset unless
    the preset is given"""
    out: Path = Path("runs/train")
    """run folder"""
    task: str | None = None
    """task to evaluate in (default: the one the dataset records)"""
    parallel_seeds: bool = False
    """train the seeds together, one vmapped program for all (meant for a GPU; on one CPU core it takes as long as
    running them in turn); the same run folder either way, resumable either way"""
    only_seed: int | None = None
    """train only this one of the run's seeds, so that each seed can train in its own process (one per CPU core);
    start the others with --resume once the first has written config.json"""
    resume: bool = False
    """continue the run in --out from its checkpoint"""
    force: bool = False
    """replace an existing run folder"""


def model_free(cfg: Train) -> None:
    """``dynlearn train ALGO``: a model-free agent, offline or online."""
    check_minimums(cfg, {"steps": 1, "seeds": 1, "eval_every": 1, "eval_episodes": 1}, command="train")
    _check_algorithm(cfg.algo)
    if cfg.online:
        if cfg.task is None or cfg.data is not None:
            raise ConfigError("train --online needs --task and no DATA. Fix: dynlearn train sac --online --task Hopper-v5 --out DIR.")
        if cfg.parallel_seeds:
            raise ConfigError("train --online runs one seed (--seed); --parallel-seeds is for offline training.")
        online = OnlineConfig(task=get(cfg.task).id, agent=cfg.algo, steps=500_000 if cfg.steps is None else cfg.steps, seed=cfg.seed,
                              eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes)
        online_trainer.train_online(online, cfg.out, resume=cfg.resume, force=cfg.force)
        return
    if cfg.data is None:
        raise ConfigError("train needs a DATA argument (or --online). Fix: dynlearn train td3bc hopper.hdf5 --task Hopper-v5.")
    dataset, task = training_data(cfg.data, cfg.task, successors=False)
    offline = OfflineConfig(agent=cfg.algo, steps=100_000 if cfg.steps is None else cfg.steps, seeds=cfg.seeds, seed=cfg.seed,
                            eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes)
    offline_trainer.train_offline(dataset, task, offline, cfg.out, resume=cfg.resume, force=cfg.force, parallel_seeds=cfg.parallel_seeds)


def run_model_free(args: list[str], prog: str) -> None:
    """``dynlearn train ALGO``: a model-free agent; a flag that only the model-based methods have is refused by name."""
    typed = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    own = set(flag_names(Train).values())
    method_flags = [f for m in names() for f in flag_names(method(m)).values()] + list(flag_names(MethodJob).values())
    misplaced = list(dict.fromkeys(f for f in method_flags if f in typed and f not in own))
    if misplaced:
        algo = next((a for a in args if not a.startswith("-")), "ALGO")
        raise ConfigError(f"{', '.join(misplaced)} only apply to the offline model-based methods ({', '.join(names())}); "
                          f"train {algo}{' --online' if '--online' in typed else ''} would ignore them. Fix: drop them (a model-based "
                          "method is trained by `dynlearn train METHOD DATA`, e.g. dynlearn train mopo --help).")
    model_free(parse(Train, args, prog=prog))


def training_data(data: str, task_id: str | None, *, successors: bool):
    """The dataset DATA (loaded with its task) and the task to evaluate in, refused when nothing in it can be trained
    on (``successors``: a model is fitted on it, so rows need a successor observation)."""
    dataset = load(data, task=task_id)
    task_id = task_id if task_id is not None else dataset.task
    if task_id is None:
        raise ConfigError(f"{data} does not record its task. Fix: pass --task (e.g. --task Hopper-v5).")
    check_trainable(dataset, successors=successors)
    return dataset, get(task_id)


def method_job(config_cls: type) -> type:
    """The ``dynlearn train NAME`` command's dataclass for a method: :class:`MethodJob`'s fields and the config's fields
    as flags (each with its docstring as help). Parsed unchecked; :func:`run_method` checks the config it builds."""
    parsed_as = unchecked(config_cls)
    presets = ", ".join(sorted(config_cls.PRESETS))
    doc = (f"dynlearn train {config_cls.name} DATA: {' '.join((config_cls.__doc__ or '').split())} Writes a run folder. "
           + (f"Presets (the papers' per-dataset values): {presets}; --preset P applies one (default: the one DATA's name "
              "names), and the flags given beside it win." if presets else ""))
    return dataclasses.make_dataclass(
        f"Train{config_cls.__name__}", [("config", Annotated[parsed_as, tyro.conf.arg(name="")], dataclasses.field(default=parsed_as()))],
        bases=(MethodJob,), frozen=True, namespace={"__doc__": doc, "config_class": config_cls, "__module__": __name__})


def run_method(job: type, args: list[str], prog: str) -> None:
    """``dynlearn train NAME DATA``: the config is the preset (--preset P, else the one DATA's name names, else the
    class's defaults) with the flags the user typed over it. Parsed twice: once to find DATA and --preset, then with the
    preset's config as the defaults."""
    config_cls = job.config_class
    if "--online" in args:
        raise ConfigError(f"train: {config_cls.name} is an offline model-based method; --online trains a model-free agent. Fix: drop "
                          f"--online and pass DATA, or train one of {', '.join(agents.names())} online.")
    first = tyro.cli(job, args=args, prog=prog, description=job.__doc__)
    named = None if first.config.preset is None else config_cls.preset(first.config.preset)  # an unknown one: refused now
    dataset, task = training_data(first.data, first.task, successors=first.config.model == "ensemble")
    preset = config_cls.for_dataset(dataset.name) if named is None else named
    parsed = first
    if preset.preset is not None:
        start = unchecked(config_cls)(**values(preset))
        parsed = tyro.cli(job, args=args, prog=prog, description=job.__doc__, default=dataclasses.replace(first, config=start))
    cfg = config_cls(**values(parsed.config))
    if cfg.model not in ("ensemble", "oracle") and (Path(cfg.model) / "config.json").is_file():
        check_model_finite(load_model(cfg.model, task=task), cfg.model, flag="--model")
    model_based.train_model_based(dataset, task, cfg, parsed.out, resume=parsed.resume, force=parsed.force,
                                  parallel_seeds=parsed.parallel_seeds, only_seed=parsed.only_seed)


def _check_algorithm(algo: str) -> None:
    """``dynlearn train ALGO``: an unknown name lists every algorithm, model-based and model-free."""
    try:
        agents.get(algo)
    except ConfigError:
        raise ConfigError(f"train: unknown algorithm {algo!r}. Fix: choose a model-based method ({', '.join(names())}) or a "
                          f"model-free agent ({', '.join(agents.names())}).") from None
