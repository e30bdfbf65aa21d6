"""What ``dynlearn data info`` reports: sizes, episodes, dims, returns, flags, and problems found."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..metrics.returns import normalized_score
from .dataset import Dataset, no_transition_problem


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    name: str
    source: str
    format: str
    transitions: int
    episodes: int
    complete_episodes: int
    obs_dim: int
    act_dim: int
    episode_length: dict
    returns: dict
    normalized_returns: dict | None
    terminals: int
    timeouts: int
    terminal_and_timeout: int
    without_successor: int
    action_range: tuple[float, float]
    content_hash: str
    task: str | None
    problems: list[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def render(self) -> str:
        """Human-readable lines for the terminal."""
        r, L = self.returns, self.episode_length
        lines = [
            f"{self.name}  ({self.format}, {self.source})",
            f"  transitions       {self.transitions:,}",
            f"  episodes          {self.episodes:,} ({self.complete_episodes:,} complete); "
            f"length mean {L['mean']:.1f}, min {L['min']}, max {L['max']}",
            f"  dims              obs {self.obs_dim}, act {self.act_dim}; "
            f"actions in [{self.action_range[0]:.3g}, {self.action_range[1]:.3g}]",
            f"  episode return    mean {r['mean']:.2f} ± {r['std']:.2f}, min {r['min']:.2f}, max {r['max']:.2f} (complete episodes)",
        ]
        if self.normalized_returns is not None:
            n = self.normalized_returns
            lines.append(f"  normalized score  mean {n['mean']:.1f} ± {n['std']:.1f} ({self.task}; {n['reference']})")
        lines += [
            f"  terminals         {self.terminals:,};  timeouts {self.timeouts:,};  both {self.terminal_and_timeout:,}",
            f"  no successor obs  {self.without_successor:,} step(s) (kept; skipped by model fitting)",
            f"  content hash      {self.content_hash}",
        ]
        lines.append("  problems          none found" if not self.problems else "  problems:")
        lines += [f"    - {p}" for p in self.problems]
        return "\n".join(lines)


def _stats(x: np.ndarray) -> dict:
    if x.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def summarize(dataset: Dataset, task=None) -> DatasetSummary:
    """Count what is in ``dataset`` and list problems a user should know about before training on it.

    ``task`` (a :class:`dynlearn.tasks.Task`) adds normalized scores and checks action bounds and
    episode lengths against the task.
    """
    t = dataset.transitions
    obs, act, nxt = np.asarray(t.obs), np.asarray(t.act), np.asarray(t.next_obs)
    term, tout, valid = np.asarray(t.terminal), np.asarray(t.timeout), np.asarray(t.next_obs_valid)
    complete = dataset.episode_complete
    returns = dataset.episode_returns()
    problems: list[str] = []

    for successors in (False, True):  # nothing to learn from at all; or no dynamics model can be fitted
        problem = no_transition_problem(dataset, successors=successors)
        if problem is not None:
            problems.append(("no dynamics model can be fitted to it: " if successors else "no usable transition, so nothing can be "
                             "trained on it: ") + problem)
            break
    if not complete[-1]:
        problems.append(f"the last episode ({dataset.episode_lengths[-1]} steps) ends without a terminal or timeout flag (cut off?)")
    if (~complete[:-1]).any():
        problems.append(f"{int((~complete[:-1]).sum())} episode(s) before the last end without a terminal or timeout flag")
    ends = dataset.episode_ends - 1
    inside = np.ones(len(dataset), bool)
    inside[ends] = False
    inside &= valid
    inside[-1] = False
    mismatch = inside[:-1] & ~np.all(np.isclose(nxt[:-1], obs[1:], rtol=1e-5, atol=1e-6), axis=1)
    if mismatch.any():
        problems.append(f"{int(mismatch.sum())} step(s) inside an episode whose next observation is not the next row's "
                        f"observation (first at row {int(np.flatnonzero(mismatch)[0])}): unflagged episode ends, or shuffled rows")
    const = np.flatnonzero(obs.std(axis=0) == 0)
    if const.size:
        problems.append(f"observation dim(s) {const.tolist()[:10]} are constant (normalisation leaves them at 0)")
    normalized = None
    if task is not None:
        low, high = np.asarray(task.act_low), np.asarray(task.act_high)
        outside = (act < low - 1e-6) | (act > high + 1e-6)
        if outside.any():
            problems.append(f"{int(outside.any(axis=1).sum())} action(s) outside {task.id}'s bounds [{low.min():.3g}, {high.max():.3g}]")
        if task.max_episode_steps and dataset.episode_lengths.max() > task.max_episode_steps:
            problems.append(f"episodes longer than {task.id}'s limit of {task.max_episode_steps} steps (missing timeout flags?)")
        if task.ref_random is not None and task.ref_expert is not None and complete.any():
            scores = normalized_score(returns[complete], task.ref_random, task.ref_expert)
            normalized = _stats(scores) | {"reference": task.ref_source}
    lengths = dataset.episode_lengths
    return DatasetSummary(
        name=dataset.name, source=dataset.source, format=str(dataset.metadata.get("format", "arrays")),
        transitions=len(dataset), episodes=dataset.n_episodes, complete_episodes=int(complete.sum()),
        obs_dim=t.obs_dim, act_dim=t.act_dim,
        episode_length={"mean": float(lengths.mean()), "min": int(lengths.min()), "max": int(lengths.max())},
        returns=_stats(returns[complete]), normalized_returns=normalized,
        terminals=int(term.sum()), timeouts=int(tout.sum()), terminal_and_timeout=int((term & tout).sum()),
        without_successor=int((~valid).sum()), action_range=(float(act.min()), float(act.max())),
        content_hash=dataset.content_hash(), task=getattr(task, "id", dataset.task), problems=problems,
    )
