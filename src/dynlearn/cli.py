"""The ``dynlearn`` command line. Parses arguments into config dataclasses and calls the public API; no logic of its own.

Errors in the user's input (``DynlearnError``) print one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import signal
import sys
import threading
import typing
import warnings
from pathlib import Path
from typing import Annotated, Callable, NamedTuple

import tyro

from .data._csv import DataWarning
from .errors import DynlearnError, check_minimums
from .interrupt import Stopped


@dataclasses.dataclass(frozen=True)
class SourceArgs:
    path: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PATH")]
    """dataset: a D4RL-layout .hdf5, a Minari dataset folder or id, an .npz or a .csv"""
    task: str | None = None
    """task the data comes from (checks dims, adds normalized scores), e.g. Hopper-v5"""
    obs_cols: str | None = None
    """.npz/.csv: observation columns, comma-separated names or patterns (obs_*)"""
    act_cols: str | None = None
    """.npz/.csv: action columns"""
    rew_col: str | None = None
    """.npz/.csv: reward column (default rewards)"""
    terminal_col: str | None = None
    """.npz/.csv: terminal-flag column (default terminals, optional)"""
    timeout_col: str | None = None
    """.npz/.csv: timeout-flag column (default timeouts, optional)"""
    next_obs_cols: str | None = None
    """.npz/.csv: successor-observation columns (default: derived inside episodes)"""
    episode_col: str | None = None
    """.npz/.csv: episode-id column (default: episodes end at terminal/timeout flags)"""
    delimiter: str | None = None
    """.csv/.tsv: the column separator, one character (tab, semicolon, ... by name); default , (.csv) or tab (.tsv)"""

    def load(self):
        from .data import Columns, load
        from .data._csv import parse_delimiter

        delimiter = parse_delimiter(self.delimiter)
        if delimiter is not None and not self.path.lower().endswith((".csv", ".tsv")):
            from .errors import ConfigError

            raise ConfigError(f"--delimiter applies to .csv/.tsv files; {self.path} is not one. Fix: drop --delimiter.")
        columns = None
        if any(v is not None for v in (self.obs_cols, self.act_cols, self.rew_col, self.terminal_col, self.timeout_col,
                                       self.next_obs_cols, self.episode_col)) or self.path.lower().endswith((".csv", ".tsv")):
            columns = Columns.parse(obs=self.obs_cols, act=self.act_cols, rew=self.rew_col, terminal=self.terminal_col,
                                    timeout=self.timeout_col, next_obs=self.next_obs_cols, episode=self.episode_col)
        return load(self.path, task=self.task, columns=columns, delimiter=delimiter)


@dataclasses.dataclass(frozen=True)
class DataInfo(SourceArgs):
    """Print a dataset's size, episodes, dims, return statistics, flags and any problems found."""

    json: bool = False
    """print the summary as JSON"""


@dataclasses.dataclass(frozen=True)
class DataGenerate:
    """Collect a dataset in a task with a behaviour policy and write it in the D4RL layout."""

    task: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="TASK|NAME")]
    """task id (e.g. Hopper-v5), or a suite dataset name (e.g. hopper-medium-v5: regenerated from kept policies)"""
    out: Path | None = None
    """output .hdf5 file (a suite dataset defaults to the dataset cache)"""
    policy: str = "random"
    """random, controller (the task's hand-written controller, where one exists), or a saved agent folder"""
    steps: int = 100_000
    """environment steps to collect"""
    seed: int = 0
    """seed for resets and the policy's randomness"""
    noise: float = 0.0
    """Gaussian action noise added to the policy, in units of half the action range"""
    num_envs: int = 8
    """environments stepped side by side"""
    force: bool = False
    """overwrite an existing output file"""


@dataclasses.dataclass(frozen=True)
class DataConvert(SourceArgs):
    """Convert a dataset (Minari, .npz, .csv, .hdf5) to the D4RL HDF5 layout."""

    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("dataset.hdf5")
    """output .hdf5 file"""
    force: bool = False
    """overwrite an existing output file"""


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
    """dataset (file, Minari id or named dataset, e.g. hopper-medium-v5); its name picks the method's preset when
    --preset is not given"""
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


