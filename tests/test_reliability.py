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
from dynlearn.errors import DataError, RunFinished, TrainingFailedError
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
    with pytest.raises(RunFinished):  # the config it wrote still matches (else a ConfigError): the run is finished
        RunFolder.open(tmp_path / "run", {"coef": float("nan")}, resume=True)


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


# ----- item 2: --force replaces only what dynlearn wrote, never a plain file ----------------------------------------


@pytest.fixture
def fake_trainer(monkeypatch):
    """``train bc`` whose trainer only opens its run folder (what every trainer does first) and writes a result."""
    def train(dataset, task, cfg, out, *, resume=False, force=False, **kw):
        run = RunFolder.open(out, {"steps": cfg.steps}, resume=resume, force=force)
        scores = [SeedScore(seed=0, return_mean=1.0, return_std=0.0, normalized=None, episodes=1)]
        run.write_results(make_results(method="bc", task="Pendulum-v1", dataset=None, budget={"steps": 1, "seeds": 1},
                                       seed_scores=scores, wall_time_s=1.0, steps_per_s=None))
        run.close()

    monkeypatch.setattr("dynlearn.algos.offline.train_offline", train)


def test_force_refuses_a_folder_dynlearn_did_not_write(tmp_path, capsys, pendulum_file, fake_trainer):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    argv = ["train", "bc", str(pendulum_file), "--task", "Pendulum-v1", "--force", "--out", str(out)]
    assert main(argv) == 2
    _one_line_error(capsys, str(out), "did not write", f"Fix: choose another --out, or add --force-replace-folder {out}")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # untouched, no lock file left
    assert main(argv + ["--force-replace-folder", str(out)]) == 0  # named a second time: replaced
    assert not (out / "notes.txt").exists() and (out / "results.json").is_file()
    assert main(argv) == 0  # now a dynlearn run folder: --force alone replaces it
    capsys.readouterr()


def test_force_never_deletes_a_plain_file(tmp_path, capsys, pendulum_file, fake_trainer):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    for extra in ([], ["--force-replace-folder", str(out)]):
        assert main(["train", "bc", str(pendulum_file), "--task", "Pendulum-v1", "--force", "--out", str(out), *extra]) == 2
        _one_line_error(capsys, str(out), "is a file, not a folder", "never deletes a file", "Fix:")
        assert out.read_text() == "keep me"


def test_force_replaces_run_folders_of_dynlearn(tmp_path):
    from dynlearn.checkpoint import RUN_MARKER

    old = tmp_path / "old"  # a finished run written before the marker existed: its results.json says it is dynlearn's
    old.mkdir()
    write_json(old / "results.json", {"schema": "dynlearn.results/1"})
    (old / "seed_0").mkdir()
    RunFolder.open(old, {"a": 1}, force=True).close()
    assert sorted(p.name for p in old.iterdir()) == [RUN_MARKER, "config.json"]
    model = tmp_path / "model"  # a saved model (config.json with dynlearn's header)
    save_module(model, _tiny(), {}, kind="tiny")
    RunFolder.open(model, {"a": 1}, force=True).close()


def test_force_on_outputs_of_another_kind(tmp_path, capsys):
    from dynlearn.checkpoint import check_writable, replacing
    from dynlearn.errors import NotDynlearnOutputError

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"jpg")
    with pytest.raises(NotDynlearnOutputError, match="--force-replace-folder"):  # `model reward --out`: a folder output
        check_writable(folder, force=True, folder=True)
    with replacing(folder):
        check_writable(folder, force=True, folder=True)
    with pytest.raises(NotDynlearnOutputError, match="is a folder; this output is a file"):
        check_writable(folder, force=True)
    text = tmp_path / "notes.hdf5"  # a dataset output (.hdf5) over a file that is no HDF5 file
    text.write_text("not a dataset")
    assert main(["data", "generate", "Pendulum-v1", "--out", str(text), "--steps", "50", "--num-envs", "1", "--force"]) == 2
    _one_line_error(capsys, str(text), "is not an HDF5 file", "Fix:")
    assert text.read_text() == "not a dataset"
    data = tmp_path / "data.hdf5"  # a dataset: --force replaces it
    assert main(["data", "generate", "Pendulum-v1", "--out", str(data), "--steps", "50", "--num-envs", "1"]) == 0
    assert main(["data", "generate", "Pendulum-v1", "--out", str(data), "--steps", "60", "--num-envs", "1", "--force"]) == 0
    assert len(dl.data.load(data)) == 60
    capsys.readouterr()


