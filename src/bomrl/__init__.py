"""bomrl: optimization-based meta-reinforcement learning (BO-MRL, Xu & Zhu, NeurIPS 2024) in JAX."""

__version__ = "0.1.0"
