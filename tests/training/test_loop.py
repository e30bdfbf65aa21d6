"""The one training loop: a stopped and resumed run ends with the state of one that never stopped, its wall time
covers every invocation, a checkpoint of other inputs is refused, and the metrics log holds every step once."""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import interrupt
from dynlearn.errors import ConfigError
from dynlearn.training import Checkpoint, Schedule, SeedCheckpoints, WallClock, fingerprint, run

KEY = jax.random.key(3)
SCHEDULE = Schedule(block=10, total=60, eval_every=30, checkpoint_every=20)


@jax.jit
def _steps(x, key):
    """Ten compiled 'training steps': a random walk of the state, keyed by (run key, step)."""
    def body(x, k):
        return x * 0.9 + jax.random.normal(k, x.shape), None
    return jax.lax.scan(body, x, jax.random.split(key, 10))[0]


def _trainer(sleep_s=0.0, stop_at=None):
    def block(state, progress):
        time.sleep(sleep_s)
        state = _steps(state, jax.random.fold_in(KEY, progress["step"]))
        progress.setdefault("history", []).append(float(state.sum()))
        if progress["step"] + 10 == stop_at:
            interrupt.request()  # what SIGTERM / Ctrl-C does, during this block
        return state, {"loss": float(jnp.abs(state).mean())}

    def evaluate(state, progress):
        progress.setdefault("evals", []).append(progress["step"])
        return {"score": float(state[0])}

    return block, evaluate


def _train(folder, *, fp="a", until=None, sleep_s=0.0, stop_at=None, metrics=None):
    clock = WallClock()
    store = Checkpoint(folder, fingerprint(fp), owner="toy", other="another toy run")
    state, progress = jnp.zeros(4, jnp.float32), {}
    loaded = store.load(lambda _: state)
    if loaded is not None:
        state, progress = loaded
    block, evaluate = _trainer(sleep_s, stop_at)
    schedule = Schedule(**{**SCHEDULE.__dict__, "until": until})
    return run(block, state, progress, schedule=schedule, clock=clock, checkpoint=store, evaluate=evaluate, metrics=metrics)


def test_a_stopped_and_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    full, full_progress, done = _train(tmp_path / "full")
    assert done and full_progress["step"] == 60 and full_progress["evals"] == [30, 60]
    with interrupt.graceful_stop():
        with pytest.raises(interrupt.Stopped, match="step 30") as stopped:
            _train(tmp_path / "stopped" / "checkpoint", stop_at=30, metrics=tmp_path / "stopped" / "metrics.jsonl")
    assert stopped.value.step == 30 and not interrupt.requested()  # leaving the stop context clears the request
    saved = json.loads((tmp_path / "stopped" / "checkpoint" / "progress.json").read_text())
    assert saved["step"] == 30 and saved["evals"] == [30]  # the finished block was kept although no checkpoint was due
    resumed, progress, done = _train(tmp_path / "stopped" / "checkpoint", metrics=tmp_path / "stopped" / "metrics.jsonl")
    assert done
    np.testing.assert_array_equal(np.asarray(resumed), np.asarray(full))
    assert progress["history"] == full_progress["history"] and progress["evals"] == full_progress["evals"]
    rows = [json.loads(line) for line in (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60] and "score" in rows[2]


def test_a_kill_after_the_last_checkpoint_redoes_those_blocks_exactly(tmp_path):
    """``until`` stops where a kill would (checkpointed there); a run resumed from an older checkpoint (the kill came
    before the write) redoes the blocks since, logging each step once."""
    full, _, _ = _train(tmp_path / "full")
    folder, log = tmp_path / "run" / "checkpoint", tmp_path / "run" / "metrics.jsonl"
    _train(folder, until=20, metrics=log)  # checkpoint at 20
    with open(log, "a") as f:  # blocks a killed invocation ran after it, and a line cut short by the kill
        f.write(json.dumps({"step": 30, "wall_s": 0.0}) + "\n" + '{"step": 4')
    state, progress, done = _train(folder, metrics=log)
    assert done
    np.testing.assert_array_equal(np.asarray(state), np.asarray(full))
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [10, 20, 30, 40, 50, 60]


def test_wall_time_accumulates_across_resumes(tmp_path):
    folder = tmp_path / "checkpoint"
    _, first, done = _train(folder, until=30, sleep_s=0.05)
    assert not done and first["wall_s"] >= 0.15
    assert json.loads((folder / "progress.json").read_text())["wall_s"] == pytest.approx(first["wall_s"], abs=0.05)
    started = time.perf_counter()
    _, last, done = _train(folder, sleep_s=0.05)
    this_call = time.perf_counter() - started
    assert done and last["wall_s"] >= 0.3 and last["wall_s"] > this_call + 0.1  # both invocations, not the last only
    assert last["train_s"] >= 0.3


def test_a_checkpoint_of_other_inputs_is_refused(tmp_path):
    folder = tmp_path / "checkpoint"
    _train(folder, until=20)
    with pytest.raises(ConfigError, match=r"toy: the checkpoint in .* belongs to another toy run.*Fix: delete it"):
        _train(folder, fp="b")


def test_a_state_saved_only_where_it_can_be(tmp_path):
    """``can_stop`` false (mid-episode) postpones a due checkpoint and a stop to the first step where it is true."""
    store = Checkpoint(tmp_path / "c", fingerprint("x"))
    ends = {35}  # the only 'episode end'

    def block(state, progress):
        progress["step"] += 35 if progress["step"] == 0 else 5
        if progress["step"] == 20 or progress["step"] == 35:
            interrupt.request()
        return state + 1, {}

    with interrupt.graceful_stop():
        with pytest.raises(interrupt.Stopped, match="step 35"):
            run(block, jnp.zeros(()), {}, schedule=Schedule(block=None, total=100, checkpoint_every=10), clock=WallClock(),
                checkpoint=store, can_stop=lambda p: p["step"] in ends)
    assert store.read_progress()["step"] == 35


def test_seeds_together_split_into_one_checkpoint_per_seed(tmp_path):
    stores = [Checkpoint(tmp_path / f"seed_{i}" / "checkpoint", fingerprint(i)) for i in range(2)]
    seeds = SeedCheckpoints(stores, tmp_path)
    state = jnp.arange(6.0).reshape(2, 3)
    seeds.save(state, {"step": 20, "wall_s": 4.0, "train_s": 2.0, "seeds": [{"evals": [0]}, {"evals": [1]}]})
    assert stores[1].read_progress() == {"step": 20, "wall_s": 2.0, "train_s": 1.0, "evals": [1]}
    loaded, progress = seeds.load(lambda _: jnp.zeros(3))
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(state))
    assert progress == {"step": 20, "wall_s": 4.0, "train_s": 2.0, "seeds": [{"evals": [0]}, {"evals": [1]}]}
    stores[1].remove()
    with pytest.raises(ConfigError, match="different steps"):
        seeds.load(lambda _: jnp.zeros(3))


def test_only_the_loop_tests_for_a_stop_request():
    """Every trainer stops through :func:`dynlearn.training.run`: no other module of the package reads the request."""
    from pathlib import Path

    import dynlearn

    root = Path(dynlearn.__file__).parent
    readers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if "requested()" in p.read_text() and p.parent.name != "training" and p.name != "interrupt.py")
    assert readers == []
