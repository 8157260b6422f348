import os

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# Every known-answer test runs in float64 (finite differences, dense-vs-CG, closed forms).
jax.config.update("jax_enable_x64", True)

from bomrl.utils import quiet_runtime  # noqa: E402

quiet_runtime()


@pytest.fixture(scope="module")
def shared_compilation_cache(tmp_path_factory):
    """For modules whose CLI / train / resume / meta-test runs build identical jitted programs in
    fresh algorithm objects: a persistent compilation cache lets them compile once. Opt in with
    `pytestmark = pytest.mark.usefixtures("shared_compilation_cache")`; restored afterwards."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    for n, v in old.items():
        jax.config.update(n, v)
    try:  # forget the cache object too, so later test modules run as without this fixture
        from jax._src import compilation_cache

        compilation_cache.reset_cache()
    except Exception:  # pragma: no cover - private API moved
        pass
