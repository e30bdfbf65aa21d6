"""``dynlearn dsr fit`` and ``dynlearn dsr eval``: fit a reconstruction model to a time series, free-run it, measure it.

**fit** (:class:`DSRFit`, :func:`run_fit`): read DATA (a ``.npy`` / ``.npz`` / ``.csv`` file, a dataset of the GTF paper
``gtf:lorenz63`` / ``gtf:ecg`` / ``gtf:eeg``, or a simulated system ``system:lorenz63`` / ``system:rossler`` /
``system:lorenz96`` ...), fit one model (shPLRNN / clipped shPLRNN / AL-RNN with GTF, aGTF or sparse TF; or the SINDy,
neural-ODE and echo-state baselines), then evaluate it on the test series by the protocol of the GTF reference code
(Hess et al., ICML 2023, arXiv 2306.04406; DurstewitzLab/GTF-shPLRNN ``src/evaluation.jl``): free-run ``1.25 T`` steps
from the first test point, drop the first ``0.25 T`` as transient, and compare the remaining ``T`` points with the ``T``
test points by D_stsp and D_H; PE(20) on the test series; the largest Lyapunov exponent of the model (QR method on its
Jacobians, per unit time) against the true system's where it is known. The run folder holds ``config.json``, the model
(``model/``, :func:`dynlearn.dsr.io.save`), ``results.json`` (schema ``dynlearn.results/1``; DSR metrics under
``extra``) and figures: ``attractor.png`` (true vs generated, 3-D and 2-D projections), ``power_spectra.png``,
``loss.png`` (gradient-trained models) and, for an AL-RNN, ``occupancy.png`` (linear subregions visited and the
symbolic sequence; Brenner et al., NeurIPS 2024, arXiv 2410.14240).

**A free run that diverges** (NaN/inf, or a blow-up far outside the data: :func:`dynlearn.metrics.dsr.is_diverged`),
and a training run that diverges, are failures: ``extra.status = "diverged"`` with the stage and reason, and every
metric ``null``; never a number.

**eval** (:class:`DSREval`, :func:`run_eval`): re-compute the metrics of a saved run on its own test series or on new
DATA (standardised with the run's training statistics), into ``DIR/eval`` (or ``--out``).

This module is the job layer only: its configs are in :mod:`.job_config`, DATA is read by :mod:`.data_sources`, the
model fitted by :mod:`.dispatch`, saved and loaded by :mod:`.io`, measured by :mod:`.evaluation` and drawn by
:mod:`dynlearn.report.dsr_figures`.

The evaluation protocol behind the benchmark tables is written down in ``benchmarks/dsr_protocol.md``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from ..checkpoint import remove_dir
from ..errors import ConfigError, DataError, DynlearnError
from ..report.dsr_figures import plot_loss, write_figures
from ..results import RunFolder, json_safe, make_results
from . import io
from .data_sources import load_dsr_data, load_eval_data
from .dispatch import fit_model, method_name
from .evaluation import evaluate_model, lyapunov_record, parameter_counts
from .job_config import DSREval, DSRFit, canonical_model
from .sequences import TrainingDivergedError

# --------------------------------------------------------------------------------------------------------------------
# Results


def _results(*, method: str, task: str, dataset: dict, iterations: int, seed: int, wall: float, steps_per_s, extra: dict) -> dict:
    budget = {"steps": int(iterations), "seeds": 0, "fit_seed": int(seed),
              "note": "one model fit (fit_seed): DSR metrics are in extra.metrics, extra.lyapunov; no policy seeds or scores"}
    return json_safe(make_results(method=method, task=task, dataset=dataset, budget=budget, seed_scores=[], wall_time_s=wall,
                               steps_per_s=steps_per_s, extra=extra))


def _summary_line(record: dict) -> str:
    if record["status"] != "ok":
        return f"FAILED ({record['status']}, {record['failure']['stage']}): {record['failure']['reason']}"
    m, lyap = record["metrics"], record["lyapunov"]
    line = f"D_stsp {m['D_stsp']:.3f}  D_H {m['D_H']:.3f}  PE({record['protocol']['pe_n']}) {m['PE']:.3g}"
    if lyap.get("model_per_time") is not None:
        line += f"  lambda_max {lyap['model_per_time']:.3f}"
        if lyap.get("true_per_time") is not None:
            line += f" (true {lyap['true_per_time']:.3f}, rel. error {lyap['rel_error']:.1%})"
    return line


_HANDLING = ("force", "resume", "progress")
"""DSRFit fields that say how to run, not what to fit: not part of the run's config (a resumed run may differ in them)."""


