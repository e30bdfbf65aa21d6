import os
from pathlib import Path

import numpy as np
import pytest

from dynlearn.data.gtf import GTF_DATA_ENV, gtf_data_root, gtf_dataset
from dynlearn.data.timeseries import TimeSeries, load_timeseries
from dynlearn.errors import ConfigError, DataError


def _series(T=100, N=3, K=1, dt=0.1):
    rng = np.random.default_rng(0)
    return TimeSeries(values=rng.normal(2.0, 3.0, (K, T, N)), dt=dt)


def test_two_d_values_become_one_trajectory_with_default_names():
    ts = TimeSeries(values=np.arange(20.0).reshape(10, 2), dt=0.5)
    assert ts.values.shape == (1, 10, 2) and ts.values.dtype == np.float32
    assert (ts.n_trajectories, ts.length, ts.dim) == (1, 10, 2)
    assert ts.names == ("x0", "x1") and ts.duration == 4.5
    np.testing.assert_allclose(ts.times(), np.arange(10) * 0.5)
    np.testing.assert_array_equal(ts.trajectory(0), np.arange(20.0).reshape(10, 2))


@pytest.mark.parametrize("values, problem", [
    (np.zeros(10), "rank 1"),
    (np.zeros((2, 3, 4, 5)), "rank 4"),
    (np.zeros((0, 3)), "fewer than 2"),
    (np.zeros((1, 3)), "fewer than 2"),
    (np.array([["a", "b"], ["c", "d"]]), "dtype"),
])
def test_bad_values_raise_data_error_with_a_fix(values, problem):
    with pytest.raises(DataError, match=problem) as info:
        TimeSeries(values=values, dt=1.0)
    assert info.value.fix


def test_nan_is_located():
    v = np.zeros((2, 5, 3))
    v[1, 3, 2] = np.nan
    with pytest.raises(DataError, match="trajectory 1, step 3, channel 2"):
        TimeSeries(values=v)


@pytest.mark.parametrize("dt", [0.0, -0.1, float("nan"), float("inf"), "fast"])
def test_bad_dt(dt):
    with pytest.raises(DataError, match="dt"):
        TimeSeries(values=np.zeros((5, 2)), dt=dt)


def test_names_must_match_channels():
    with pytest.raises(DataError, match="names"):
        TimeSeries(values=np.zeros((5, 2)), names=("a",))


