"""Policy-only checkpoints: the actor of a trained agent, small enough to keep in a repository.

A full agent checkpoint carries critics, targets and optimiser states (several MB for SAC); the
benchmark suite's behaviour policies need only the actor (~0.3 MB for 256x256). ``save_policy`` writes
the actor's leaves with the agent's name, spec and config; ``load_policy`` rebuilds its structure from
them and returns an :class:`ExportedPolicy`.
"""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import jax

from .._types import Array, Float, Key
from ..checkpoint import load_leaves, read_header, save_module
from ..errors import DataError
from . import get
from .base import AgentSpec, config_from_dict

KIND = "policy"


class ExportedPolicy(eqx.Module):
    """A trained actor and the action bounds it maps to: ``policy(obs, key=..., deterministic=...)``.

    Gaussian actors sample when ``deterministic=False`` (and use their mode otherwise); deterministic
    actors ignore the flag. Actions are in environment units.
    """

    actor: eqx.Module
    spec: AgentSpec = eqx.field(static=True)
    agent: str = eqx.field(static=True)

    def __call__(self, obs: Float[Array, "... obs"], *, key: Key | None = None, deterministic: bool = True) -> Float[Array, "... act"]:
        obs = obs.astype("float32")
        if not deterministic and hasattr(self.actor, "sample"):
            if key is None:
                raise ValueError("a stochastic action needs key=...")
            u = jax.numpy.clip(self.actor.sample(obs, key=key)[0], -1.0, 1.0)  # IQL/BC Gaussians are not squashed
        elif hasattr(self.actor, "mode"):
            u = self.actor.mode(obs)
        else:
            u = self.actor(obs)
        return self.spec.to_env(u)


def save_policy(folder: str | os.PathLike, state, *, agent: str) -> Path:
    """Write ``state.actor`` with the agent's name, spec and config (no critics, no optimiser state)."""
    import dataclasses

    config = {"agent": agent, "spec": state.spec.to_dict(), "config": dataclasses.asdict(state.cfg)}
    return save_module(folder, state.actor, config, kind=KIND)


def load_policy(folder: str | os.PathLike) -> ExportedPolicy:
    """Read what :func:`save_policy` wrote (or the actor of a full agent checkpoint)."""
    header = read_header(folder)
    kind = header.get("kind", "")
    if kind.startswith("agent/"):
        state = get(kind.removeprefix("agent/")).load(folder)
        return ExportedPolicy(state.actor, state.spec, kind.removeprefix("agent/"))
    if kind != KIND:
        raise DataError(str(folder), f"holds a {kind!r}, not a policy.",
                        "pass a folder written by save_policy() or an agent's save().", key="kind")
    body = header["config"]
    module = get(body["agent"])
    spec = AgentSpec.from_dict(body["spec"])
    cfg = config_from_dict(module.Config, body["config"], source=str(Path(folder) / "config.json"))
    like = eqx.filter_eval_shape(module.init, jax.random.key(0), spec, cfg).actor
    return ExportedPolicy(load_leaves(folder, like), spec, body["agent"])
