"""``Dataset``: transitions plus episode boundaries and provenance, and the one validated way to build it."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from ..errors import DataError
from .transitions import FIELDS, Transitions
from .validate import check_dims, flag_array, numeric_array, same_length


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Host-side logged data: contiguous episodes of :class:`Transitions`.

    ``episode_starts[i]`` is the first row of episode ``i`` (``episode_starts[0] == 0``); episode ``i``
    ends at row ``episode_starts[i+1] - 1``. An episode is *complete* when its last step is flagged
    terminal or timeout; a file can end in an incomplete one.
    """

    transitions: Transitions
    episode_starts: np.ndarray
    name: str = "unnamed"
    source: str = "<arrays>"
    task: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.transitions)

    @property
    def n_episodes(self) -> int:
        return int(self.episode_starts.size)

    @property
    def episode_ends(self) -> np.ndarray:
        """One past the last row of each episode."""
        return np.append(self.episode_starts[1:], len(self))

    @property
    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    @property
    def episode_complete(self) -> np.ndarray:
        """Whether each episode's last step is flagged terminal or timeout."""
        done = np.asarray(self.transitions.terminal) | np.asarray(self.transitions.timeout)
        return done[self.episode_ends - 1]

    def usable(self) -> np.ndarray:
        """For each row, whether it is a transition an agent can learn from: it has a successor observation, or it is
        terminal (no successor needed). The last step of an episode cut by a timeout, with no stored successor, is not."""
        return np.asarray(self.transitions.next_obs_valid, bool) | np.asarray(self.transitions.terminal, bool)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode (complete or not)."""
        return np.add.reduceat(np.asarray(self.transitions.rew, np.float64), self.episode_starts)

    def episode_ids(self) -> np.ndarray:
        """For each row, the index of its episode."""
        return np.repeat(np.arange(self.n_episodes), self.episode_lengths)

    def select_episodes(self, episodes) -> "Dataset":
        """A dataset of the given episodes (indices), in that order."""
        episodes = np.asarray(episodes, dtype=np.int64)
        rows = np.concatenate([np.arange(s, e) for s, e in zip(self.episode_starts[episodes], self.episode_ends[episodes])])
        lengths = self.episode_lengths[episodes]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return dataclasses.replace(self, transitions=self.transitions.take(rows), episode_starts=starts)

    def split(self, holdout_fraction: float = 0.1, *, min_holdout_episodes: int = 10, seed: int = 0) -> tuple["Dataset", "Dataset"]:
        """Split by whole episodes into (train, holdout).

        The holdout gets ``max(min_holdout_episodes, round(holdout_fraction * episodes))`` episodes,
        chosen at random with ``seed``, and never all of them. Rows of one episode never straddle the split.
        """
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
        if self.n_episodes < 2:
            raise DataError(self.source, f"has {self.n_episodes} episode, so it cannot be split by episodes.",
                            "provide episode boundaries (terminals/timeouts or an episode column) or more episodes.")
        n_hold = max(min_holdout_episodes, round(holdout_fraction * self.n_episodes))
        n_hold = int(min(n_hold, self.n_episodes - 1))
        order = np.random.default_rng(seed).permutation(self.n_episodes)
        hold, train = np.sort(order[:n_hold]), np.sort(order[n_hold:])
        return self.select_episodes(train), self.select_episodes(hold)

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the arrays and episode boundaries: same data, same hash."""
        h = hashlib.sha256()
        for name in FIELDS:
            arr = np.ascontiguousarray(getattr(self.transitions, name))
            h.update(name.encode())
            h.update(str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())
        h.update(np.ascontiguousarray(self.episode_starts, np.int64).tobytes())
        return h.hexdigest()[:16]


def no_transition_problem(dataset: Dataset, *, successors: bool = False) -> str | None:
    """Why ``dataset`` holds no transition to learn from, or None when it holds one. ``successors``: count only rows
    with a successor observation (what fitting a dynamics model needs), not terminal rows too."""
    ok = np.asarray(dataset.transitions.next_obs_valid, bool) if successors else dataset.usable()
    if ok.any():
        return None
    n = len(dataset)
    what = "a successor observation" if successors else "a successor observation or a terminal flag"
    if n == 1:
        cause = "it has one row, and a row's successor is the next row of its episode"
    elif (dataset.episode_lengths == 1).all():
        cause = "every row is flagged terminal or timeout, so each ends its episode and none has a next row in it"
    else:
        cause = "no successors are stored, and no episode has a second row"
    return f"none of its {n:,} step(s) has {what}; {cause}"


def check_trainable(dataset: Dataset, *, successors: bool = False) -> None:
    """Raise a :class:`DataError` naming the file when ``dataset`` holds no transition to learn from (see
    :func:`no_transition_problem`); training on it would fail deep inside with an unhelpful error."""
    problem = no_transition_problem(dataset, successors=successors)
    if problem is not None:
        raise DataError(dataset.source, f"has no usable transition: {problem}.",
                        "pass data with episodes longer than one step (check the terminal/timeout flags), or store "
                        "next_observations.")


def episode_starts_from_flags(done: np.ndarray) -> np.ndarray:
    """Episodes end at rows where ``done`` (terminal or timeout); the next row starts a new one."""
    ends = np.flatnonzero(done[:-1]) + 1
    return np.concatenate([[0], ends]).astype(np.int64)


