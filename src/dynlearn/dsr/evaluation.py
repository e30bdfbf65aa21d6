"""Measure a DSR model on one test trajectory by the protocol of the GTF reference code (Hess et al., ICML 2023,
arXiv 2306.04406; DurstewitzLab/GTF-shPLRNN ``src/evaluation.jl``).

Free-run ``1.25 T`` steps from the first test point, drop the first ``0.25 T`` as transient, and compare the remaining
``T`` points with the ``T`` test points by D_stsp and D_H; PE(n) (default n = 20) on the test series; the largest
Lyapunov exponent of the model (QR method on its Jacobians, per unit time) against the true system's where it is known;
for an AL-RNN, its linear subregions and symbolic code (Brenner et al., NeurIPS 2024, arXiv 2410.14240).

**A free run that diverges** (NaN/inf, or a blow-up far outside the data: :func:`dynlearn.metrics.dsr.is_diverged`)
is a failure: ``status = "diverged"`` with the stage and reason, and every metric ``None``; never a number.
The protocol is written down in ``benchmarks/dsr_protocol.md``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..data.systems import simulate
from ..metrics.dsr import (
    BIN_DIM_LIMIT,
    TrajectoryDivergedError,
    is_diverged,
    occupancy_gap,
    power_spectrum_distance,
    prediction_error,
    state_space_divergence,
)
from ..metrics.lyapunov import flow_max_lyapunov, max_lyapunov
from .analysis import subregion_stats
from .base import AbstractLatentModel
from .plrnn import ALRNN

LITERATURE_LYAPUNOV = {"lorenz63": 0.9056, "rossler": 0.0714}
"""Largest Lyapunov exponents per unit time at the default parameters (Sprott, Chaos and Time-Series Analysis, 2003, app. A)."""
FREE_RUN_FACTOR = 1.25
"""Free-run length as a multiple of the test length; the first (factor - 1) share is dropped as transient (GTF code)."""


def parameter_counts(model: AbstractLatentModel) -> dict:
    """``latent_map`` (the papers' count), ``observation`` (L of the identity readout), ``trained`` and ``total``."""
    latent_map = int(model.n_params)
    observation = int(getattr(model, "n_observation_params", 0))
    trained = int(getattr(model, "n_trained_params", latent_map + observation))
    return {"latent_map": latent_map, "observation": observation, "trained": trained, "total": latent_map + observation}


_TRUE_LYAPUNOV_CACHE: dict = {}


def true_max_lyapunov(system, dt: float, steps: int) -> float:
    """Largest Lyapunov exponent per unit time of ``system`` by the QR method on its RK4 ``dt``-map, started on the
    attractor (a state after the system's default transient); cached per (system, dt, steps)."""
    cache_key = (system.name, json.dumps(system.params(), sort_keys=True, default=str), float(dt), int(steps))
    if cache_key not in _TRUE_LYAPUNOV_CACHE:
        x0 = simulate(system, 2, dt, key=jax.random.key(12345)).values[0, -1]
        _TRUE_LYAPUNOV_CACHE[cache_key] = flow_max_lyapunov(system.vector_field, x0, dt=dt, steps=steps, transient=1000)
    return _TRUE_LYAPUNOV_CACHE[cache_key]


def _chunked_prediction_error(model: AbstractLatentModel, x: np.ndarray, n: int, chunk: int = 20_000) -> float:
    """PE(n) over every window of ``x`` (as the reference), computed in chunks of windows to bound memory: the mean over
    chunks weighted by their windows equals the mean over all windows."""
    step, encode, observe = jax.vmap(model.step), jax.vmap(model.encode), jax.vmap(model.observe)
    windows = len(x) - n
    total, count = 0.0, 0
    for start in range(0, windows, chunk):
        stop = min(start + chunk, windows)
        part = x[start: stop + n]
        total += prediction_error(step, part, n, encode=encode, observe=observe, on_diverged="nan") * (stop - start)
        count += stop - start
    return total / count


def _first_bad_step(x_gen: np.ndarray, reference: np.ndarray, factor: float = 10.0) -> int:
    centre = reference.mean(axis=0)
    radius = np.maximum(np.max(np.abs(reference - centre), axis=0), 1e-12)
    with np.errstate(invalid="ignore"):
        bad = ~np.all(np.isfinite(x_gen), axis=1) | np.any(np.abs(x_gen - centre) > factor * radius, axis=1)
    return int(np.argmax(bad)) if bad.any() else -1


def evaluate_model(model: AbstractLatentModel, x_test: np.ndarray, dt: float, *, system=None, lyapunov_steps: int = 50_000,
                   pe_steps: int = 20) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """The GTF reference's evaluation of a model on one test trajectory ``x_test [T, N]`` plus Lyapunov exponents.

    Returns ``(record, x_gen, z_gen)``: ``x_gen [T, N]`` is the free run after the dropped transient (None if it
    diverged), ``z_gen`` its latent states for an AL-RNN (else None). ``record["status"]`` is ``"ok"`` or
    ``"diverged"``; a diverged model gets ``null`` metrics and a ``failure`` entry.
    """
    x_test = np.asarray(x_test, np.float32)
    t_len, n = x_test.shape
    drop = math.floor((FREE_RUN_FACTOR - 1.0) * t_len)
    total = drop + t_len
    protocol = {"free_run_steps": total, "transient_dropped": drop, "compared_steps": t_len, "x0": "first test point",
                "pe_n": pe_steps, "lyapunov_steps": lyapunov_steps, "lyapunov_transient": 1000, "dt": dt,
                "d_stsp": "binned, 30 bins" if n < 6 else "Gaussian mixture, variance 1, 1000 MC samples, first 1e4 points",
                "d_h": "smoothing sigma 20"}
    empty = {"D_stsp": None, "D_H": None, "PE": None}
    record: dict[str, Any] = {"status": "ok", "failure": None, "metrics": dict(empty), "protocol": protocol}

    def failed(stage: str, reason: str):
        record.update(status="diverged", failure={"stage": stage, "reason": reason}, metrics=dict(empty))
        record["lyapunov"] = lyapunov_record(None, system, dt, lyapunov_steps)
        return record, None, None

    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))]
    if not all(np.all(np.isfinite(x)) for x in leaves):
        return failed("model", "the model's parameters hold NaN/inf")
    is_alrnn = isinstance(model, ALRNN)  # latent states are kept only where the subregion analysis needs them
    run = np.asarray(model.generate(total, x0=jnp.asarray(x_test[0]), latent=is_alrnn))
    z_all, x_all = (run, np.asarray(jax.vmap(model.observe)(jnp.asarray(run)))) if is_alrnn else (None, run)
    if is_diverged(x_all, reference=x_test):
        bad = _first_bad_step(x_all, x_test)
        return failed("free_run", f"the free-running trajectory blew up (NaN/inf or > 10x the data's extent) at step {bad} of {total}")
    x_gen = x_all[drop:]
    z_gen = z_all[drop:] if is_alrnn else None
    pe = _chunked_prediction_error(model, x_test, pe_steps)
    if not math.isfinite(pe):
        return failed("prediction", f"the {pe_steps}-step predictions from the test points hold NaN/inf")
    try:
        d_stsp = state_space_divergence(x_test, x_gen)
    except TrajectoryDivergedError as e:  # bounded, but not one generated point inside the data's box
        return failed("free_run", f"the free-running trajectory left the data's range ({e.problem.rstrip('.')})")
    record["metrics"] = {"D_stsp": d_stsp, "D_H": power_spectrum_distance(x_test, x_gen), "PE": pe}
    if n < BIN_DIM_LIMIT:  # where D_stsp is binned: the share of the attractor the model misses, and of its run elsewhere
        record["occupancy"] = occupancy_gap(x_test, x_gen)
    lam = max_lyapunov(model.step, model.encode(jnp.asarray(x_test[0])), steps=lyapunov_steps, transient=1000, dt=dt, on_diverged="nan")
    record["lyapunov"] = lyapunov_record(lam, system, dt, lyapunov_steps)
    if is_alrnn:
        record["subregions"] = _subregion_record(z_gen, model)
    return record, x_gen, z_gen


