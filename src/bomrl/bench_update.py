"""`bomrl bench update`: wall time and memory of one full BO-MRL meta-update (Algorithm 2) for a
HalfCheetah-sized policy, phase by phase, against the time to collect its data in the same run.

Phases (each jitted, timed after a warm-up call, block_until_ready):
  advantages   Q/advantage estimates of the pre- and post-update batches (linear baseline, GAE)
  inner        Alg: eq. (7) (h surrogate) + D², optax Adam, vmapped over tasks
  hypergrad    outer policy gradients at θ'_i (post-update data) and the implicit hypergradient
               (CG on Hessian-vector products), vmapped over tasks, averaged
  trpo         TRPO meta-step on the averaged hypergradient, KL on the pre-update data
               (Fisher-vector products in Gauss–Newton form, `policy_fisher_vp`)
Data: with --sample (default), pre-update episodes of φ and post-update episodes of the adapted
θ'_i are collected by the multi-task MuJoCo sampler (`bomrl.envs`) and timed in the same run
(sampling_s = both rounds, i.e. everything one meta-update consumes); --no-sample uses synthetic
data of the same shapes (obs 17, act 6) and reports no sampling time.
Prints one JSON line; peak memory is the process's ru_maxrss. Besides wall time, every phase's CPU
time (this process, all threads) is reported, and the CPU-time ratio update/sampling, which other
jobs on a shared machine disturb less than wall time.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass
from typing import Literal

from bomrl.errors import check


@dataclass(frozen=True)
class BenchUpdateConfig:
    """Time one BO-MRL meta-update (inner solve, hypergradient, TRPO) against sampling its data."""

    tasks: int = 40
    """Tasks per meta-batch T."""
    samples: int = 4000
    """Environment steps per task and per sampling round (episodes = samples / horizon)."""
    horizon: int = 200
    """Steps per episode H."""
    env: str = "halfcheetah-vel"
    """Task family for --sample (HalfCheetah: obs 17, act 6)."""
    sample: bool = True
    """Collect the pre- and post-update data with the MuJoCo sampler (and time it); else synthetic data."""
    distance: Literal["d1", "d2", "d3"] = "d1"
    """Distance of the within-task problem."""
    lam: float = 0.5
    """Regularisation weight λ."""
    inner_steps: int = 50
    """Adam steps of the within-task solve."""
    inner_lr: float = 1e-2
    """Adam learning rate of the within-task solve."""
    mode: Literal["practical", "score"] = "practical"
    """Hypergradient: eq. (8) (practical) or Prop. 2 with the Appendix C score term (score)."""
    cg_iters: int = 10
    """CG iterations for the hypergradient and for TRPO."""
    cg_damping: float = 1e-2
    """Damping of the hypergradient's Hessian system."""
    max_kl: float = 1e-3
    """TRPO KL radius δ."""
    repeats: int = 3
    """Timed repetitions of each update phase after the warm-up (the median is reported)."""
    workers: int = 0
    """Sampler threads (0: one per CPU core)."""
    seed: int = 0
    """Seed of the policy, the tasks and the synthetic data."""


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def run(config: BenchUpdateConfig) -> dict:
    for name in ("tasks", "samples", "horizon", "inner_steps", "cg_iters", "repeats"):
        value = getattr(config, name)
        check(value >= 1, f"--{name.replace('_', '-')}", value, "an integer >= 1")
    check(config.samples % config.horizon == 0, "--samples", config.samples,
          f"a multiple of --horizon ({config.horizon})")
    check(config.lam > 0, "--lam", config.lam, "> 0")
    check(config.max_kl > 0, "--max-kl", config.max_kl, "> 0")
    check(config.workers >= 0, "--workers", config.workers, "0 (all cores) or an integer >= 1")

    import jax
    import jax.numpy as jnp
    import numpy as np

    from bomrl.core.advantages import estimate_advantages
    from bomrl.core.hypergradient import bomrl_hypergradient
    from bomrl.core.inner_solver import solve_inner_tasks
    from bomrl.core.losses import InnerData, make_inner_loss, policy_gradient
    from bomrl.core.policies import gaussian_mlp
    from bomrl.core.trpo import policy_fisher_vp, trpo_step

    T, H = config.tasks, config.horizon
    E = config.samples // H
    key = jax.random.PRNGKey(config.seed)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of this process (all threads): less disturbed by other jobs
    sampler = None
    if config.sample:
        from bomrl.envs import get_family, make_sampler

        sampler = make_sampler(get_family(config.env), T, E, H, num_workers=config.workers or None,
                               seed=config.seed)
        obs_dim, act_dim = sampler.obs_dim, sampler.act_dim
    else:
        obs_dim, act_dim = 17, 6
    policy = gaussian_mlp(obs_dim, act_dim)
    phi = policy.init(key)
    per_task = lambda p: jax.tree.map(lambda x: jnp.broadcast_to(x, (T, *x.shape)), p)  # noqa: E731

    def synthetic(k, params):
        k1, k2, k3 = jax.random.split(k, 3)
        obs = jax.random.normal(k1, (T, E, H, obs_dim))
        act = jax.vmap(lambda p, o, kk: policy.sample(policy.apply(p, o), kk))(params, obs, jax.random.split(k2, T))
        rew = jax.random.normal(k3, (T, E, H))
        return obs, act, rew, jnp.ones((T, E, H))

    try:
        if sampler is not None:
            tasks = sampler.sample_tasks()
            sampler.warmup(policy, per_task(phi))
            t0, c0 = time.perf_counter(), time.process_time()
            pre, _ = sampler.sample(policy, per_task(phi), tasks, jax.random.fold_in(key, 1))
            timings["sampling_pre_s"] = time.perf_counter() - t0
            cpu["sampling_pre"] = time.process_time() - c0
            pre = (pre.obs, pre.act, pre.rew, pre.mask)
        else:
            pre = synthetic(jax.random.fold_in(key, 1), per_task(phi))
        pre = tuple(jnp.asarray(x, jnp.float32) for x in pre)

        loss = make_inner_loss(policy, config.distance, config.lam, "h")

        @jax.jit
        def advantages(obs, rew, mask):
            return estimate_advantages(obs, rew, mask, gamma=0.99, gae_lambda=1.0)["advantages"]

        @jax.jit
        def inner(phi, data):
            return solve_inner_tasks(loss, phi, data, steps=config.inner_steps, learning_rate=config.inner_lr)

        @jax.jit
        def hypergrad(phi, theta, data, post_obs, post_act, post_adv, post_mask):
            def one(th, d, o, a, ad, m):
                g = policy_gradient(policy, th, o, a, ad, m)
                return bomrl_hypergradient(loss, th, phi, d, g, mode=config.mode, policy=policy, gamma=0.99,
                                           damping=config.cg_damping, cg_iters=config.cg_iters)
            hgs, mets = jax.vmap(one)(theta, data, post_obs, post_act, post_adv, post_mask)
            return jax.tree.map(lambda x: x.mean(0), hgs), jax.tree.map(jnp.mean, mets)

        @jax.jit
        def trpo(phi, hg, obs, mask):
            old = jax.lax.stop_gradient(policy.apply(phi, obs))
            w = mask / mask.sum()

            def kl_fn(p):
                return jnp.sum(w * policy.kl(old, policy.apply(p, obs)))

            return trpo_step(None, kl_fn, phi, grad=hg, max_kl=config.max_kl, cg_iters=config.cg_iters,
                             fvp_fn=policy_fisher_vp(policy, phi, obs, mask))

        def timed(name, fn, *args):
            out = jax.block_until_ready(fn(*args))          # warm-up (compile)
            ts, cs = [], []
            for _ in range(config.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                out = jax.block_until_ready(fn(*args))
                ts.append(time.perf_counter() - t0)
                cs.append(time.process_time() - c0)
            timings[f"{name}_s"] = _median(ts)
            cpu[name] = _median(cs)
            return out

        obs, act, rew, mask = pre
        adv_pre = timed("advantages_pre", advantages, obs, rew, mask)
        data = InnerData(obs, act, mask, adv_pre, adv_pre)
        theta, inner_diag = timed("inner", inner, phi, data)

        if sampler is not None:
            t0, c0 = time.perf_counter(), time.process_time()
            post, _ = sampler.sample(policy, theta, tasks, jax.random.fold_in(key, 2))
            timings["sampling_post_s"] = time.perf_counter() - t0
            cpu["sampling_post"] = time.process_time() - c0
            post = tuple(jnp.asarray(x, jnp.float32) for x in (post.obs, post.act, post.rew, post.mask))
        else:
            post = synthetic(jax.random.fold_in(key, 2), theta)
        p_obs, p_act, p_rew, p_mask = post
        adv_post = timed("advantages_post", advantages, p_obs, p_rew, p_mask)
        hg, hg_metrics = timed("hypergrad", hypergrad, phi, theta, data, p_obs, p_act, adv_post, p_mask)
        _, trpo_metrics = timed("trpo", trpo, phi, hg, obs, mask)
    finally:
        if sampler is not None:
            sampler.close()

    update_s = sum(timings[k] for k in ("advantages_pre_s", "inner_s", "advantages_post_s", "hypergrad_s", "trpo_s"))
    sampling_s = timings["sampling_pre_s"] + timings["sampling_post_s"] if sampler is not None else None
    phases = ("advantages_pre", "inner", "advantages_post", "hypergrad", "trpo")
    update_cpu = sum(cpu[k] for k in phases)
    sampling_cpu = cpu["sampling_pre"] + cpu["sampling_post"] if sampler is not None else None
    scalar = lambda x: float(np.asarray(x))  # noqa: E731
    result = {
        "tasks": T, "samples_per_task": config.samples, "episodes": E, "horizon": H,
        "obs_dim": obs_dim, "act_dim": act_dim, "data": config.env if sampler is not None else "synthetic",
        "distance": config.distance, "mode": config.mode, "inner_steps": config.inner_steps,
        "cg_iters": config.cg_iters, **{k: round(v, 4) for k, v in timings.items()},
        "update_s": round(update_s, 4),
        "sampling_s": round(sampling_s, 4) if sampling_s is not None else "not measured (--no-sample)",
        "update_over_sampling": round(update_s / sampling_s, 4) if sampling_s else None,
        "update_cpu_s": round(update_cpu, 3),
        "sampling_cpu_s": round(sampling_cpu, 3) if sampling_cpu is not None else None,
        "update_over_sampling_cpu": round(update_cpu / sampling_cpu, 4) if sampling_cpu else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "inner_grad_norm": round(scalar(jnp.mean(inner_diag["inner/grad_norm"])), 5),
        "inner_kl": round(scalar(jnp.mean(inner_diag["inner/kl"])), 6),
        "cg_iterations": scalar(hg_metrics["cg/iterations"]),
        "cg_rel_residual": round(scalar(hg_metrics["cg/rel_residual"]), 6),
        "cg_failed_frac": scalar(hg_metrics["cg/failed"]),
        "trpo_kl": scalar(trpo_metrics["trpo/kl"]), "trpo_skipped_code": int(trpo_metrics["trpo/skipped_code"]),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result), flush=True)
    return result
