"""BO-MRL reduced to MAML (issue "BO-MRL made right where it loses to MAML"), float64.

With d3 = ‖θ−φ‖², λ = 5, the linear surrogate of eq. (9) and one gradient step of 0.1 (unrolled
derivative), BO-MRL's adaptation is MAML's inner step with α = 0.1 (= 1/(2λ), where the solved
problem lands, Appendix H), and its
meta-gradient is MAML-TRPO's with the likelihood-ratio inner objective (the LVC-type second-order
term; the log-likelihood one differs). With `trust_region="post"` its meta-step is MAML-TRPO's too, so
the two train identically. Each test fails when a term is added or dropped (checked below by
perturbing the configuration: another λ, another inner objective, the paper's trust region)."""

import dataclasses
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos.bomrl import BoMrl, BoMrlConfig, inner_data
from bomrl.algos.data import process_batch
from bomrl.algos.maml_trpo import (MamlTrpo, MamlTrpoConfig, adapt_batched, adapted_batch, adapted_fisher_vp,
                                   kl_of_adapted, maml_surrogate, reference_quantities)
from bomrl.core.policies import gaussian_mlp

T, E, H, D, A = 3, 4, 5, 3, 2
POLICY = gaussian_mlp(D, A, hidden=(), dtype=jnp.float64)   # 10 parameters: CG (10 iterations) solves exactly
REDUCED = dict(distance="d3", lam=5.0, surrogate="linear", inner_solver="sgd", inner_steps=1,
               inner_lr=0.1, hypergradient="unrolled")


def batch(seed, params_t=None):
    """A [T, E, H] batch with advantages from the shared pipeline (linear baseline, normalised)."""
    rng = np.random.default_rng(seed)
    obs = jnp.asarray(rng.normal(size=(T, E, H, D)))
    act = jnp.asarray(rng.normal(size=(T, E, H, A)))
    rew = jnp.asarray(rng.normal(size=(T, E, H)))
    mask = np.ones((T, E, H))
    mask[:, 0, -2:] = 0.0
    return process_batch((obs, act, rew, jnp.asarray(mask)), discount=0.99, gae_lambda=1.0)


def flat(tree):
    return np.asarray(jax.flatten_util.ravel_pytree(tree)[0])


@pytest.fixture(scope="module")
def setup():
    phi = POLICY.init(jax.random.PRNGKey(3))
    # a non-trivial φ: shift it away from the symmetric initialisation
    phi = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(4), x.shape, x.dtype), phi)
    return phi, batch(0), batch(1)


def bomrl(**kw):
    return BoMrl(BoMrlConfig(**{**REDUCED, **kw}), POLICY)


def maml(kind):
    return MamlTrpo(MamlTrpoConfig(inner_objective=kind, inner_lr=0.1), POLICY)


def test_reduced_bomrl_adapts_exactly_like_maml(setup):
    phi, pre, _ = setup
    phi_t = jax.tree.map(lambda x: jnp.broadcast_to(x, (T, *x.shape)), phi)
    theta_b = bomrl()._adapt_batched(phi_t, pre)
    for kind in ("log_likelihood", "likelihood_ratio"):   # equal at θ = φ: one step from φ
        theta_m = adapt_batched(POLICY, kind, 0.1, phi_t, pre)
        assert np.max(np.abs(flat(theta_b) - flat(theta_m))) < 1e-12
    # another step size: the comparison can fail (one step from θ = φ does not see λ: the
    # distance's gradient vanishes there; α = 0.1 = 1/(2λ) is where the SOLVED d3 problem with the
    # linear surrogate lands too, Appendix H)
    theta_other = bomrl(inner_lr=0.05)._adapt_batched(phi_t, pre)
    assert np.max(np.abs(flat(theta_other) - flat(theta_b))) > 1e-3


def maml_gradient(kind, phi, pre, post):
    consts = reference_quantities(POLICY, kind, 0.1, phi, (pre,), post)
    return jax.grad(lambda p: maml_surrogate(POLICY, kind, 0.1, p, (pre,), post, consts)[0])(phi)


def test_reduced_bomrl_meta_gradient_is_maml_trpo_likelihood_ratio(setup):
    phi, pre, post_seed = setup
    algo = bomrl()
    phi_t = jax.tree.map(lambda x: jnp.broadcast_to(x, (T, *x.shape)), phi)
    thetas = algo._adapt_batched(phi_t, pre)
    post = batch(7)
    g_b = flat(algo.meta_gradient(phi, pre, post, thetas)[0])
    g_lr = flat(maml_gradient("likelihood_ratio", phi, pre, post))
    g_ll = flat(maml_gradient("log_likelihood", phi, pre, post))
    scale = np.linalg.norm(g_lr)
    assert np.linalg.norm(g_b - g_lr) <= 1e-10 * scale
    # the log-likelihood estimator has another second-order term: this test tells them apart
    assert np.linalg.norm(g_b - g_ll) > 1e-3 * scale


