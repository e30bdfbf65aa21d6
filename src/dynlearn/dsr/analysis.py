"""Linear subregions and symbolic codes of an AL-RNN (Brenner et al., NeurIPS 2024, arXiv 2410.14240).

An AL-RNN with P piecewise-linear units is linear inside each of at most 2^P subregions of its state space, one per
sign pattern of those P units (the last P latent units). Along a trajectory the subregion visited at each step is a
symbol; the sequence of symbols is the model's symbolic code of the dynamics (the paper's Sec. on symbolic dynamics;
reference functions in DurstewitzLab/ALRNN-DSR ``alrnn_python/linear_region_functions.py``: ``convert_to_bits``,
``unique_regions_crossed``, ``frequency_of_regions``, ``connectome_with_self_connections``).

Conventions here: bit ``j`` of a step is ``z[M - P + j] > 0`` (a unit at exactly 0 counts as off, as ReLU'(0) = 0);
a subregion's integer id reads the P bits as a binary number, the first PWL unit most significant (bits ``10`` ->
id 2). Counting happens on the host with NumPy (it is bookkeeping, not a hot loop).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._types import ArrayLike
from ..errors import ConfigError, DataError
from .plrnn import ALRNN


def _pwl_units(model_or_p: ALRNN | int) -> int:
    p = model_or_p.pwl_units if isinstance(model_or_p, ALRNN) else int(model_or_p)
    if not 0 <= p <= 62:
        raise ConfigError(f"subregion analysis needs 0 <= P <= 62 piecewise-linear units (ids are int64), got {p}.")
    return p


def _latents(z: ArrayLike, p: int) -> np.ndarray:
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] < p:
        raise DataError("z", f"has shape {z.shape}; expected latent states [T, M] with M >= P = {p}.",
                        "pass model.generate(T, x0=..., latent=True).")
    return z


def subregion_bits(z: ArrayLike, model_or_p: ALRNN | int) -> np.ndarray:
    """``[T, P]`` booleans: which of the P piecewise-linear units (the last P latent units) are active at each step."""
    p = _pwl_units(model_or_p)
    z = _latents(z, p)
    return z[:, z.shape[1] - p:] > 0


def subregion_ids(z: ArrayLike, model_or_p: ALRNN | int) -> np.ndarray:
    """``[T]`` int64: the linear subregion of each step, its P bits read as a binary number (first PWL unit first)."""
    bits = subregion_bits(z, model_or_p).astype(np.int64)
    weights = np.left_shift(np.int64(1), np.arange(bits.shape[1] - 1, -1, -1, dtype=np.int64))
    return bits @ weights


def id_to_bits(region: int, p: int) -> tuple[int, ...]:
    """The sign pattern of subregion ``region`` (inverse of the id encoding), e.g. ``id_to_bits(2, 2) == (1, 0)``."""
    return tuple((int(region) >> (p - 1 - j)) & 1 for j in range(p))


def symbolic_sequence(ids: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(symbols, dwell)``: the subregions in the order visited, consecutive repeats merged, and the steps spent in
    each visit (``dwell.sum() == len(ids)``)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) == 0:
        raise DataError("ids", f"has shape {ids.shape}; expected a non-empty 1-D sequence of subregion ids.", None)
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    begin = np.concatenate([[0], change])
    end = np.concatenate([change, [len(ids)]])
    return ids[begin], end - begin


@dataclasses.dataclass(frozen=True)
class SubregionStats:
    """Subregion usage along one trajectory of an AL-RNN."""

    pwl_units: int
    """P: the model has at most 2^P linear subregions."""
    ids: np.ndarray
    """[T] the subregion of every step."""
    symbols: np.ndarray
    """Subregions in the order visited (consecutive repeats merged): the symbolic sequence."""
    dwell: np.ndarray
    """Steps spent in each visit of ``symbols``."""
    regions: np.ndarray
    """Distinct subregions visited, most visited first (ties: smaller id first)."""
    counts: np.ndarray
    """Steps spent in each of ``regions``."""
    transitions: np.ndarray | None
    """[R, R] counts of steps t -> t+1 from ``regions[i]`` to ``regions[j]`` (diagonal: staying); None when more than
    ``MAX_DENSE_REGIONS`` subregions are visited (an AL-RNN with many PWL units, e.g. P = 50 on Lorenz-96, can enter a new
    one at almost every step, and the dense matrix would not fit in memory)."""

    @property
    def n_regions(self) -> int:
        """Number of distinct subregions visited (at most 2^P)."""
        return len(self.regions)

    @property
    def occupancy(self) -> np.ndarray:
        """Fraction of steps spent in each of ``regions``."""
        return self.counts / self.counts.sum()

    @property
    def n_crossings(self) -> int:
        """Steps at which the trajectory crossed into another subregion."""
        return int(len(self.symbols) - 1)

    def bits(self, region: int) -> tuple[int, ...]:
        """The sign pattern of a subregion id."""
        return id_to_bits(region, self.pwl_units)


MAX_DENSE_REGIONS = 1024
"""Above this many visited subregions :class:`SubregionStats` keeps no dense transition matrix."""


def subregion_stats(z: ArrayLike, model_or_p: ALRNN | int) -> SubregionStats:
    """Subregion ids, symbolic sequence, visit counts and transition counts of a latent trajectory ``z [T, M]``."""
    p = _pwl_units(model_or_p)
    ids = subregion_ids(z, p)
    if len(ids) == 0:
        raise DataError("z", "has no time steps.", "pass a trajectory of at least one step.")
    symbols, dwell = symbolic_sequence(ids)
    regions, counts = np.unique(ids, return_counts=True)
    order = np.lexsort((regions, -counts))
    regions, counts = regions[order], counts[order]
    transitions = None
    if len(regions) <= MAX_DENSE_REGIONS:
        pos = _positions(regions, ids)
        transitions = np.zeros((len(regions), len(regions)), np.int64)
        np.add.at(transitions, (pos[:-1], pos[1:]), 1)
    return SubregionStats(p, ids, symbols, dwell, regions, counts, transitions)


def _positions(regions: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index in ``regions`` (any order, distinct) of every entry of ``ids``."""
    order = np.argsort(regions)
    return order[np.searchsorted(regions[order], ids)]
