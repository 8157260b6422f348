"""`bomrl bench sampler`: environment steps per second of the multi-task sampler, against bare
MuJoCo on the same model, frame skip and number of cores, measured in the same run.

Prints one JSON line: env_steps_per_s (sampler, including one jitted 64-64 Gaussian-MLP policy
call per time step with per-task parameters; the best of `repeats` timed calls after a warm-up
compile), raw_mujoco_steps_per_s (W concurrent processes each looping
`mj_step(model, data, nstep=5)` with the controls the sampler sends (`--baseline-controls sampler`,
the default: the env actions of an untimed sampler call with the same policy, cycled; MuJoCo's own
step cost depends on them) or uniform in the bounds (`uniform`), and a gymnasium-style reset every
`horizon` steps, summed over processes; measured once before and once after the sampler and
averaged, since the machine may be shared) and their ratio. W = --workers (default: all cores),
the same number of cores the sampler gets. Each raw process steps T·E·H / W env steps.
Also reported: CPU microseconds per env step of the sampler (vector backend: all threads of this
process) and of bare MuJoCo, and their ratio cpu_ratio, which other jobs on the machine disturb
far less than the wall-clock ratio.

A family with pure-JAX dynamics (`--env nav2d`, `nav2d-sparse`; vector backend) is timed the same
way (the whole rollout being one jitted lax.scan, policy included); it has no MuJoCo model, so the
raw_* fields and the ratios are null and `jax_native` is true.

Any other family (a gymnasium env stepped in a Python loop: Meta-World, user families with
`--plugins`) is timed against a bare `env.step` loop instead (`baseline: "env.step"`: W processes
each stepping one `family.make_env()` with the same choice of actions, a task set and a reset
every `horizon` steps or at the env's own end of episode); the raw_* fields then hold that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax
import mujoco
import numpy as np

from bomrl.bench.config import BenchSamplerConfig
from bomrl.core.policies import categorical_mlp, gaussian_mlp
from bomrl.envs import get_family, make_sampler
from bomrl.envs.families import scale_action
from bomrl.envs.locomotion import FRAME_SKIP, load_model, reset_noise
from bomrl.errors import check
from bomrl.limits import MAX_ROUNDS, check_counts, check_int, check_positive, check_seed, check_workers

__all__ = ["BenchSamplerConfig", "raw_worker", "run"]


CONTROL_ROWS = 4096   # control vectors the baseline cycles through


def raw_worker(xml: str, steps: int, horizon: int, seed: int, controls: str = "") -> tuple[float, float]:
    """Bare mj_step loop on one core: (env steps per second, CPU seconds), an env step being one
    frame-skip group of mj_step. controls: a .npy file of control vectors [N, nu] to cycle through
    ("" = uniform in [−1, 1], the locomotion models' control range)."""
    model = load_model(xml)
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    ctrl = np.load(controls) if controls else rng.uniform(-1.0, 1.0, size=(1024, model.nu))
    qpos0 = model.qpos0.copy()
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(steps):
        if k % horizon == 0:
            mujoco.mj_resetData(model, data)
            dq, dv = reset_noise(seed + k, model.nq, model.nv)
            data.qpos[:] = qpos0 + dq
            data.qvel[:] = dv
            mujoco.mj_forward(model, data)
        data.ctrl[:] = ctrl[k % len(ctrl)]
        mujoco.mj_step(model, data, nstep=FRAME_SKIP)
    return steps / (time.perf_counter() - start), time.process_time() - cpu


def raw_env_worker(family, steps: int, horizon: int, seed: int, controls=None) -> tuple[float, float]:
    """Bare `env.step` loop of one `family.make_env()` on one core: (env steps per second, CPU
    seconds). Actions: `controls` [N, ...] cycled, or (None) random within the env's bounds; a new
    task and reset every `horizon` steps or when the env ends the episode itself."""
    env = family.make_env()
    rng = np.random.default_rng(seed)
    tasks = family.sample_tasks(rng, max(1, steps // horizon + 1))
    space = env.action_space
    if controls is not None:
        acts = list(controls)
    elif hasattr(space, "n"):
        acts = [space.sample() for _ in range(256)]
    else:
        acts = rng.uniform(space.low, space.high, size=(256, *space.shape))
    start, cpu, t, done = time.perf_counter(), time.process_time(), 0, True
    for k in range(steps):
        if done or t == horizon:
            family.set_task(env, tasks[k // horizon])
            env.reset(seed=seed + k)
            t = 0
        _, _, term, trunc, _ = env.step(acts[k % len(acts)])
        done, t = bool(term or trunc), t + 1
    env.close()
    return steps / (time.perf_counter() - start), time.process_time() - cpu


def _raw_env_main() -> None:
    """`python -c` entry of raw_env_worker: reads (sys.path, family, steps, horizon, seed) pickled on stdin."""
    import pickle

    path, family, steps, horizon, seed, controls = pickle.loads(sys.stdin.buffer.read())
    del path
    print(*raw_env_worker(family, steps, horizon, seed, controls))


def raw_rate(xml, steps_per_proc: int, horizon: int, procs: int, controls=None) -> tuple[float, float]:
    """Run `procs` raw processes concurrently: (sum of their rates, CPU seconds per step). xml: a
    MuJoCo model (raw_worker) or a TaskFamily (raw_env_worker, the bare env.step loop); controls:
    the actions to cycle through [N, A] (None: uniform in the bounds)."""
    import pickle
    import tempfile

    env = dict(os.environ, OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    if isinstance(xml, str):
        path = ""
        if controls is not None:   # handed to the workers as a file (argv is too small)
            with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as f:
                np.save(f, np.asarray(controls, np.float64))
                path = f.name
        code = ("import sys; from bomrl.bench.sampler import raw_worker; "
                "print(*raw_worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))")
        try:
            return _collect([subprocess.Popen([sys.executable, "-c", code, xml, str(steps_per_proc), str(horizon),
                                               str(i), path], stdout=subprocess.PIPE, env=env, text=True)
                             for i in range(procs)], [None] * procs, steps_per_proc)
        finally:
            if path:
                os.unlink(path)
    else:   # the family's modules must be importable in the child: the parent's sys.path
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        code = "from bomrl.bench.sampler import _raw_env_main; _raw_env_main()"
        ps = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
              for _ in range(procs)]
        inputs = [pickle.dumps((list(sys.path), xml, steps_per_proc, horizon, i, controls)) for i in range(procs)]
    return _collect(ps, inputs, steps_per_proc)


def _collect(ps, inputs, steps_per_proc: int) -> tuple[float, float]:
    """Wait for the raw processes: (sum of their rates, CPU seconds per step)."""
    rates, cpu = [], 0.0
    for p, data in zip(ps, inputs):
        out, _ = p.communicate(input=data, timeout=3600)
        out = out.decode() if isinstance(out, bytes) else out
        rate, seconds = map(float, out.strip().splitlines()[-1].split())
        rates.append(rate)
        cpu += seconds
    return sum(rates), cpu / (steps_per_proc * len(ps))


def sampler_controls(sampler, batch, seed: int) -> np.ndarray:
    """The env actions a sampler batch sent (valid steps; continuous actions mapped by the sampler's
    action scale onto the env's bounds, as the rollouts do): up to CONTROL_ROWS of them [N, A], in a
    seeded random order."""
    mask = np.asarray(batch.mask) > 0
    act = np.asarray(batch.act)[mask]
    if not sampler.discrete:
        family = sampler.family
        act = np.asarray(scale_action(act.astype(np.float64), family.action_low, family.action_high,
                                      sampler.action_scale))
    rows = np.random.default_rng(seed).permutation(len(act))[:CONTROL_ROWS]
    return act[rows]


def run(config: BenchSamplerConfig) -> dict:
    from bomrl.workflow.plugins import import_plugins

    import_plugins(config.plugins)   # --plugins: families, distances, algorithms of the user's
    check_counts(("--tasks", config.tasks), ("--episodes", config.episodes), ("--horizon", config.horizon))
    check_int("--repeats", config.repeats, 1, MAX_ROUNDS)
    check_workers("--workers", config.workers)
    check_seed("--seed", config.seed)
    if config.action_scale is not None:
        check_positive("--action-scale", config.action_scale, why="10: the MAML-family convention, 1: plain clipping")
    family = get_family(config.env)  # unknown names: one-line error listing the allowed ones
    xml = getattr(getattr(family, "stepper_cls", None), "xml", "")
    jax_native = config.backend == "vector" and family.jax_env() is not None
    check(bool(xml) or jax_native or family.jax_env() is None, "--env", config.env,
          "with --backend process or ray a family with a gymnasium env (nav2d's JAX dynamics have no "
          "env to step in a worker; use --backend vector)")
    baseline = "mujoco" if xml else (None if jax_native else "env.step")
    if baseline == "env.step":
        xml = family   # raw_rate steps the family's own env
    workers = config.workers or (os.cpu_count() or 1)


    key = jax.random.PRNGKey(config.seed)
    steps_per_proc = max(1, config.tasks * config.episodes * config.horizon // workers)
    controls = None
    with make_sampler(family, config.tasks, config.episodes, config.horizon, backend=config.backend,
                      num_workers=workers, seed=config.seed, action_scale=config.action_scale) as sampler:
        policy = (categorical_mlp if sampler.discrete else gaussian_mlp)(sampler.obs_dim, sampler.act_dim)
        params = jax.vmap(policy.init)(jax.random.split(key, config.tasks))
        tasks = sampler.sample_tasks()
        sampler.warmup(policy, params)
        if jax_native:
            raw_before = raw_cpu_before = None
        else:
            if config.baseline_controls == "sampler":   # an untimed call: the controls it sends
                batch, _ = sampler.sample(policy, params, tasks, jax.random.fold_in(key, 2**20), call=2**20)
                controls = sampler_controls(sampler, batch, config.seed)
            raw_before, raw_cpu_before = raw_rate(xml, steps_per_proc, config.horizon, workers, controls)
        best, best_cpu = None, None
        for r in range(config.repeats):
            cpu0 = time.process_time()  # all threads of this process
            _, stats = sampler.sample(policy, params, tasks, jax.random.fold_in(key, r), call=r)
            if best is None or stats.seconds < best.seconds:
                best, best_cpu = stats, time.process_time() - cpu0
    env_rate = best.env_steps / best.seconds
    cpu_us = round(1e6 * best_cpu / best.env_steps, 3) if config.backend == "vector" else None
    if jax_native:
        result = {
            "env": family.name, "tasks": config.tasks, "episodes": config.episodes,
            "horizon": config.horizon, "backend": config.backend, "workers": workers, "jax_native": True,
            "env_steps": best.env_steps, "seconds": round(best.seconds, 4),
            "env_steps_per_s": round(env_rate, 1), "raw_mujoco_steps_per_s": None, "ratio": None,
            "cpu_us_per_step": cpu_us, "raw_cpu_us_per_step": None, "cpu_ratio": None,
            "repeats": config.repeats, "mean_return": round(float(np.mean(best.mean_return)), 3),
            "load_avg_1min": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result), flush=True)
        return result
    # bare MuJoCo before and after the sampler, averaged: the machine may be shared
    raw_after, raw_cpu_after = raw_rate(xml, steps_per_proc, config.horizon, workers, controls)
    raw = 0.5 * (raw_before + raw_after)
    raw_cpu = 0.5 * (raw_cpu_before + raw_cpu_after)
    # CPU seconds per env step (load-insensitive): only meaningful in-process (vector backend)
    cpu_ratio = round(raw_cpu * best.env_steps / best_cpu, 3) if config.backend == "vector" else None
    result = {
        "env": family.name, "tasks": config.tasks, "episodes": config.episodes,
        "horizon": config.horizon, "backend": config.backend, "workers": workers, "baseline": baseline,
        "baseline_controls": config.baseline_controls, "action_scale": sampler.action_scale,
        "control_rms": None if controls is None else round(float(np.sqrt(np.mean(np.square(controls)))), 4),
        "env_steps": best.env_steps, "seconds": round(best.seconds, 3),
        "policy_seconds": round(best.policy_seconds, 3),
        "env_steps_per_s": round(env_rate, 1), "raw_mujoco_steps_per_s": round(raw, 1),
        "ratio": round(env_rate / raw, 3),
        "raw_before": round(raw_before, 1), "raw_after": round(raw_after, 1),
        "cpu_us_per_step": round(1e6 * best_cpu / best.env_steps, 2) if cpu_ratio is not None else None,
        "raw_cpu_us_per_step": round(1e6 * raw_cpu, 2), "cpu_ratio": cpu_ratio,
        "mean_return": round(float(np.mean(best.mean_return)), 3),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    if baseline == "env.step":   # the raw fields name what was stepped
        result = {("raw_env_steps_per_s" if k == "raw_mujoco_steps_per_s" else k): v for k, v in result.items()}
    print(json.dumps(result), flush=True)
    return result