# ----- item 5: integrity-checked model cache and saved models -------------------------------------------------------


def _tiny():
    import equinox as eqx
    import jax.numpy as jnp

    class Tiny(eqx.Module):
        w: jnp.ndarray

    return Tiny(jnp.arange(1000, dtype=jnp.float32))


def _flip(path, at=0.5):
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i:i + 8] = bytes(b ^ 0x5A for b in data[i:i + 8])
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path):
    path.write_text("{not json")


@pytest.fixture(scope="module")
def cache_case():
    from tests.models.systems import linear_dataset

    data = linear_dataset(episodes=30, length=20, seed=6)
    cfg = dl.models.EnsembleConfig(members=3, elites=2, hidden=(16,), weight_decay=(2.5e-5, 1e-4))
    return data, cfg, dl.models.FitConfig(progress=False, max_epochs=2, patience=2)


@pytest.mark.parametrize("damage, name", [(_flip, "model/leaves.eqx"), (_truncate, "model/leaves.eqx"),
                                          (_garble, "fit_report.json"), (_flip, "model/config.json")])
def test_damaged_cache_entry_is_refitted_with_a_warning(tmp_path, capfd, cache_case, damage, name):
    import jax

    data, cfg, fit_cfg = cache_case
    model, report = dl.models.fitted(data, cfg, fit_cfg, root=tmp_path)
    entry = dl.models.cache.cache_entry(data, cfg, fit_cfg, root=tmp_path)
    damage(entry / name)
    lines = []
    again, report2 = dl.models.fitted(data, cfg, fit_cfg, root=tmp_path, log=lines.append)
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and f"the cached dynamics model {entry} is damaged" in err and "fitting it again" in err, err
    assert "version that wrote it" not in err
    assert lines[0].startswith("dynamics model: fitting on")  # refitted, not used
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the same fit as the first
    dl.models.fitted(data, cfg, fit_cfg, root=tmp_path, log=lines.append)
    assert lines[-1] == f"dynamics model: cached ({entry})" and not capfd.readouterr().err  # the new entry is intact


@pytest.mark.parametrize("damage", [_flip, _truncate])
def test_damaged_model_folder_is_refused_naming_the_file(tmp_path, capsys, cache_case, damage):
    import jax

    folder = save_module(tmp_path / "tiny", _tiny(), {}, kind="tiny")
    damage(folder / "leaves.eqx")
    with pytest.raises(DataError, match=rf"{folder / 'leaves.eqx'}: is damaged: its content does not match the sha256 .*Fix:"):
        from dynlearn.checkpoint import load_leaves

        load_leaves(folder, _tiny())
    # a user's model folder passed to `train --model`: exit 2 and one line naming the file
    data, cfg, fit_cfg = cache_case
    model = tmp_path / "model"
    task = dl.tasks.get("Pendulum-v1")
    bigger = tmp_path / "pendulum.hdf5"  # enough rows to fit on
    write_h5(bigger, episodes_arrays(lengths=(300, 300), obs_dim=3, act_dim=1, ends=("timeout", "timeout")))
    fitted, _ = dl.models.fit(cfg, dl.data.load(bigger, task=task), key=jax.random.key(0), cfg=fit_cfg, task=task)
    dl.models.save(model, fitted)
    damage(model / "leaves.eqx")
    with pytest.raises(DataError, match="leaves.eqx: is damaged"):
        dl.models.load(model, task=task)
    out = tmp_path / "run"
    assert main(["train", "mopo", str(bigger), "--task", "Pendulum-v1", "--model", str(model), "--out", str(out)]) == 2
    _one_line_error(capsys, str(model / "leaves.eqx"), "is damaged", "Fix:")
    assert not out.exists()