def run_fit(cfg: DSRFit, *, log: Callable[[str], None] = print) -> Path:
    """Fit, free-run and measure one model; write the run folder ``cfg.out`` and return it (see the module docstring).

    A run whose training or free run diverges is still written, with ``extra.status = "diverged"``."""
    if not isinstance(cfg, DSRFit):
        raise ConfigError(f"run_fit: cfg must be a DSRFit, got {type(cfg).__name__}.")
    start = time.perf_counter()
    data = load_dsr_data(cfg)
    x_test = data.test.trajectory(0)
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _HANDLING} | {"out": str(cfg.out)}
    run = RunFolder.open(cfg.out, config, resume=cfg.resume, force=cfg.force)
    if cfg.resume and run.file("results.json").is_file():
        log(f"dsr fit: {run.path} is finished; nothing to resume (dynlearn dsr eval {run.path} re-measures it)")
        return run.path
    name = canonical_model(cfg.model)
    log(f"dsr fit: {name} on {data.record['source']} (train {tuple(data.train.values.shape)}, test {tuple(data.test.values.shape)}, "
        f"dt {data.train.dt:g}), seed {cfg.seed}{' (resumed)' if cfg.resume else ''}")
    fitted, fit_failure = None, None
    checkpoint = run.file("checkpoint")
    try:
        fitted = fit_model(cfg, data.train, key=jax.random.key(cfg.seed), checkpoint=checkpoint)
    except TrainingDivergedError as e:
        fit_failure = str(e)
    remove_dir(checkpoint)  # the fit ended: its training state is spent
    method = method_name(cfg)
    extra: dict[str, Any] = {"data": data.record | {"standardization": None if data.stats is None else
                                                    {"mean": data.stats[0], "std": data.stats[1]}}}
    if fitted is None:
        record = {"status": "diverged", "failure": {"stage": "training", "reason": fit_failure},
                  "metrics": {"D_stsp": None, "D_H": None, "PE": None},
                  "lyapunov": lyapunov_record(None, data.system, data.test.dt, cfg.lyapunov_steps)}
        extra |= record | {"fit": {"iterations": cfg.iterations}, "params": None, "model": None, "figures": []}
        fit_wall, rate = time.perf_counter() - start, None
    else:
        io.save(run.file("model"), fitted.model, config=fitted.fit_config)
        eval_start = time.perf_counter()
        record, x_gen, z_gen = evaluate_model(fitted.model, x_test, data.test.dt, system=data.system,
                                              lyapunov_steps=cfg.lyapunov_steps, pe_steps=cfg.pe_steps)
        eval_wall = time.perf_counter() - eval_start
        figures = []
        if cfg.figures:
            title = f"{method} on {data.task} (seed {cfg.seed}, {fitted.info['iterations']} it.)"
            figures = write_figures(run.path, x_test, x_gen, z_gen, fitted.model, data.test.dt, data.test.names, title)
            if fitted.losses is not None and len(fitted.losses):
                figures.append(plot_loss(run.file("loss.png"), fitted.losses, title=title).name)
        extra |= record | {"fit": fitted.info | {"config": fitted.fit_config.to_dict()}, "params": parameter_counts(fitted.model),
                           "model": fitted.model.header(), "eval_wall_s": eval_wall, "figures": figures}
        fit_wall, rate = fitted.info["wall_s"], fitted.info.get("iterations_per_s")
    extra["fit_wall_s"] = fit_wall
    dataset = {"name": data.record["source"], "hash": data.record["train_hash"],
               "transitions": data.train.length * data.train.n_trajectories,
               "test_hash": data.record["test_hash"], "test_transitions": data.test.length * data.test.n_trajectories}
    results = _results(method=method, task=data.task, dataset=dataset,
                       iterations=cfg.iterations if name not in ("sindy", "esn") else 0, seed=cfg.seed,
                       wall=time.perf_counter() - start, steps_per_s=rate, extra=extra)
    run.write_results(results)
    log(f"dsr fit: {_summary_line(extra)}; run folder {run.path}")
    return run.path


