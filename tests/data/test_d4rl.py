import h5py
import numpy as np
import pytest

import dynlearn as dl
from dynlearn.errors import DataError, OutputExistsError
from tests.helpers import episodes_arrays, write_h5


def test_next_obs_derived_only_inside_episodes(tmp_path):
    arrays = episodes_arrays(lengths=(5, 7, 4), ends=("terminal", "timeout", "cut"))
    del arrays["next_observations"]
    write_h5(tmp_path / "d.hdf5", arrays)
    ds = dl.data.load(tmp_path / "d.hdf5")
    t = ds.transitions
    assert len(ds) == 16 and ds.n_episodes == 3
    np.testing.assert_array_equal(ds.episode_starts, [0, 5, 12])
    # last step of each episode is kept, with its reward and flag, but has no successor
    ends = [4, 11, 15]
    np.testing.assert_array_equal(np.flatnonzero(~t.next_obs_valid), ends)
    assert t.terminal[4] and t.timeout[11] and t.rew[11] == 2.0
    # inside episodes, the successor is the next row; never across an episode end
    inside = np.setdiff1d(np.arange(16), ends)
    np.testing.assert_array_equal(t.next_obs[inside], t.obs[inside + 1])
    assert not np.allclose(t.next_obs[4], t.obs[5])
    np.testing.assert_array_equal(ds.episode_complete, [True, True, False])
    np.testing.assert_allclose(ds.episode_returns(), [5.0, 14.0, 12.0])
    assert len(t.with_successor()) == 13


def test_file_next_observations_are_used(tmp_path):
    arrays = episodes_arrays()
    arrays["rewards"] = arrays["rewards"][:, None]  # [N, 1] as some D4RL files store it
    write_h5(tmp_path / "d.hdf5", arrays)
    t = dl.data.load(tmp_path / "d.hdf5").transitions
    assert t.next_obs_valid.all() and t.rew.shape == (16,)
    np.testing.assert_array_equal(t.next_obs, arrays["next_observations"])


def test_missing_timeouts_means_no_timeouts(tmp_path):
    arrays = episodes_arrays(ends=("terminal", "terminal", "terminal"))
    del arrays["timeouts"]
    write_h5(tmp_path / "d.hdf5", arrays)
    ds = dl.data.load(tmp_path / "d.hdf5")
    assert not ds.transitions.timeout.any() and ds.n_episodes == 3


def test_write_read_roundtrip_preserves_everything(tmp_path):
    arrays = episodes_arrays()
    del arrays["next_observations"]
    write_h5(tmp_path / "d.hdf5", arrays)
    ds = dl.data.load(tmp_path / "d.hdf5")
    out = dl.data.write_d4rl(tmp_path / "out.hdf5", ds)
    back = dl.data.load(out)
    assert back.content_hash() == ds.content_hash()
    with h5py.File(out) as f:  # readable as plain D4RL by other tools
        assert set(f) >= {"observations", "actions", "rewards", "next_observations", "terminals", "timeouts"}
        assert f["observations"].dtype == np.float32 and f["terminals"].dtype == bool


