"""Issue 21: bad files and misuse through the CLI, as a table. For each case: exit status 2, one line on stderr that
starts with "error: ", names the file or flag and says "Fix:", no traceback, and nothing written at the output path."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn.cli import main
from tests.helpers import episodes_arrays, write_h5

_ROWS = "\n".join(f"{i},{i * 2},{0.1 * i},1.0,{int(i == 9)}" for i in range(10))
_COLS = ["--obs-cols", "o1,o2", "--act-cols", "a", "--rew-col", "r", "--terminal-col", "d"]


def _text(name: str, text: str, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(text.encode(encoding))
        return tmp / name
    return make


def _pendulum(tmp: Path) -> Path:
    """A valid Pendulum-v1 dataset (dims 3 / 1): the misuse is in the options."""
    write_h5(tmp / "p.hdf5", episodes_arrays(lengths=(30, 30), obs_dim=3, act_dim=1, ends=("timeout", "timeout")))
    return tmp / "p.hdf5"


def _h5(**change) -> Callable[[Path], Path]:
    """A Pendulum-sized D4RL file with some keys replaced (a link, a bytes value) or flags changed."""
    def make(tmp: Path) -> Path:
        arrays = episodes_arrays(lengths=(30, 30), obs_dim=3, act_dim=1, ends=("timeout", "timeout"))
        del arrays["next_observations"]
        path = tmp / "bad.hdf5"
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                if k not in change:
                    f[k] = v
            for k, v in change.items():
                f[k] = v(tmp) if callable(v) else v
        return path
    return make


def _rows(n: int, *, all_timeouts: bool) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        rng = np.random.default_rng(0)
        write_h5(tmp / "few.hdf5", {"observations": rng.normal(size=(n, 3)).astype(np.float32),
                                    "actions": rng.uniform(-1, 1, (n, 1)).astype(np.float32),
                                    "rewards": np.ones(n, np.float32), "terminals": np.zeros(n, bool),
                                    "timeouts": np.full(n, all_timeouts)})
        return tmp / "few.hdf5"
    return make


def _broken_fit_report(tmp: Path) -> Path:
    folder = tmp / "model_run"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_train": {}, "task": "Pendulum-v1"}')
    (folder / "fit_report.json").write_text('{"epochs": 3, "holdout')  # cut short
    (folder / "model").mkdir()
    return folder


def _nan_model(tmp: Path) -> Path:
    from dynlearn.models import EnsembleConfig, ProbabilisticEnsemble, save

    import equinox as eqx

    model = ProbabilisticEnsemble.init(EnsembleConfig(members=2, elites=1, hidden=(8,), weight_decay=(0.0, 0.0)), 3, 1,
                                       key=jax.random.key(0))
    model = jax.tree_util.tree_map(lambda x: jnp.full_like(x, jnp.nan) if eqx.is_inexact_array(x) else x, model)
    save(tmp / "nan_model", model)
    return tmp / "nan_model"


def _series(name: str, values: np.ndarray, header: str | None = None) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        if header is None:
            np.save(tmp / name, values)
        else:
            np.savetxt(tmp / name, values, delimiter=",", header=header, comments="")
        return tmp / name
    return make


_T = np.arange(400) * 0.05


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], Path]
    """writes the input file (or folder) under the test's folder; ``{file}`` in ``argv`` is its path"""
    argv: tuple[str, ...]
    """``{out}``: the output path (a file for data commands, a folder for the others)"""
    needles: tuple[str, ...]
    """what the one line must name (besides "Fix:")"""
    existing_out: bool = False
    """``{out}`` is an existing folder (its contents must survive)"""


