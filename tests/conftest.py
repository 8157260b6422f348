import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# Every known-answer test runs in float64 (finite differences, dense-vs-CG, closed forms).
jax.config.update("jax_enable_x64", True)

from bomrl.utils import quiet_runtime  # noqa: E402

quiet_runtime()
