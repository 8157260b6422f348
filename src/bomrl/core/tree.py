"""Inner products and norms of parameter pytrees (the leaves' vdots summed in leaf order)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tree_vdot(a, b) -> jax.Array:
    """Σ_leaves ⟨a_leaf, b_leaf⟩ of two pytrees of one structure (a scalar)."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_norm(tree) -> jax.Array:
    """The Euclidean norm of all of a pytree's entries, sqrt(tree_vdot(tree, tree))."""
    return jnp.sqrt(tree_vdot(tree, tree))


__all__ = ["tree_norm", "tree_vdot"]
