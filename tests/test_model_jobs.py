"""`dynlearn model train` / `model eval`: run folders end to end, the holdout they report on, and the baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dynlearn as dl
from dynlearn import model_jobs, models
from dynlearn.cli import main
from dynlearn.data import write_d4rl
from dynlearn.models import EnsembleConfig, FitConfig
from dynlearn.penalties import PENALTIES
from dynlearn.results import check_results
from tests.models.systems import linear_dataset


@pytest.fixture(scope="module")
def hopper_files(tmp_path_factory):
    """A small random-policy Hopper dataset and a differently behaved one (a constant action: another policy)."""
    folder = tmp_path_factory.mktemp("data")
    task = dl.tasks.get("Hopper-v5")
    random = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=1500, seed=0, num_envs=4, name="hopper-tiny-random")

    def push(obs, rng):
        return np.tile(np.array([[1.0, -1.0, 0.5]], np.float32), (len(obs), 1))

    other = dl.tasks.collect(task, push, steps=400, seed=1, num_envs=2, name="hopper-tiny-push")
    return write_d4rl(folder / "random.hdf5", random), write_d4rl(folder / "push.hdf5", other)


def test_train_then_eval_end_to_end(tmp_path, hopper_files, capsys):
    data, ood = (str(p) for p in hopper_files)
    run = tmp_path / "model"
    assert main(["model", "train", data, "--task", "Hopper-v5", "--out", str(run), "--members", "3", "--elites", "2",
                 "--hidden", "32", "32", "--max-epochs", "2"]) == 0
    for name in ("config.json", "results.json", "fit_report.json", "fit_curve.png", "one_step.md", "reference.npz", "model/config.json"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    check_results(results)
    assert results["task"] == "Hopper-v5" and results["budget"]["epochs"] == 2 and results["budget"]["max_epochs"] == 2
    one_step = results["extra"]["one_step_holdout"]
    assert len(one_step["members"]) == 3 and len(one_step["ensemble"]) == 12 and one_step["dims"][-1] == "reward"
    assert "constant delta" in (run / "one_step.md").read_text()
    model = models.load(run / "model", task=dl.tasks.get("Hopper-v5"))
    assert model.cfg.members == 3 and model.cfg.hidden == (32, 32)
    assert not (run / "checkpoint").exists()  # the fit's training state is removed once it is done
    before = (run / "results.json").stat().st_mtime_ns
    assert main(["model", "train", data, "--task", "Hopper-v5", "--out", str(run), "--members", "3", "--elites", "2",
                 "--hidden", "32", "32", "--max-epochs", "2", "--resume"]) == 0
    assert (run / "results.json").stat().st_mtime_ns == before  # finished: nothing to resume

    assert main(["model", "eval", str(run), data, "--ood", ood, "--horizon", "5", "--windows", "50"]) == 0
    out = run / "eval"
    for name in ("config.json", "results.json", "one_step.md", "k_step.md", "k_step.png", "calibration.md"):
        assert (out / name).is_file(), name
    ev = json.loads((out / "results.json").read_text())
    check_results(ev)
    sets = list(ev["extra"]["one_step"])
    assert sets == ["random (holdout)", "push"]  # named after the files
    k = ev["extra"]["k_step"]["random (holdout)"]
    assert len(k["mean"]) == len(k["sample"]) == 5 and 0 < k["windows"] <= 50
    assert k["steps_with_data"][0] == k["windows"] and k["steps_with_data"] == sorted(k["steps_with_data"], reverse=True)
    table = ev["extra"]["calibration"]
    assert set(table["sets"]) == {*sets, "pooled"}
    for entry in table["sets"].values():
        assert set(entry["spearman"]) == set(PENALTIES)
        assert all(v is None or -1.0 <= v <= 1.0 for v in entry["spearman"].values())
    text = (out / "calibration.md").read_text()
    assert all(f"| {name} |" in text for name in PENALTIES)
    # a second eval refuses to overwrite
    capsys.readouterr()
    assert main(["model", "eval", str(run), data, "--horizon", "5", "--windows", "50"]) == 2
    assert "--force" in capsys.readouterr().err

    # MOREC's dynamics reward for this model, from the command line
    reward_dir = tmp_path / "reward"
    assert main(["model", "reward", data, "--model", str(run), "--out", str(reward_dir), "--steps", "250"]) == 0
    from dynlearn.algos.morec import load_report, load_reward

    assert load_reward(reward_dir).n_discriminators >= 1
    assert 0.0 <= load_report(reward_dir).holdout_auc <= 1.0
    assert main(["model", "reward", data, "--model", str(run), "--out", str(reward_dir), "--steps", "250"]) == 2  # no overwrite

    # ... and as a diagnostic in `model eval`: real vs model transitions on the holdout and the other policy's data
    assert main(["model", "eval", str(run), data, "--ood", ood, "--horizon", "3", "--windows", "20", "--reward", str(reward_dir),
                 "--out", str(tmp_path / "eval_reward")]) == 0
    assert "AUC real > model" in (tmp_path / "eval_reward" / "reward.md").read_text()
    table = json.loads((tmp_path / "eval_reward" / "results.json").read_text())["extra"]["dynamics_reward"]
    assert len(table) == 2 and all(0.0 <= t["auc"] <= 1.0 and t["rows"] > 0 for t in table.values())
    assert main(["model", "eval", str(run), data, "--reward", str(tmp_path), "--out", str(tmp_path / "eval_bad")]) == 2


def test_bad_options_are_one_line_errors(tmp_path, hopper_files, capsys):
    data = str(hopper_files[0])
    assert main(["model", "train", data, "--out", str(tmp_path / "m"), "--members", "2", "--elites", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "elites" in err and "Traceback" not in err
    assert main(["model", "eval", str(tmp_path / "nothing"), data]) == 2
    assert "model train" in capsys.readouterr().err


def test_fit_split_reproduces_the_fits_holdout(key):
    cfg = FitConfig(progress=False, max_epochs=1)
    tiny = EnsembleConfig(members=2, elites=1, hidden=(8,), weight_decay=(0.0, 0.0))
    data = linear_dataset(episodes=100, length=20, seed=0)
    _, report = models.fit(tiny, data, key=key, cfg=cfg)
    assert report.holdout_mode == "episodes"
    train, hold = model_jobs.fit_split(data, cfg, report.holdout_seed)
    assert hold is not None and len(hold) == report.holdout_size and len(train) == report.train_size
    assert hold.n_episodes == report.holdout_episodes and len(train) + len(hold) == len(data)
    # few episodes: the fit held out random rows, so there are no holdout episodes to replay
    few = linear_dataset(episodes=12, length=20, seed=0)
    _, report = models.fit(tiny, few, key=key, cfg=cfg)
    assert report.holdout_mode == "transitions"
    train, hold = model_jobs.fit_split(few, cfg, report.holdout_seed)
    assert hold is None and len(train) == report.train_size


def test_baselines_on_a_linear_system(key, tmp_path):
    """On x' = A x + B u + small noise the linear baseline is near perfect, the constant delta scores about 1."""
    train, test = linear_dataset(episodes=60, length=40, seed=0), linear_dataset(episodes=20, length=40, seed=1)
    model, _ = models.fit(EnsembleConfig(members=2, elites=1, hidden=(16,), weight_decay=(0.0, 0.0)), train, key=key,
                          cfg=FitConfig(progress=False, max_epochs=3))
    ref = model_jobs.Reference.of(train)
    table = model_jobs.one_step_table(model, ref, test)
    const, lin = np.array(table["constant_delta"]), np.array(table["linear"])
    np.testing.assert_allclose(const, 1.0, atol=0.3)  # the training mean, on 20 new episodes of the same system
    assert np.all(lin[:3] < 0.05) and lin[3] < 1e-6  # deltas: the noise floor; the reward C.x + 0.5 u is exactly linear
    again = model_jobs.Reference.load(ref.save(tmp_path / "reference.npz"))
    t = test.transitions
    np.testing.assert_array_equal(again.linear(t.obs, t.act), ref.linear(t.obs, t.act))
    np.testing.assert_array_equal(again.target_var, ref.target_var)



