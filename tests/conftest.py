import os

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
# Hermetic tests: no executables read from (or written to) the persistent compilation cache that dynlearn enables for
# users. A CI run once crashed inside XLA while deserialising a cached CPU executable (jax 0.10.2, intermittent).
jax.config.update("jax_enable_compilation_cache", False)
os.environ["DYNLEARN_COMPILATION_CACHE"] = "0"  # and in the dynlearn processes tests start


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    """Keep tests away from the user's Minari folder (the compilation cache is off above)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
