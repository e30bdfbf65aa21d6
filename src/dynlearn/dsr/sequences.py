"""What the gradient-trained DSR fitters (PLRNN teacher forcing, neural ODE) share: the training windows of a set of
trajectories (:func:`prepare_sequences`) and the error they raise when training diverges."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._types import ArrayLike
from ..errors import DataError, DynlearnError


class TrainingDivergedError(DynlearnError, FloatingPointError):
    """Training produced a non-finite loss or parameter (exploding gradients)."""


def prepare_sequences(x_train: ArrayLike | Sequence[ArrayLike], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(data [sum T_i, N] float32, starts [n_windows] int32)``: the trajectories end to end and every start index
    whose window of ``seq_len + 1`` points stays inside one trajectory."""
    trajectories = list(x_train) if isinstance(x_train, (list, tuple)) else [x_train]
    if not trajectories:
        raise DataError("x_train", "is an empty list.", "pass one array [T, N] or a list of them.")
    arrays, starts, offset, dim = [], [], 0, None
    for i, x in enumerate(trajectories):
        source = "x_train" if len(trajectories) == 1 else f"x_train[{i}]"
        try:
            a = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(source, f"is not a numeric array ({e}).", "pass a float array [T, N].") from None
        if a.ndim != 2 or a.shape[1] < 1:
            raise DataError(source, f"has shape {a.shape}; expected [T, N] (time, observed dimensions).",
                            "reshape it (a 1-D series x becomes x[:, None]).")
        if dim is not None and a.shape[1] != dim:
            raise DataError(source, f"has {a.shape[1]} dimensions, the first trajectory {dim}.", "pass trajectories of one system.")
        dim = a.shape[1]
        if not np.isfinite(a).all():
            bad = int(np.argwhere(~np.isfinite(a))[0, 0])
            raise DataError(source, f"holds non-finite values (first at row {bad}).", "remove or interpolate them.")
        if len(a) < seq_len + 1:
            raise DataError(source, f"has {len(a)} points; a training window needs seq_len + 1 = {seq_len + 1}.",
                            "pass longer trajectories or a smaller FitDSRConfig.seq_len.")
        arrays.append(a)
        starts.append(offset + np.arange(len(a) - seq_len, dtype=np.int64))
        offset += len(a)
    if offset >= 2**31:
        raise DataError("x_train", f"holds {offset} points; more than 2^31 is not supported.", "subsample the data.")
    return np.concatenate(arrays), np.concatenate(starts).astype(np.int32)
