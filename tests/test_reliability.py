"""Issue 21, items 4, 6, 7, 13, 14: nothing silently wrong (values beyond float32, NaN scores, a 0 taken for the default),
strict JSON, outputs that follow the umask, and no run folder left behind by a refused run. Through the CLI where a user
meets them; small data made here."""

import json
import os
import stat

import numpy as np
import pytest

import dynlearn as dl
from dynlearn.checkpoint import save_module, write_json
from dynlearn.cli import main
from dynlearn.errors import DataError, TrainingFailedError
from dynlearn.results import RunFolder, SeedScore, make_results
from tests.helpers import episodes_arrays, write_h5


def _one_line_error(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def pendulum_file(tmp_path):
    """A tiny Pendulum-v1 dataset in the D4RL layout (dims 3 / 1)."""
    arrays = episodes_arrays(lengths=(30, 30), obs_dim=3, act_dim=1, ends=("timeout", "timeout"))
    path = tmp_path / "pendulum.hdf5"
    write_h5(path, arrays)
    return path


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


# ----- item 6: a 0 is an error, only an absent option means the default ------------------------------------------


@pytest.mark.parametrize("args, flag", [
    (["train", "bc", "{data}", "--task", "Pendulum-v1", "--steps", "0"], "--steps"),
    (["train", "mopo", "{data}", "--task", "Pendulum-v1", "--steps", "0"], "--steps"),
    (["train", "sac", "--online", "--task", "Pendulum-v1", "--steps", "0"], "--steps"),
    (["train", "bc", "{data}", "--task", "Pendulum-v1", "--seeds", "0"], "--seeds"),
    (["train", "bc", "{data}", "--task", "Pendulum-v1", "--eval-episodes", "0"], "--eval-episodes"),
    (["data", "generate", "Pendulum-v1", "--steps", "0"], "--steps"),
    (["data", "generate", "Pendulum-v1", "--num-envs", "0"], "--num-envs"),
    (["model", "train", "{data}", "--members", "0"], "--members"),
    (["model", "reward", "{data}", "--steps", "0"], "--steps"),
    (["run", "--steps", "0"], "--steps"),
    (["run", "--agent-steps", "100"], "--agent-steps"),
    (["dsr", "eval", "{out}", "--pe-steps", "0"], "--pe-steps"),
])
def test_zero_counts_are_errors_naming_the_flag(tmp_path, capsys, pendulum_file, args, flag):
    out = tmp_path / "out"
    argv = [a.format(data=pendulum_file, out=out) for a in args] + ["--out", str(out)]
    assert main(argv) == 2
    _one_line_error(capsys, flag, "Fix:")
    assert not out.exists()


def test_absent_steps_means_the_default(monkeypatch, pendulum_file, tmp_path):
    seen = {}
    monkeypatch.setattr("dynlearn.algos.offline.train_offline", lambda dataset, task, cfg, out, **kw: seen.setdefault("cfg", cfg))
    assert main(["train", "bc", str(pendulum_file), "--task", "Pendulum-v1", "--out", str(tmp_path / "a")]) == 0
    assert seen.pop("cfg").steps == 100_000
    assert main(["train", "bc", str(pendulum_file), "--task", "Pendulum-v1", "--steps", "2000", "--out", str(tmp_path / "b")]) == 0
    assert seen.pop("cfg").steps == 2000


# ----- item 7: written files and folders follow the umask ------------------------------------------------------------


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask(tmp_path, capsys, umask, mask, file_mode, dir_mode):
    umask(mask)
    run = RunFolder.open(tmp_path / "run", {"a": 1})
    scores = [SeedScore(seed=0, return_mean=1.0, return_std=0.0, normalized=None, episodes=1)]
    run.write_results(make_results(method="bc", task="Pendulum-v1", dataset=None, budget={"steps": 1, "seeds": 1},
                                   seed_scores=scores, wall_time_s=1.0, steps_per_s=None))
    assert _mode(run.path) == dir_mode
    assert _mode(run.file("config.json")) == file_mode and _mode(run.file("results.json")) == file_mode
    out = tmp_path / "data.hdf5"  # a dataset written by the CLI
    assert main(["data", "generate", "Pendulum-v1", "--out", str(out), "--steps", "50", "--num-envs", "1"]) == 0
    assert _mode(out) == file_mode
    capsys.readouterr()


def test_saved_module_follows_the_umask(tmp_path, umask):
    import equinox as eqx
    import jax.numpy as jnp

    class Tiny(eqx.Module):
        w: jnp.ndarray

    umask(0o022)
    folder = save_module(tmp_path / "model", Tiny(jnp.ones(3)), {}, kind="tiny")
    assert _mode(folder) == 0o755
    assert _mode(folder / "leaves.eqx") == 0o644 and _mode(folder / "config.json") == 0o644
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


# ----- item 4: values beyond float32, and NaN final scores ----------------------------------------------------------


def test_values_beyond_float32_are_refused(tmp_path, capsys):
    arrays = episodes_arrays(lengths=(5, 7), ends=("terminal", "timeout"))
    arrays["observations"] = arrays["observations"].astype(np.float64)
    arrays["observations"][6, 1] = 1e300  # finite in float64, inf in float32
    path = tmp_path / "big.hdf5"
    write_h5(path, arrays)
    assert main(["data", "info", str(path)]) == 2
    _one_line_error(capsys, "big.hdf5", "[observations]", "beyond float32's range", "row 6", "Fix:")
    with pytest.raises(DataError, match=r"first at row 6"):
        dl.data.load(path)
    arrays["observations"][6, 1] = 1e30  # within float32's range: loads
    write_h5(tmp_path / "ok.hdf5", arrays)
    assert np.isclose(dl.data.load(tmp_path / "ok.hdf5").transitions.obs[6, 1], 1e30, rtol=1e-6)


def test_time_series_beyond_float32_is_refused(tmp_path):
    values = np.ones((50, 2))
    values[10, 1] = -1e300
    np.save(tmp_path / "x.npy", values)
    with pytest.raises(DataError, match=r"beyond float32's range.*step 10, channel 1"):
        dl.data.load_timeseries(tmp_path / "x.npy")


def test_nan_final_score_is_a_failed_run_not_a_result(tmp_path, capsys, monkeypatch, pendulum_file):
    from dynlearn.algos import offline

    real = offline.evaluate

    def nan_returns(policy, task, episodes=10, *, key, num_envs=8):
        r = real(policy, task, episodes, key=key, num_envs=num_envs)
        return type(r)(task=r.task, returns=np.full_like(r.returns, np.nan), lengths=r.lengths, normalized=None)

    monkeypatch.setattr(offline, "evaluate", nan_returns)
    out = tmp_path / "run"
    assert main(["train", "bc", str(pendulum_file), "--task", "Pendulum-v1", "--steps", "1000", "--seeds", "1",
                 "--eval-every", "1000", "--eval-episodes", "1", "--out", str(out)]) == 2
    _one_line_error(capsys, "the final policy's score is NaN", "Fix:")
    assert not (out / "results.json").exists() and not (out / "seed_0" / "final.json").exists()


def test_every_trainer_refuses_a_non_finite_score():
    with pytest.raises(TrainingFailedError, match="score is NaN"):
        SeedScore(seed=0, return_mean=float("nan"), return_std=0.0, normalized=None, episodes=10)
    with pytest.raises(TrainingFailedError, match="score is infinite"):
        SeedScore(seed=0, return_mean=1.0, return_std=0.0, normalized=float("inf"), episodes=10)
    with pytest.raises(TrainingFailedError, match="score is NaN"):  # a final.json written with null
        SeedScore(seed=0, return_mean=None, return_std=None, normalized=None, episodes=10)


# ----- item 14: strict JSON (null, never a bare NaN) -----------------------------------------------------------------


def test_data_info_json_is_strict(tmp_path, capsys):
    arrays = episodes_arrays(lengths=(5, 7), ends=("cut", "cut"))  # no complete episode: return statistics are undefined
    write_h5(tmp_path / "d.hdf5", arrays)
    assert main(["data", "info", str(tmp_path / "d.hdf5"), "--json"]) == 0
    info = _strict_json(capsys.readouterr().out)
    assert info["complete_episodes"] == 0 and info["returns"]["mean"] is None


def test_results_and_json_files_are_strict(tmp_path):
    run = RunFolder.open(tmp_path / "run", {"coef": float("nan")})
    scores = [SeedScore(seed=0, return_mean=1.0, return_std=0.0, normalized=None, episodes=1)]
    run.write_results(make_results(method="bc", task="Pendulum-v1", dataset=None, budget={"steps": 1, "seeds": 1},
                                   seed_scores=scores, wall_time_s=float("nan"), steps_per_s=None,
                                   extra={"loss": np.float32("nan"), "curve": np.array([1.0, np.inf])}))
    results = _strict_json(run.file("results.json").read_text())
    assert results["wall_time_s"] is None and results["extra"] == {"loss": None, "curve": [1.0, None]}
    assert _strict_json(run.file("config.json").read_text()) == {"coef": None}
    write_json(tmp_path / "x.json", {"a": [float("-inf")]})
    assert _strict_json((tmp_path / "x.json").read_text()) == {"a": [None]}
    RunFolder.open(tmp_path / "run", {"coef": float("nan")}, resume=True)  # the config it wrote still matches


# ----- item 13: a refused run leaves nothing behind ------------------------------------------------------------------


@pytest.mark.parametrize("extra, needle", [
    (["mopo", "--model", "no-such-model"], "no-such-model"),  # checked once the model is built
    (["morec-mopo"], "dynamics reward"),  # MOREC's reward model: read from disk
])
def test_refused_run_writes_no_run_folder(tmp_path, capsys, pendulum_file, extra, needle):
    out = tmp_path / "run"
    argv = ["train", extra[0], str(pendulum_file), "--task", "Pendulum-v1", *extra[1:], "--out", str(out)]
    assert main(argv) == 2
    _one_line_error(capsys, needle)
    assert not (out / "config.json").exists()
    assert main(argv) == 2  # the same error again, not "already exists"
    assert "already exists" not in _one_line_error(capsys, needle)
