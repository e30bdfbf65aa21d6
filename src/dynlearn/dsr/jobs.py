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

This module is the job layer only: DATA is read by :mod:`.data_sources`, the model fitted by :mod:`.dispatch`, saved and
loaded by :mod:`.io`, measured by :mod:`.evaluation` and drawn by :mod:`.figures`.

The evaluation protocol behind the benchmark tables is written down in ``benchmarks/dsr_protocol.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import jax
import tyro

from ..checkpoint import remove_dir
from ..errors import ConfigError, DataError, DynlearnError
from . import io
from .data_sources import load_dsr_data, load_eval_data
from .dispatch import PLRNN_MODELS, TRAINING_CHOICES, canonical_model, fit_model, method_name
from .evaluation import evaluate_model, lyapunov_record, parameter_counts
from .figures import plot_loss, write_figures

# --------------------------------------------------------------------------------------------------------------------
# Command-line configs


@dataclasses.dataclass(frozen=True)
class DSRFit:
    """Fit a dynamical-systems reconstruction model to a time series (DATA), free-run it and measure it. Writes a run
    folder: config.json, model/, results.json (D_stsp, D_H, PE(20), Lyapunov exponent), figures."""

    data: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")]
    """a .npy/.npz/.csv series, gtf:lorenz63 | gtf:ecg | gtf:eeg (the GTF paper's data), or system:NAME (lorenz63, rossler,
    lorenz96, thomas, chua, vanderpol) simulated"""
    model: str = "clipped-shplrnn"
    """shplrnn | clipped-shplrnn | alrnn, or a baseline: sindy | node | esn"""
    training: str | None = None
    """teacher forcing for the PLRNNs: gtf (constant --alpha) | agtf (adaptive alpha) | stf (sparse, every --tau steps);
    default agtf for the shPLRNNs, stf for the AL-RNN"""
    latent: int | None = None
    """latent units M (default: the data dimension for the shPLRNNs, max(20, N) for the AL-RNN, 400 for the ESN)"""
    hidden: int | None = None
    """shPLRNN hidden width H (default 100); neural ODE: MLP width (default 64)"""
    pwl_units: int = 2
    """AL-RNN piecewise-linear units P"""
    iterations: int = 20_000
    """gradient steps (PLRNNs, neural ODE; SINDy and the ESN are fitted in closed form)"""
    decay_iterations: int | None = None
    """PLRNNs: steps over which the learning rate decays from --lr to --lr-end (default --iterations); e.g. 100000 with
    --iterations 20000 trains for the first 20000 steps of the AL-RNN reference's 100000-step schedule"""
    alpha: float = 0.1
    """GTF alpha for --training gtf (agtf starts at 1 and adapts)"""
    tau: int | None = None
    """sparse-TF interval (default 16)"""
    lr: float | None = None
    """initial learning rate (default: 1e-3 for the PLRNNs, 3e-3 for the neural ODE)"""
    lr_end: float | None = None
    """final learning rate (default: 1e-6 shPLRNN, 1e-5 AL-RNN and neural ODE)"""
    seq_len: int | None = None
    """training subsequence length (default 200)"""
    batch_noise: float | None = None
    """std of Gaussian noise added to training batches (default: 0 shPLRNN, 0.05 AL-RNN as its reference code)"""
    select_every: int = 0
    """PLRNNs: every this many iterations score a 10,000-step free run by D_stsp against the *training* series and keep
    the best model (the AL-RNN repository's Python routine: 1000); 0 keeps the final model"""
    seed: int = 0
    """seed of the model's initialisation and its batches"""
    out: Path = Path("runs/dsr")
    """run folder"""
    force: bool = False
    """replace an existing run folder"""
    resume: bool = False
    """continue the fit in --out from its checkpoint (PLRNNs: written every minute and on SIGTERM / Ctrl-C); the other
    options must be those it was started with"""
    test: str | None = None
    """test series (a file) for a file DATA; default: the last (1 - train_fraction) of DATA"""
    train_fraction: float = 0.8
    """a file DATA without --test: share of each trajectory used for training"""
    length: int = 100_000
    """system DATA: samples in the training series (and in the test series unless --test-length)"""
    test_length: int | None = None
    """system DATA: samples in the test series (default --length)"""
    dt: float | None = None
    """sampling interval (system DATA: default the system's; file DATA: default from the file, else 1)"""
    noise: float = 0.05
    """system DATA: observation noise on the training series, as a fraction of each channel's std (test is noise-free)"""
    data_seed: int = 0
    """system DATA: seed of the simulated initial states and noise (fixed across model seeds)"""
    standardize: bool = True
    """z-score file and system DATA with the training series' statistics (gtf: data are used as published)"""
    lyapunov_steps: int = 50_000
    """steps of the QR method for the largest Lyapunov exponents (model and true system)"""
    pe_steps: int = 20
    """n of the n-step prediction error PE(n)"""
    figures: bool = True
    """write the figures"""
    progress: bool = True
    """show a progress bar while fitting"""

    def __post_init__(self):
        canonical_model(self.model)
        bad = []
        if self.training is not None and self.training not in TRAINING_CHOICES:
            bad.append(f"--training {self.training!r} is not one of {list(TRAINING_CHOICES)}")
        for name in ("pwl_units", "iterations", "length", "lyapunov_steps", "pe_steps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= (0 if name == "pwl_units" else 1)):
                bad.append(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("latent", "hidden", "tau", "seq_len", "test_length", "decay_iterations"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                bad.append(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.decay_iterations is not None and self.decay_iterations > 2**24:
            bad.append(f"--decay-iterations must be <= 2^24 (counted in float32), got {self.decay_iterations}")
        if self.decay_iterations is not None and canonical_model(self.model) not in PLRNN_MODELS:
            bad.append(f"--decay-iterations applies to the PLRNNs ({', '.join(PLRNN_MODELS)}), not --model {self.model}")
        if not (isinstance(self.select_every, int) and self.select_every >= 0):
            bad.append(f"--select-every must be an integer >= 0 (0: keep the final model), got {self.select_every!r}")
        elif self.select_every and canonical_model(self.model) not in PLRNN_MODELS:
            bad.append(f"--select-every applies to the PLRNNs ({', '.join(PLRNN_MODELS)}), not --model {self.model}")
        if not 0.0 <= self.alpha <= 1.0:
            bad.append(f"--alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 < self.train_fraction < 1.0:
            bad.append(f"--train-fraction must be in (0, 1), got {self.train_fraction}")
        for name in ("lr", "lr_end", "dt"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                bad.append(f"--{name.replace('_', '-')} must be positive, got {value}")
        for name in ("noise", "batch_noise"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                bad.append(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if bad:
            raise ConfigError("dsr fit: " + "; ".join(bad) + ".")


@dataclasses.dataclass(frozen=True)
class DSREval:
    """Re-compute the reconstruction metrics of a saved `dsr fit` run (DIR) on its test series, or on new DATA
    (standardised with the run's training statistics). Writes DIR/eval (or --out): results.json and figures."""

    run: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DIR")]
    """run folder of `dynlearn dsr fit`"""
    data: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")] = None
    """test data: a file (used whole), gtf:NAME (its test split) or system:NAME (a fresh noise-free trajectory);
    default: the run's own test series"""
    out: Path | None = None
    """output folder (default: DIR/eval)"""
    force: bool = False
    """replace an existing output folder"""
    length: int | None = None
    """system DATA: samples (default: the run's test length)"""
    dt: float | None = None
    """sampling interval of DATA (default: the run's)"""
    data_seed: int = 1
    """system DATA: seed of the fresh trajectory (the fit used data_seed for its own)"""
    lyapunov_steps: int | None = None
    """QR steps for the Lyapunov exponents (default: the run's)"""
    pe_steps: int | None = None
    """n of PE(n) (default: the run's)"""
    figures: bool = True
    """write the figures"""


# --------------------------------------------------------------------------------------------------------------------
# Results


def _results(*, method: str, task: str, dataset: dict, iterations: int, seed: int, wall: float, steps_per_s, extra: dict) -> dict:
    from ..results import json_safe, make_results

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
    from ..results import RunFolder
    from .fit import TrainingDivergedError

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
    from ..results import RunFolder

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
        data = load_eval_data(cfg.data, fit_record, stats, length=cfg.length, dt=cfg.dt, data_seed=cfg.data_seed)
    if data.test.dim != model.obs_dim:
        raise DataError(str(cfg.data or fit_cfg.data), f"has {data.test.dim} channels; the model observes {model.obs_dim}.",
                        "evaluate on data of the system the model was fitted to.")
    out = cfg.out or folder / "eval"
    config = dataclasses.asdict(cfg) | {"run": str(cfg.run), "out": str(out)}
    evaluation = RunFolder.open(out, config, force=cfg.force)
    lyap_steps = cfg.lyapunov_steps or fit_cfg.lyapunov_steps
    pe_steps = cfg.pe_steps or fit_cfg.pe_steps
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
