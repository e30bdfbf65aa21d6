"""A model-based method is one file: a toy method defined and registered here (its config class, its own field, its
hooks) gets a ``dynlearn train`` command and trains through it; each generated command shows its own method's fields
only; presets apply from DATA's name or --preset, and flags typed beside them win."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import jax
import jax.numpy as jnp
import pytest

import dynlearn as dl
from dynlearn import agents
from dynlearn.algos import MOBILEConfig, MOPOConfig, ModelBasedConfig, load_config, register, registry
from dynlearn.algos import model_based
from dynlearn.cli import main
from dynlearn.errors import ConfigError
from dynlearn.rollout import Penalty, RolloutHooks
from tests.helpers import episodes_arrays, write_h5


def one_per_row(outputs, y=None, *, part="obs"):
    """An uncertainty of 1 for every row (the toy's penalty is its field alone)."""
    return jnp.ones(outputs.mean.shape[1:-1], jnp.float32)


@dataclasses.dataclass(frozen=True)
class TollConfig(ModelBasedConfig):
    """Toll: MBPO with a constant reward penalty (a toy method)."""

    name: ClassVar[str] = "toll"

    toll: float = 0.5
    """reward subtracted from every model transition"""

    def agent(self):
        sac = agents.get("sac")
        return sac, sac.Config(hidden=(32, 32), batch_size=64)

    def hooks(self) -> RolloutHooks:
        return RolloutHooks(penalty=Penalty(one_per_row, coef=self.toll))

    def target_adjust(self, model, agent, n_real):
        return None


@pytest.fixture
def toll(monkeypatch):
    """TollConfig registered for one test (the registry as it was afterwards)."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    return register(TollConfig)


@pytest.fixture(scope="module")
def pendulum_files(tmp_path_factory):
    """A small Pendulum-v1 dataset and a tiny ensemble fitted on it, as files."""
    folder = tmp_path_factory.mktemp("pendulum")
    task = dl.tasks.get("Pendulum-v1")
    data = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=1000, seed=0, name="pendulum-random")
    path = dl.data.write_d4rl(folder / "pendulum-random.hdf5", data)
    cfg = dl.models.EnsembleConfig(members=3, elites=2, hidden=(16, 16), weight_decay=(2.5e-5, 5e-5, 1e-4))
    model, _ = dl.models.fit(cfg, data, key=jax.random.key(0), cfg=dl.models.FitConfig(max_epochs=3, progress=False), task=task)
    return path, dl.models.save(folder / "model", model)


_SMALL = ["--steps", "200", "--seeds", "1", "--rollout-batch", "100", "--rollout-every", "100", "--eval-every", "200",
          "--checkpoint-every", "200", "--eval-episodes", "1"]


def test_a_method_registered_in_one_file_trains_through_the_cli(tmp_path, capsys, toll, pendulum_files):
    data, model = pendulum_files
    out = tmp_path / "run"
    assert main(["train", "toll", str(data), "--model", str(model), "--toll", "2.5", *_SMALL, "--out", str(out)]) == 0
    record = json.loads((out / "config.json").read_text())["model_based"]
    assert record["method"] == "toll" and record["toll"] == 2.5  # its own flag reached the run's config
    assert load_config(out) == TollConfig(model=str(model), toll=2.5, steps=200, seeds=1, rollout_batch=100, rollout_every=100,
                                          eval_every=200, checkpoint_every=200, eval_episodes=1)
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "toll" and results["extra"]["penalty_on_data"]["coef"] == 2.5
    history = json.loads((out / "seed_0" / "checkpoint" / "progress.json").read_text())["history"]
    assert [h["rollout/penalty"] for h in history] == [1.0, 1.0]  # the toy's hook ran in the rollouts
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["train", "toll", "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    assert "--toll FLOAT" in help_text and "reward subtracted from every model transition" in help_text
    # the registry is read when the commands are built: the usage lists it, and a model-free agent refuses its flag
    assert main([]) == 2 and "toll" in capsys.readouterr().out
    assert main(["train", "td3bc", str(data), "--toll", "1", "--out", str(tmp_path / "td3bc")]) == 2
    assert "--toll only apply to the offline model-based methods" in capsys.readouterr().err


def test_register_refuses_what_is_no_method(monkeypatch):
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    assert register(MOPOConfig) is MOPOConfig  # the same class again: nothing changes
    with pytest.raises(ConfigError, match="'mopo' is taken by dynlearn.algos.mopo.MOPOConfig"):
        register(dataclasses.make_dataclass("Other", [], bases=(MOPOConfig,), frozen=True))
    with pytest.raises(ConfigError, match="another `dynlearn train` command"):
        register(dataclasses.make_dataclass("Sac", [], bases=(TollConfig,), frozen=True, namespace={"name": "sac"}))
    with pytest.raises(ConfigError, match="does not implement agent, hooks, target_adjust"):
        register(dataclasses.make_dataclass("Half", [], bases=(ModelBasedConfig,), frozen=True, namespace={"name": "half"}))
    with pytest.raises(ConfigError, match="not a ModelBasedConfig"):
        register(dict)


def test_a_saved_record_reloads_exactly_and_refuses_other_fields():
    cfg = MOBILEConfig.preset("hopper-medium", q_floor=float("-inf"), steps=2_000)
    record = json.loads(json.dumps(cfg.record()))  # as config.json holds it (strict JSON: no inf)
    assert record["q_floor"] == "-inf" and registry.config_from_record(record) == cfg
    with pytest.raises(ConfigError, match="does not have: eta"):
        registry.config_from_record(record | {"eta": 1.0})
    with pytest.raises(ConfigError, match="no value for mobile_samples"):
        registry.config_from_record({k: v for k, v in record.items() if k != "mobile_samples"})


def test_each_command_lists_its_own_methods_fields(capsys):
    for name, own, others in (("mopo", ("--penalty-coef", "--penalty-members", "--horizon", "--preset"),
                               ("--mobile-samples", "--candidates", "--eta", "--q-floor", "--reward-model", "--critics")),
                              ("mobile", ("--mobile-samples", "--q-floor", "--penalty-coef"), ("--penalty-members", "--candidates")),
                              ("morec-mopo", ("--candidates", "--reward-model", "--penalty-members"), ("--mobile-samples", "--eta"))):
        with pytest.raises(SystemExit):
            main(["train", name, "--help"])
        text = capsys.readouterr().out
        assert all(flag in text for flag in own), (name, text)
        assert not any(flag in text for flag in others), (name, text)


def test_another_methods_flag_is_refused_in_one_line_naming_its_methods(tmp_path, capsys, hopper_medium):
    assert main(["train", "mopo", str(hopper_medium), "--eta", "1", "--candidates=3", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "╭" not in err, err
    assert "--eta is an option of ravl" in err and "--candidates is an option of morec-mopo, morec-mobile" in err
    assert "not of mopo" in err and not (tmp_path / "run").exists()


@pytest.fixture
def hopper_medium(tmp_path):
    """A tiny file named like the hopper-medium dataset (its name picks the presets)."""
    path = tmp_path / "hopper-medium-v5.hdf5"
    write_h5(path, episodes_arrays(lengths=(40, 40), obs_dim=11, act_dim=3, ends=("timeout", "terminal")))
    return path


def test_the_preset_comes_from_the_dataset_name_or_preset_and_typed_flags_win(tmp_path, capsys, monkeypatch, hopper_medium):
    seen = []
    monkeypatch.setattr(model_based, "train_model_based", lambda data, task, cfg, out, **kw: seen.append(cfg))

    def config(*args):
        assert main(["train", *args, "--task", "Hopper-v5", "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
        return seen.pop()

    cfg = config("mopo", str(hopper_medium))
    assert (type(cfg), cfg.preset, cfg.horizon, cfg.penalty_coef) == (MOPOConfig, "hopper-medium", 5, 5.0)  # the paper's h, lambda
    assert cfg == MOPOConfig.preset("hopper-medium-v5")
    cfg = config("mopo", str(hopper_medium), "--penalty-coef", "2")
    assert (cfg.preset, cfg.horizon, cfg.penalty_coef) == ("hopper-medium", 5, 2.0)  # the flag beats the preset
    cfg = config("mopo", str(hopper_medium), "--preset", "hopper-medium-replay")
    assert (cfg.preset, cfg.penalty_coef) == ("hopper-medium-replay", 1.0)
    cfg = config("mobile", str(hopper_medium), "--alpha", "0.3")
    assert (cfg.preset, cfg.auto_alpha, cfg.alpha, cfg.penalty_coef) == ("hopper-medium", False, 0.3, 1.5)
    cfg = config("ravl", str(hopper_medium))
    assert (cfg.preset, cfg.critics) == (None, 10)  # no presets: the defaults
    assert main(["train", "mopo", str(hopper_medium), "--preset", "nowhere", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --preset: mopo has no preset 'nowhere'; known: ") and "Fix:" in err
    assert main(["train", "mopo", str(hopper_medium), "--task", "Hopper-v5", "--horizon", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--horizon must be >= 1, got 0" in capsys.readouterr().err