def episode_starts_from_ids(ids: np.ndarray, source: str, key: str) -> np.ndarray:
    """Episodes from a per-row episode id; each id must occupy one contiguous block."""
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    if np.unique(ids[starts]).size != starts.size:
        raise DataError(source, "an episode id appears in more than one block of rows.",
                        "sort the rows by episode, then by time step.", key=key)
    return starts


def derive_next_obs(obs: np.ndarray, episode_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``next_obs[i] = obs[i+1]`` only inside an episode; the last step of each episode has no successor.

    Returns ``(next_obs, next_obs_valid)``; where invalid, ``next_obs`` is a copy of ``obs``.
    """
    n = obs.shape[0]
    valid = np.ones(n, dtype=bool)
    ends = np.append(episode_starts[1:], n) - 1
    valid[ends] = False
    next_obs = obs.copy()
    next_obs[:-1][valid[:-1]] = obs[1:][valid[:-1]]
    return next_obs, valid


def from_arrays(
    *,
    obs,
    act,
    rew,
    terminal,
    timeout=None,
    next_obs=None,
    next_obs_valid=None,
    episode_starts=None,
    name: str = "unnamed",
    source: str = "<arrays>",
    task=None,
    metadata: dict | None = None,
    keys: dict[str, str] | None = None,
) -> Dataset:
    """Validate arrays and assemble a :class:`Dataset`; the single entry point every loader goes through.

    - ``timeout`` defaults to all False (episodes then end only at terminals or ``episode_starts``).
    - ``episode_starts`` defaults to the rows after each ``terminal | timeout``.
    - Without ``next_obs`` it is derived inside episodes only (:func:`derive_next_obs`).
    - ``task`` (a :class:`dynlearn.tasks.Task` or None) checks observation and action sizes.
    - ``keys`` maps field names to the names in the source file, so errors name what the user sees.
    """
    k = {"obs": "observations", "act": "actions", "rew": "rewards", "terminal": "terminals",
         "timeout": "timeouts", "next_obs": "next_observations"} | (keys or {})
    obs_a = numeric_array(obs, source, k["obs"], rank=2)
    act_a = numeric_array(act, source, k["act"], rank=(1, 2))
    if act_a.ndim == 1:
        act_a = act_a[:, None]
    rew_a = numeric_array(rew, source, k["rew"], rank=1)
    term_a = flag_array(terminal, source, k["terminal"])
    tout_a = np.zeros_like(term_a) if timeout is None else flag_array(timeout, source, k["timeout"])
    arrays = {k["obs"]: obs_a, k["act"]: act_a, k["rew"]: rew_a, k["terminal"]: term_a, k["timeout"]: tout_a}
    if next_obs is not None:
        next_a = numeric_array(next_obs, source, k["next_obs"], rank=2)
        arrays[k["next_obs"]] = next_a
        if next_a.shape[1:] != obs_a.shape[1:]:
            raise DataError(source, f"has shape {next_a.shape} but observations have {obs_a.shape}.",
                            "store successor observations with the same dims as observations.", key=k["next_obs"])
    n = same_length(source, arrays)
    check_dims(source, obs_a.shape[1], act_a.shape[1], task)

    if episode_starts is None:
        starts = episode_starts_from_flags(term_a | tout_a)
    else:
        starts = np.asarray(episode_starts, dtype=np.int64)
        if starts.ndim != 1 or starts.size == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= n:
            raise DataError(source, "episode boundaries are not increasing row indices starting at 0.", "check the episode column.")
    if next_obs is None:
        next_a, valid = derive_next_obs(obs_a, starts)
    else:
        valid = np.ones(n, dtype=bool) if next_obs_valid is None else flag_array(next_obs_valid, source, "infos/next_obs_valid")
        if valid.shape[0] != n:
            raise DataError(source, f"has {valid.shape[0]} rows but observations have {n}.",
                            "store one flag per step.", key="infos/next_obs_valid")
    transitions = Transitions(obs=obs_a, act=act_a, rew=rew_a, next_obs=next_a, terminal=term_a, timeout=tout_a, next_obs_valid=valid)
    return Dataset(transitions=transitions, episode_starts=starts, name=name, source=source,
                   task=None if task is None else task.id, metadata=dict(metadata or {}))


def concat_datasets(parts: list[Dataset], *, name: str, source: str | None = None) -> Dataset:
    """Episodes of several datasets one after another (D4RL's medium-expert is medium followed by expert).

    Per-step metadata arrays present in every part (``qpos``, ``qvel``) are concatenated too.
    """
    from .transitions import concatenate

    if not parts:
        raise ValueError("concat_datasets needs at least one dataset")
    offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
    starts = np.concatenate([p.episode_starts + o for p, o in zip(parts, offsets)]).astype(np.int64)
    metadata = {"format": "generated", "parts": [p.name for p in parts]}
    for key in ("qpos", "qvel"):
        if all(key in p.metadata for p in parts):
            metadata[key] = np.concatenate([p.metadata[key] for p in parts])
    return Dataset(transitions=concatenate([p.transitions for p in parts]), episode_starts=starts, name=name,
                   source=source or " + ".join(p.source for p in parts), task=parts[0].task, metadata=metadata)
