"""``dynlearn dsr fit`` / ``dsr eval`` jobs: run folders, the evaluation protocol, failures reported as failures, bad input."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tyro

from dynlearn.data.systems import Lorenz63, simulate
from dynlearn.dsr import AbstractLatentModel, ShallowPLRNN
from dynlearn.dsr import io
from dynlearn.dsr.dispatch import plrnn_fit_config
from dynlearn.dsr.evaluation import evaluate_model
from dynlearn.dsr.jobs import DSREval, DSRFit, run_eval, run_fit
from dynlearn.errors import ConfigError, DataError, DynlearnError, OutputExistsError
from dynlearn.metrics.dsr import RK4FlowMap
from dynlearn.results import check_results


def _strict_json(path):
    """Read JSON refusing NaN/Infinity (a failure must never be written as a number)."""
    def refuse(token):
        raise AssertionError(f"{path} holds {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


def _small_fit(out, **overrides):
    options = {"data": "system:lorenz63", "model": "clipped-shplrnn", "latent": 3, "hidden": 20, "iterations": 200,
               "length": 2_000, "lyapunov_steps": 1_000, "out": out, "progress": False}
    return DSRFit(**(options | overrides))


class TrueLorenz(AbstractLatentModel):
    """The exact Lorenz-63 flow (RK4 over one dt) as a latent model: a perfect reconstruction, for known answers."""

    flow: RK4FlowMap
    obs_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def encode(self, x):
        return jnp.asarray(x, jnp.float32)

    def step(self, z, *, forcing=None):
        return self.flow(z)

    def observe(self, z):
        return z

    @property
    def n_params(self):
        return 3


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dsr") / "fit"
    return run_fit(_small_fit(out), log=lambda s: None)


@pytest.mark.slow
def test_fit_writes_a_valid_run_folder(fitted_run):
    results = _strict_json(fitted_run / "results.json")
    check_results(results)
    extra = results["extra"]
    assert results["task"] == "lorenz63" and results["method"] == "clipped-shplrnn+agtf"
    assert results["dataset"]["transitions"] == 2_000 and len(results["dataset"]["hash"]) == 16
    assert results["budget"]["steps"] == 200 and results["budget"]["fit_seed"] == 0
    assert extra["status"] == "ok" and extra["failure"] is None
    for name in ("D_stsp", "D_H", "PE"):
        assert math.isfinite(extra["metrics"][name]) and extra["metrics"][name] >= 0
    assert 0 <= extra["metrics"]["D_H"] <= 1
    assert extra["params"] == {"latent_map": 2 * 3 * 20 + 2 * 3 + 20, "observation": 0, "trained": 146, "total": 146}
    # the true exponent comes from the Lorenz equations (0.906 per unit time; 1,000 QR steps average over 10 time units)
    assert extra["lyapunov"]["true_per_time"] == pytest.approx(0.906, rel=0.25)
    assert extra["lyapunov"]["literature"] == 0.9056
    assert extra["protocol"]["free_run_steps"] == 2_500 and extra["protocol"]["transient_dropped"] == 500
    assert extra["data"]["standardization"] is not None and extra["fit"]["iterations"] == 200
    for name in ("attractor.png", "power_spectra.png", "loss.png"):
        assert (fitted_run / name).stat().st_size > 1_000
    assert _strict_json(fitted_run / "config.json")["model"] == "clipped-shplrnn"


@pytest.mark.slow
def test_eval_recomputes_the_metrics_of_the_saved_model(fitted_run, tmp_path):
    fit = _strict_json(fitted_run / "results.json")["extra"]
    out = run_eval(DSREval(fitted_run, out=tmp_path / "same"), log=lambda s: None)
    again = _strict_json(out / "results.json")
    check_results(again)
    # the same model on the same test series: the same numbers (deterministic free run from the first test point)
    for name in ("D_stsp", "D_H", "PE"):
        assert again["extra"]["metrics"][name] == pytest.approx(fit["metrics"][name], rel=1e-5)
    # new data: a fresh trajectory of the system, standardised with the run's training statistics
    other = run_eval(DSREval(fitted_run, "system:lorenz63", out=tmp_path / "new", length=1_500, data_seed=7), log=lambda s: None)
    new = _strict_json(other / "results.json")
    check_results(new)
    assert new["dataset"]["hash"] != fit["data"]["test_hash"] and new["dataset"]["transitions"] == 1_500
    assert new["extra"]["status"] == "ok" and (other / "attractor.png").is_file()


def test_a_perfect_model_scores_near_zero():
    """Known answers: the true flow as the model gives PE ~ 0, a small D_H and the true Lyapunov exponent."""
    x = simulate("lorenz63", 4_000, key=jax.random.key(3)).trajectory(0)
    model = TrueLorenz(flow=RK4FlowMap(Lorenz63().vector_field, 0.01, 4), obs_dim=3, latent_dim=3)
    record, x_gen, z_gen = evaluate_model(model, x, 0.01, system=Lorenz63(), lyapunov_steps=5_000, pe_steps=20)
    assert record["status"] == "ok" and z_gen is None and x_gen.shape == x.shape
    assert record["metrics"]["PE"] < 1e-4  # RK4 with 4 substeps vs the adaptive solver that made the data
    assert record["metrics"]["D_H"] < 0.1
    # two 4,000-point runs fill the 30^3 bins sparsely (measured: 14% of the true mass in bins the other misses)
    assert record["occupancy"]["missed"] < 0.25 and record["occupancy"]["outside"] == 0.0
    assert record["lyapunov"]["rel_error"] < 0.15  # both exponents average over 50 time units
    assert record["lyapunov"]["model_per_time"] == pytest.approx(0.906, rel=0.15)


def _exploding_model():
    """A shPLRNN whose linear part doubles the state every step: its free run blows up."""
    model = ShallowPLRNN.init(3, 3, 8, clipped=False, key=jax.random.key(0))
    return eqx.tree_at(lambda m: m.A, model, jnp.full((3,), 2.0, jnp.float32))


def test_a_diverging_free_run_is_a_failure_not_a_number():
    x = simulate("lorenz63", 1_000, key=jax.random.key(1)).standardize()[0].trajectory(0)
    record, x_gen, _ = evaluate_model(_exploding_model(), x, 0.01, system=None, lyapunov_steps=500)
    assert record["status"] == "diverged" and x_gen is None
    assert record["failure"]["stage"] == "free_run" and "blew up" in record["failure"]["reason"]
    assert record["metrics"] == {"D_stsp": None, "D_H": None, "PE": None}
    assert record["lyapunov"]["model_per_time"] is None and record["lyapunov"]["rel_error"] is None


def test_a_run_outside_the_data_is_a_failure_not_a_number():
    """Bounded but away from the data (a fixed point outside its range): D_stsp has no generated point to count."""
    x = simulate("lorenz63", 1_000, key=jax.random.key(1)).standardize()[0].trajectory(0)
    model = ShallowPLRNN.init(3, 3, 8, clipped=True, key=jax.random.key(0))
    model = eqx.tree_at(lambda m: (m.A, m.W1, m.h1), model, (jnp.zeros(3), jnp.zeros((3, 8)), jnp.full((3,), 5.0)))
    record, x_gen, _ = evaluate_model(model, x, 0.01, system=None, lyapunov_steps=500)
    assert record["status"] == "diverged" and x_gen is None and "left the data's range" in record["failure"]["reason"]
    assert record["metrics"] == {"D_stsp": None, "D_H": None, "PE": None}


@pytest.mark.slow
def test_eval_of_a_diverging_model_writes_a_failure(fitted_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "results.json"):
        (run / name).write_text((fitted_run / name).read_text())
    io.save(run / "model", _exploding_model())
    out = run_eval(DSREval(run, figures=True), log=lambda s: None)
    results = _strict_json(out / "results.json")
    check_results(results)
    assert results["extra"]["status"] == "diverged" and results["extra"]["metrics"]["D_stsp"] is None
    assert not (out / "attractor.png").exists()


@pytest.mark.slow
def test_training_divergence_is_reported(tmp_path):
    cfg = _small_fit(tmp_path / "nan", model="shplrnn", training="gtf", alpha=0.0, lr=1e4, lr_end=1e4, iterations=100)
    out = run_fit(cfg, log=lambda s: None)
    results = _strict_json(out / "results.json")
    check_results(results)
    extra = results["extra"]
    assert extra["status"] == "diverged" and extra["failure"]["stage"] == "training"
    assert extra["metrics"] == {"D_stsp": None, "D_H": None, "PE": None} and not (out / "model").exists()
    with pytest.raises(DataError, match="no model"):
        run_eval(DSREval(out), log=lambda s: None)


@pytest.mark.slow
def test_baseline_models_save_and_load(tmp_path):
    pytest.importorskip("pysindy")
    from dynlearn.dsr.esn import ESNConfig, fit_esn
    from dynlearn.dsr.sindy import SINDyConfig, fit_sindy

    series = simulate("lorenz63", 1_500, key=jax.random.key(0)).standardize()[0]
    x0 = jnp.asarray(series.trajectory(0)[0])
    for model, cfg in (fit_sindy(series, SINDyConfig())[0], SINDyConfig()), (fit_esn(series, ESNConfig(reservoir_size=50, anchors=20))[0],
                                                                           ESNConfig(reservoir_size=50, anchors=20)):
        io.save(tmp_path / model.header()["model"], model, config=cfg)
        loaded = io.load(tmp_path / model.header()["model"])
        np.testing.assert_array_equal(np.asarray(loaded.generate(50, x0=x0)), np.asarray(model.generate(50, x0=x0)))


def test_the_cli_dataclasses_parse_with_tyro():
    cfg = tyro.cli(DSRFit, args=["system:rossler", "--model", "alrnn", "--pwl-units", "1", "--training", "stf", "--iterations", "50"])
    assert (cfg.data, cfg.model, cfg.pwl_units, cfg.training, cfg.iterations) == ("system:rossler", "alrnn", 1, "stf", 50)
    ev = tyro.cli(DSREval, args=["runs/x", "gtf:lorenz63"])
    assert str(ev.run) == "runs/x" and ev.data == "gtf:lorenz63"
    assert tyro.cli(DSREval, args=["runs/x"]).data is None
    long = tyro.cli(DSRFit, args=["gtf:lorenz63", "--model", "alrnn", "--iterations", "20000", "--decay-iterations", "100000"])
    assert (long.iterations, long.decay_iterations) == (20_000, 100_000)


def test_decay_iterations_reaches_the_fit_config():
    """DSRFit.decay_iterations is what the PLRNN's FitDSRConfig (saved with the model) gets; unset, the decay spans --iterations."""
    cfg = DSRFit(data="system:lorenz63", model="alrnn", iterations=20_000, decay_iterations=100_000)
    fit_cfg = plrnn_fit_config(cfg, "alrnn", 3)
    assert (fit_cfg.iterations, fit_cfg.decay_iterations, fit_cfg.lr, fit_cfg.lr_end) == (20_000, 100_000, 1e-3, 1e-5)
    assert plrnn_fit_config(DSRFit(data="system:lorenz63"), "clipped_shplrnn", 3).decay_iterations is None
    assert plrnn_fit_config(DSRFit(data="system:lorenz63", select_every=1000), "alrnn", 3).select_every == 1000


