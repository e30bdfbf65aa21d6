"""``TimeSeries``: measured or simulated trajectories of a dynamical system, for reconstruction (DSR).

Values are always stored as ``[K, T, N]`` float32: ``K`` trajectories of equal length ``T`` with ``N``
observed channels, sampled every ``dt`` time units. One trajectory (the common case: one long recording)
is ``K = 1``; ``TimeSeries(values=[T, N])`` is accepted and stored as ``[1, T, N]``. Trajectories of
unequal length are not supported: trim them to a common length, or keep them as separate series.

Loaders: :func:`load_timeseries` (a user's ``.npy`` / ``.npz`` / ``.csv``) here, and
:func:`dynlearn.data.gtf.gtf_dataset` (the data of Hess et al., ICML 2023, arXiv:2306.04406, read in place from a
configurable folder, never copied).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ._csv import read_numeric_csv
from .validate import cast_finite

_TIME_COLUMNS = ("t", "time")


@dataclasses.dataclass(frozen=True, eq=False)
class TimeSeries:
    """Trajectories ``values[k, t, n]`` sampled every ``dt``; validated on construction.

    ``provenance`` records where the data came from (file, system and its parameters, noise level,
    standardisation statistics, ...): plain JSON-able values, kept for reports.
    """

    values: np.ndarray
    """``[K, T, N]`` float32 (``[T, N]`` is accepted and stored as ``[1, T, N]``)"""
    dt: float = 1.0
    """sampling interval, in the series' time unit (``provenance['time_unit']``; 'sample' when unknown)"""
    names: tuple[str, ...] = ()
    """one name per channel; empty means ``x0, x1, ...``"""
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """source, system parameters, noise, standardisation statistics, ..."""

    def __post_init__(self):
        source = str(self.provenance.get("source", "<arrays>")) if isinstance(self.provenance, Mapping) else "<arrays>"
        values = _validated_values(self.values, source)
        try:
            dt = float(self.dt)
        except (TypeError, ValueError):
            raise DataError(source, f"has sampling interval dt={self.dt!r}, not a number.",
                            "pass dt as a positive float.", key="dt") from None
        if not np.isfinite(dt) or dt <= 0.0:
            raise DataError(source, f"has sampling interval dt={dt}, which must be positive and finite.",
                            "pass the time between two samples as dt (1.0 if it is unknown).", key="dt")
        names = tuple(str(n) for n in self.names) or tuple(f"x{i}" for i in range(values.shape[2]))
        if len(names) != values.shape[2]:
            raise DataError(source, f"has {values.shape[2]} channels but {len(names)} names.",
                            "pass one name per channel (or none).", key="names")
        if not isinstance(self.provenance, Mapping):
            raise DataError(source, f"provenance must be a mapping, got {type(self.provenance).__name__}.",
                            "pass a dict.", key="provenance")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "dt", dt)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "provenance", dict(self.provenance))

    # ----- shape ---------------------------------------------------------------------------------
    @property
    def n_trajectories(self) -> int:
        """``K``."""
        return int(self.values.shape[0])

    @property
    def length(self) -> int:
        """``T``, samples per trajectory."""
        return int(self.values.shape[1])

    @property
    def dim(self) -> int:
        """``N``, observed channels."""
        return int(self.values.shape[2])

    @property
    def duration(self) -> float:
        """Time covered by one trajectory, ``(T - 1) * dt``."""
        return (self.length - 1) * self.dt

    def times(self) -> np.ndarray:
        """Sample times ``[T]`` from 0."""
        return np.arange(self.length) * self.dt

    def trajectory(self, k: int = 0) -> np.ndarray:
        """Trajectory ``k`` as ``[T, N]``."""
        if not -self.n_trajectories <= k < self.n_trajectories:
            raise ConfigError(f"trajectory index {k} is out of range: the series has {self.n_trajectories} trajectories.")
        return self.values[k]

    def __repr__(self) -> str:
        src = self.provenance.get("source", "<arrays>")
        return f"TimeSeries(K={self.n_trajectories}, T={self.length}, N={self.dim}, dt={self.dt:g}, source={src!r})"

    def constant_channels(self, *, rtol: float = 1e-6) -> list[int]:
        """Channels whose every sample (over all trajectories) equals their mean, up to ``rtol`` of its magnitude: they
        carry no dynamics, and z-scoring maps them to 0 (or, for a nearly constant one, magnifies float noise)."""
        flat = self.values.reshape(-1, self.dim).astype(np.float64)
        spread = flat.max(axis=0) - flat.min(axis=0)
        scale = np.maximum(np.abs(flat).max(axis=0), 1.0)
        return [int(i) for i in np.flatnonzero(spread <= rtol * scale)]

    def check_varies(self, *, what: str = "series", fix: str | None = None) -> None:
        """Raise :class:`DataError` when the series, or any of its channels, is constant (see :meth:`constant_channels`):
        a reconstruction model has nothing to learn from it, and fitting one fails in misleading ways."""
        constant = self.constant_channels()
        if not constant:
            return
        source = str(self.provenance.get("source", "<arrays>"))
        first = float(self.values[0, 0, constant[0]])
        if len(constant) == self.dim:
            raise DataError(source, f"the {what} is constant (every channel holds one value, e.g. {self.names[constant[0]]} = "
                            f"{first:g}): there are no dynamics to reconstruct.",
                            fix or "check that the file holds the measured signal (not a constant or flat-lined recording).")
        shown = ", ".join(f"{self.names[i]} (= {float(self.values[0, 0, i]):g})" for i in constant[:5])
        more = f" and {len(constant) - 5} more" if len(constant) > 5 else ""
        raise DataError(source, f"the {what} has {len(constant)} constant channel(s) out of {self.dim}: {shown}{more}.",
                        fix or "drop the constant channel(s) from the data; they carry no dynamics.")

    # ----- transformations (each returns a new series) -------------------------------------------
    def standardize(self, stats: tuple[np.ndarray, np.ndarray] | None = None, *, min_std: float = 1e-8
                    ) -> tuple[TimeSeries, tuple[np.ndarray, np.ndarray]]:
        """Per-channel z-scoring ``(x - mean) / std`` over all trajectories and times.

        Returns the standardised series and the ``(mean, std)`` used (``[N]`` each). Pass the training
        split's ``stats`` to standardise a test split the same way. ``std`` is floored at ``min_std`` so a
        constant channel passes through instead of dividing by zero.
        """
        if stats is None:
            flat = self.values.reshape(-1, self.dim).astype(np.float64)
            mean, std = flat.mean(axis=0), np.maximum(flat.std(axis=0), min_std)
        else:
            mean, std = (np.asarray(s, np.float64).reshape(-1) for s in stats)
            if mean.shape != (self.dim,) or std.shape != (self.dim,):
                raise ConfigError(f"standardize: stats have shapes {mean.shape}, {std.shape}; expected ({self.dim},) each.")
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
                raise ConfigError("standardize: stats must be finite with std > 0.")
        values = ((self.values - mean) / std).astype(np.float32)
        prov = {**self.provenance, "standardized": True, "mean": mean.tolist(), "std": std.tolist()}
        return dataclasses.replace(self, values=values, provenance=prov), (mean.astype(np.float32), std.astype(np.float32))

    def split(self, train_fraction: float = 0.8) -> tuple[TimeSeries, TimeSeries]:
        """Split every trajectory in time: the first ``floor(train_fraction * T)`` samples train, the rest test."""
        if not 0.0 < train_fraction < 1.0:
            raise ConfigError(f"split: train_fraction must be in (0, 1), got {train_fraction}.")
        cut = int(np.floor(train_fraction * self.length))
        if cut < 2 or self.length - cut < 2:
            raise DataError(str(self.provenance.get("source", "<arrays>")),
                            f"has {self.length} samples per trajectory; a split at {train_fraction} leaves {cut} and {self.length - cut}.",
                            "use a longer series or a train_fraction that leaves at least 2 samples on each side.")
        first = dataclasses.replace(self, values=self.values[:, :cut], provenance={**self.provenance, "split": "train"})
        second = dataclasses.replace(self, values=self.values[:, cut:], provenance={**self.provenance, "split": "test"})
        return first, second

    def drop_transient(self, n: int) -> TimeSeries:
        """Drop the first ``n`` samples of every trajectory (an initial transient before the attractor)."""
        n = int(n)
        if n < 0:
            raise ConfigError(f"drop_transient: n must be >= 0, got {n}.")
        if n >= self.length:
            raise DataError(str(self.provenance.get("source", "<arrays>")), f"has {self.length} samples; dropping {n} leaves none.",
                            "drop fewer samples.")
        dropped = int(self.provenance.get("transient_dropped", 0)) + n
        return dataclasses.replace(self, values=self.values[:, n:], provenance={**self.provenance, "transient_dropped": dropped})


