"""``dynlearn data info|generate|convert`` and ``dynlearn tasks``: datasets and the tasks they come from."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import tyro
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..checkpoint import json_text
from ..data import Columns, load, summarize, write_d4rl
from ..data._csv import parse_delimiter
from ..data.d4rl import check_output_file
from ..errors import ConfigError, check_minimums
from ..tasks import NoisyPolicy, collect, get, ids, is_registered, suite
from ..tasks.policies import policy_from_name


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
        delimiter = parse_delimiter(self.delimiter)
        if delimiter is not None and not self.path.lower().endswith((".csv", ".tsv")):
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
class TasksList:
    """List the registered tasks with dims, termination/reward functions and reference returns."""

    json: bool = False
    """print as JSON"""


def data_info(cfg: DataInfo) -> None:
    dataset = cfg.load()
    summary = summarize(dataset, get(cfg.task) if cfg.task else task_of(dataset))
    print(json_text(summary.to_dict()) if cfg.json else summary.render())


def task_of(dataset):
    """The task a dataset records, where it is registered."""
    return get(dataset.task) if dataset.task and is_registered(dataset.task) else None


def data_generate(cfg: DataGenerate) -> None:
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


def data_convert(cfg: DataConvert) -> None:
    check_output_file(cfg.out, force=cfg.force)  # before reading: a long conversion must not fail at the end
    dataset = cfg.load()
    write_d4rl(cfg.out, dataset, force=cfg.force)
    print(f"wrote {cfg.out} ({len(dataset):,} transitions, {dataset.n_episodes} episodes)")


def tasks(cfg: TasksList) -> None:
    rows = []
    for task_id in ids():
        t = get(task_id)
        rows.append({"id": t.id, "obs_dim": t.obs_dim, "act_dim": t.act_dim, "max_episode_steps": t.max_episode_steps,
                     "termination": t.termination_fn.__name__ if t.termination_fn else "learned",
                     "reward": t.reward_fn.__name__ if t.reward_fn else "learned",
                     "ref_random": t.ref_random, "ref_expert": t.ref_expert, "reference": t.ref_source})
    if cfg.json:
        print(json_text(rows))
        return
    for r in rows:
        print(f"{r['id']:<22} obs {r['obs_dim']:>3}  act {r['act_dim']:>2}  termination {r['termination']:<28} "
              f"reward {r['reward']:<26} random {r['ref_random']}  expert {r['ref_expert']}  ({r['reference']})")
