"""The loop's metrics sinks: TensorBoard scalars read back equal to the JSONL rows across a resume, one setting
switches a sink on for every loop, a bad request fails before training, and a failing sink costs neither the run nor
a JSONL row. W&B and MLflow run for real where their packages are installed (they are not in the test extra)."""

import json
import os
import struct
import sys
import time
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import interrupt
from dynlearn.errors import ConfigError
from dynlearn.training import Checkpoint, Schedule, SinkFailed, WallClock, fingerprint, log_to, requested, run, sinks
from dynlearn.training.trackers import scalars

SCHEDULE = Schedule(block=10, total=60, eval_every=30, checkpoint_every=20)


@pytest.fixture(autouse=True)
def _no_sink_from_the_environment(monkeypatch):
    monkeypatch.delenv("DYNLEARN_LOG_TO", raising=False)


def _block(state, progress):
    state = state * 0.9 + (progress["step"] + 1.0) / 7.0
    return state, {"loss": float(state.sum()), "nested": {"max": float(state.max())}, "missing": None, "label": "x"}


def _evaluate(state, progress):
    return {"eval/score": float(state[0]) * 3.0}


def _train(folder, *, until=None, stop_at=None):
    """A toy trainer: ``folder`` holds its checkpoint and ``metrics.jsonl``; ``stop_at`` requests a stop in that block."""
    store = Checkpoint(folder / "checkpoint", fingerprint("toy"))
    state, progress = jnp.zeros(3, jnp.float32), {}
    loaded = store.load(lambda _: state)
    if loaded is not None:
        state, progress = loaded

    def block(state, progress):
        if progress["step"] + 10 == stop_at:
            interrupt.request()
        return _block(state, progress)

    schedule = Schedule(**{**SCHEDULE.__dict__, "until": until})
    return run(block, state, progress, schedule=schedule, clock=WallClock(), checkpoint=store, evaluate=_evaluate,
               metrics=folder / "metrics.jsonl")


def _rows(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _tensorboard(logdir):
    """``{(step, tag): value}`` from the event files in ``logdir``, read in order as TensorBoard reads them: a file that
    starts with a purge marker at step S hides the steps from S on logged by the files before it."""
    from tensorboardX.proto import event_pb2

    values = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):  # TFRecord: length (8 bytes), its CRC (4), the Event, the Event's CRC (4)
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                values = {k: v for k, v in values.items() if k[0] < event.step}
            for value in event.summary.value:
                values[(event.step, value.tag)] = value.simple_value
    return values


def _as_tensorboard(rows):
    """The JSONL rows as the scalars TensorBoard should hold (float32; nested names flattened; None and text left out)."""
    return {(r["step"], k): np.float32(v) for r in rows for k, v in scalars({k: v for k, v in r.items() if k != "step"}).items()}


def test_scalars_keep_the_numbers_of_a_row():
    row = {"a": 1, "b": np.float32(0.5), "c": jnp.asarray(2.0), "d": None, "e": "text", "f": {"g": True, "h": [1, 2]},
           "nan": float("nan")}
    out = scalars(row)
    assert {k: v for k, v in out.items() if k != "nan"} == {"a": 1.0, "b": 0.5, "c": 2.0, "f/g": 1.0} and np.isnan(out["nan"])


def test_tensorboard_holds_the_jsonl_rows_across_a_stop_and_a_kill(tmp_path):
    """A stopped run resumed, then killed after its checkpoint at 40 and resumed again: TensorBoard reads back every
    JSONL row once, with the values of the invocation that kept it, from one logdir."""
    folder = tmp_path / "run"
    with log_to("tensorboard"):
        with interrupt.graceful_stop(), pytest.raises(interrupt.Stopped):
            _train(folder, stop_at=20)
        _train(folder, until=40)
    from dynlearn.training.trackers import TensorBoardSink

    killed = TensorBoardSink(folder, resume_step=40)  # what an invocation killed before its next checkpoint had logged
    killed.write(50, {"wall_s": 1.0, "loss": -123.0})
    killed.close()
    with log_to(["tensorboard"]):
        _, progress, done = _train(folder)
    assert done and progress["step"] == 60
    rows = _rows(folder)
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    logdir = folder / "tensorboard"
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 4
    expected = _as_tensorboard(rows)
    assert {"loss", "wall_s", "nested/max", "eval/score"} <= {tag for _, tag in expected}
    assert _tensorboard(logdir) == expected


def test_the_environment_switches_a_sink_on_and_log_to_overrides_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLEARN_LOG_TO", "TensorBoard")
    assert requested() == ("tensorboard",)
    _train(tmp_path / "env", until=10)
    assert list((tmp_path / "env" / "tensorboard").glob("events.out.tfevents.*"))
    with log_to(""):
        _train(tmp_path / "off", until=10)
    with log_to(None) as names:  # a flag left out: the environment decides
        assert names == ("tensorboard",)
    assert (tmp_path / "off" / "metrics.jsonl").is_file() and not (tmp_path / "off" / "tensorboard").exists()


