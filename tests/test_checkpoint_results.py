import json

import equinox as eqx
import jax
import numpy as np
import pytest

from dynlearn import checkpoint
from dynlearn.errors import DataError, OutputExistsError
from dynlearn.results import RunFolder, SeedScore, check_results, make_results


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with checkpoint.atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_module_roundtrip_and_checks(tmp_path, key):
    model = eqx.nn.MLP(3, 2, 8, 2, key=key)
    checkpoint.save_module(tmp_path / "m", model, {"width": 8}, kind="mlp")
    header = checkpoint.read_header(tmp_path / "m", kind="mlp")
    assert header["config"] == {"width": 8} and header["dynlearn_version"]
    like = eqx.nn.MLP(3, 2, 8, 2, key=jax.random.key(1))
    loaded = checkpoint.load_leaves(tmp_path / "m", like)
    x = np.ones(3, np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))
    with pytest.raises(DataError, match="expected a 'agent'"):
        checkpoint.read_header(tmp_path / "m", kind="agent")
    with pytest.raises(DataError, match="does not match"):
        checkpoint.load_leaves(tmp_path / "m", eqx.nn.MLP(3, 2, 16, 2, key=key))
    header["format"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(header))
    with pytest.raises(DataError, match="format"):
        checkpoint.read_header(tmp_path / "m")


def test_results_schema_and_run_folder(tmp_path):
    scores = [SeedScore(seed=s, return_mean=100.0 + s, return_std=1.0, normalized=50.0 + s, episodes=10) for s in range(3)]
    results = make_results(method="bc", task="Hopper-v5", dataset={"name": "d", "hash": "abc", "transitions": 10},
                           budget={"steps": 1000, "seeds": 3}, seed_scores=scores, wall_time_s=1.0, steps_per_s=1000.0)
    check_results(results)
    assert results["scores"]["metric"] == "normalized_score" and results["scores"]["mean"] == pytest.approx(51.0)
    assert results["scores"]["policy"] == "final"
    run = RunFolder(tmp_path / "r")
    run.write_results(results)
    with pytest.raises(OutputExistsError):
        RunFolder(tmp_path / "r")
    RunFolder(tmp_path / "r", force=True)
    bad = dict(results, budget={"steps": 1, "seeds": 2})
    with pytest.raises(ValueError, match="per seed"):
        check_results(bad)


def test_config_differences_name_the_keys_and_allow_options_added_later():
    from dynlearn.results import config_differences

    saved = {"run": {"steps": 100, "horizon": 5}, "task": "Hopper-v5"}
    assert config_differences(saved, {"run": {"steps": 100, "horizon": 5, "new_option": None}, "task": "Hopper-v5"}) == []
    assert config_differences(saved, {"run": {"steps": 200, "horizon": 5, "new_option": 3}, "task": "Hopper-v5"}) == [
        "run.new_option", "run.steps"]
    assert config_differences(saved, {"run": {"steps": 100}, "task": "Hopper-v5"}) == ["run.horizon"]


def test_saved_module_records_the_leaves_sha256_and_older_folders_still_load(tmp_path, key):
    model = eqx.nn.MLP(3, 2, 8, 2, key=key)
    folder = checkpoint.save_module(tmp_path / "m", model, {"width": 8}, kind="mlp")
    header = checkpoint.read_header(folder)
    assert header["leaves_sha256"] == checkpoint.file_sha256(folder / "leaves.eqx")
    del header["leaves_sha256"]  # a folder saved before the hash was recorded: read unchecked
    (folder / "config.json").write_text(json.dumps(header))
    like = eqx.nn.MLP(3, 2, 8, 2, key=jax.random.key(1))
    np.testing.assert_array_equal(checkpoint.load_leaves(folder, like)(np.ones(3, np.float32)), model(np.ones(3, np.float32)))
    (folder / "leaves.eqx").write_bytes((folder / "leaves.eqx").read_bytes()[:100])  # truncated: unreadable, said so
    with pytest.raises(DataError, match=r"leaves.eqx: is unreadable .*Fix:"):
        checkpoint.load_leaves(folder, like)


def test_run_folder_is_a_context_manager_holding_its_lock(tmp_path):
    from dynlearn.locking import RUN_LOCK

    with RunFolder.open(tmp_path / "r", {"a": 1}) as run:
        assert (run.path / RUN_LOCK).is_file() and (run.path / checkpoint.RUN_MARKER).is_file()
    assert not (run.path / RUN_LOCK).exists()
