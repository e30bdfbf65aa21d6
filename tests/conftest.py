import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    """Keep tests away from the user's Minari folder and compilation cache."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
