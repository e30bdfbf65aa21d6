import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
# Tests use the persistent compilation cache as users do (~/.cache/dynlearn/jax, or $DYNLEARN_CACHE_DIR/jax): it saves
# minutes of compiling per run. The crash once blamed on loading a cached executable was the memory-map limit that
# _free_compiled_programs below keeps the suite under. DYNLEARN_COMPILATION_CACHE=0 turns the cache off.


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    """Keep tests away from the user's Minari folder."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Free every compiled program after each test module. A compiled CPU program holds about three memory maps until
    JAX drops it, and the whole suite in one process compiles enough of them to reach Linux's ``vm.max_map_count``
    (65,530), where XLA segfaults while compiling or loading the next one."""
    yield
    jax.clear_caches()