def run_eval(cfg: DSREval, *, log: Callable[[str], None] = print) -> Path:
    """Measure the model of a ``dsr fit`` run on its test series or on ``cfg.data``; write ``cfg.out`` (default
    ``DIR/eval``) with ``results.json`` and figures, and return it."""
    if not isinstance(cfg, DSREval):
        raise ConfigError(f"run_eval: cfg must be a DSREval, got {type(cfg).__name__}.")
    start = time.perf_counter()
    folder = Path(cfg.run)
    config_path, results_path = folder / "config.json", folder / "results.json"
    if not (config_path.is_file() and results_path.is_file()):
        raise DataError(str(folder), "is not a finished `dsr fit` run (config.json or results.json missing).",
                        "pass the --out folder of a completed `dynlearn dsr fit`.")
    try:
        fit_cfg = DSRFit(**{k: v for k, v in json.loads(config_path.read_text()).items() if k != "out"} | {"out": folder})
        fit_results = json.loads(results_path.read_text())
    except (TypeError, json.JSONDecodeError, DynlearnError) as e:
        raise DataError(str(config_path), f"cannot be read as a `dsr fit` config ({e}).",
                        "pass a run folder of `dynlearn dsr fit`.") from None
    if not (folder / "model" / "config.json").is_file():
        reason = (fit_results.get("extra", {}).get("failure") or {}).get("reason", "no model was saved")
        raise DataError(str(folder), f"has no model to evaluate ({reason}).", "evaluate a run whose training finished.")
    model = io.load(folder / "model")
    fit_record = fit_results["extra"]["data"]
    stand = fit_record.get("standardization")
    stats = None if stand is None else (stand["mean"], stand["std"])
    if cfg.data is None:
        if any(v is not None for v in (cfg.length, cfg.dt)):
            raise ConfigError("dsr eval: --length and --dt apply to a new DATA; without DATA the run's own test series is used.")
        data = load_dsr_data(fit_cfg)
        data = dataclasses.replace(data, record=data.record | {"note": "the run's own test series"})
    else:
        data = load_eval_data(cfg.data, fit_record, stats, length=cfg.length, dt=cfg.dt, data_seed=cfg.data_seed,
                              delimiter=cfg.delimiter)
    if data.test.dim != model.obs_dim:
        raise DataError(str(cfg.data or fit_cfg.data), f"has {data.test.dim} channels; the model observes {model.obs_dim}.",
                        "evaluate on data of the system the model was fitted to.")
    out = cfg.out if cfg.out is not None else folder / "eval"
    config = dataclasses.asdict(cfg) | {"run": str(cfg.run), "out": str(out)}
    evaluation = RunFolder.open(out, config, force=cfg.force)
    lyap_steps = fit_cfg.lyapunov_steps if cfg.lyapunov_steps is None else cfg.lyapunov_steps
    pe_steps = fit_cfg.pe_steps if cfg.pe_steps is None else cfg.pe_steps
    x_test = data.test.trajectory(0)
    record, x_gen, z_gen = evaluate_model(model, x_test, data.test.dt, system=data.system, lyapunov_steps=lyap_steps, pe_steps=pe_steps)
    method = fit_results.get("method", canonical_model(fit_cfg.model))
    figures = []
    if cfg.figures:
        title = f"{method} (run {folder.name}) on {data.record['source']}"
        figures = write_figures(evaluation.path, x_test, x_gen, z_gen, model, data.test.dt, data.test.names, title)
    extra = record | {"data": data.record, "params": parameter_counts(model), "model": model.header(), "figures": figures,
                      "run": str(folder), "fit_task": fit_results.get("task")}
    dataset = {"name": data.record["source"], "hash": data.record["test_hash"], "transitions": data.test.length * data.test.n_trajectories,
               "role": "test data", "fit_train_hash": fit_record.get("train_hash")}
    results = _results(method=method, task=data.task, dataset=dataset, iterations=0, seed=fit_cfg.seed,
                       wall=time.perf_counter() - start, steps_per_s=None, extra=extra)
    evaluation.write_results(results)
    log(f"dsr eval: {_summary_line(extra)}; output {evaluation.path}")
    return evaluation.path