def test_reward_refuses_to_start_over_an_unfinished_run_unless_told(tmp_path, capsys):
    """`model reward` keeps its training state in OUT.learning: a new run must say --resume or --force."""
    (tmp_path / "reward.learning").mkdir()
    assert main(["model", "reward", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "reward")]) == 2
    err = capsys.readouterr().err
    assert "reward.learning" in err and "--resume" in err and "--force" in err
    (tmp_path / "reward.learning").rmdir()
    assert main(["model", "reward", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "reward"), "--resume"]) == 2
    assert "no unfinished run" in capsys.readouterr().err


@pytest.mark.slow
def test_reward_defaults_to_the_model_based_methods_cached_ensemble(tmp_path, hopper_files, monkeypatch):
    """Without --model, `model reward` learns the reward of the very ensemble `dynlearn train mopo DATA` trains on."""
    from dynlearn.algos import MOPOConfig
    from dynlearn.algos.model_source import build_model

    monkeypatch.setenv("DYNLEARN_CACHE_DIR", str(tmp_path / "cache"))
    data = str(hopper_files[0])
    assert main(["model", "reward", data, "--out", str(tmp_path / "reward"), "--steps", "100"]) == 0
    assert not (tmp_path / "reward.learning").exists()  # the training state is spent once the reward is saved
    entries = list((tmp_path / "cache" / "models").iterdir())
    assert len(entries) == 1 and (entries[0] / "model" / "config.json").is_file()
    dataset = dl.data.load(data)
    seen = []
    build_model(dataset, dl.tasks.get("Hopper-v5"), MOPOConfig(), log=seen.append)
    assert any("cached" in line for line in seen)  # the training loop finds the same entry

    # `model eval` diagnoses that same cached ensemble: by name (`cached`) or by its folder, with the reward
    ev_out = tmp_path / "eval"
    assert main(["model", "eval", "cached", data, "--out", str(ev_out), "--horizon", "3", "--windows", "20",
                 "--reward", str(tmp_path / "reward")]) == 0
    ev = json.loads((ev_out / "results.json").read_text())
    check_results(ev)
    assert list(ev["extra"]["one_step"]) == ["random (holdout)"] and (ev_out / "reward.md").is_file()
    assert json.loads((ev_out / "config.json").read_text())["run"] == str(entries[0])
    # its reference (rebuilt from the training split) makes the errors comparable: the fitted model beats a constant
    one_step = ev["extra"]["one_step"]["random (holdout)"]
    assert np.mean(one_step["ensemble"]) < np.mean(one_step["constant_delta"])
    _, _, config, _ = model_jobs.load_run(entries[0])
    assert config["cached"] and config["task"] == "Hopper-v5"
    # a cached ensemble has no saved reference, so other data cannot be the main test set; and no default out folder
    assert main(["model", "eval", str(entries[0]), str(hopper_files[1]), "--out", str(tmp_path / "e2")]) == 2
    assert main(["model", "eval", str(entries[0]), data]) == 2
    assert not (entries[0] / "eval").exists() and not (tmp_path / "e2").exists()