def _validated_values(value, source: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise DataError(source, f"has dtype {arr.dtype}, expected numbers.", "store a numeric array.", key="values")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(source, f"has shape {arr.shape} (rank {arr.ndim}); expected [T, N] or [K, T, N].",
                        "pass x[:, None] for a single channel, or stack trajectories of equal length as [K, T, N].", key="values")
    if arr.size == 0 or arr.shape[1] < 2:
        raise DataError(source, f"has shape {arr.shape}: no trajectory, channel, or fewer than 2 samples.",
                        "pass at least 2 samples of at least 1 channel.", key="values")
    out, bad, what, fix = cast_finite(arr, np.float32)  # checked after the cast: 1e300 in float64 is inf in float32
    if bad is not None:
        k, t, n = (int(i[0]) for i in np.nonzero(bad))
        raise DataError(source, f"holds {what} in {int(bad.sum())} value(s), first at trajectory {k}, step {t}, channel {n}.",
                        fix or "drop or interpolate those samples before loading.", key="values")
    return np.ascontiguousarray(out)


# ----- user files -----------------------------------------------------------------------------------
def load_timeseries(path: str | os.PathLike, *, dt: float | None = None, columns: str | Sequence[str] | Sequence[int] | None = None,
                    name: str | None = None, delimiter: str = ",") -> TimeSeries:
    """Read a user's series from ``.npy``, ``.npz`` or ``.csv``.

    - ``.npy``: one array ``[T]``, ``[T, N]`` or ``[K, T, N]``; ``columns`` may pick channels by index.
    - ``.npz``: one array as above, or several 1-D / 2-D arrays of equal length stacked as channels in file
      order; ``columns`` names the arrays (shell patterns such as ``x*`` allowed). A scalar ``dt`` array and a
      ``t`` / ``time`` array are read as the sampling interval / sample times.
    - ``.csv``: a header row, one row per sample; ``columns`` names the columns (default: all but ``t`` / ``time``).
      Read with the ``csv`` module (``delimiter``; quoted values accepted) after encoding detection (byte-order
      mark, UTF-8, else latin-1 with a warning); unnamed or repeated column names are refused.

    ``dt``: the sampling interval. When None it comes from the file (a ``dt`` entry or evenly spaced
    ``t`` / ``time`` values), else 1.0 with ``provenance['time_unit'] = 'sample'``. Irregular sample times are
    rejected: resample first.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(source, "no such file.", "check the path.")
    if isinstance(columns, str):
        columns = tuple(c.strip() for c in columns.split(",") if c.strip())
    suffix = path.suffix.lower()
    if suffix == ".npy":
        values, names, file_dt, times = _read_npy(path, source, columns)
    elif suffix == ".npz":
        values, names, file_dt, times = _read_npz(path, source, columns)
    elif suffix == ".csv":
        values, names, file_dt, times = _read_csv(path, source, columns, delimiter)
    else:
        raise DataError(source, f"has unknown extension '{path.suffix}'.", "save the series as .npy, .npz or .csv.")
    if times is not None:
        time_dt = _dt_from_times(times, source)
        if file_dt is not None and not np.isclose(time_dt, file_dt, rtol=1e-4):
            raise DataError(source, f"stores dt={file_dt} but its sample times are spaced {time_dt:g}.", "fix one of them.", key="dt")
        file_dt = time_dt
    if dt is not None and file_dt is not None and not np.isclose(float(dt), file_dt, rtol=1e-4):
        raise DataError(source, f"is sampled every {file_dt:g} but dt={dt} was passed.", "drop the dt argument or fix the file.", key="dt")
    chosen = dt if dt is not None else file_dt
    prov: dict[str, Any] = {"source": source, "name": name or path.stem, "format": suffix.lstrip(".")}
    if chosen is None:
        chosen, prov["time_unit"] = 1.0, "sample"
    return TimeSeries(values=values, dt=float(chosen), names=tuple(names), provenance=prov)


def _select(available: list[str], columns, source: str) -> list[str]:
    chosen: list[str] = []
    for pattern in columns:
        pattern = str(pattern)
        hits = ([a for a in available if fnmatch.fnmatchcase(a, pattern)] if any(c in pattern for c in "*?[")
                else [pattern] if pattern in available else [])
        if not hits:
            shown = ", ".join(available[:12]) + (" ..." if len(available) > 12 else "")
            raise DataError(source, f"has no column matching '{pattern}' (available: {shown}).",
                            "pass existing names in columns=.", key=pattern)
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _read_npy(path: Path, source: str, columns):
    try:
        with open(path, "rb") as fh:
            arr = np.load(fh, allow_pickle=False)
    except ValueError as e:
        raise DataError(source, f"cannot be read as a plain .npy array ({str(e).splitlines()[0][:120]}).",
                        "save it with numpy.save of a numeric array.") from None
    except (OSError, EOFError) as e:
        raise DataError(source, f"is not a readable .npy file ({type(e).__name__}); it may be truncated.",
                        "re-save it with numpy.save.") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    names = [f"x{i}" for i in range(arr.shape[-1])] if arr.ndim >= 2 else []
    if columns is not None and arr.ndim in (2, 3):
        idx = []
        for c in columns:
            if isinstance(c, (int, np.integer)) or (isinstance(c, str) and c.lstrip("-").isdigit()):
                i = int(c)
                if not -arr.shape[-1] <= i < arr.shape[-1]:
                    raise DataError(source, f"has {arr.shape[-1]} channels; column index {i} is out of range.",
                                    "pass valid channel indices.", key=str(c))
                idx.append(i % arr.shape[-1])
            else:
                idx += [names.index(n) for n in _select(names, [c], source)]
        arr, names = arr[..., idx], [names[i] for i in idx]
    return arr, names, None, None


def _read_npz(path: Path, source: str, columns):
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            table = {k: archive[k] for k in archive.files}
    except ValueError as e:
        raise DataError(source, f"cannot be read as an NPZ archive of plain arrays ({str(e).splitlines()[0][:120]}).",
                        "save it with numpy.savez of numeric arrays.") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:  # not a zip, truncated
        raise DataError(source, f"is not a readable NPZ archive ({type(e).__name__}); it may be truncated.",
                        "re-save it with numpy.savez.") from None
    file_dt = None
    if "dt" in table:
        d = np.asarray(table.pop("dt"))
        if d.size != 1 or d.dtype.kind not in "iuf":
            raise DataError(source, f"has a 'dt' entry of shape {d.shape}, expected one number.", "store dt as a scalar.", key="dt")
        file_dt = float(d.reshape(()))
    times = None
    for tname in _TIME_COLUMNS:
        if tname in table and (columns is None or tname not in columns):
            times = np.asarray(table.pop(tname))
            break
    if not table:
        raise DataError(source, "holds no data arrays.", "save the series with numpy.savez(path, values=x).")
    available = list(table)
    chosen = _select(available, columns, source) if columns is not None else available
    if len(chosen) == 1:
        arr = np.asarray(table[chosen[0]])
        arr = arr[:, None] if arr.ndim == 1 else arr
        names = [chosen[0]] if arr.shape[-1] == 1 else [f"{chosen[0]}{i}" for i in range(arr.shape[-1])]
        return arr, names, file_dt, times
    parts, names = [], []
    for key in chosen:
        a = np.asarray(table[key])
        if a.ndim not in (1, 2):
            raise DataError(source, f"array '{key}' has shape {a.shape}; several arrays must each be [T] or [T, n].",
                            "store one [K, T, N] array instead, or pick arrays with columns=.", key=key)
        parts.append(a[:, None] if a.ndim == 1 else a)
        names += [key] if parts[-1].shape[1] == 1 else [f"{key}{i}" for i in range(parts[-1].shape[1])]
    lengths = {p.shape[0] for p in parts}
    if len(lengths) != 1:
        raise DataError(source, f"arrays {chosen} have different lengths {sorted(lengths)}.", "store one row per sample in each.")
    return np.concatenate(parts, axis=1), names, file_dt, times


def _read_csv(path: Path, source: str, columns, delimiter: str = ","):
    header, data = read_numeric_csv(path, delimiter=delimiter, unit="sample", header_required=True)
    times = None
    time_col = next((h for h in header if h.lower() in _TIME_COLUMNS), None)
    if time_col is not None and (columns is None or time_col not in columns):
        times = data[:, header.index(time_col)]
    available = [h for h in header if h != time_col or (columns is not None and time_col in columns)]
    chosen = _select(available, columns, source) if columns is not None else available
    if not chosen:
        raise DataError(source, "has only a time column.", "add the measured channels as columns.")
    return data[:, [header.index(c) for c in chosen]], chosen, None, times


def _dt_from_times(times, source: str) -> float:
    t = np.asarray(times, np.float64).reshape(-1)
    if t.size < 2 or not np.all(np.isfinite(t)):
        raise DataError(source, "has a time column with fewer than 2 finite values.",
                        "fix the time column or drop it and pass dt=.", key="time")
    steps = np.diff(t)
    dt = float(np.median(steps))
    if dt <= 0 or np.max(np.abs(steps - dt)) > 1e-3 * dt:
        raise DataError(source, f"has irregular or non-increasing sample times (steps from {steps.min():g} to {steps.max():g}).",
                        "resample the series to a fixed interval first.", key="time")
    return dt