def test_selection_is_recorded_in_the_results(tmp_path):
    record = run_fit(_small_fit(tmp_path / "fit", select_every=100), log=lambda s: None)
    fit = _strict_json(tmp_path / "fit" / "results.json")["extra"]["fit"]
    assert [it for it, _ in fit["selection"]] == [100, 200] and fit["selected_iteration"] in (100, 200)
    assert fit["config"]["select_every"] == 100 and record is not None


@pytest.mark.parametrize("options, match", [
    ({"model": "lstm"}, "unknown --model"),
    ({"training": "bptt"}, "--training"),
    ({"iterations": 0}, "--iterations"),
    ({"alpha": 1.5}, "--alpha"),
    ({"noise": -0.1}, "--noise"),
    ({"train_fraction": 1.0}, "--train-fraction"),
    ({"decay_iterations": 0}, "--decay-iterations"),
    ({"model": "sindy", "decay_iterations": 1000}, "--decay-iterations applies to the PLRNNs"),
    ({"select_every": -5}, "--select-every"),
    ({"model": "esn", "select_every": 1000}, "--select-every applies to the PLRNNs"),
])
def test_bad_options_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        DSRFit(**({"data": "system:lorenz63"} | options))


def test_bad_data_gives_clear_errors(tmp_path):
    for data, error, match in (("system:", ConfigError, "names no system"), ("system:pendulum", ConfigError, "unknown system"),
                               ("gtf:mnist", ConfigError, "unknown name"), (str(tmp_path / "missing.npy"), DataError, "no such file")):
        with pytest.raises(error, match=match):
            run_fit(_small_fit(tmp_path / "out", data=data), log=lambda s: None)
    assert not (tmp_path / "out").exists()  # nothing written for bad input
    with pytest.raises(ConfigError, match="--test is for a file"):
        run_fit(_small_fit(tmp_path / "out", test="x.npy"), log=lambda s: None)
    short = tmp_path / "short.npy"
    np.save(short, np.random.default_rng(0).normal(size=(150, 3)).astype(np.float32))
    with pytest.raises(DataError, match="seq_len"):  # 120 training points cannot fill one window of 201
        run_fit(_small_fit(tmp_path / "short", data=str(short)), log=lambda s: None)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(OutputExistsError):
        run_fit(_small_fit(tmp_path / "taken"), log=lambda s: None)
    with pytest.raises(DataError, match="not a finished"):
        run_eval(DSREval(tmp_path / "taken"), log=lambda s: None)
    assert issubclass(OutputExistsError, DynlearnError)


