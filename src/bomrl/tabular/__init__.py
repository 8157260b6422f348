"""Tabular BO-MRL (paper Section 6.1, Appendix A): exact evaluation, Alg(i), Prop. 1 hypergradients,
Monte-Carlo estimates, meta-training and the theory calculator, on Frozen Lake task distributions."""
