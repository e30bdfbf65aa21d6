import json
import subprocess
import sys

import numpy as np
import pytest

import dynlearn as dl
from dynlearn.cli import main
from dynlearn.results import check_results
from tests.helpers import episodes_arrays, write_h5


def test_data_info_counts(tmp_path, capsys):
    arrays = episodes_arrays(lengths=(5, 7, 4), ends=("terminal", "timeout", "cut"))
    del arrays["next_observations"]
    write_h5(tmp_path / "d.hdf5", arrays)
    assert main(["data", "info", str(tmp_path / "d.hdf5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["transitions"], info["episodes"], info["complete_episodes"]) == (16, 3, 2)
    assert (info["terminals"], info["timeouts"], info["without_successor"]) == (1, 1, 3)
    assert any("last episode" in p for p in info["problems"])


def test_data_info_csv_with_columns(tmp_path, capsys):
    lines = ["o1,o2,a,r,d"] + [f"{i},{i * 2},{0.1 * i},{1.0},{int(i == 9)}" for i in range(10)]
    (tmp_path / "log.csv").write_text("\n".join(lines))
    assert main(["data", "info", str(tmp_path / "log.csv"), "--obs-cols", "o1,o2", "--act-cols", "a", "--rew-col", "r",
                 "--terminal-col", "d", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["transitions"] == 10 and info["obs_dim"] == 2 and info["terminals"] == 1


@pytest.mark.parametrize("content", [b"plain text", b""])
def test_bad_input_is_one_line_error_without_traceback(tmp_path, capsys, content):
    (tmp_path / "x.hdf5").write_bytes(content)
    assert main(["data", "info", str(tmp_path / "x.hdf5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err and "x.hdf5" in err


def test_console_script_exits_nonzero_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dynlearn.cli", "data", "info", str(tmp_path / "missing.hdf5")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no such file" in result.stderr


def test_generate_then_refuse_overwrite(tmp_path, capsys):
    out = tmp_path / "p.hdf5"
    assert main(["data", "generate", "Pendulum-v1", "--out", str(out), "--steps", "300", "--policy", "controller"]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["transitions"] == 300 and info["task"] == "Pendulum-v1" and info["normalized_returns"] is not None
    assert main(["data", "generate", "Pendulum-v1", "--out", str(out), "--steps", "300"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["data", "generate", "Pendulum-v1", "--out", str(out), "--steps", "200", "--force"]) == 0


def test_unknown_option_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "generate", "Pendulum-v1", "--out", "x.hdf5", "--stepz", "10"])
    assert exit_info.value.code == 2


def test_run_quick_writes_a_valid_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    check_results(results)
    assert results["dataset"]["transitions"] == 4000 and results["budget"]["seeds"] == 1
    assert results["method"] == "mopo" and results["budget"]["steps"] == 1000
    behaviour = results["extra"]["behaviour"]["return_mean"]
    random = results["extra"]["random"]["return_mean"]
    assert behaviour > random  # the noisy controller is still far better than random
    assert np.all(np.asarray(results["extra"]["model_error"]["holdout_skill"]) > 0.1)  # the model beats a constant
    assert {"config.json", "pendulum-v1-noisy-controller.hdf5", "report.md", "model", "mopo"} <= {p.name for p in out.iterdir()}
    check_results(json.loads((out / "mopo" / "results.json").read_text()))
    assert main(["run", "--quick", "--out", str(out)]) == 2  # no silent overwrite
    assert np.isfinite(results["wall_time_s"])


@pytest.mark.slow
def test_run_learns_a_policy_that_beats_the_behaviour_policy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    check_results(results)
    assert results["extra"]["beats_behaviour"]
    assert results["scores"]["per_seed"][0]["return_mean"] > results["extra"]["behaviour"]["return_mean"] + 100


def test_sigterm_during_training_checkpoints_and_exits_130(tmp_path):
    """A preempted job (SIGTERM) keeps its last finished block: exit code 130, a checkpoint of that block, and a message
    that says how to resume."""
    import signal

    data = tmp_path / "p.hdf5"
    assert main(["data", "generate", "Pendulum-v1", "--out", str(data), "--steps", "2000", "--policy", "controller"]) == 0
    out = tmp_path / "bc"
    cmd = [sys.executable, "-m", "dynlearn.cli", "train", "bc", str(data), "--steps", "2000000", "--seeds", "1",
           "--eval-every", "1000", "--eval-episodes", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the first evaluation: training is under way
        if "step" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and "--resume" in err, err
    step = json.loads((out / "seed_0" / "checkpoint" / "progress.json").read_text())["step"]
    assert 1000 <= step < 10_000 and step % 1000 == 0  # a block boundary before the first periodic checkpoint (10,000)


def test_train_passes_the_ensemble_fit_options_and_refuses_misplaced_ones(tmp_path, capsys, monkeypatch):
    """--model-min-epochs above the default 60-epoch cap is refused before any work; with --model-max-epochs 0 (no cap)
    both reach the method's config."""
    from dynlearn.algos import model_based

    data = tmp_path / "p.hdf5"
    assert main(["data", "generate", "Pendulum-v1", "--out", str(data), "--steps", "400", "--policy", "controller"]) == 0
    capsys.readouterr()
    assert main(["train", "mopo", str(data), "--model-min-epochs", "350", "--out", str(tmp_path / "a")]) == 2
    assert "--model-min-epochs 350 is above --model-max-epochs 60" in capsys.readouterr().err  # the flags, not the fields
    seen, options = [], []
    monkeypatch.setattr(model_based, "train_model_based", lambda data, task, cfg, out, **kw: seen.append(cfg) or options.append(kw))
    assert main(["train", "mopo", str(data), "--model-min-epochs", "350", "--model-max-epochs", "0",
                 "--out", str(tmp_path / "b")]) == 0
    assert (seen[0].model_min_epochs, seen[0].model_max_epochs) == (350, None)
    assert main(["train", "mopo", str(data), "--out", str(tmp_path / "c")]) == 0
    assert (seen[1].model_min_epochs, seen[1].model_max_epochs) == (0, 60)
    assert options[1]["only_seed"] is None
    assert main(["train", "mopo", str(data), "--only-seed", "2", "--resume", "--out", str(tmp_path / "c")]) == 0
    assert options[2]["only_seed"] == 2 and options[2]["resume"]
    # a model-free algorithm would ignore them: refused, naming them
    assert main(["train", "td3bc", str(data), "--horizon", "5", "--model-holdout", "transitions", "--only-seed", "1",
                 "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--model-holdout, --horizon, --only-seed only apply to the offline model-based methods" in err and "td3bc" in err


def test_a_preset_sets_the_defaults_and_flags_change_them(tmp_path, capsys, monkeypatch):
    """train mbpo-online | coplanner --preset NAME: the paper's values, a flag beside it wins; an unknown name is one line."""
    from dynlearn.algos import coplanner, mbpo_online

    seen = []
    monkeypatch.setattr(mbpo_online, "run_job", seen.append)
    monkeypatch.setattr(coplanner, "run_job", seen.append)
    assert main(["train", "mbpo-online", "--preset", "hopper", "--utd", "3", "--out", str(tmp_path / "a")]) == 0
    cfg = seen[0].config
    assert (cfg.task, cfg.utd, cfg.rollout_batch, cfg.rollout_schedule, cfg.sac.target_entropy) == ("Hopper-v5", 3, 100_000,
                                                                                                   (20, 100, 1, 15), -1.0)
    assert main(["train", "coplanner", "--preset", "halfcheetah", "--candidates", "3", "--out", str(tmp_path / "b")]) == 0
    assert type(seen[1].config).__name__ == "COPlannerConfig" and (seen[1].config.utd, seen[1].config.candidates) == (40, 3)
    assert main(["train", "mbpo-online", "--out", str(tmp_path / "c")]) == 0
    assert seen[2].config == mbpo_online.MBPOOnlineConfig()  # no preset: the CPU defaults
    capsys.readouterr()
    assert main(["train", "mbpo-online", "--preset", "walker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "known: cpu, hopper" in err and len(err.strip().splitlines()) == 1


# ----- issue 21, item 3: CSV through the CLI -------------------------------------------------------------------------
_CSV_COLS = ["--obs-cols", "o1,o2", "--act-cols", "a", "--rew-col", "r", "--terminal-col", "d", "--json"]
_CSV_ROWS = [f"{i},{i * 2},{0.1 * i},1.0,{int(i == 9)}" for i in range(10)]


def test_data_info_reads_bom_quoted_latin1_and_delimited_csv(tmp_path, capsys):
    (tmp_path / "plain.csv").write_text("\n".join(["o1,o2,a,r,d", *_CSV_ROWS]))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(["o1,o2,a,r,d", *_CSV_ROWS]).encode())
    (tmp_path / "quoted.csv").write_text("\n".join(['"o1","o2","a","r","d"', *('"' + r.replace(",", '","') + '"' for r in _CSV_ROWS)]))
    (tmp_path / "semi.csv").write_text("\n".join(["o1;o2;a;r;d", *(r.replace(",", ";") for r in _CSV_ROWS)]))
    hashes = []
    for name, extra in (("plain.csv", []), ("bom.csv", []), ("quoted.csv", []), ("semi.csv", ["--delimiter", ";"])):
        assert main(["data", "info", str(tmp_path / name), *_CSV_COLS, *extra]) == 0, capsys.readouterr().err
        info = json.loads(capsys.readouterr().out)
        assert info["obs_dim"] == 2 and info["transitions"] == 10
        hashes.append(info["content_hash"])
    assert len(set(hashes)) == 1  # the same numbers, whatever the encoding, quoting or separator
    (tmp_path / "latin.csv").write_bytes("\n".join(["t\u00e9mp,o2,a,r,d", *_CSV_ROWS]).encode("latin-1"))
    assert main(["data", "info", str(tmp_path / "latin.csv"), *_CSV_COLS[:-1], "--obs-cols", "t\u00e9mp,o2", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["content_hash"] == hashes[0]
    assert captured.err.startswith("warning: ") and captured.err.count("\n") == 1 and "read as latin-1" in captured.err


def test_data_convert_csv_with_delimiter(tmp_path, capsys):
    (tmp_path / "semi.csv").write_text("\n".join(["o1;o2;a;r;d", *(r.replace(",", ";") for r in _CSV_ROWS)]))
    out = tmp_path / "out.hdf5"
    assert main(["data", "convert", str(tmp_path / "semi.csv"), *_CSV_COLS[:-1], "--delimiter", "semicolon", "--out", str(out)]) == 0
    assert "10 transitions" in capsys.readouterr().out and out.is_file()


# ----- issue 21, item 8: no usable transition --------------------------------------------------------------------------
def test_data_info_reports_a_dataset_without_usable_transitions(tmp_path, capsys):
    arrays = episodes_arrays(lengths=(1,) * 8, obs_dim=3, act_dim=1, ends=("timeout",) * 8)
    del arrays["next_observations"]
    write_h5(tmp_path / "t.hdf5", arrays)
    assert main(["data", "info", str(tmp_path / "t.hdf5"), "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any("no usable transition" in p and "flagged terminal or timeout" in p for p in problems), problems
    assert main(["data", "info", str(tmp_path / "t.hdf5")]) == 0
    assert "problems          none found" not in capsys.readouterr().out


# ----- issue 21, item 16: suite datasets are compared with their recorded hashes -----------------------------------------
def test_suite_records_match_suite_md():
    """Every recorded suite dataset is in benchmarks/suite.md's table with the same hash, episodes and mean return."""
    from pathlib import Path

    from dynlearn.tasks import suite

    text = (Path(__file__).parents[1] / "benchmarks" / "suite.md").read_text()
    seen = 0
    for name in suite.names():
        record = suite.recorded(name)
        if record is None:
            continue
        seen += 1
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert record["content_hash"] in row and f"{record['episodes']:,}" in row and f"{record['return_mean']:.1f}" in row, (name, row)
    assert seen >= 2 and suite.recorded("hopper-medium-v5")["content_hash"] == "2e2fd2c27e021b18"
    assert suite.recorded("hopper-medium-v5", seed=1) is None and suite.recorded("walker2d-random-v5") is None


def test_suite_tolerance():
    """Two draws of the same behaviour agree within the tolerance (the other machine's hopper-medium-v5 from issue 21);
    a different behaviour does not."""
    from dynlearn.tasks.suite import recorded, within_tolerance

    record = recorded("hopper-medium-v5")
    other_machine = {"transitions": 200_000, "episodes": 740, "return_mean": 833.1}
    assert within_tolerance(record, other_machine)
    assert not within_tolerance(record, other_machine | {"return_mean": 986.5})  # the policy's own evaluated return
    assert not within_tolerance(record, other_machine | {"episodes": 209})  # an expert's episodes
    assert not within_tolerance(record, other_machine | {"transitions": 100_000})


def test_data_generate_warns_when_a_suite_dataset_differs_from_its_record(tmp_path, capsys, monkeypatch):
    """The regenerated dataset is written either way; a hash other than the recorded one gets a one-line warning that
    says whether the difference is within the tolerance."""
    from dynlearn.tasks import suite

    arrays = episodes_arrays(lengths=(40, 40), obs_dim=11, act_dim=3, ends=("timeout", "terminal"))
    fake = dl.data.from_arrays(obs=arrays["observations"], act=arrays["actions"], rew=arrays["rewards"], terminal=arrays["terminals"],
                               timeout=arrays["timeouts"], next_obs=arrays["next_observations"], task=dl.tasks.get("Hopper-v5"),
                               name="hopper-medium-v5")
    monkeypatch.setattr(suite, "generate", lambda name, *, seed=0, steps=suite.STEPS: fake)
    monkeypatch.setenv("DYNLEARN_DATA_DIR", str(tmp_path / "datasets"))
    record = suite.recorded("hopper-medium-v5")
    out = tmp_path / "h.hdf5"
    assert main(["data", "generate", "hopper-medium-v5", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: hopper-medium-v5 (seed 0) was generated with content hash") and err.count("\n") == 1
    assert record["content_hash"] in err and "beyond the tolerance" in err and out.is_file()
    # the recorded data itself: no warning
    monkeypatch.setattr(suite, "dataset_record", lambda dataset: dict(record))
    assert main(["data", "generate", "hopper-medium-v5", "--out", str(out), "--force"]) == 0
    assert capsys.readouterr().err == ""
    # within the tolerance (another machine): a milder warning
    monkeypatch.setattr(suite, "dataset_record", lambda dataset: record | {"content_hash": "6233d65f52d3292a", "episodes": 740,
                                                                              "return_mean": 833.1})
    assert main(["data", "generate", "hopper-medium-v5", "--out", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert "6233d65f52d3292a" in err and "within the tolerance" in err and err.count("\n") == 1


# ----- the model-free agents' commands: their configs' fields as --agent.* flags -----------------------------------------
def test_an_agents_command_takes_its_configs_fields(tmp_path, capsys):
    data = tmp_path / "p.hdf5"
    assert main(["data", "generate", "Pendulum-v1", "--out", str(data), "--steps", "400", "--policy", "controller"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "td3bc", "--help"])
    text = capsys.readouterr().out
    assert "--agent.alpha" in text and "--agent.policy-noise" in text and "--penalty-coef" not in text
    out = tmp_path / "bc"
    assert main(["train", "bc", str(data), "--agent.hidden", "16", "16", "--agent.batch-size", "32", "--steps", "1000", "--seeds", "1",
                 "--eval-every", "500", "--eval-episodes", "1", "--block", "250", "--checkpoint-every", "500", "--no-normalize-obs",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["agent"]["hidden"] == [16, 16] and config["agent"]["batch_size"] == 32
    assert (config["offline"]["block"], config["offline"]["checkpoint_every"], config["offline"]["normalize_obs"]) == (250, 500, False)
    capsys.readouterr()
    assert main(["train", "bc", str(data), "--update-every", "10", "--out", str(tmp_path / "bad")]) == 2  # an online option
    err = capsys.readouterr().err
    assert "--update-every only apply to online training" in err and not (tmp_path / "bad").exists()
    assert main(["train", "sac", "--online", "--task", "Pendulum-v1", "--block", "10", "--out", str(tmp_path / "bad")]) == 2
    assert "--block only apply to offline training" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["train", "sac", str(data), "--agent.hidden", "0", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --agent.hidden must be positive widths") and "Fix:" in err and not (tmp_path / "bad").exists()
    assert main(["train", "Td3bc", str(data), "--out", str(tmp_path / "bad")]) == 2
    assert "Fix: dynlearn train td3bc" in capsys.readouterr().err


def test_log_to_adds_a_tensorboard_log_beside_the_metrics_and_refuses_unknown_sinks(tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    data = tmp_path / "pend.hdf5"
    assert main(["data", "generate", "Pendulum-v1", "--out", str(data), "--steps", "400", "--policy", "controller"]) == 0
    out = tmp_path / "bc"
    assert main(["train", "bc", str(data), "--steps", "1000", "--seeds", "1", "--eval-every", "1000", "--eval-episodes", "1",
                 "--log-to", "tensorboard", "--out", str(out)]) == 0, capsys.readouterr().err
    events = list(out.rglob("tensorboard/events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    assert [p.parent for p in out.rglob("metrics.jsonl")] == [e.parent.parent for e in events]
    capsys.readouterr()
    assert main(["train", "bc", str(data), "--steps", "200", "--log-to", "tensorbord", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "tensorbord" in err and "tensorboard" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