def lyapunov_record(lam: float | None, system, dt: float, steps: int) -> dict:
    """The results.json ``lyapunov`` entry: the model's exponent ``lam`` (None or non-finite: not measured), the true
    system's (:func:`true_max_lyapunov`, when ``system`` is known), the literature value and the errors."""
    true = true_max_lyapunov(system, dt, steps) if system is not None else None
    rec = {"model_per_time": lam if lam is not None and math.isfinite(lam) else None, "true_per_time": true,
           "true_source": f"QR method on the true {system.name} vector field (RK4 map, dt={dt:g})" if system is not None
           else "unknown (no known system)",
           "literature": LITERATURE_LYAPUNOV.get(system.name) if system is not None else None,
           "abs_error": None, "rel_error": None}
    if rec["model_per_time"] is not None and true is not None:
        rec["abs_error"] = abs(rec["model_per_time"] - true)
        rec["rel_error"] = rec["abs_error"] / abs(true) if true != 0 else None
    return rec


LISTED_REGIONS = 64
"""Subregions a run's results.json lists (the most visited); the transition matrix is stored only up to this many."""


def _subregion_record(z_gen: np.ndarray, model) -> dict:
    """AL-RNN: the linear subregions its free run visits, their occupancy and the symbolic sequence (arXiv 2410.14240)."""
    stats = subregion_stats(z_gen, model)
    p, top = stats.pwl_units, slice(0, LISTED_REGIONS)  # the most visited first; P = 50 can visit ~10^5 of them
    return {"pwl_units": p, "max_regions": 2**p, "n_regions": stats.n_regions, "listed_regions": min(stats.n_regions, LISTED_REGIONS),
            "regions": stats.regions[top].tolist(), "bits": ["".join(map(str, stats.bits(int(r)))) for r in stats.regions[top]],
            "occupancy": stats.occupancy[top].tolist(), "n_crossings": stats.n_crossings, "mean_dwell": float(np.mean(stats.dwell)),
            "transitions": None if stats.transitions is None or stats.n_regions > LISTED_REGIONS else stats.transitions.tolist(),
            "symbols_head": stats.symbols[:40].tolist()}