# ----- item 15: resume of a finished run, leftovers of a kill, negative options --------------------------------------


def test_resume_of_a_finished_run_keeps_its_results(tmp_path, capsys, pendulum_file):
    out = tmp_path / "run"
    argv = ["train", "bc", str(pendulum_file), "--task", "Pendulum-v1", "--steps", "1000", "--seeds", "1",
            "--eval-every", "1000", "--eval-episodes", "1", "--out", str(out)]
    assert main(argv) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    captured = capsys.readouterr()
    assert "the run is finished" in captured.out and "results are unchanged" in captured.out and not captured.err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing rewritten


def test_resume_deletes_what_a_killed_writer_left(tmp_path):
    out = tmp_path / "run"
    RunFolder.open(out, {"a": 1}).close()
    leftovers = [out / ".results.json.0123abcd.tmp", out / "seed_0" / ".progress.json.89abcdef.tmp",
                 out / "seed_0" / "checkpoint.new" / "agent.eqx"]
    for p in leftovers:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("half")
    (out / "seed_0" / "notes.tmp").write_text("not ours")
    RunFolder.open(out, {"a": 1}, resume=True).close()
    assert not any(p.exists() for p in leftovers) and not (out / "seed_0" / "checkpoint.new").exists()
    assert (out / "seed_0" / "notes.tmp").is_file()


@pytest.mark.parametrize("flag, value", [("--noise", "-1"), ("--seed", "-1")])
def test_negative_generate_options_are_refused(tmp_path, capsys, flag, value):
    out = tmp_path / "d.hdf5"
    assert main(["data", "generate", "Pendulum-v1", flag, value, "--steps", "50", "--out", str(out)]) == 2
    _one_line_error(capsys, flag, "Fix:")
    assert not out.exists()


def test_a_normal_run_writes_no_warnings_to_stderr(tmp_path):
    """A second process with Python's default warning filters (as a user's shell has): nothing on stderr, no numpy
    RuntimeWarning or other leaking through, for collecting a dataset and summarising it (incomplete episodes, whose
    return statistics are undefined, included)."""
    import subprocess
    import sys

    out = tmp_path / "d.hdf5"
    write_h5(tmp_path / "cut.hdf5", episodes_arrays(lengths=(5, 7), ends=("cut", "cut")))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    for argv in (["data", "generate", "Pendulum-v1", "--steps", "200", "--num-envs", "2", "--noise", "0.3", "--out", str(out)],
                 ["data", "info", str(out)], ["data", "info", str(tmp_path / "cut.hdf5"), "--json"]):
        done = subprocess.run([sys.executable, "-W", "default", "-m", "dynlearn.cli", *argv], capture_output=True, text=True,
                              env=env, timeout=300)
        assert done.returncode == 0 and done.stderr == "", (argv, done.stderr)


def test_run_folder_that_cannot_be_created_is_one_line(tmp_path, capsys, fake_trainer, pendulum_file):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"  # under a file
    assert main(["train", "bc", str(pendulum_file), "--task", "Pendulum-v1", "--out", str(out)]) == 2
    _one_line_error(capsys, str(out), "cannot be created", "Fix:")


def test_sigterm_before_training_is_one_line_and_exit_143(tmp_path):
    """SIGTERM while no training loop runs (here: generating a dataset) ends the command with one line saying nothing
    is resumable, exit 143, and no traceback (a training loop instead checkpoints and exits 130)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "data.hdf5"
    args = ["data", "generate", "Pendulum-v1", "--policy", "random", "--steps", "5000000", "--out", str(out)]
    code = f"import sys, dynlearn.cli; print('imported', flush=True); sys.exit(dynlearn.cli.main({args!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "imported"
    time.sleep(2)  # in main(), collecting
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and "SIGTERM" in lines[0], err
    assert not out.exists()