def test_writer_refuses_overwrite_and_leaves_no_temp_files(tmp_path):
    arrays = episodes_arrays()
    write_h5(tmp_path / "d.hdf5", arrays)
    ds = dl.data.load(tmp_path / "d.hdf5")
    dl.data.write_d4rl(tmp_path / "out.hdf5", ds)
    with pytest.raises(OutputExistsError, match="--force"):
        dl.data.write_d4rl(tmp_path / "out.hdf5", ds)
    dl.data.write_d4rl(tmp_path / "out.hdf5", ds, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.hdf5", "out.hdf5"]


def _corrupt(arrays, how):
    a = dict(arrays)
    if how == "missing":
        del a["actions"]
    elif how == "length":
        a["rewards"] = a["rewards"][:-1]
    elif how == "rank":
        a["observations"] = a["observations"][:, :, None]
    elif how == "nan":
        a["observations"] = a["observations"].copy()
        a["observations"][3, 1] = np.nan
    elif how == "inf":
        a["rewards"] = a["rewards"].copy()
        a["rewards"][2] = np.inf
    elif how == "empty":
        a = {k: v[:0] for k, v in a.items()}
    elif how == "flags":
        a["terminals"] = np.full(a["terminals"].shape, 3)
    return a


@pytest.mark.parametrize(("how", "key", "words"), [
    ("missing", "actions", "missing"), ("length", "rewards", "rows"), ("rank", "observations", "rank"),
    ("nan", "observations", "NaN"), ("inf", "rewards", "inf"), ("empty", "observations", "empty"), ("flags", "terminals", "0/1"),
])
def test_bad_arrays_give_one_line_errors_naming_file_and_key(tmp_path, how, key, words):
    path = tmp_path / "bad.hdf5"
    write_h5(path, _corrupt(episodes_arrays(), how))
    with pytest.raises(DataError) as err:
        dl.data.load(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"[{key}]" in msg and "Fix:" in msg and words in msg


def test_not_hdf5_and_truncated_files(tmp_path):
    (tmp_path / "text.hdf5").write_text("not hdf5 at all")
    with pytest.raises(DataError, match="not an HDF5 file"):
        dl.data.load(tmp_path / "text.hdf5")
    arrays = episodes_arrays(lengths=(400, 400, 400))
    write_h5(tmp_path / "full.hdf5", arrays)
    raw = (tmp_path / "full.hdf5").read_bytes()
    (tmp_path / "cut.hdf5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        dl.data.load(tmp_path / "cut.hdf5")


def test_dims_must_match_named_task(tmp_path):
    write_h5(tmp_path / "d.hdf5", episodes_arrays(obs_dim=3, act_dim=2))
    with pytest.raises(DataError, match="Hopper-v5 has 11"):
        dl.data.load(tmp_path / "d.hdf5", task="Hopper-v5")


def test_infos_qpos_kept_and_checked(tmp_path):
    arrays = episodes_arrays()
    arrays["infos/qpos"] = np.zeros((16, 4))
    arrays["infos/qvel"] = np.zeros((16, 4))
    write_h5(tmp_path / "d.hdf5", arrays)
    ds = dl.data.load(tmp_path / "d.hdf5")
    assert ds.metadata["qpos"].shape == (16, 4)
    arrays["infos/qvel"] = np.zeros((15, 4))
    write_h5(tmp_path / "bad.hdf5", arrays)
    with pytest.raises(DataError, match=r"\[infos/qvel\]"):
        dl.data.load(tmp_path / "bad.hdf5")


# ----- issue 21, item 9: links and text that h5py would turn into a bare KeyError / UnicodeDecodeError -----------------
def _links_file(tmp_path, **change):
    arrays = episodes_arrays(lengths=(5, 7), ends=("timeout", "timeout"))
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        for k, v in arrays.items():
            if k not in change:
                f[k] = v
        for k, v in change.items():
            f[k] = v
    return tmp_path / "d.hdf5"


def test_broken_links_and_non_utf8_text_are_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"\[terminals\]: is a soft link to /gone, which does not exist"):
        dl.data.load(_links_file(tmp_path, terminals=h5py.SoftLink("/gone")))
    with pytest.raises(DataError, match=r"\[next_observations\]: is an external link to /x in .*nowhere.h5"):
        dl.data.load(_links_file(tmp_path, next_observations=h5py.ExternalLink(str(tmp_path / "nowhere.h5"), "/x")))
    with pytest.raises(DataError, match=r"\[metadata/name\]: holds bytes that are not UTF-8"):
        dl.data.load(_links_file(tmp_path, **{"metadata/name": np.bytes_(b"caf\xe9")}))


def test_working_links_are_followed(tmp_path):
    arrays = episodes_arrays(lengths=(5, 7), ends=("timeout", "timeout"))
    write_h5(tmp_path / "other.h5", {"timeouts": arrays["timeouts"]})
    external = h5py.ExternalLink(str(tmp_path / "other.h5"), "/timeouts")
    path = _links_file(tmp_path, terminals=h5py.SoftLink("/stored/terminals"), timeouts=external,
                       **{"stored/terminals": arrays["terminals"], "metadata/name": "linked"})
    ds = dl.data.load(path)
    assert ds.n_episodes == 2 and ds.transitions.timeout.sum() == 2 and ds.metadata["metadata/name"] == "linked"


def test_write_refuses_a_folder_and_an_unmakeable_folder(tmp_path):
    ds = dl.data.load(_links_file(tmp_path))
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        dl.data.write_d4rl(tmp_path / "folder", ds, force=True)
    with pytest.raises(DataError, match="d.hdf5 is a file, not a folder"):
        dl.data.write_d4rl(tmp_path / "d.hdf5" / "x.hdf5", ds)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.hdf5", "folder"] and not any((tmp_path / "folder").iterdir())