def test_post_trust_region_meta_step_is_maml_trpos(setup):
    phi, pre, _ = setup
    post = batch(7)
    phi_t = jax.tree.map(lambda x: jnp.broadcast_to(x, (T, *x.shape)), phi)
    b = bomrl(trust_region="post", max_kl=0.05)
    thetas = b._adapt_batched(phi_t, pre)
    m = MamlTrpo(MamlTrpoConfig(inner_objective="likelihood_ratio", inner_lr=0.1, max_kl=0.05), POLICY)
    # the constraint and its curvature: MAML-TRPO's KL of the adapted policies and Fisher products
    kind = "likelihood_ratio"
    logps_old, post_dist_old, _ = reference_quantities(POLICY, kind, 0.1, phi, (pre,), post)
    theta_fn = lambda p: adapted_batch(POLICY, kind, 0.1, p, (pre,), logps_old)  # noqa: E731
    fvp_m = adapted_fisher_vp(POLICY, theta_fn, phi, post)
    kl_b, fvp_b = b.post_kl(phi, pre, post, thetas)
    for s in range(3):
        v = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(100 + s), x.shape, x.dtype), phi)
        want = flat(fvp_m(v))
        assert np.linalg.norm(flat(fvp_b(v)) - want) <= 1e-12 * np.linalg.norm(want)
        p = jax.tree.map(lambda x, y: x + 0.01 * y, phi, v)
        assert float(kl_b(p)) == pytest.approx(float(kl_of_adapted(POLICY, theta_fn(p), post, post_dist_old)),
                                               rel=1e-12)
    # the whole step (gradient, CG, line search on the same surrogate): CG's 10 iterations on this
    # ill-conditioned Fisher turn 1e-16 differences of the products into ~1e-5 of the direction
    new_m, mm = m._update(phi, (pre,), post)
    new_b, bm = b._update(phi, pre, post, thetas)
    assert float(mm["trpo/accepted"]) == 1.0 and float(bm["trpo/accepted"]) == 1.0
    assert float(bm["trpo/ls_iterations"]) == float(mm["trpo/ls_iterations"])
    step = flat(new_m) - flat(phi)
    assert np.linalg.norm(flat(new_b) - flat(new_m)) <= 1e-4 * np.linalg.norm(step)
    # the paper's trust region (KL of π_φ on the pre-update states) takes another step
    new_pre, _ = bomrl(trust_region="pre", max_kl=0.05)._update(phi, pre, post, thetas)
    assert np.linalg.norm(flat(new_pre) - flat(new_m)) > 1e-1 * np.linalg.norm(step)


def test_inner_q_scales(setup):
    _, pre, _ = setup
    raw = np.asarray(pre.adv_raw)
    mask = np.asarray(pre.mask)
    for t in range(T):
        valid = raw[t][mask[t] > 0]
        centred = np.asarray(inner_data(pre, "centred").q)[t][mask[t] > 0]
        np.testing.assert_allclose(centred, valid - valid.mean(), atol=1e-12)
        std = np.asarray(inner_data(pre, "standardised").q)[t][mask[t] > 0]
        np.testing.assert_allclose(std, (valid - valid.mean()) / (valid.std() + 1e-8), atol=1e-10)
    np.testing.assert_array_equal(np.asarray(inner_data(pre, "raw").q), raw)


def _train(tmp_path, name, algo_args):
    from bomrl.cli import main
    from bomrl.workflow.logging import read_metrics

    out = tmp_path / name
    argv = ["train", "--env", "halfcheetah-vel", "--tasks", "2", "--episodes", "2", "--horizon", "10", "--workers",
            "1", "--iterations", "3", "--seed", "4", "--precision", "float64", "--no-progress", "--no-tensorboard",
            *algo_args, "--out", str(out)]
    assert main(argv) == 0
    return read_metrics(out / "metrics.csv")


def test_end_to_end_reduced_bomrl_with_post_trust_region_trains_like_maml_trpo(tmp_path):
    """Same seed, float64: BO-MRL reduced to MAML with MAML's trust region gives MAML-TRPO's
    (likelihood-ratio) training curve; with the paper's trust region it does not."""
    reduced = ["--algo", "bomrl", "--distance", "d3", "--lam", "5", "--set", "surrogate=linear", "inner_solver=sgd",
               "inner_steps=1", "inner_lr=0.1", "hypergradient=unrolled"]
    maml_rows = _train(tmp_path, "maml", ["--algo", "maml-trpo", "--set", "inner_objective=likelihood_ratio"])
    post_rows = _train(tmp_path, "post", [*reduced, "trust_region=post"])
    pre_rows = _train(tmp_path, "pre", [*reduced, "trust_region=pre"])
    for key in ("pre_return", "post_return", "trpo/kl", "trpo/step_norm"):
        got = [r[key] for r in post_rows]
        want = [r[key] for r in maml_rows]
        np.testing.assert_allclose(got, want, rtol=1e-4, err_msg=key)
    # the paper's trust region: another curve from the first meta-step on
    assert abs(pre_rows[0]["trpo/step_norm"] - maml_rows[0]["trpo/step_norm"]) > 1e-2 * maml_rows[0]["trpo/step_norm"]


def test_the_one_step_preset_is_the_reduction_and_the_ladders_r1(tmp_path):
    """`--preset one-step` (the best BO-MRL of docs/REPRODUCTION.md) is exactly the configuration
    these tests reduce to MAML, and exactly rung R1 of scripts/ladder.sh (its flags, parsed)."""
    import re
    import shlex
    from pathlib import Path

    from bomrl.algos.bomrl import PRESETS
    from bomrl.workflow.config import TrainConfig, build_algo_config, resolve_train_config

    def algo_config(**flags):
        cfg, extra, _, _ = resolve_train_config(TrainConfig(algo="bomrl", out=tmp_path / "o", **flags))
        return build_algo_config(cfg, extra)

    preset = algo_config(preset="one-step")
    assert preset == dataclasses.replace(BoMrlConfig(**REDUCED), distance=preset.distance)
    assert preset.distance in ("euclid", "d3") and PRESETS["one-step"]["lam"] == REDUCED["lam"]
    script = (Path(__file__).parents[1] / "scripts" / "ladder.sh").read_text()
    words = shlex.split(re.search(r"mamlred=\(([^)]*)\)", script).group(1).replace("\n", " "))
    typed = (f"distance={words[words.index('--distance') + 1]}", f"lam={float(words[words.index('--lam') + 1])}")
    assert algo_config(set=(*typed, *(w for w in words[words.index("--set") + 1:] if "=" in w))) == preset
