"""The learning core shared by every algorithm: policies, distances, the inner solver, the
hypergradient, the TRPO meta-step and advantage estimation. Pure JAX functions over pytrees."""