def test_seeds_trained_together_each_get_their_own_logdir(tmp_path):
    paths = [tmp_path / "run" / f"seed_{i}" / "metrics.jsonl" for i in range(2)]

    def block(state, progress):
        return state + 1, [{"loss": float(state) + i} for i in range(2)]

    with log_to("tensorboard"):
        run(block, 0.0, {}, schedule=Schedule(block=5, total=10), clock=WallClock(), metrics=paths)
    for i, path in enumerate(paths):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["loss"] for r in rows] == [i, 1.0 + i]
        assert _tensorboard(path.parent / "tensorboard") == _as_tensorboard(rows)


def test_an_unknown_sink_fails_clearly_before_training(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"log_to: unknown sink 'tensorbord'\. Fix: .*tensorboard, wandb, mlflow"):
        with log_to("tensorbord"):
            pass
    monkeypatch.setenv("DYNLEARN_LOG_TO", "jsonl,comet")
    with pytest.raises(ConfigError, match="DYNLEARN_LOG_TO: unknown sink 'comet'"):
        _train(tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("name", "package"), [("tensorboard", "tensorboardX"), ("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_missing_package_names_its_extra(name, package, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # what an environment without it does on import
    with pytest.raises(ConfigError, match=rf'needs the {package} package.*Fix: pip install "dynlearn\[{name}\]"'):
        with log_to(f"jsonl,{name}"):
            pass


class _Flaky:
    """A sink whose server goes away at step 30."""

    written: list[int] = []
    closed: list[bool] = []

    def __init__(self, folder, resume_step):
        pass

    def write(self, step, metrics):
        if step >= 30:
            raise ConnectionError("server gone")
        self.written.append(step)

    def close(self):
        self.closed.append(True)


def _broken(folder, resume_step):
    raise PermissionError("no login")


def test_a_failing_sink_warns_once_and_the_run_and_its_jsonl_go_on(tmp_path, monkeypatch):
    monkeypatch.setitem(sinks.SINKS, "flaky", ("json", _Flaky))
    monkeypatch.setitem(sinks.SINKS, "broken", ("json", _broken))
    _Flaky.written, _Flaky.closed = [], []
    with log_to("flaky,broken,tensorboard"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, progress, done = _train(tmp_path / "run")
    assert done and progress["step"] == 60
    messages = [str(w.message) for w in caught if issubclass(w.category, SinkFailed)]
    assert len(messages) == 2 and len(caught) == 2
    assert "broken could not start (PermissionError: no login)" in messages[0]
    assert "flaky failed at step 30 (ConnectionError: server gone); training goes on without it" in messages[1]
    assert _Flaky.written == [10, 20] and _Flaky.closed == [True]
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert _tensorboard(tmp_path / "run" / "tensorboard") == _as_tensorboard(rows)  # the other sinks carry on


def _wandb_history(folder):
    """``{step: {key: value}}`` from the offline W&B run files under ``folder/wandb`` (LevelDB-style record logs)."""
    from wandb.proto import wandb_internal_pb2 as pb

    history = {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        data, i, record = path.read_bytes(), 7, b""  # a 7-byte W&B header, then 32 KiB blocks of chunks
        while i + 7 <= len(data):
            if 32768 - i % 32768 < 7:  # a block's tail too short for a chunk header is padding
                i += 32768 - i % 32768
                continue
            length, kind = struct.unpack("<HB", data[i + 4:i + 7])
            record += data[i + 7:i + 7 + length]
            i += 7 + length
            if kind in (1, 4):  # a full record, or the last chunk of one
                parsed = pb.Record.FromString(record)
                record = b""
                if parsed.WhichOneof("record_type") == "history":
                    items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in parsed.history.item}
                    history.setdefault(parsed.history.step.num, {}).update(items)
    return history


def test_wandb_logs_every_row_offline_and_continues_its_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    folder = tmp_path / "run" / "seed_3"
    with log_to("wandb"):
        _train(folder, until=30)
        run_id = (folder / "wandb" / "dynlearn_run_id").read_text().strip()
        _, _, done = _train(folder)
    assert done and (folder / "wandb" / "dynlearn_run_id").read_text().strip() == run_id
    runs = list(folder.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and all(f"-{run_id}" in r.name for r in runs)  # one per invocation (-1 added in one second)
    rows = _rows(folder)
    history, waited = _wandb_history(folder), 0.0
    while set(history) != {r["step"] for r in rows} and waited < 20:  # W&B's service may still be writing its files
        time.sleep(0.2)
        history, waited = _wandb_history(folder), waited + 0.2
    for row in rows:
        assert {k: v for k, v in history[row["step"]].items() if not k.startswith("_")} == scalars(
            {k: v for k, v in row.items() if k != "step"})


@pytest.mark.slow  # about 10 s: MLflow builds its SQLite store
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy's, from inside MLflow's store
def test_mlflow_logs_every_row_to_a_store_in_the_run_folder_and_continues_its_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(variable, raising=False)
    folder = tmp_path / "run"
    with log_to("mlflow"):
        _train(folder, until=30)
        _, _, done = _train(folder)
    assert done
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("dynlearn").experiment_id])
    assert found.info.run_id == (folder / "mlflow" / "run_id").read_text().strip() and found.info.status == "FINISHED"
    assert found.info.run_name == "run"
    rows = _rows(folder)
    for key in ("loss", "nested/max", "wall_s"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(found.info.run_id, key))
        assert history == [(r["step"], scalars(r)[key]) for r in rows]
    assert os.path.isdir(folder / "mlflow")
