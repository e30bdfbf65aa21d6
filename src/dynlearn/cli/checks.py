"""Checks of the model folders a user names on the command line: their JSON files parse, their weights are finite."""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from ..checkpoint import latest_dir
from ..errors import DataError


def check_run_files(run, *, what: str) -> None:
    """The JSON files of a model folder the user named (a run of ``model train`` or a cached ensemble) parse: a corrupt
    one is a one-line error naming it, not a JSONDecodeError."""
    run = Path(run)
    folders = [run, *([latest_dir(run)] if (run / "key.json").is_file() or not (run / "config.json").is_file() else [])]
    for folder in (f for f in folders if f is not None):
        for name in ("config.json", "fit_report.json", "key.json", "model/config.json"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                json.loads(path.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                detail = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
                raise DataError(str(path), f"is not valid JSON ({detail}): the file is damaged or was cut short.",
                                f"refit the model (dynlearn model train) and pass its folder as {what}; a cached ensemble: "
                                "delete its folder, and the next job on its dataset fits it again.") from None


def check_model_finite(model, folder, *, flag: str) -> None:
    """Refuse a loaded model whose weights hold NaN or inf, naming the folder: training on its rollouts would fail later
    with a misleading cause (e.g. "the critic diverged ... lower the learning rates")."""
    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(model, eqx.is_inexact_array))
    bad = [(jax.tree_util.keystr(path), int((~np.isfinite(np.asarray(leaf))).sum())) for path, leaf in leaves
           if not np.all(np.isfinite(np.asarray(leaf)))]
    if bad:
        count = sum(n for _, n in bad)
        raise DataError(str(folder), f"the model's weights hold {count:,} NaN or infinite value(s) in {len(bad)} of {len(leaves)} "
                        f"arrays (first: {bad[0][0]}): it was saved from a diverged fit, or the file is damaged.",
                        f"refit it (dynlearn model train) and pass the new folder as {flag}.")
