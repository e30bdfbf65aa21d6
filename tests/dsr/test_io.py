"""dynlearn.dsr.io: one save/load path for every DSR model kind (PLRNNs and the SINDy, neural-ODE and ESN baselines)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import ConfigError, DataError, dsr
from dynlearn.data.systems import simulate
from dynlearn.dsr import io
from dynlearn.dsr.esn import ESNConfig, fit_esn
from dynlearn.dsr.neural_ode import NeuralODE, NeuralODEConfig
from dynlearn.dsr.sindy import SINDyConfig, fit_sindy


@pytest.fixture(scope="module")
def series():
    return simulate("lorenz63", 1_500, key=jax.random.key(0)).standardize()[0]


@pytest.fixture(scope="module")
def baselines(series):
    """(model, the config that fitted it) for each baseline; the neural ODE untrained (its structure is what matters)."""
    esn_cfg = ESNConfig(reservoir_size=31, anchors=20)  # odd M: the squared features take r[::2] (16 of 31)
    node_cfg = NeuralODEConfig(width=8, depth=2, activation="softplus", substeps=2)
    node = NeuralODE.init(3, dt=series.dt, width=8, depth=2, activation="softplus", time_scale=2.0, substeps=2, key=jax.random.key(1))
    return [(fit_sindy(series, SINDyConfig())[0], SINDyConfig()), (fit_esn(series, esn_cfg, key=jax.random.key(2))[0], esn_cfg),
            (node, node_cfg)]


def test_every_baseline_round_trips_exactly_with_its_config(series, baselines, tmp_path):
    x0 = jnp.asarray(series.trajectory(0)[0])
    for model, cfg in baselines:
        folder = tmp_path / model.header()["model"]
        io.save(folder, model, config=cfg)
        loaded = io.load(folder)
        assert type(loaded) is type(model) and loaded.header() == model.header()
        np.testing.assert_array_equal(np.asarray(loaded.generate(40, x0=x0)), np.asarray(model.generate(40, x0=x0)))
        assert io.read_config(folder) == cfg and type(io.read_config(folder)) is type(cfg)
    # the neural ODE's activation comes back from its header, also when no fit config was stored
    node = io.load(tmp_path / "neural_ode")
    assert node.mlp.activation is jax.nn.softplus
    io.save(tmp_path / "node_no_config", node)
    assert io.load(tmp_path / "node_no_config").mlp.activation is jax.nn.softplus


def test_save_rejects_models_it_cannot_rebuild_and_mismatched_configs(baselines, tmp_path):
    model, _ = baselines[0]
    with pytest.raises(ConfigError, match="fitted by a SINDyConfig"):
        io.save(tmp_path / "m", model, config=dsr.FitDSRConfig())
    with pytest.raises(ConfigError, match="cannot be saved"):
        io.save(tmp_path / "m", object())
    assert not (tmp_path / "m").exists()


def _edit(folder, change):
    path = folder / "config.json"
    header = json.loads(path.read_text())
    change(header)
    path.write_text(json.dumps(header))


def test_load_rejects_edited_baseline_checkpoints(baselines, tmp_path):
    esn, cfg = baselines[1]
    io.save(tmp_path / "esn", esn, config=cfg)
    _edit(tmp_path / "esn", lambda h: h["config"].update(anchors=19))
    with pytest.raises(DataError, match="leaf shapes"):
        io.load(tmp_path / "esn")
    _edit(tmp_path / "esn", lambda h: h["config"].pop("leak_rate"))
    with pytest.raises(DataError, match="incomplete or inconsistent 'esn' model config"):
        io.load(tmp_path / "esn")
    _edit(tmp_path / "esn", lambda h: h["config"].update(model="koopman"))
    with pytest.raises(DataError, match="not a DSR model checkpoint"):
        io.load(tmp_path / "esn")
    _edit(tmp_path / "esn", lambda h: h.update(dynlearn_version="0.0.1"))
    with pytest.raises(DataError, match="written by dynlearn 0.0.1"):
        io.load(tmp_path / "esn")


def test_read_config_rejects_unknown_keys_and_fills_in_new_ones(tmp_path, key):
    model = dsr.build_model("alrnn", 3, 6, pwl_units=2, key=key)
    cfg = dsr.FitDSRConfig(model="alrnn", latent_dim=6, iterations=10)
    io.save(tmp_path / "m", model, config=cfg)
    # a config saved before FitDSRConfig.decay_iterations existed loads with its default (None: the decay spans iterations)
    _edit(tmp_path / "m", lambda h: h["config"]["fit_config"].pop("decay_iterations"))
    assert io.read_config(tmp_path / "m") == cfg and io.read_config(tmp_path / "m").decay_iterations is None
    _edit(tmp_path / "m", lambda h: h["config"]["fit_config"].update(learning_rate=1.0))
    with pytest.raises(DataError, match="unknown FitDSRConfig keys"):
        io.read_config(tmp_path / "m")
