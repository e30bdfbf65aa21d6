"""Issue 21, item 1: one writer at a time for a run folder and a model-cache entry, checked with real second processes
(a second writer is refused naming the holder; a killed holder's lock is taken over; another host's is refused)."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from dynlearn import locking
from dynlearn.errors import LockedError
from dynlearn.results import RunFolder
from tests.helpers import episodes_arrays, write_h5

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_PROCS: list[subprocess.Popen] = []


def _python(code: str, *args) -> subprocess.Popen:
    """A second process running ``code`` (dynlearn importable, the repository as working directory); ended, and its
    pipes closed, when the test ends."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _PROCS.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _end_processes():
    yield
    while _PROCS:
        proc = _PROCS.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


HOLD = """
    import sys, time
    from dynlearn.results import RunFolder
    RunFolder.open(sys.argv[1], {"run": "held"}, part=sys.argv[2] or None)
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder():
    """Start a process that opens a run folder (``part``: one seed's part) and holds it until the test ends."""

    def start(folder, part=""):
        proc = _python(HOLD, folder, part)
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        return proc

    return start


def test_second_writer_is_refused_naming_the_holder(tmp_path, holder):
    out = tmp_path / "run"
    proc = holder(out)
    for kwargs in ({"force": True}, {"resume": True}):
        with pytest.raises(LockedError, match=rf"the run folder {out} is being written by process {proc.pid} on "
                                              rf"{socket.gethostname()} .*Fix: .*kill {proc.pid}"):
            RunFolder.open(out, {"run": "held"}, **kwargs)
    assert json.loads((out / "config.json").read_text()) == {"run": "held"}  # nothing of the second writer's


def test_cli_second_writer_exits_2_with_one_line(tmp_path, holder, monkeypatch, capsys):
    from dynlearn.cli import main

    data = tmp_path / "d.hdf5"
    write_h5(data, episodes_arrays(lengths=(30, 30), obs_dim=3, act_dim=1, ends=("timeout", "timeout")))
    out = tmp_path / "run"
    proc = holder(out)
    argv = ["train", "bc", str(data), "--task", "Pendulum-v1", "--steps", "1000", "--force", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and f"process {proc.pid}" in err and "Fix:" in err, err
    assert json.loads((out / "config.json").read_text()) == {"run": "held"}


def test_lock_is_released_at_exit_and_by_close(tmp_path):
    out = tmp_path / "run"
    proc = _python("import sys; from dynlearn.results import RunFolder; RunFolder.open(sys.argv[1], {'a': 1})", out)
    assert proc.wait() == 0, proc.stderr.read()
    assert not (out / locking.RUN_LOCK).exists()  # removed by the exiting process
    with RunFolder.open(out, {"a": 1}, resume=True):
        holder = json.loads((out / locking.RUN_LOCK).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
        with RunFolder.open(out, {"a": 1}, resume=True):  # re-entrant within one process
            pass
        assert (out / locking.RUN_LOCK).exists()  # still held by the outer one
    assert not (out / locking.RUN_LOCK).exists()


def test_killed_holders_lock_is_taken_over_with_a_warning(tmp_path, capfd):
    out = tmp_path / "run"
    proc = _python("import os, sys; from dynlearn.results import RunFolder; RunFolder.open(sys.argv[1], {'a': 1}); "
                   "os.kill(os.getpid(), 9)", out)
    assert proc.wait() == -signal.SIGKILL
    assert json.loads((out / locking.RUN_LOCK).read_text())["pid"] == proc.pid  # left behind
    with RunFolder.open(out, {"a": 1}, resume=True):
        assert json.loads((out / locking.RUN_LOCK).read_text())["pid"] == os.getpid()
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and f"took over the lock of the run folder {out} left by process {proc.pid}" in err, err


def test_lock_of_a_reused_pid_is_stale(tmp_path, capfd):
    out = tmp_path / "run"
    RunFolder.open(out, {}).close()
    # PID 1 runs, but it is not the process that wrote the lock (another start time): the PID was reused
    (out / locking.RUN_LOCK).write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "started": "then",
                                                    "process_start": "-1"}))
    RunFolder.open(out, {}, resume=True).close()
    assert "took over the lock" in capfd.readouterr().err


