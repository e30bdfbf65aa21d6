"""A dynamics reward's folder: ``config.json`` (structure, config, library version, leaf shapes) + ``leaves.eqx``, and
``report.json`` (:class:`RewardReport`, what the learning did); no pickle.

>>> save_reward("runs/reward", reward, report); reward = load_reward("runs/reward")
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax

from ..._version import __version__
from ...checkpoint import load_leaves, read_header, save_module, write_json
from ...errors import DataError
from .reward import REWARD_FORMAT, DynamicsReward

KIND = "dynamics_reward"


@dataclasses.dataclass(frozen=True)
class RewardReport:
    """What :func:`learn_reward` did, and how well the reward separates held-out data from model transitions."""

    steps: int
    """Training steps run."""
    discriminators: int
    """Snapshots in the reward."""
    train_size: int
    """Training transitions (with a successor observation)."""
    holdout_size: int
    """Held-out transitions the numbers below are measured on (the model fit's holdout split)."""
    holdout_reward_data: float
    """Mean dynamics reward of held-out dataset transitions."""
    holdout_reward_model: float
    """Mean dynamics reward of the fitted model's transitions (a random elite's sample) from the same ``(s, a)``."""
    holdout_auc: float
    """P(reward of a held-out data transition > reward of a model transition), ties counted half."""
    wall_s: float
    """Wall time, compilation included."""
    steps_per_s: float
    """Training steps per second after the first (compiling) block."""
    history: tuple[dict, ...]
    """Per block: step, discriminator loss and accuracy, mean logit on data and on model samples, generator reward."""

    @classmethod
    def from_dict(cls, d: dict) -> RewardReport:
        return cls(**(d | {"history": tuple(d["history"])}))


def save_reward(folder: str | os.PathLike, reward: DynamicsReward, report: RewardReport | None = None, *, force: bool = True) -> Path:
    """Write ``config.json`` (structure, config, library version, leaf shapes) + ``leaves.eqx`` (+ ``report.json``)."""
    folder = save_module(folder, reward, reward.header(), kind=KIND, force=force)
    if report is not None:
        write_json(Path(folder) / "report.json", dataclasses.asdict(report), force=force)
    return Path(folder)


def load_reward(folder: str | os.PathLike) -> DynamicsReward:
    """Read what :func:`save_reward` wrote; checks the library version (same major.minor) and every leaf's shape."""
    folder = Path(folder)
    source = str(folder / "config.json")
    header = read_header(folder, kind=KIND)
    saved = header.get("dynlearn_version")
    if saved is None or tuple(str(saved).split(".")[:2]) != tuple(__version__.split(".")[:2]):
        raise DataError(source, f"written by dynlearn {saved}, this is {__version__} (checkpoints are compatible within one "
                        "major.minor version).", "load it with the dynlearn version that wrote it.", key="dynlearn_version")
    body = header.get("config")
    if not isinstance(body, dict) or body.get("reward_format") != REWARD_FORMAT:
        raise DataError(source, f"not a dynamics reward of format {REWARD_FORMAT}.", "pass a folder written by save_reward.", key="config")
    try:
        like = DynamicsReward.skeleton(body, source=source)
    except (KeyError, TypeError) as e:
        raise DataError(source, f"incomplete dynamics reward config ({e!r}).",
                        "pass a folder written by save_reward.", key="config") from None
    expected = [list(x.shape) for x in jax.tree_util.tree_leaves(like)]
    if body.get("leaf_shapes") != expected:
        raise DataError(source, f"leaf shapes {body.get('leaf_shapes')} do not match the structure its config describes ({expected}).",
                        "the checkpoint is corrupt or was edited; re-save it.", key="leaf_shapes")
    return load_leaves(folder, like)


def load_report(folder: str | os.PathLike) -> RewardReport | None:
    """The :class:`RewardReport` saved beside a reward, if any."""
    path = Path(folder) / "report.json"
    return RewardReport.from_dict(json.loads(path.read_text())) if path.is_file() else None