def test_standardize_returns_stats_and_applies_them_to_a_test_split():
    ts = _series(T=400, N=3, K=2)
    train, test = ts.split(0.75)
    z, (mean, std) = train.standardize()
    flat = z.values.reshape(-1, 3)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(flat.std(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(mean, train.values.reshape(-1, 3).mean(0), rtol=1e-5)
    zt, (mean2, _) = test.standardize((mean, std))
    np.testing.assert_allclose(zt.values, (test.values - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mean2, mean)
    assert z.provenance["standardized"] and len(z.provenance["std"]) == 3
    with pytest.raises(ConfigError):
        test.standardize((mean[:2], std[:2]))


def test_split_is_in_time_for_every_trajectory():
    ts = _series(T=10, K=2)
    a, b = ts.split(0.7)
    assert a.values.shape == (2, 7, 3) and b.values.shape == (2, 3, 3)
    np.testing.assert_array_equal(np.concatenate([a.values, b.values], axis=1), ts.values)
    assert a.dt == ts.dt and a.provenance["split"] == "train"
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError):
            ts.split(bad)
    with pytest.raises(DataError):
        ts.split(0.05)


def test_drop_transient():
    ts = _series(T=10)
    out = ts.drop_transient(4).drop_transient(1)
    np.testing.assert_array_equal(out.values, ts.values[:, 5:])
    assert out.provenance["transient_dropped"] == 5
    with pytest.raises(DataError):
        ts.drop_transient(10)
    with pytest.raises(ConfigError):
        ts.drop_transient(-1)


# ----- loaders ---------------------------------------------------------------------------------------
def test_npy_two_and_three_d_and_column_pick(tmp_path):
    x = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    ts = load_timeseries(tmp_path / "a.npy", dt=0.02, columns=[0, 2])
    np.testing.assert_array_equal(ts.values[0], x[:, [0, 2]])
    assert ts.dt == 0.02 and ts.names == ("x0", "x2") and ts.provenance["format"] == "npy"
    np.save(tmp_path / "k.npy", np.stack([x, x + 1]))
    assert load_timeseries(tmp_path / "k.npy").values.shape == (2, 50, 4)
    np.save(tmp_path / "one.npy", x[:, 0])
    one = load_timeseries(tmp_path / "one.npy")
    assert one.values.shape == (1, 50, 1) and one.dt == 1.0 and one.provenance["time_unit"] == "sample"


def test_npz_arrays_stack_as_channels_and_time_gives_dt(tmp_path):
    t = np.arange(30) * 0.05
    np.savez(tmp_path / "s.npz", t=t, v=np.sin(t), w=np.cos(t))
    ts = load_timeseries(tmp_path / "s.npz")
    assert ts.names == ("v", "w") and ts.values.shape == (1, 30, 2)
    assert ts.dt == pytest.approx(0.05)
    assert load_timeseries(tmp_path / "s.npz", columns="w").names == ("w",)
    with pytest.raises(DataError, match="dt=0.1 was passed"):
        load_timeseries(tmp_path / "s.npz", dt=0.1)
    np.savez(tmp_path / "d.npz", values=np.zeros((3, 8, 2)), dt=np.float64(0.25))
    d = load_timeseries(tmp_path / "d.npz")
    assert d.values.shape == (3, 8, 2) and d.dt == 0.25


def test_csv_with_time_column(tmp_path):
    rows = ["time,a,b"] + [f"{i * 0.1:.1f},{i},{2 * i}" for i in range(12)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    ts = load_timeseries(tmp_path / "s.csv")
    assert ts.names == ("a", "b") and ts.dt == pytest.approx(0.1)
    np.testing.assert_array_equal(ts.values[0, :, 1], 2 * np.arange(12))
    assert load_timeseries(tmp_path / "s.csv", columns=["b*"]).names == ("b",)


@pytest.mark.parametrize("name, content, problem", [
    ("nohdr.csv", "1,2\n3,4\n", "no header"),
    ("cell.csv", "a,b\n1,2\n3,x\n", "row 3 holds 'x'"),
    ("ragged.csv", "a,b\n1,2\n3\n", "row 3 has 1 fields"),
    ("empty.csv", "", "is empty"),
    ("irregular.csv", "t,a\n0,1\n1,2\n3,4\n", "irregular"),
    ("nan.csv", "a,b\n1,2\nnan,4\n", "NaN"),
    ("bad.npy", "not a numpy file", "npy"),
    ("bad.npz", "not a zip", "NPZ"),
    ("x.txt", "1 2 3", "extension"),
])
def test_loaders_reject_bad_files(tmp_path, name, content, problem):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=problem) as info:
        load_timeseries(tmp_path / name)
    assert info.value.fix


def test_loader_rejects_missing_file_and_unknown_columns(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_timeseries(tmp_path / "missing.npy")
    np.savez(tmp_path / "s.npz", a=np.zeros(5), b=np.zeros(6))
    with pytest.raises(DataError, match="different lengths"):
        load_timeseries(tmp_path / "s.npz")
    with pytest.raises(DataError, match="no column matching 'c'"):
        load_timeseries(tmp_path / "s.npz", columns=["c"])


# ----- the GTF paper's data ----------------------------------------------------------------------------
_GTF = os.environ.get(GTF_DATA_ENV)
needs_gtf = pytest.mark.skipif(
    not _GTF or not any(Path(_GTF).glob("**/lorenz63_test.npy")),
    reason=f"needs the GTF paper's data (DurstewitzLab/GTF-shPLRNN, ICML2023_datasets): set {GTF_DATA_ENV} to its folder")


@needs_gtf
@pytest.mark.parametrize("name, split, shape, dt", [
    ("lorenz63", "train", (1, 100_000, 3), 0.01),
    ("lorenz63", "test", (1, 100_000, 3), 0.01),
    ("ecg", "test", (1, 100_000, 5), 1 / 700),
    ("eeg", "train", (1, 9640, 64), 1.0),
])
def test_gtf_datasets_load_with_their_shapes(name, split, shape, dt):
    ts = gtf_dataset(name, split)
    assert ts.values.shape == shape and ts.values.dtype == np.float32
    assert ts.dt == pytest.approx(dt)
    assert ts.provenance["license"] == "GPL-3.0" and ts.provenance["name"] == f"gtf/{name}/{split}"


@needs_gtf
def test_gtf_lorenz63_is_sampled_every_0_01():
    """Known answer: central differences of the standardised test series fit the Lorenz x-equation
    x' = sigma (s_y/s_x y - x) + c; the coefficient of x is -sigma * dt, so dt = 0.01."""
    x = gtf_dataset("lorenz63", "test").values[0, :20_000].astype(np.float64)
    dx = (x[2:, 0] - x[:-2, 0]) / 2.0
    coef = np.linalg.lstsq(np.c_[x[1:-1, 1], x[1:-1, 0], np.ones(len(dx))], dx, rcond=None)[0]
    assert -coef[1] / 10.0 == pytest.approx(0.01, rel=0.01)


def test_gtf_dataset_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown name"):
        gtf_dataset("lorenz96")
    with pytest.raises(ConfigError, match="split"):
        gtf_dataset("lorenz63", "valid")
    monkeypatch.setenv(GTF_DATA_ENV, str(tmp_path))
    with pytest.raises(DataError, match=GTF_DATA_ENV):
        gtf_dataset("lorenz63")
    monkeypatch.delenv(GTF_DATA_ENV)
    with pytest.raises(DataError, match=f"{GTF_DATA_ENV} is unset.*DurstewitzLab/GTF-shPLRNN"):
        gtf_dataset("lorenz63")
    with pytest.raises(DataError, match="DurstewitzLab/GTF-shPLRNN"):
        gtf_data_root()


def test_gtf_data_location_is_root_then_the_variable_and_accepts_the_repository_layout(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    (tmp_path / "flat").mkdir()
    np.save(tmp_path / "flat" / "lorenz63_test.npy", x)
    (tmp_path / "repo" / "Lorenz63").mkdir(parents=True)
    np.save(tmp_path / "repo" / "Lorenz63" / "lorenz63_test.npy", 2 * x)
    monkeypatch.setenv(GTF_DATA_ENV, str(tmp_path / "flat"))
    assert gtf_data_root() == tmp_path / "flat"
    np.testing.assert_array_equal(gtf_dataset("lorenz63", "test").values[0], x)
    assert gtf_data_root(tmp_path / "repo") == tmp_path / "repo"  # root= wins over the variable
    np.testing.assert_array_equal(gtf_dataset("lorenz63", "test", root=tmp_path / "repo").values[0], 2 * x)


# ----- issue 21, item 12: a constant series or channel is refused as constant ------------------------------------------
def test_constant_series_and_channels():
    t = np.arange(200) * 0.1
    varied = TimeSeries(values=np.stack([np.sin(t), np.cos(t)], 1))
    assert varied.constant_channels() == []
    varied.check_varies()
    flat = TimeSeries(values=np.full((200, 2), 1e4), provenance={"source": "flat.npy"})
    assert flat.constant_channels() == [0, 1]
    with pytest.raises(DataError, match=r"flat.npy: the series is constant \(every channel holds one value, e.g. x0 = 10000\)"):
        flat.check_varies()
    mixed = TimeSeries(values=np.stack([np.sin(t), np.full(200, -2.0), 1e-3 * np.cos(t)], 1), names=("a", "b", "c"))
    assert mixed.constant_channels() == [1]  # a small but varying channel is not constant
    with pytest.raises(DataError, match=r"1 constant channel\(s\) out of 3: b \(= -2\)"):
        mixed.check_varies()


def test_csv_series_reader_handles_bom_quotes_and_duplicates(tmp_path):
    (tmp_path / "s.csv").write_bytes(b'\xef\xbb\xbft,"a",b\n0,"1.5",2\n0.5,2,3\n1,3,4\n')
    ts = load_timeseries(tmp_path / "s.csv")
    assert ts.names == ("a", "b") and ts.dt == 0.5 and ts.values[0, 0].tolist() == [1.5, 2.0]
    (tmp_path / "d.csv").write_text("a,a\n1,2\n3,4\n")
    with pytest.raises(DataError, match="names column 'a' twice"):
        load_timeseries(tmp_path / "d.csv")
    (tmp_path / "semi.csv").write_text("a;b\n1;2\n3;4\n")
    assert load_timeseries(tmp_path / "semi.csv", delimiter=";").dim == 2