def test_lock_from_another_host_is_refused_with_the_fix(tmp_path):
    out = tmp_path / "run"
    RunFolder.open(out, {}).close()
    lock_file = out / locking.RUN_LOCK
    lock_file.write_text(json.dumps({"pid": 4242, "host": "node-17", "started": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(LockedError, match=rf"process 4242 on node-17 .*cannot be checked from this host\. Fix: if no "
                                          rf"dynlearn process on node-17 writes it any more, delete {lock_file}"):
        RunFolder.open(out, {}, resume=True)
    assert lock_file.is_file()  # kept: it is the other host's
    lock_file.unlink()  # the fix
    RunFolder.open(out, {}, resume=True).close()


def test_seed_processes_share_a_run_and_exclude_a_whole_writer(tmp_path, holder):
    out = tmp_path / "run"
    first = holder(out, "seed_0")  # `--only-seed 0`
    with RunFolder.open(out, {"run": "held"}, resume=True, part="seed_1"):  # `--only-seed 1 --resume`: together
        whole = _python("import sys; from dynlearn.results import RunFolder; "
                        "RunFolder.open(sys.argv[1], {'run': 'held'}, resume=True)", out)  # a whole-run writer
        assert whole.wait() != 0 and f"process {first.pid} " in whole.stderr.read()
        with pytest.raises(LockedError):  # nor this process, which writes seed_1 only
            RunFolder.open(out, {"run": "held"}, resume=True)
    proc = _python("import sys; from dynlearn.results import RunFolder; "
                   "RunFolder.open(sys.argv[1], {'run': 'held'}, resume=True, part='seed_0')", out)
    holder = f"being written by process {first.pid} on {socket.gethostname()} (writing seed_0, since "
    assert proc.wait() != 0 and holder in proc.stderr.read()


def test_a_waiting_writer_goes_on_when_the_holder_ends(tmp_path):
    lock_file = tmp_path / "entry.lock"
    proc = _python("import sys, time; from dynlearn import locking; "
                   "locking.acquire(sys.argv[1], 'the entry'); print('locked', flush=True); time.sleep(2)", lock_file)
    assert proc.stdout.readline().strip() == "locked"
    said, started = [], time.monotonic()
    with locking.hold(lock_file, "the entry", wait=True, on_wait=said.append):
        assert time.monotonic() - started > 0.5 and proc.wait(timeout=30) == 0  # it had to end first
    assert len(said) == 1 and said[0].startswith(f"waiting for process {proc.pid} on {socket.gethostname()} (since ")
    assert said[0].endswith("), which is writing the entry")


def test_model_cache_entry_is_locked_while_fitted(tmp_path, monkeypatch):
    """While a process fits a cache entry, the entry's lock names it; a second process fitting it waits for the first
    and then reads the cached model instead of fitting it again."""
    from dynlearn import models
    from dynlearn.models import EnsembleConfig, FitConfig, cache
    from tests.models.systems import linear_dataset

    data = linear_dataset(episodes=30, length=20, seed=6)
    cfg = EnsembleConfig(members=3, elites=2, hidden=(16,), weight_decay=(2.5e-5, 1e-4))
    fit_cfg = FitConfig(progress=False, max_epochs=2, patience=2)
    entry = cache.cache_entry(data, cfg, fit_cfg, root=tmp_path)
    seen = {}
    real_fit = cache.fit

    def fit(*args, **kwargs):
        seen["holder"] = json.loads(entry.with_name(entry.name + ".lock").read_text())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cache, "fit", fit)
    models.fitted(data, cfg, fit_cfg, root=tmp_path)
    assert seen["holder"]["pid"] == os.getpid() and not entry.with_name(entry.name + ".lock").exists()
    # another process fitting the entry (holding its lock): this one waits for it, then fits (that one wrote nothing)
    from dynlearn.checkpoint import remove_dir

    remove_dir(entry)
    proc = _python("import sys, time; from dynlearn import locking; locking.acquire(sys.argv[1], 'e'); "
                   "print('locked', flush=True); time.sleep(2)", entry.with_name(entry.name + ".lock"))
    assert proc.stdout.readline().strip() == "locked"
    lines = []
    models.fitted(data, cfg, fit_cfg, root=tmp_path, log=lines.append)
    assert lines[0].startswith(f"dynamics model: waiting for process {proc.pid} on ") and proc.wait(timeout=30) == 0
    assert seen["holder"]["pid"] == os.getpid() and (entry / "manifest.json").is_file()
