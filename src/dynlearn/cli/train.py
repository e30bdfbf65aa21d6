"""``dynlearn train``: one command per registered model-based method (``train mopo DATA``, its config's fields as flags,
generated from the registry when the commands are built) and one per model-free agent (``train td3bc DATA``, offline,
or ``train sac --online --task T``; the agent config's fields as ``--agent.*`` flags)."""

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
from .parsing import flag_names, unchecked, values


@dataclasses.dataclass(frozen=True)
class AgentJob:
    """What every ``dynlearn train ALGO`` command (a model-free agent) takes beside the agent's config, whose fields are
    its ``--agent.FIELD`` flags."""

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
    checkpoint_every: int | None = None
    """write a resumable checkpoint every this many steps (default: 10,000 offline; 25,000 online)"""
    block: int | None = None
    """offline: gradient steps per compiled lax.scan block (default 1,000; steps, eval_every and checkpoint_every are
    multiples of it)"""
    normalize_obs: bool = True
    """offline: standardise observations with the dataset's statistics"""
    reward_normalization: str | None = None
    """offline: none | iql | auto (default: auto, IQL's scaling for IQL only)"""
    start_steps: int | None = None
    """online: uniform-random actions for the first this many steps (default 10,000)"""
    update_every: int | None = None
    """online: environment steps per update block (default 50)"""
    buffer_size: int | None = None
    """online: replay capacity in rows (default 1,000,000)"""
    snapshot_every: int | None = None
    """online: keep a policy snapshot every this many steps (default 10,000; 0: none)"""
    resume: bool = False
    """continue the run in --out from its checkpoint"""
    force: bool = False
    """replace an existing run folder"""


OFFLINE_ONLY = ("block", "normalize_obs", "reward_normalization")
ONLINE_ONLY = ("start_steps", "update_every", "buffer_size", "snapshot_every")


def _trainer_options(parsed, mode: str) -> dict:
    """The trainer options the user gave (the rest keep the trainer's defaults); those of the other mode refused."""
    unset = {"normalize_obs": True}  # (a flag whose default is the trainer's; the others are None when not given)
    given = {name: getattr(parsed, name) for name in ("checkpoint_every", *OFFLINE_ONLY, *ONLINE_ONLY)
             if getattr(parsed, name) != unset.get(name)}
    wrong = [name for name in (ONLINE_ONLY if mode == "offline" else OFFLINE_ONLY) if name in given]
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise ConfigError(f"{flags} only apply to {'online' if mode == 'offline' else 'offline'} training. Fix: drop them"
                          f"{' or add --online' if mode == 'offline' else ''}.")
    return given


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


def agent_job(name: str) -> type:
    """The ``dynlearn train NAME`` command's dataclass for a model-free agent: :class:`AgentJob`'s fields, and the agent
    config's fields as ``--agent.FIELD`` flags (each with its docstring as help)."""
    config_cls = agents.get(name).Config
    parsed_as = unchecked(config_cls)
    doc = (f"dynlearn train {name} DATA (offline) | dynlearn train {name} --online --task TASK: train the model-free agent "
           f"{name} ({config_cls.__name__}: its hyperparameters are the --agent.* flags). Writes a run folder.")
    field = ("agent", Annotated[parsed_as, tyro.conf.arg(name="agent")], dataclasses.field(default=parsed_as()))
    return dataclasses.make_dataclass(
        f"Train{config_cls.__name__}", [field], bases=(AgentJob,), frozen=True,
        namespace={"__doc__": doc, "agent_name": name, "__module__": __name__})


