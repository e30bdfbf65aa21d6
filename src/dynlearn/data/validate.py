"""Checks applied to every array that enters dynlearn from outside. Each failure is a one-line DataError."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def cast_finite(arr: np.ndarray, dtype=np.float32) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """``arr`` cast to ``dtype``, checked *after* the cast: ``(cast, bad, what, fix)``. ``bad`` is the mask of values
    that are not finite in ``dtype`` (None when all are): NaN and inf in ``arr``, and finite values beyond ``dtype``'s
    range, which the cast turns into inf (a float64 1e300 in float32). ``what`` names them, ``fix`` says what to do."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(arr).astype(dtype, copy=False)
    if out.dtype.kind != "f":
        return out, None, "", ""
    bad = ~np.isfinite(out)
    if not bad.any():
        return out, None, "", ""
    kinds = []
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            kinds.append("NaN")
        if np.isinf(arr).any():
            kinds.append("inf")
    overflow = bad & np.isfinite(arr) if arr.dtype.kind == "f" else bad
    if overflow.any():
        largest = float(np.max(np.abs(np.asarray(arr)[overflow]).astype(np.float64)))
        kinds.append(f"values beyond {np.dtype(dtype).name}'s range (largest magnitude {largest:.3g}; {np.dtype(dtype).name} "
                     f"holds up to {float(np.finfo(dtype).max):.3g})")
        fix = (("drop or repair the rows with NaN or inf, and " if len(kinds) > 1 else "")
               + f"rescale the values beyond the range (e.g. change their units) or drop their rows, so that every value fits "
               f"in {np.dtype(dtype).name}, which dynlearn computes in.")
    else:
        fix = ""
    return out, bad, " and ".join(kinds), fix


def numeric_array(value, source: str, key: str, *, rank: int | tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """``value`` as a finite array of ``dtype`` with the given rank(s); ``[N, 1]`` is squeezed for rank 1. Finiteness
    is checked after the cast (:func:`cast_finite`), so values beyond ``dtype``'s range are refused too."""
    ranks = (rank,) if isinstance(rank, int) else rank
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise DataError(source, f"has dtype {arr.dtype}, expected numbers.", "store numeric arrays.", key=key)
    if 1 in ranks and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise DataError(source, f"has shape {arr.shape} (rank {arr.ndim}), expected rank {want}.",
                        "store one row per step: [N] for scalars, [N, dim] for vectors.", key=key)
    out, bad, what, fix = cast_finite(arr, dtype)
    if bad is not None:
        rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1)) if bad.ndim else np.array([0])
        raise DataError(source, f"holds {what} in {rows.size} row(s), first at row {int(rows[0])}.",
                        fix or "drop or repair those rows before loading.", key=key)
    return out


def flag_array(value, source: str, key: str) -> np.ndarray:
    """A per-step boolean flag (``terminals``, ``timeouts``): bool or 0/1 numbers, rank 1."""
    arr = np.asarray(value)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(source, f"has shape {arr.shape}, expected [N].", "store one flag per step.", key=key)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise DataError(source, "holds values other than 0/1 or True/False.", "store a boolean flag per step.", key=key)
    return arr.astype(bool)


def same_length(source: str, arrays: dict[str, np.ndarray]) -> int:
    """The common leading size of ``arrays``; a DataError naming the odd one out otherwise."""
    lengths = {k: v.shape[0] for k, v in arrays.items()}
    n = next(iter(lengths.values()))
    for k, length in lengths.items():
        if length != n:
            first = next(iter(lengths))
            raise DataError(source, f"has {length} rows but '{first}' has {n}.", "every per-step array needs one row per step.", key=k)
    if n == 0:
        raise DataError(source, "is empty (0 steps).", "pass a dataset with at least one step.", key=next(iter(lengths)))
    return n


def check_dims(source: str, obs_dim: int, act_dim: int, task) -> None:
    """Observation and action sizes must match the named task's."""
    if task is None:
        return
    if obs_dim != task.obs_dim:
        raise DataError(source, f"observations have {obs_dim} dims but task {task.id} has {task.obs_dim}.",
                        "pass the task the data was collected on (--task).", key="observations")
    if act_dim != task.act_dim:
        raise DataError(source, f"actions have {act_dim} dims but task {task.id} has {task.act_dim}.",
                        "pass the task the data was collected on (--task).", key="actions")