@pytest.mark.slow
def test_eval_rejects_data_of_another_shape_or_rate(fitted_run, tmp_path):
    wrong_dim = tmp_path / "two.npy"
    np.save(wrong_dim, np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32))
    with pytest.raises(DataError, match="channels"):
        run_eval(DSREval(fitted_run, str(wrong_dim), out=tmp_path / "e1", dt=0.01), log=lambda s: None)
    with pytest.raises(DataError, match="sampled every"):
        run_eval(DSREval(fitted_run, "system:lorenz63", out=tmp_path / "e2", dt=0.02, length=500), log=lambda s: None)


@pytest.mark.slow
def test_a_stopped_fit_resumes_with_resume_and_matches_an_uninterrupted_one(tmp_path):
    """`dsr fit` stopped by SIGTERM / Ctrl-C (interrupt.request) after its first block keeps the training state; the
    same options with --resume finish it with the uninterrupted run's numbers, and the spent state is removed."""
    from dynlearn import interrupt

    run_fit(_small_fit(tmp_path / "full", select_every=100), log=lambda s: None)
    with interrupt.graceful_stop():
        interrupt.request()
        with pytest.raises(interrupt.Stopped, match="step 100"):
            run_fit(_small_fit(tmp_path / "stopped", select_every=100), log=lambda s: None)
    assert (tmp_path / "stopped" / "checkpoint" / "state.eqx").is_file()
    with pytest.raises(OutputExistsError, match="--resume"):  # without --resume the folder is refused, and told how
        run_fit(_small_fit(tmp_path / "stopped", select_every=100), log=lambda s: None)
    run_fit(_small_fit(tmp_path / "stopped", select_every=100, resume=True, progress=True), log=lambda s: None)
    a, b = (_strict_json(tmp_path / run / "results.json")["extra"] for run in ("full", "stopped"))
    assert a["fit"]["selection"] == b["fit"]["selection"] and a["fit"]["final_loss"] == b["fit"]["final_loss"]
    assert a["metrics"] == b["metrics"]
    assert not (tmp_path / "stopped" / "checkpoint").exists()
    before = (tmp_path / "stopped" / "results.json").stat().st_mtime_ns  # resuming a finished run changes nothing
    from dynlearn.errors import RunFinished

    with pytest.raises(RunFinished, match="finished"):  # (the CLI says so and exits 0)
        run_fit(_small_fit(tmp_path / "stopped", select_every=100, resume=True), log=lambda s: None)
    assert (tmp_path / "stopped" / "results.json").stat().st_mtime_ns == before


def test_a_semicolon_csv_fits_with_delimiter(tmp_path):
    """`dsr fit FILE.csv --delimiter ';'` (and `dsr eval` on it): the separator is the user's, not a guess."""
    series = simulate(Lorenz63(), 1_500, 0.01, key=jax.random.key(0), standardize=True)
    values = np.asarray(series.values[0])
    path = tmp_path / "l63.csv"
    path.write_text("x;y;z\n" + "\n".join(";".join(f"{v:.6f}" for v in row) for row in values) + "\n")
    out = run_fit(_small_fit(tmp_path / "fit", data=str(path), delimiter=";", dt=0.01), log=lambda s: None)
    record = json.loads((out / "results.json").read_text())
    assert record["extra"]["data"]["train_shape"][-1] == 3
    with pytest.raises(DataError, match="delimiter"):
        run_fit(_small_fit(tmp_path / "comma", data=str(path), dt=0.01), log=lambda s: None)