def run_agent(job: type, args: list[str], prog: str) -> None:
    """``dynlearn train ALGO``: a model-free agent, offline or online; a flag that only the model-based methods have is
    refused by name."""
    _refuse_method_flags(job, args)
    parsed = tyro.cli(job, args=args, prog=prog, description=job.__doc__)
    agent_cfg = agents.get(job.agent_name).Config(**values(parsed.agent))
    check_minimums(parsed, {"steps": 1, "seeds": 1, "eval_every": 1, "eval_episodes": 1}, command="train")
    name = job.agent_name
    options = _trainer_options(parsed, "online" if parsed.online else "offline")
    if parsed.online:
        if parsed.task is None or parsed.data is not None:
            raise ConfigError("train --online needs --task and no DATA. Fix: dynlearn train sac --online --task Hopper-v5 --out DIR.")
        if parsed.parallel_seeds:
            raise ConfigError("train --online runs one seed (--seed); --parallel-seeds is for offline training.")
        online = OnlineConfig(task=get(parsed.task).id, agent=name, steps=500_000 if parsed.steps is None else parsed.steps,
                              seed=parsed.seed, eval_every=parsed.eval_every, eval_episodes=parsed.eval_episodes,
                              **options)
        online_trainer.train_online(online, parsed.out, resume=parsed.resume, force=parsed.force, agent_config=agent_cfg)
        return
    if parsed.data is None:
        raise ConfigError("train needs a DATA argument (or --online). Fix: dynlearn train td3bc hopper.hdf5 --task Hopper-v5.")
    dataset, task = training_data(parsed.data, parsed.task, successors=False)
    offline = OfflineConfig(agent=name, steps=100_000 if parsed.steps is None else parsed.steps, seeds=parsed.seeds, seed=parsed.seed,
                            eval_every=parsed.eval_every, eval_episodes=parsed.eval_episodes, **options)
    offline_trainer.train_offline(dataset, task, offline, parsed.out, resume=parsed.resume, force=parsed.force,
                                  parallel_seeds=parsed.parallel_seeds, agent_config=agent_cfg)


def _refuse_method_flags(job: type, args: list[str]) -> None:
    """Flags that only the model-based methods have, given to a model-free agent: refused, naming them."""
    typed = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    own = set(flag_names(job).values())
    method_flags = [f for m in names() for f in flag_names(method(m)).values()] + list(flag_names(MethodJob).values())
    misplaced = list(dict.fromkeys(f for f in method_flags if f in typed and f not in own))
    if misplaced:
        raise ConfigError(f"{', '.join(misplaced)} only apply to the offline model-based methods ({', '.join(names())}); "
                          f"train {job.agent_name}{' --online' if '--online' in typed else ''} would ignore them. Fix: drop them "
                          "(a model-based method is trained by `dynlearn train METHOD DATA`, e.g. dynlearn train mopo --help).")


def run_unnamed(args: list[str], prog: str) -> None:
    """``dynlearn train X``: X names no registered method and no agent (or is missing)."""
    if args and args[0] in ("-h", "--help"):
        print(f"usage: {prog} METHOD DATA [OPTIONS] | {prog} ALGO (DATA | --online --task TASK) [OPTIONS]\n\n"
              f"model-based methods (METHOD): {', '.join(names())}\nmodel-free agents (ALGO): {', '.join(agents.names())}\n"
              "PETS (online planning): train pets\n\n"
              f"{prog} NAME --help lists a command's options.")
        return
    if not args or args[0].startswith("-"):
        raise ConfigError(f"train needs a method or an algorithm first. Fix: dynlearn train mopo DATA, or dynlearn train td3bc DATA "
                          f"({prog} --help lists them).")
    _unknown_algorithm(args[0])


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
    _refuse_other_methods_flags(job, args)
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


def _refuse_other_methods_flags(job: type, args: list[str]) -> None:
    """Flags of other model-based methods (``train mopo --eta 1``) refused in one line that names their methods."""
    typed = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    own = set(flag_names(job).values())
    owners: dict[str, list[str]] = {}
    for other in names():
        for flag in flag_names(method(other)).values():
            if flag in typed and flag not in own:
                owners.setdefault(flag, []).append(other)
    if owners:
        name = job.config_class.name
        which = "; ".join(f"{flag} is an option of {', '.join(ms)}" for flag, ms in owners.items())
        raise ConfigError(f"{which}, not of {name}. "
                          f"Fix: drop {'it' if len(owners) == 1 else 'them'} (dynlearn train {name} --help lists {name}'s options).")


def _unknown_algorithm(algo: str) -> None:
    """``dynlearn train X`` for a name no command has: the name in lower case where that is one, else every method and
    agent."""
    if algo.lower() in (*names(), *agents.names(), "pets"):
        raise ConfigError(f"train: the algorithm is written in lower case. Fix: dynlearn train {algo.lower()} ...")
    raise ConfigError(f"train: unknown algorithm {algo!r}. Fix: choose a model-based method ({', '.join(names())}) or a "
                      f"model-free agent ({', '.join(agents.names())}).")
