"""Penalty calibration: does an uncertainty heuristic rank transitions by how wrong the model is?

Offline model-based methods subtract ``lambda * u(s, a)`` from the model's reward, with ``u`` a heuristic of the
ensemble's outputs (:mod:`dynlearn.penalties`), as a stand-in for the model's error. Lu et al., *Revisiting
Design Choices in Offline Model-Based RL* (ICLR 2022, arXiv 2110.04135), assess the heuristics' calibration
against the true model error under the covariate shift model-based RL produces (only the paper's abstract could
be read here, so their exact protocol is not reproduced). Our test is one step and rank-based:
for rows ``(s, a, s', r)`` of some data, the Spearman rank correlation between ``u(s, a)`` and the model's
true one-step error on that row, on held-out data of the training distribution and on data of another
behaviour policy (and pooled, where the penalty must also rank the foreign rows above the familiar ones).

The true error of a row is the normalised squared error of the model's point prediction (the elites' mean of
their means) of the target part the penalty reads, ``mean_d (mu_d - y_d)^2 / scale_d`` (``scale``: e.g. the
training data's per-dimension variance of the target). Pure functions: the heuristics are passed in (a dict
of ``fn(outputs, y, *, part)``), the model is only asked for ``members(obs, act)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpy as np

from .._types import ArrayLike, Float

__all__ = ["Calibration", "calibrate", "one_step_row_error", "penalty_values", "rankdata", "spearman"]


def rankdata(x: Float[ArrayLike, " n"]) -> np.ndarray:
    """Ranks ``1..n`` of ``x`` with ties given the average of the ranks they span (SciPy's ``method='average'``)."""
    x = np.asarray(x, np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # runs of equal values: each gets the mean of its 1-based positions
    new_run = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
    run_id = np.cumsum(new_run) - 1
    first = np.flatnonzero(new_run)
    last = np.append(first[1:], len(x)) - 1
    mean_rank = (first + last) / 2.0 + 1.0
    ranks = np.empty(len(x))
    ranks[order] = mean_rank[run_id]
    return ranks


def spearman(x: Float[ArrayLike, " n"], y: Float[ArrayLike, " n"]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the (tie-averaged) ranks. NaN when either is constant
    or fewer than 2 finite pairs remain (rows where either value is not finite are dropped)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman: x and y need the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2:
        return float("nan")
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    return float(np.sum(rx * ry) / denom) if denom > 0 else float("nan")


def _cut(obs_dim: int, part: str) -> slice:
    if part == "obs":
        return slice(0, obs_dim)
    if part == "reward":
        return slice(obs_dim, obs_dim + 1)
    if part == "all":
        return slice(0, None)
    raise ValueError(f"part must be 'obs', 'reward' or 'all', got {part!r}")


def one_step_row_error(outputs, target: Float[ArrayLike, "n target"], scale: Float[ArrayLike, " target"], *,
                       part: str = "obs", mask: ArrayLike | None = None) -> np.ndarray:
    """Per row: ``mean_d (mu_d - y_d)^2 / scale_d`` over the ``part`` dimensions, ``mu`` the elites' mean of their
    means (``outputs``: a :class:`~dynlearn.models.MemberOutputs` over ``[members, n, target]``). Rows where
    ``mask`` is False (no successor observation) are NaN."""
    cut = _cut(outputs.obs_dim, part)
    elite = outputs.elite()
    mu = np.asarray(jnp.mean(elite.mean, axis=0), np.float64)[..., cut]
    y = np.asarray(target, np.float64)[..., cut]
    s = np.maximum(np.asarray(scale, np.float64)[cut], 1e-12)
    err = np.mean(np.square(mu - y) / s, axis=-1)
    if mask is not None:
        err = np.where(np.asarray(mask, bool), err, np.nan)
    return err


def penalty_values(outputs, penalties: Mapping[str, Callable], *, part: str = "obs") -> dict[str, np.ndarray]:
    """Every heuristic's value per row, ``fn(outputs, None, part=part)`` (no sampled transition: LLV then reads
    the elites' mean target, see :func:`dynlearn.penalties.llv`)."""
    return {name: np.asarray(fn(outputs, None, part=part), np.float64) for name, fn in penalties.items()}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Penalties and true errors on one set of rows, and their rank correlations."""

    error: np.ndarray
    """``[n]`` true normalised one-step error per row (NaN where the row has no target)."""
    penalty: dict[str, np.ndarray]
    """``name -> [n]`` heuristic values."""

    @property
    def spearman(self) -> dict[str, float]:
        """``name -> `` rank correlation between the heuristic and the true error."""
        return {name: spearman(u, self.error) for name, u in self.penalty.items()}

    def median_penalty(self) -> dict[str, float]:
        return {name: float(np.nanmedian(u)) for name, u in self.penalty.items()}

    @property
    def median_error(self) -> float:
        return float(np.nanmedian(self.error))

    @property
    def mean_error(self) -> float:
        return float(np.nanmean(self.error))

    def __len__(self) -> int:
        return int(self.error.shape[0])

    @staticmethod
    def pooled(parts: list[Calibration]) -> Calibration:
        """The rows of several sets together (their correlations then also say whether the heuristic ranks one
        set's rows above another's, as the error does)."""
        names = parts[0].penalty.keys()
        return Calibration(error=np.concatenate([p.error for p in parts]),
                           penalty={n: np.concatenate([p.penalty[n] for p in parts]) for n in names})


def calibrate(model, obs: Float[ArrayLike, "n obs"], act: Float[ArrayLike, "n act"], target: Float[ArrayLike, "n target"],
              scale: Float[ArrayLike, " target"], penalties: Mapping[str, Callable], *, part: str = "obs",
              mask: ArrayLike | None = None, chunk: int = 16_384) -> Calibration:
    """Heuristics and true one-step errors of ``model`` on rows ``(obs, act) -> target = (next_obs - obs, rew)``,
    computed ``chunk`` rows at a time (``model.members`` once per chunk)."""
    obs, act, target = np.asarray(obs, np.float32), np.asarray(act, np.float32), np.asarray(target, np.float32)
    n = len(obs)
    errors, values = [], []
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        outputs = model.members(jnp.asarray(obs[rows]), jnp.asarray(act[rows]))
        errors.append(one_step_row_error(outputs, target[rows], scale, part=part, mask=None if mask is None else np.asarray(mask)[rows]))
        values.append(penalty_values(outputs, penalties, part=part))
    if not values:
        return Calibration(error=np.zeros(0), penalty={name: np.zeros(0) for name in penalties})
    return Calibration(error=np.concatenate(errors), penalty={name: np.concatenate([v[name] for v in values]) for name in penalties})
