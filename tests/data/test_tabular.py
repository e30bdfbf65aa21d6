import numpy as np
import pytest

import dynlearn as dl
from dynlearn.errors import DataError
from tests.helpers import episodes_arrays


def _csv(path, arrays, *, episode_ids=True):
    obs, act = arrays["observations"], arrays["actions"]
    cols = [f"obs_{i}" for i in range(obs.shape[1])] + [f"act_{i}" for i in range(act.shape[1])] + ["reward", "done"]
    rows = np.column_stack([obs, act, arrays["rewards"], arrays["terminals"]])
    if episode_ids:
        ids = np.repeat(np.arange(3), [5, 7, 4])
        cols.append("episode")
        rows = np.column_stack([rows, ids])
    lines = [",".join(cols)] + [",".join(f"{v:.6g}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_npz_with_default_keys(tmp_path):
    arrays = episodes_arrays()
    np.savez(tmp_path / "d.npz", **arrays)
    ds = dl.data.load(tmp_path / "d.npz")
    assert len(ds) == 16 and ds.n_episodes == 3 and ds.transitions.next_obs_valid.all()


def test_npz_with_mapping_and_split_columns(tmp_path):
    a = episodes_arrays()
    np.savez(tmp_path / "d.npz", pos=a["observations"][:, :2], vel=a["observations"][:, 2], u=a["actions"], r=a["rewards"],
             ep=np.repeat([0, 1, 2], [5, 7, 4]))
    cols = dl.data.Columns.parse(obs="pos,vel", act="u", rew="r", terminal="none", timeout="none", episode="ep")
    ds = dl.data.load(tmp_path / "d.npz", columns=cols)
    np.testing.assert_array_equal(ds.transitions.obs, a["observations"])
    np.testing.assert_array_equal(ds.episode_starts, [0, 5, 12])
    assert (~ds.transitions.next_obs_valid).sum() == 3


def test_csv_with_patterns_and_episode_column(tmp_path):
    a = episodes_arrays()
    _csv(tmp_path / "log.csv", a)
    cols = dl.data.Columns.parse(obs="obs_*", act="act_*", rew="reward", terminal="done", timeout="none", episode="episode")
    ds = dl.data.load(tmp_path / "log.csv", columns=cols)
    assert ds.transitions.obs_dim == 3 and ds.transitions.act_dim == 2 and ds.n_episodes == 3
    np.testing.assert_allclose(ds.transitions.obs, a["observations"], rtol=1e-5)
    inside = np.flatnonzero(ds.transitions.next_obs_valid)
    np.testing.assert_allclose(ds.transitions.next_obs[inside], ds.transitions.obs[inside + 1])


def test_csv_errors(tmp_path):
    a = episodes_arrays()
    _csv(tmp_path / "log.csv", a)
    with pytest.raises(DataError, match="column mapping"):
        dl.data.load(tmp_path / "log.csv")
    with pytest.raises(DataError, match="no column matching 'state_\\*'"):
        dl.data.load(tmp_path / "log.csv", columns=dl.data.Columns.parse(obs="state_*", act="act_*", rew="reward"))
    text = (tmp_path / "log.csv").read_text().splitlines()
    text[3] = text[3].replace(text[3].split(",")[0], "oops", 1)
    (tmp_path / "bad.csv").write_text("\n".join(text))
    with pytest.raises(DataError, match="row 4 holds 'oops'"):
        dl.data.load(tmp_path / "bad.csv", columns=dl.data.Columns.parse(obs="obs_*", act="act_*", rew="reward"))


def test_episode_ids_must_be_contiguous(tmp_path):
    a = episodes_arrays()
    np.savez(tmp_path / "d.npz", **a, ep=np.array([0] * 5 + [1] * 7 + [0] * 4))
    with pytest.raises(DataError, match="more than one block"):
        dl.data.load(tmp_path / "d.npz", columns=dl.data.Columns.parse(episode="ep"))


def test_truncated_npz(tmp_path):
    np.savez(tmp_path / "d.npz", **episodes_arrays(lengths=(300, 300, 300)))
    raw = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        dl.data.load(tmp_path / "cut.npz")


# ----- issue 21, item 3: a real CSV reader -----------------------------------------------------------------------------
_COLS = dict(obs="o1,o2", act="a", rew="r", terminal="d")
_ROWS = [f"{i},{i * 2},{0.1 * i},1.0,{int(i == 9)}" for i in range(10)]


def _load(path, **kw):
    return dl.data.load(path, columns=dl.data.Columns.parse(**_COLS), **kw)


def test_csv_byte_order_mark_keeps_the_first_column(tmp_path):
    (tmp_path / "plain.csv").write_text("\n".join(["o1,o2,a,r,d", *_ROWS]))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(["o1,o2,a,r,d", *_ROWS]).encode())
    (tmp_path / "utf16.csv").write_bytes("\n".join(["o1,o2,a,r,d", *_ROWS]).encode("utf-16"))  # with its BOM
    plain = _load(tmp_path / "plain.csv")
    for name in ("bom.csv", "utf16.csv"):
        ds = _load(tmp_path / name)
        np.testing.assert_array_equal(ds.transitions.obs, plain.transitions.obs)
        assert ds.content_hash() == plain.content_hash()


def test_csv_quoted_numbers_spaces_and_blank_lines(tmp_path):
    rows = [f'"{i}", "{i * 2}",{0.1 * i},"1.0",{int(i == 9)}' for i in range(10)]
    (tmp_path / "q.csv").write_text("\n".join(['"o1","o2",a,r,d', *rows[:5], "", *rows[5:], ""]))
    ds = _load(tmp_path / "q.csv")
    assert len(ds) == 10 and ds.transitions.obs[3].tolist() == [3.0, 6.0]


def test_csv_duplicate_header_is_refused(tmp_path):
    (tmp_path / "dup.csv").write_text("\n".join(["o1,o2,a,o2,d", *_ROWS]))
    with pytest.raises(DataError, match=r"names column 'o2' twice \(columns 2 and 4\).*Fix: give every column a unique name"):
        _load(tmp_path / "dup.csv")


def test_csv_latin1_is_read_with_a_warning(tmp_path):
    (tmp_path / "l.csv").write_bytes("\n".join(["température,o2,a,r,d", *_ROWS]).encode("latin-1"))
    with pytest.warns(dl.data.DataWarning, match=r"l.csv: is not UTF-8 \(byte 0xe9 on line 1\); read as latin-1"):
        ds = dl.data.load(tmp_path / "l.csv", columns=dl.data.Columns.parse(**(_COLS | {"obs": "température,o2"})))
    assert ds.transitions.obs.shape == (10, 2)


def test_csv_delimiter(tmp_path):
    (tmp_path / "s.csv").write_text("\n".join(["o1;o2;a;r;d", *(r.replace(",", ";") for r in _ROWS)]))
    with pytest.raises(DataError, match=r"separate columns with ';': pass --delimiter ';'"):
        _load(tmp_path / "s.csv")
    assert len(_load(tmp_path / "s.csv", delimiter=";")) == 10
    (tmp_path / "t.tsv").write_text("\n".join(["o1\to2\ta\tr\td", *(r.replace(",", "\t") for r in _ROWS)]))
    assert len(_load(tmp_path / "t.tsv")) == 10  # .tsv: tab by default
    from dynlearn.data._csv import parse_delimiter

    assert parse_delimiter("tab") == "\t" and parse_delimiter(";") == ";" and parse_delimiter(None) is None
    with pytest.raises(dl.ConfigError, match="--delimiter"):
        parse_delimiter("x")
