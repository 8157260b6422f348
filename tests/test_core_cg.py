"""Conjugate gradients against dense solves, on pytrees, with breakdown detection."""

import jax
import jax.numpy as jnp
import numpy as np

from bomrl.core.cg import cg_solve


def _spd(n, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return m @ m.T + 0.5 * np.eye(n)


def test_cg_equals_dense_solve_on_pytree():
    a = _spd(7)
    b = {"x": jnp.arange(3.0), "y": jnp.ones((2, 2))}
    flat_b = np.concatenate([np.arange(3.0), np.ones(4)])

    def matvec(v):
        flat = jnp.concatenate([v["x"], v["y"].reshape(-1)])
        out = jnp.asarray(a) @ flat
        return {"x": out[:3], "y": out[3:].reshape(2, 2)}

    x, info = cg_solve(matvec, b, max_iters=50, tol=1e-14, damping=0.1)
    ref = np.linalg.solve(a + 0.1 * np.eye(7), flat_b)
    np.testing.assert_allclose(np.concatenate([x["x"], x["y"].reshape(-1)]), ref, rtol=1e-10, atol=1e-10)
    assert int(info["cg/iterations"]) <= 8 and float(info["cg/residual"]) < 1e-10
    assert float(info["cg/failed"]) == 0.0


def test_cg_iteration_cap_and_vmap():
    mats = jnp.stack([jnp.asarray(_spd(5, s)) for s in range(3)])
    bs = jnp.ones((3, 5))
    xs, info = jax.vmap(lambda m, b: cg_solve(lambda v: m @ v, b, max_iters=2))(mats, bs)
    assert np.all(np.asarray(info["cg/iterations"]) == 2)
    assert np.all(np.asarray(info["cg/rel_residual"]) > 1e-6)  # capped before converging
    xs, info = jax.vmap(lambda m, b: cg_solve(lambda v: m @ v, b, max_iters=20, tol=1e-13))(mats, bs)
    for m, x in zip(mats, xs):
        np.testing.assert_allclose(m @ x, np.ones(5), atol=1e-9)


def test_cg_flags_indefinite_operator():
    a = jnp.diag(jnp.array([1.0, -2.0, 3.0]))
    x, info = cg_solve(lambda v: a @ v, jnp.ones(3), max_iters=10)
    assert float(info["cg/failed"]) == 1.0
    assert np.all(np.isfinite(np.asarray(x)))


def test_cg_returns_the_operator_applied_to_its_iterate():
    """return_ax: (A + dI)x from the recurrence (b − r) = an explicit product, also before convergence."""
    a = jnp.asarray(_spd(9, 3))
    b = jnp.asarray(np.random.default_rng(4).normal(size=9))
    for iters in (1, 3, 30):
        x, ax, info = cg_solve(lambda v: a @ v, b, max_iters=iters, damping=0.2, return_ax=True)
        np.testing.assert_allclose(ax, (a + 0.2 * jnp.eye(9)) @ x, rtol=1e-9, atol=1e-10)
    assert int(info["cg/iterations"]) <= 9