CASES = [
    # item 3: CSV
    Case("csv-duplicate-header", _text("dup.csv", "o1,o1,a,r,d\n" + _ROWS), ("data", "convert", "{file}", *_COLS, "--out", "{out}"),
         ("dup.csv", "'o1' twice")),
    Case("csv-unnamed-column", _text("idx.csv", ",o1,o2,a,r,d\n" + "\n".join(f"{i},{r}" for i, r in enumerate(_ROWS.split("\n")))),
         ("data", "info", "{file}", *_COLS), ("idx.csv", "has no name", "index=False")),
    Case("csv-other-separator", _text("semi.csv", "o1;o2;a;r;d\n" + _ROWS.replace(",", ";")),
         ("data", "convert", "{file}", *_COLS, "--out", "{out}"), ("semi.csv", "--delimiter ';'")),
    Case("csv-bad-delimiter-option", _text("ok.csv", "o1,o2,a,r,d\n" + _ROWS),
         ("data", "convert", "{file}", *_COLS, "--delimiter", "ab", "--out", "{out}"), ("--delimiter 'ab'",)),
    Case("delimiter-on-hdf5", _pendulum, ("data", "convert", "{file}", "--delimiter", ";", "--out", "{out}"), ("--delimiter", "p.hdf5")),
    Case("csv-not-a-number", _text("cell.csv", "o1,o2,a,r,d\n" + _ROWS + "\n1,2,x,1,0"), ("data", "info", "{file}", *_COLS),
         ("cell.csv", "row 12 holds 'x'")),
    # item 9: HDF5 links and non-UTF-8 text, a CSV in UTF-16 without a byte-order mark
    Case("hdf5-dangling-soft-link", _h5(terminals=h5py.SoftLink("/nowhere")), ("data", "info", "{file}"),
         ("bad.hdf5 [terminals]", "soft link to /nowhere")),
    Case("hdf5-external-link", _h5(timeouts=lambda tmp: h5py.ExternalLink(str(tmp / "missing.h5"), "/timeouts")),
         ("data", "convert", "{file}", "--out", "{out}"), ("bad.hdf5 [timeouts]", "external link", "missing.h5")),
    Case("hdf5-non-utf8-text", _h5(**{"metadata/task": np.bytes_(b"Pendul\xfcm-v1")}), ("data", "info", "{file}"),
         ("bad.hdf5 [metadata/task]", "not UTF-8")),
    Case("csv-utf16-without-bom", _text("wide.csv", "o1,o2,a,r,d\n" + _ROWS, "utf-16-le"), ("data", "info", "{file}", *_COLS),
         ("wide.csv", "NUL")),
    # item 8: no usable transition
    Case("one-row-train", _rows(1, all_timeouts=False), ("train", "bc", "{file}", "--task", "Pendulum-v1", "--out", "{out}"),
         ("few.hdf5", "no usable transition", "one row")),
    Case("all-timeouts-train", _rows(20, all_timeouts=True), ("train", "td3bc", "{file}", "--task", "Pendulum-v1", "--out", "{out}"),
         ("few.hdf5", "no usable transition", "flagged terminal or timeout")),
    Case("all-timeouts-model-based", _rows(20, all_timeouts=True), ("train", "mopo", "{file}", "--task", "Pendulum-v1", "--out", "{out}"),
         ("few.hdf5", "no usable transition", "successor")),
    Case("all-timeouts-model-train", _rows(20, all_timeouts=True), ("model", "train", "{file}", "--task", "Pendulum-v1", "--out", "{out}"),
         ("few.hdf5", "no usable transition")),
    # item 10: output paths and counts
    Case("convert-out-is-folder-force", _pendulum, ("data", "convert", "{file}", "--out", "{out}", "--force"), ("is a folder", "--out"),
         existing_out=True),
    Case("convert-out-under-a-file", _pendulum, ("data", "convert", "{file}", "--out", "{file}/x.hdf5"), ("p.hdf5 is a file", "--out")),
    Case("convert-out-not-hdf5", _pendulum, ("data", "convert", "{file}", "--out", "{out}.csv"), ("does not end in .hdf5", "--out")),
    Case("generate-steps-0", _pendulum, ("data", "generate", "Pendulum-v1", "--steps", "0", "--out", "{out}"), ("--steps",)),
    Case("generate-num-envs-0", _pendulum, ("data", "generate", "Pendulum-v1", "--num-envs", "0", "--out", "{out}"), ("--num-envs",)),
    Case("generate-negative-noise", _pendulum, ("data", "generate", "Pendulum-v1", "--noise", "-1", "--out", "{out}"), ("--noise",)),
    Case("generate-out-is-folder", _pendulum, ("data", "generate", "Pendulum-v1", "--steps", "100", "--out", "{out}", "--force"),
         ("is a folder",), existing_out=True),
    Case("model-eval-corrupt-fit-report", _broken_fit_report, ("model", "eval", "{file}", "{file}", "--out", "{out}"),
         ("fit_report.json", "not valid JSON")),
    # item 11: configuration errors name the flag the user typed
    Case("train-steps-not-multiple", _pendulum, ("train", "bc", "{file}", "--steps", "10", "--task", "Pendulum-v1", "--out", "{out}"),
         ("--steps (10)", "multiples of 1000")),
    Case("train-mopo-steps-not-multiple", _pendulum, ("train", "mopo", "{file}", "--steps", "10", "--task", "Pendulum-v1",
                                                      "--out", "{out}"),
         ("--steps (10)", "--rollout-every (1000)")),
    Case("train-real-ratio", _pendulum, ("train", "mopo", "{file}", "--real-ratio", "2", "--task", "Pendulum-v1", "--out", "{out}"),
         ("--real-ratio must be in [0, 1]",)),
    Case("train-online-eval-every", _pendulum, ("train", "sac", "--online", "--task", "Pendulum-v1", "--eval-every", "7", "--out", "{out}"),
         ("--eval-every (7)",)),
    Case("train-unknown-algorithm", _pendulum, ("train", "mopoo", "{file}", "--task", "Pendulum-v1", "--out", "{out}"),
         ("unknown algorithm 'mopoo'", "mopo, mobile, ravl", "sac", "bc")),
    Case("train-model-based-online", _pendulum, ("train", "mobile", "--online", "--task", "Pendulum-v1", "--out", "{out}"),
         ("--online",)),
    # item 12: NaN weights, constant series
    Case("train-nan-model", _nan_model, ("train", "mopo", "{data}", "--model", "{file}", "--task", "Pendulum-v1", "--out", "{out}"),
         ("nan_model", "NaN", "--model")),
    Case("dsr-constant-series", _series("flat.npy", np.full((400, 2), 3.0)), ("dsr", "fit", "{file}", "--out", "{out}"),
         ("flat.npy", "constant")),
    Case("dsr-constant-channel", _series("chan.csv", np.stack([np.sin(_T), np.full(400, 1.5), np.cos(_T)], 1), "x,y,z"),
         ("dsr", "fit", "{file}", "--out", "{out}"), ("chan.csv", "constant channel", "y (= 1.5)")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_with_a_fix_and_writes_nothing(tmp_path, capsys, case: Case):
    file = case.make(tmp_path)
    data = _pendulum(tmp_path) if "{data}" in case.argv else None
    is_data_out = case.argv[0] == "data" and not case.existing_out
    out = tmp_path / ("out.hdf5" if is_data_out else "out")
    if case.existing_out:
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    argv = [a.format(file=file, out=out, data=data) for a in case.argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + captured.out and "Fix:" in err, err
    for needle in case.needles:
        assert needle in err, (needle, err)
    if case.existing_out:
        assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    else:
        assert not out.exists() and not Path(f"{out}.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing else written beside it either
