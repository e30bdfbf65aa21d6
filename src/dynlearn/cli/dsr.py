"""``dynlearn dsr fit|eval``: reconstruct a dynamical system from a time series, and re-measure a fit."""

from __future__ import annotations

import json
from pathlib import Path

from ..data.timeseries import load_timeseries
from ..dsr.data_sources import parse_source
from ..dsr.jobs import DSREval, DSRFit, run_eval, run_fit
from ..errors import DynlearnError


def _dsr_status(out) -> None:
    """A diverged reconstruction is a failed run: say so and exit non-zero."""
    results = json.loads((Path(out) / "results.json").read_text())
    if results.get("extra", {}).get("status") == "diverged":
        raise DynlearnError(f"the model diverged (free run or training); the run folder {out} records it as a failure.")


def dsr_fit(cfg: DSRFit) -> None:
    _check_dsr_data(cfg)
    _dsr_status(run_fit(cfg))


def _check_dsr_data(cfg: DSRFit) -> None:
    """Refuse a file series that is constant, or has a constant channel, before any fitting: a reconstruction model has
    nothing to learn from it, and the fit would fail in misleading ways (z-scoring maps it to 0; "diverged at step 1")."""
    kind, name = parse_source(cfg.data)
    if kind != "file":
        return
    series = load_timeseries(name, dt=cfg.dt)
    series.check_varies(what="series")
    if cfg.test is not None:
        load_timeseries(cfg.test, dt=series.dt if cfg.dt is None else cfg.dt).check_varies(
            what="test series (--test)", fix="pass a test series that varies, or drop --test to test on the end of DATA.")
    else:
        series.split(cfg.train_fraction)[0].check_varies(
            what=f"training part (the first {cfg.train_fraction:g} of each trajectory)",
            fix="pass a series that varies in its training part, a larger --train-fraction, or a separate --test series.")


def dsr_eval(cfg: DSREval) -> None:
    _dsr_status(run_eval(cfg))