@dataclasses.dataclass(frozen=True)
class ModelTrain:
    """Fit a probabilistic dynamics ensemble to a dataset (DATA). Writes a run folder: model, fit curve, one-step errors."""

    data: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")]
    """dataset (file, Minari id or named dataset, e.g. hopper-medium-v5)"""
    task: str | None = None
    """task the data comes from (its termination function is attached to the model); default: the dataset's"""
    out: Path = Path("runs/model")
    """run folder"""
    members: int = 7
    """ensemble members"""
    elites: int = 5
    """members used for prediction (lowest holdout error)"""
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    """hidden layer widths"""
    max_epochs: int | None = None
    """stop after this many epochs (default: early stopping only)"""
    holdout: str | None = None
    """held out for early stopping and elite selection: episodes (default) | transitions (OfflineRL-Kit's random rows)"""
    min_epochs: int | None = None
    """train at least this many epochs, lowering the learning rate x 0.3 at the first plateau before them (the
    edge-of-reach/RAVL reference fits with 350); default: early stopping only"""
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


@dataclasses.dataclass(frozen=True)
class TasksList:
    """List the registered tasks with dims, termination/reward functions and reference returns."""

    json: bool = False
    """print as JSON"""


def _cmd_data_info(cfg: DataInfo) -> None:
    from .checkpoint import json_text
    from .data import summarize
    from .tasks import get

    dataset = cfg.load()
    summary = summarize(dataset, get(cfg.task) if cfg.task else _task_of(dataset))
    print(json_text(summary.to_dict()) if cfg.json else summary.render())


def _task_of(dataset):
    from .tasks import get, is_registered

    return get(dataset.task) if dataset.task and is_registered(dataset.task) else None


