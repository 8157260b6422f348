"""Small random MDPs shared by the tabular tests."""

import jax
import jax.numpy as jnp

from bomrl.tabular.mdp import TabularMDP


def random_mdp(seed: int, S: int = 5, A: int = 3, gamma: float = 0.8) -> TabularMDP:
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    P = jax.nn.softmax(2.0 * jax.random.normal(k1, (S, A, S)), -1)
    r = jax.random.uniform(k2, (S, A), minval=-1.0, maxval=1.0)
    rho = jax.nn.softmax(jax.random.normal(k3, (S,)))
    return TabularMDP(P, r, rho, gamma, jnp.zeros(S, bool))


def random_logits(seed: int, S: int = 5, A: int = 3, scale: float = 1.0):
    return scale * jax.random.normal(jax.random.PRNGKey(1000 + seed), (S, A))


def rel_err(a, b) -> float:
    return float(jnp.linalg.norm(jnp.ravel(a - b)) / jnp.maximum(jnp.linalg.norm(jnp.ravel(b)), 1e-300))