def _cmd_data_generate(cfg: DataGenerate) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .data import summarize, write_d4rl
    from .data.d4rl import check_output_file
    from .tasks import NoisyPolicy, collect, get
    from .tasks.policies import policy_from_name

    from .errors import ConfigError
    from .tasks import suite

    check_minimums(cfg, {"steps": 1, "num_envs": 1, "seed": 0}, command="data generate")  # (numpy seeds are >= 0)
    if cfg.noise < 0:
        raise ConfigError(f"data generate: --noise must be at least 0, got {cfg.noise}. Fix: pass --noise 0 or more (0: none).")
    if suite.parse(cfg.task) is not None:
        out = cfg.out if cfg.out is not None else suite.path_of(cfg.task, cfg.seed)
        check_output_file(out, force=cfg.force)
        dataset = suite.generate(cfg.task, seed=cfg.seed)
        note = suite.reproduction_warning(cfg.task, dataset, cfg.seed)
        write_d4rl(out, dataset, force=cfg.force)
        print(f"wrote {out}")
        print(summarize(dataset, get(dataset.task)).render())
        if note is not None:
            print(f"warning: {note}", file=sys.stderr)
        return
    if cfg.out is None:
        raise ConfigError("data generate TASK needs --out FILE.hdf5. Fix: pass --out, e.g. --out data/pendulum.hdf5.")
    task = get(cfg.task)
    check_output_file(cfg.out, force=cfg.force)
    policy = policy_from_name(cfg.policy, task)
    if cfg.noise > 0:
        policy = NoisyPolicy(policy, task, noise=cfg.noise)
    with Progress(TextColumn("collecting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        job = bar.add_task("steps", total=cfg.steps)
        dataset = collect(task, policy, steps=cfg.steps, seed=cfg.seed, num_envs=cfg.num_envs, name=cfg.out.stem,
                          policy_name=cfg.policy, on_step=lambda n: bar.advance(job, n))
    write_d4rl(cfg.out, dataset, force=cfg.force)
    print(f"wrote {cfg.out}")
    print(summarize(dataset, task).render())


def _cmd_data_convert(cfg: DataConvert) -> None:
    from .data import write_d4rl
    from .data.d4rl import check_output_file

    check_output_file(cfg.out, force=cfg.force)  # before reading: a long conversion must not fail at the end
    dataset = cfg.load()
    write_d4rl(cfg.out, dataset, force=cfg.force)
    print(f"wrote {cfg.out} ({len(dataset):,} transitions, {dataset.n_episodes} episodes)")


def _cmd_tasks(cfg: TasksList) -> None:
    from .tasks import get, ids

    rows = []
    for task_id in ids():
        t = get(task_id)
        rows.append({"id": t.id, "obs_dim": t.obs_dim, "act_dim": t.act_dim, "max_episode_steps": t.max_episode_steps,
                     "termination": t.termination_fn.__name__ if t.termination_fn else "learned",
                     "reward": t.reward_fn.__name__ if t.reward_fn else "learned",
                     "ref_random": t.ref_random, "ref_expert": t.ref_expert, "reference": t.ref_source})
    if cfg.json:
        from .checkpoint import json_text

        print(json_text(rows))
        return
    for r in rows:
        print(f"{r['id']:<22} obs {r['obs_dim']:>3}  act {r['act_dim']:>2}  termination {r['termination']:<28} "
              f"reward {r['reward']:<26} random {r['ref_random']}  expert {r['ref_expert']}  ({r['reference']})")


def _cmd_train(cfg: Train) -> None:
    from .errors import ConfigError
    from .tasks import get

    check_minimums(cfg, {"steps": 1, "seeds": 1, "eval_every": 1, "eval_episodes": 1}, command="train")
    _check_algorithm(cfg.algo)
    if cfg.online:
        from .algos.online import OnlineConfig, train_online

        if cfg.task is None or cfg.data is not None:
            raise ConfigError("train --online needs --task and no DATA. Fix: dynlearn train sac --online --task Hopper-v5 --out DIR.")
        if cfg.parallel_seeds:
            raise ConfigError("train --online runs one seed (--seed); --parallel-seeds is for offline training.")
        online = OnlineConfig(task=get(cfg.task).id, agent=cfg.algo, steps=500_000 if cfg.steps is None else cfg.steps, seed=cfg.seed,
                              eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes)
        train_online(online, cfg.out, resume=cfg.resume, force=cfg.force)
        return
    from .algos.offline import OfflineConfig, train_offline

    if cfg.data is None:
        raise ConfigError("train needs a DATA argument (or --online). Fix: dynlearn train td3bc hopper.hdf5 --task Hopper-v5.")
    dataset, task = _training_data(cfg.data, cfg.task, successors=False)
    offline = OfflineConfig(agent=cfg.algo, steps=100_000 if cfg.steps is None else cfg.steps, seeds=cfg.seeds, seed=cfg.seed,
                            eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes)
    train_offline(dataset, task, offline, cfg.out, resume=cfg.resume, force=cfg.force, parallel_seeds=cfg.parallel_seeds)


def _run_train(args: list[str], prog: str) -> None:
    """``dynlearn train ALGO``: a model-free agent; a flag that only the model-based methods have is refused by name."""
    from .algos.registry import method, names
    from .errors import ConfigError

    typed = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    own = set(_flag_names(Train).values())
    method_flags = [f for m in names() for f in _flag_names(method(m)).values()] + list(_flag_names(MethodJob).values())
    misplaced = list(dict.fromkeys(f for f in method_flags if f in typed and f not in own))
    if misplaced:
        algo = next((a for a in args if not a.startswith("-")), "ALGO")
        raise ConfigError(f"{', '.join(misplaced)} only apply to the offline model-based methods ({', '.join(names())}); "
                          f"train {algo}{' --online' if '--online' in typed else ''} would ignore them. Fix: drop them (a model-based "
                          "method is trained by `dynlearn train METHOD DATA`, e.g. dynlearn train mopo --help).")
    _cmd_train(_parse(Train, args, prog=prog))


def _training_data(data: str, task_id: str | None, *, successors: bool):
    """The dataset DATA (loaded with its task) and the task to evaluate in, refused when nothing in it can be trained
    on (``successors``: a model is fitted on it, so rows need a successor observation)."""
    from .data import load
    from .data.dataset import check_trainable
    from .errors import ConfigError
    from .tasks import get

    dataset = load(data, task=task_id)
    task_id = task_id if task_id is not None else dataset.task
    if task_id is None:
        raise ConfigError(f"{data} does not record its task. Fix: pass --task (e.g. --task Hopper-v5).")
    check_trainable(dataset, successors=successors)
    return dataset, get(task_id)


def _method_job(config_cls: type) -> type:
    """The ``dynlearn train NAME`` command's dataclass for a method: :class:`MethodJob`'s fields and the config's fields
    as flags (each with its docstring as help). Parsed unchecked; :func:`_run_method` checks the config it builds."""
    unchecked = _unchecked(config_cls)
    presets = ", ".join(sorted(config_cls.PRESETS))
    doc = (f"dynlearn train {config_cls.name} DATA: {' '.join((config_cls.__doc__ or '').split())} Writes a run folder. "
           + (f"Presets (the papers' per-dataset values): {presets}; --preset P applies one (default: the one DATA's name "
              "names), and the flags given beside it win." if presets else ""))
    return dataclasses.make_dataclass(
        f"Train{config_cls.__name__}", [("config", Annotated[unchecked, tyro.conf.arg(name="")], dataclasses.field(default=unchecked()))],
        bases=(MethodJob,), frozen=True, namespace={"__doc__": doc, "config_class": config_cls, "__module__": __name__})


def _run_method(job: type, args: list[str], prog: str) -> None:
    """``dynlearn train NAME DATA``: the config is the preset (--preset P, else the one DATA's name names, else the
    class's defaults) with the flags the user typed over it. Parsed twice: once to find DATA and --preset, then with the
    preset's config as the defaults."""
    from . import agents
    from .algos.model_based import train_model_based
    from .errors import ConfigError

    config_cls = job.config_class
    if "--online" in args:
        raise ConfigError(f"train: {config_cls.name} is an offline model-based method; --online trains a model-free agent. Fix: drop "
                          f"--online and pass DATA, or train one of {', '.join(agents.names())} online.")
    first = tyro.cli(job, args=args, prog=prog, description=job.__doc__)
    named = None if first.config.preset is None else config_cls.preset(first.config.preset)  # an unknown one: refused now
    dataset, task = _training_data(first.data, first.task, successors=first.config.model == "ensemble")
    preset = config_cls.for_dataset(dataset.name) if named is None else named
    parsed = first
    if preset.preset is not None:
        start = _unchecked(config_cls)(**_values(preset))
        parsed = tyro.cli(job, args=args, prog=prog, description=job.__doc__, default=dataclasses.replace(first, config=start))
    cfg = config_cls(**_values(parsed.config))
    if cfg.model not in ("ensemble", "oracle") and (Path(cfg.model) / "config.json").is_file():
        from .models import load as load_model

        _check_model_finite(load_model(cfg.model, task=task), cfg.model, flag="--model")
    train_model_based(dataset, task, cfg, parsed.out, resume=parsed.resume, force=parsed.force, parallel_seeds=parsed.parallel_seeds,
                      only_seed=parsed.only_seed)


def _values(cfg) -> dict:
    """A dataclass's fields, as keyword arguments (not recursive, unlike ``dataclasses.asdict``)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.init}


def _cmd_model_train(cfg: ModelTrain) -> None:
    from .data import load
    from .model_jobs import ModelTrainConfig, train_model

    check_minimums(cfg, {"members": 1, "elites": 1, "max_epochs": 1, "min_epochs": 0}, command="model train")
    dataset = load(cfg.data, task=cfg.task)
    from .data.dataset import check_trainable

    check_trainable(dataset, successors=True)
    job = ModelTrainConfig(members=cfg.members, elites=cfg.elites, hidden=cfg.hidden, max_epochs=cfg.max_epochs, holdout=cfg.holdout,
                           min_epochs=cfg.min_epochs, seed=cfg.seed)
    train_model(dataset, _task_for(cfg.task, dataset), job, cfg.out, force=cfg.force, resume=cfg.resume)


def _task_for(task_id, dataset):
    from .tasks import get

    return get(task_id) if task_id else _task_of(dataset)


def _cached_ensemble(data: str, model_holdout: str | None, *, fix: str):
    """The cache folder of the ensemble ``dynlearn train mopo|mobile|...`` uses for dataset ``data`` (fitted now if
    missing), and the dataset, loaded once with its recorded task; ``fix`` says what to pass instead when the dataset
    does not record its task."""
    from .algos.mbpo import MBPOConfig
    from .algos.model_based import build_model, ensemble_entry
    from .data import load
    from .errors import ConfigError
    from .tasks import get

    dataset = load(data)
    if dataset.task is None:
        raise ConfigError(f"{data} does not record its task, so its cached ensemble cannot be found. Fix: {fix}.")
    # every method fits the same ensemble for the same fit options: any method's config names it
    task, mb = get(dataset.task), MBPOConfig(model_holdout="episodes" if model_holdout is None else model_holdout)
    build_model(dataset, task, mb, log=print)
    return ensemble_entry(dataset, task, mb), dataset


def _cmd_model_eval(cfg: ModelEval) -> None:
    from .data import load
    from .errors import ConfigError
    from .model_jobs import ModelEvalConfig, eval_model, load_run

    check_minimums(cfg, {"horizon": 1, "windows": 1}, command="model eval")
    run, dataset = cfg.run, None
    if str(run) == "cached":  # the ensemble the model-based methods use for DATA (fitted now if it is not cached)
        run, dataset = _cached_ensemble(cfg.data, cfg.model_holdout, fix="pass a run folder of `dynlearn model train` as DIR")
    elif cfg.model_holdout is not None:
        raise ConfigError("--model-holdout chooses among the cached ensembles: it applies to DIR `cached` only. "
                          "Fix: drop --model-holdout, or pass DIR cached.")
    _check_run_files(run, what="DIR")
    model, task, _, _ = load_run(run)
    _check_model_finite(model, run, flag="DIR")
    job = ModelEvalConfig(horizon=cfg.horizon, windows=cfg.windows, seed=cfg.seed)
    if dataset is None:
        dataset = load(cfg.data, task=task)
    eval_model(run, dataset, [load(d, task=task) for d in cfg.ood], job, out=cfg.out, force=cfg.force, reward=cfg.reward)


def _cmd_model_reward(cfg: ModelReward) -> None:
    import dataclasses as dc

    import jax

    from .checkpoint import check_writable, latest_dir, remove_dir
    from .data import load
    from .errors import ConfigError
    from .model_jobs import load_run
    from .models import FitConfig
    from .algos.morec import DynamicsRewardConfig, learn_reward, save_reward

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
        run, dataset = _cached_ensemble(cfg.data, cfg.model_holdout, fix="pass --model (the run folder of `dynlearn model train`)")
    elif cfg.model_holdout is not None:
        raise ConfigError("--model-holdout chooses among the cached ensembles; with --model the fit's own holdout rule is used. "
                          "Fix: drop one of them.")
    else:
        run = cfg.model
        _check_run_files(run, what="--model")
    model, task, config, fit_report = load_run(run)  # a model train folder or a cache entry: both record the FitConfig
    _check_model_finite(model, run, flag="--model" if cfg.model is not None else "the cached ensemble")
    fit_cfg = FitConfig.from_dict(config["fit"], source=str(run))
    reward_cfg = DynamicsRewardConfig()
    if cfg.steps is not None:  # keep the number of snapshots: spread them over the shorter training
        every = min(reward_cfg.snapshot_every, max(1, cfg.steps // reward_cfg.snapshots))
        reward_cfg = dc.replace(reward_cfg, steps=cfg.steps, snapshot_every=every)
    if dataset is None:
        dataset = load(cfg.data, task=task)
    reward, report = learn_reward(dataset, model, reward_cfg, key=jax.random.key(cfg.seed),
                                  holdout_seed=fit_report.holdout_seed, fit_cfg=fit_cfg, log=print, checkpoint=partial)
    save_reward(cfg.out, reward, report, force=cfg.force)
    remove_dir(partial)
    print(f"wrote {cfg.out}: {report.discriminators} discriminators; held-out data reward {report.holdout_reward_data:.3f}, "
          f"model reward {report.holdout_reward_model:.3f}, AUC data > model {report.holdout_auc:.3f}")


def _cmd_run(cfg) -> None:
    from .default_job import run_default_job

    run_default_job(cfg)


def _dsr_status(out) -> None:
    """A diverged reconstruction is a failed run: say so and exit non-zero."""
    results = json.loads((Path(out) / "results.json").read_text())
    if results.get("extra", {}).get("status") == "diverged":
        from .errors import DynlearnError

        raise DynlearnError(f"the model diverged (free run or training); the run folder {out} records it as a failure.")


def _cmd_dsr_fit(cfg) -> None:
    from .dsr.jobs import run_fit

    _check_dsr_data(cfg)
    _dsr_status(run_fit(cfg))


def _check_dsr_data(cfg) -> None:
    """Refuse a file series that is constant, or has a constant channel, before any fitting: a reconstruction model has
    nothing to learn from it, and the fit would fail in misleading ways (z-scoring maps it to 0; "diverged at step 1")."""
    from .data.timeseries import load_timeseries
    from .dsr.data_sources import parse_source

    kind, name = parse_source(cfg.data)
    if kind != "file":
        return
    series = load_timeseries(name, dt=cfg.dt)
    series.check_varies(what="series")
    if cfg.test is not None:
        load_timeseries(cfg.test, dt=series.dt if cfg.dt is None else cfg.dt).check_varies(
            what="test series (--test)", fix="pass a test series that varies, or drop --test to test on the end of DATA.")
    else:
        series.split(cfg.train_fraction)[0].check_varies(
            what=f"training part (the first {cfg.train_fraction:g} of each trajectory)",
            fix="pass a series that varies in its training part, a larger --train-fraction, or a separate --test series.")


def _check_algorithm(algo: str) -> None:
    """``dynlearn train ALGO``: an unknown name lists every algorithm, model-based and model-free."""
    from . import agents
    from .algos.registry import names
    from .errors import ConfigError

    try:
        agents.get(algo)
    except ConfigError:
        raise ConfigError(f"train: unknown algorithm {algo!r}. Fix: choose a model-based method ({', '.join(names())}) or a "
                          f"model-free agent ({', '.join(agents.names())}).") from None


def _check_run_files(run, *, what: str) -> None:
    """The JSON files of a model folder the user named (a run of ``model train`` or a cached ensemble) parse: a corrupt
    one is a one-line error naming it, not a JSONDecodeError."""
    from .checkpoint import latest_dir
    from .errors import DataError

    run = Path(run)
    folders = [run, *([latest_dir(run)] if (run / "key.json").is_file() or not (run / "config.json").is_file() else [])]
    for folder in (f for f in folders if f is not None):
        for name in ("config.json", "fit_report.json", "key.json", "model/config.json"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                json.loads(path.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                detail = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
                raise DataError(str(path), f"is not valid JSON ({detail}): the file is damaged or was cut short.",
                                f"refit the model (dynlearn model train) and pass its folder as {what}; a cached ensemble: "
                                "delete its folder, and the next job on its dataset fits it again.") from None


def _check_model_finite(model, folder, *, flag: str) -> None:
    """Refuse a loaded model whose weights hold NaN or inf, naming the folder: training on its rollouts would fail later
    with a misleading cause (e.g. "the critic diverged ... lower the learning rates")."""
    import equinox as eqx
    import jax
    import numpy as np

    from .errors import DataError

    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(model, eqx.is_inexact_array))
    bad = [(jax.tree_util.keystr(path), int((~np.isfinite(np.asarray(leaf))).sum())) for path, leaf in leaves
           if not np.all(np.isfinite(np.asarray(leaf)))]
    if bad:
        count = sum(n for _, n in bad)
        raise DataError(str(folder), f"the model's weights hold {count:,} NaN or infinite value(s) in {len(bad)} of {len(leaves)} "
                        f"arrays (first: {bad[0][0]}): it was saved from a diverged fit, or the file is damaged.",
                        f"refit it (dynlearn model train) and pass the new folder as {flag}.")


def _cmd_dsr_eval(cfg) -> None:
    from .dsr.jobs import run_eval

    _dsr_status(run_eval(cfg))


class Command(NamedTuple):
    """A ``dynlearn`` command: the dataclass its flags come from (its help, and the flags error messages name) and the
    function that runs it on its arguments."""

    cls: type
    run: Callable[[list[str], str], None]
    """``run(args, prog)``: parse ``args`` (``prog``: the command's name in help) and run"""


def _command(cls: type, handler: Callable) -> Command:
    """A command that runs ``handler`` on ``args`` parsed into ``cls``."""
    return Command(cls, lambda args, prog: handler(_parse(cls, args, prog=prog)))


def _commands() -> dict[str, Command]:
    """Every command; one ``train NAME`` per model-based method registered when this is called."""
    from .algos.pets import PETSJob, run_job as run_pets
    from .algos.registry import method, names
    from .default_job import DefaultJobConfig
    from .dsr.jobs import DSREval, DSRFit
    from .planning.job import PlanJob, run_plan

    methods = {f"train {name}": _method_job(method(name)) for name in names()}
    return {
        "run": _command(DefaultJobConfig, _cmd_run),
        "data info": _command(DataInfo, _cmd_data_info),
        "data generate": _command(DataGenerate, _cmd_data_generate),
        "data convert": _command(DataConvert, _cmd_data_convert),
        "train": Command(Train, _run_train),
        **{name: Command(job, functools.partial(_run_method, job)) for name, job in methods.items()},
        "train pets": _command(PETSJob, run_pets),
        "plan": _command(PlanJob, run_plan),
        "tasks": _command(TasksList, _cmd_tasks),
        "model train": _command(ModelTrain, _cmd_model_train),
        "model eval": _command(ModelEval, _cmd_model_eval),
        "model reward": _command(ModelReward, _cmd_model_reward),
        "dsr fit": _command(DSRFit, _cmd_dsr_fit),
        "dsr eval": _command(DSREval, _cmd_dsr_eval),
    }


USAGE = """usage: dynlearn COMMAND [ARGS]   (dynlearn COMMAND --help for a command's options)

commands:
  run             the built-in default job, end to end (--quick for a smoke test)
  data info       what a dataset holds, and problems found in it
  data generate   collect a dataset in a task with a behaviour policy (D4RL layout)
  data convert    convert Minari / .npz / .csv data to the D4RL layout
  train METHOD    train an offline model-based method on a dataset; METHOD: {methods}
  train ALGO      train a model-free agent offline on a dataset (td3bc, iql, cql, bc, ...) or online in a task (--online)
  train pets      PETS online in a task: CEM over an ensemble refitted as data comes in
  plan            model-predictive control (CEM, MPPI, random shooting) with a saved model, evaluated in the task
  tasks           list the registered tasks
  model train     fit a dynamics ensemble to a dataset (run folder: model, fit curve, one-step errors)
  model eval      a fitted model's one-step and k-step errors and penalty calibration (--ood other data)
  model reward    learn MOREC's dynamics reward for a fitted model (used by train morec-mopo|morec-mobile)
  dsr fit         fit a reconstruction model (shPLRNN/AL-RNN + teacher forcing, or SINDy/neural ODE/ESN) to a time series
  dsr eval        re-measure a saved dsr fit run on its test series or new data

--force replaces only what dynlearn wrote; --force --force-replace-folder PATH also replaces a folder it did not write.
"""
"""The help ``dynlearn`` prints; ``{methods}``: the registered model-based methods."""


@functools.cache
def _unchecked(cls: type) -> type:
    """``cls`` without its own checks (``__post_init__``), for tyro to build: the checks then run outside tyro, whose
    box around an error they raise would hide the one line :func:`main` prints."""
    return type(cls.__name__, (cls,), {"__post_init__": lambda self: None, "__module__": cls.__module__, "__doc__": cls.__doc__})


def _parse(cls: type, args: list[str], *, prog: str):
    """``args`` parsed into the config dataclass ``cls``, whose own checks (``__post_init__``) run here, outside tyro:
    their ConfigError is then printed as one line by :func:`main` (tyro would wrap it in a box of its own)."""
    raw = tyro.cli(_unchecked(cls), args=args, prog=prog, description=cls.__doc__)
    return cls(**_values(raw))


def _force_replace_folders(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` without ``--force-replace-folder PATH`` (any command: with ``--force``, replace PATH even though dynlearn
    did not write it), and those PATHs."""
    from .errors import ConfigError

    rest, paths = [], []
    it = iter(args)
    for arg in it:
        if arg == "--force-replace-folder":
            path = next(it, None)
            if path is None:
                raise ConfigError("--force-replace-folder needs the folder's path. Fix: pass --force-replace-folder PATH.")
            paths.append(path)
        elif arg.startswith("--force-replace-folder="):
            paths.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, paths


_CONFIG_FIELD = re.compile(r"\b[A-Z]\w*Config\.(\w+)")
_CONFIG_PREFIX = re.compile(r"^[A-Z]\w*Config: ")


def _flag_names(cls: type, prefix: str = "") -> dict[str, str | None]:
    """Each field of the command's dataclass (and of the config dataclasses nested in it) -> the flag that sets it
    (None for a positional argument). A nested config's fields are ``--PARENT.FIELD``, or ``--FIELD`` where the parent
    is annotated ``tyro.conf.arg(name="")``; the outer name wins where two levels share a name."""
    hints = typing.get_type_hints(cls, include_extras=True)
    flags: dict[str, str | None] = {}
    nested = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name, f.type)
        meta = getattr(hint, "__metadata__", ())
        if "Positional" in repr(hint):
            flags[f.name] = None
            continue
        base = typing.get_args(hint)[0] if meta else hint
        if dataclasses.is_dataclass(base):
            unnamed = any(getattr(m, "name", None) == "" for m in meta)
            nested.append((base, prefix if unnamed else f"{prefix}{f.name}."))
        flags[f.name] = "--" + (prefix + f.name).replace("_", "-")
    for base, sub in nested:
        for name, flag in _flag_names(base, sub).items():
            flags.setdefault(name, flag)
    return flags


def _user_message(error: DynlearnError, cls: type, command: str) -> str:
    """The one line printed for ``error``. A configuration error raised by a config class deeper down names its fields
    (``OfflineConfig.steps``, ``eval_every (10)``); here they become the flags the user typed (``--steps``), and a
    message without a fix gets one."""
    from .errors import ConfigError

    message = " ".join(str(error).split("\n"))
    if isinstance(error, ConfigError):
        fields = _flag_names(cls)
        positional = {n for n, f in fields.items() if f is None}

        def flag(name: str) -> str:
            if name in ("agent", "method") and "algo" in fields:
                return "ALGO"
            return name.upper() if name in positional else fields[name] if name in fields else name

        message = _CONFIG_PREFIX.sub("", _CONFIG_FIELD.sub(lambda m: flag(m[1]), message))
        named = [n for n in sorted(fields, key=len, reverse=True) if n not in positional]
        if named:  # bare field names: "steps (10)"; any snake_case one ("model_min_epochs 350", "eval_every must ...")
            bare = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, named)) + r")(?=\s+\(-?\d)")
            message = bare.sub(lambda m: flag(m[1]), message)
            underscored = [re.escape(n) for n in named if "_" in n]
            if underscored:
                message = re.sub(r"(?<![\w-])(" + "|".join(underscored) + r")(?![\w-])", lambda m: flag(m[1]), message)
    if "Fix:" not in message:
        message = message.rstrip()
        message += "" if message.endswith((".", ")")) else "."
        multiple = re.search(r"multiples? of [\w-]+ \((\d+)\)", message)
        flags = re.findall(r"(?<![\w-])--[a-z][\w-]*", message)
        if multiple:
            message += f" Fix: pass values that are multiples of {multiple[1]}."
        elif flags:
            message += f" Fix: change {flags[0]} (dynlearn {command} --help says what it takes)."
        else:
            message += f" Fix: see dynlearn {command} --help."
    return message


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, DataWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


class _Terminated(BaseException):
    """SIGTERM outside a training loop (whose own handler checkpoints instead): start-up, data generation, evaluation."""


def _terminated(signum, frame) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)  # a training loop swaps in its graceful stop while it runs
    commands = _commands()
    name = next((n for n in sorted(commands, key=len, reverse=True) if argv[: len(n.split())] == n.split()), None)
    if name is None:
        methods = ", ".join(n.split()[1] for n, c in commands.items() if c.cls.__bases__ == (MethodJob,))
        print(USAGE.format(methods=methods), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command = commands[name]
    from .checkpoint import replacing
    from .errors import RunFinished

    try:
        args, replace = _force_replace_folders(argv[len(name.split()):])
        with replacing(*replace), warnings.catch_warnings():  # a dataset warning (e.g. a guessed encoding): one line
            warnings.simplefilter("always", DataWarning)
            warnings.showwarning = _show_warning
            command.run(args, f"dynlearn {name}")
    except _Terminated:
        print(f"dynlearn: stopped by SIGTERM; `dynlearn {name}` had checkpointed nothing yet, so there is nothing to resume. "
              "Run it again (with --resume if it had already created its run folder).", file=sys.stderr)
        return 143
    except RunFinished as e:  # --resume of a finished run: nothing to do, its results are kept
        print(f"dynlearn: {e}")
        return 0
    except Stopped as e:  # SIGTERM / Ctrl-C during training: checkpointed, resumable
        print(f"dynlearn: {e}", file=sys.stderr)
        return 130
    except DynlearnError as e:
        print(f"error: {_user_message(e, command.cls, name)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
