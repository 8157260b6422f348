"""Ray sampler backend: the same batches as the vector backend, a killed actor is replaced and its
shard re-sampled without changing the batch, failures and impossible requests give one-line errors.

One small local Ray instance (2 CPUs, no dashboard, logs in /tmp/ray) serves the whole module. The
families below are sent to the actors by value (register_pickle_by_value), so the actors need not
import this test module."""

import json
import os
import signal
import sys
import threading
import time

import jax
import numpy as np
import pytest

from bomrl.core.policies import gaussian_mlp
from bomrl.envs import make_sampler
from bomrl.envs.locomotion import HalfCheetahFamily
from bomrl.errors import BomrlError, ConfigError

ray = pytest.importorskip("ray", reason='the Ray backend needs the optional extra: pip install "bomrl[ray]"')


class _SlowStepper:
    """Sleeps `delay` per step and drops a file named after its pid once reset has run."""

    def __init__(self, inner, delay, marker_dir, fail):
        self.inner, self.delay, self.marker_dir, self.fail = inner, delay, marker_dir, fail

    def reset(self, tasks, seeds):
        obs = self.inner.reset(tasks, seeds)
        if self.marker_dir:
            open(os.path.join(self.marker_dir, f"reset-{os.getpid()}"), "w").close()
        return obs

    def step(self, actions, active):
        if self.fail:
            raise RuntimeError("boom in the stepper")
        time.sleep(self.delay)
        return self.inner.step(actions, active)

    def close(self):
        self.inner.close()


class SlowCheetah(HalfCheetahFamily):
    """halfcheetah-vel with the same tasks and dynamics, but a slow (or failing) stepper."""

    def __init__(self, delay=0.0, marker_dir="", fail=False):
        super().__init__("vel", 200)
        self.delay, self.marker_dir, self.fail = delay, marker_dir, fail

    def make_stepper(self, num_envs, num_threads=1):
        return _SlowStepper(super().make_stepper(num_envs, num_threads), self.delay, self.marker_dir, self.fail)

    def __reduce__(self):
        return (SlowCheetah, (self.delay, self.marker_dir, self.fail))


@pytest.fixture(scope="module")
def local_ray():
    """A local 2-CPU Ray instance for the module, started through the library's connect(): it stays
    up while the samplers come and go (each is one more user) and shuts down here."""
    from bomrl.envs.ray_sampler import connect, disconnect

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    assert not ray.is_initialized()
    connect(None, 2)
    assert ray.cluster_resources()["CPU"] == 2
    yield ray
    disconnect()
    assert not ray.is_initialized()


def _policy_params(s, T):
    policy = gaussian_mlp(s.obs_dim, s.act_dim)
    return policy, jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), T))


def _vector_batches(T, E, H, seed, keys):
    with make_sampler("halfcheetah-vel", T, E, H, backend="vector", num_workers=1, seed=seed) as s:
        policy, params = _policy_params(s, T)
        tasks = s.sample_tasks()
        return [s.sample(policy, params, tasks, k, call=c)[0] for c, k in enumerate(keys)]


def _assert_same(a, b):
    for name in a._fields:
        x, y = getattr(a, name), getattr(b, name)
        if name == "stats":
            assert (x or {}).keys() == (y or {}).keys()
            for k in x or {}:
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_ray_backend_equals_vector_backend(local_ray):
    """3 tasks on 2 actors (shards of 2 and 1 tasks), two calls: episode-level identical batches."""
    keys = [jax.random.PRNGKey(1), jax.random.PRNGKey(2)]
    ref = _vector_batches(3, 2, 12, 3, keys)
    with make_sampler("halfcheetah-vel", 3, 2, 12, backend="ray", num_workers=2, seed=3) as s:
        assert [(sl.start, sl.stop) for sl in s.workers.slices] == [(0, 2), (2, 3)]
        policy, params = _policy_params(s, 3)
        tasks = s.sample_tasks()
        out = [s.sample(policy, params, tasks, k, call=c) for c, k in enumerate(keys)]
    for (batch, stats), r in zip(out, ref):
        _assert_same(batch, r)
        assert stats.env_steps == 3 * 2 * 12
        np.testing.assert_array_equal(stats.mean_return, r.returns.mean(1))
    assert not np.array_equal(ref[0].act, ref[1].act)  # the two calls really differ


def test_killed_actor_is_replaced_and_its_shard_resampled(local_ray, tmp_path):
    """Actor 0 killed before a call (ray.kill), actor 1's process SIGKILLed in the middle of the
    next call (after its environments were reset): both calls return the undisturbed batches."""
    keys = [jax.random.PRNGKey(7), jax.random.PRNGKey(8)]
    ref = _vector_batches(2, 2, 10, 5, keys)
    marker_dir = str(tmp_path)
    with make_sampler(SlowCheetah(0.05, marker_dir), 2, 2, 10, backend="ray", num_workers=2, seed=5) as s:
        policy, params = _policy_params(s, 2)
        tasks = s.sample_tasks()
        s.warmup(policy, params)
        pids0 = s.workers.worker_pids()

        ray.kill(s.workers.actors[0], no_restart=False)          # dies before the call
        b0, _ = s.sample(policy, params, tasks, keys[0], call=0)
        pids1 = s.workers.worker_pids()

        for f in os.listdir(marker_dir):
            os.unlink(os.path.join(marker_dir, f))
        marker = os.path.join(marker_dir, f"reset-{pids1[1]}")
        killed = []

        def kill_mid_call():
            deadline = time.monotonic() + 60
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.005)
            if os.path.exists(marker):
                os.kill(pids1[1], signal.SIGKILL)                 # 10 steps x 50 ms still to go
                killed.append(pids1[1])

        killer = threading.Thread(target=kill_mid_call)
        killer.start()
        b1, _ = s.sample(policy, params, tasks, keys[1], call=1)
        killer.join()
        pids2 = s.workers.worker_pids()
    assert killed == [pids1[1]]
    assert pids1[0] != pids0[0] and pids1[1] == pids0[1]   # actor 0 replaced, actor 1 untouched
    assert pids2[1] != pids1[1] and pids2[0] == pids1[0]   # actor 1 replaced, actor 0 untouched
    _assert_same(b0, ref[0])
    _assert_same(b1, ref[1])


def test_failing_worker_and_too_many_workers_give_one_line_errors(local_ray, monkeypatch):
    from bomrl.envs import ray_sampler

    with make_sampler(SlowCheetah(fail=True), 2, 1, 5, backend="ray", num_workers=2) as s:
        policy, params = _policy_params(s, 2)
        with pytest.raises(BomrlError, match="boom in the stepper") as info:
            s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(0), call=0)
    assert "\n" not in str(info.value) and "Ray sampler worker" in str(info.value)

    monkeypatch.setattr(ray_sampler, "START_TIMEOUT", 3.0)    # 3 one-CPU actors on 2 CPUs
    t0 = time.monotonic()
    with pytest.raises(BomrlError, match=r"of 3 Ray sampler workers could start") as info:
        make_sampler("halfcheetah-vel", 3, 1, 5, backend="ray", num_workers=3)
    assert "\n" not in str(info.value) and time.monotonic() - t0 < 30


def test_config_errors_without_starting_ray(monkeypatch):
    with pytest.raises(ConfigError, match="ray_address"):
        make_sampler("halfcheetah-vel", 2, 1, 5, backend="vector", ray_address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)               # as if Ray were not installed
    with pytest.raises(ConfigError, match=r'pip install "bomrl\[ray\]"') as info:
        make_sampler("halfcheetah-vel", 2, 1, 5, backend="ray")
    assert "\n" not in str(info.value)


def test_train_one_iteration_with_ray_sampler(local_ray, tmp_path):
    """`bomrl train ... --sampler ray` end to end: 1 MAML-TRPO iteration (2 sampling rounds) on 2 actors.
    (That the numbers equal the vector backend's follows from the Batch equality tested above.)"""
    import csv

    from bomrl.cli import main

    out = tmp_path / "run"
    assert main(["train", "--env", "halfcheetah-vel", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "2",
                 "--horizon", "10", "--iterations", "1", "--no-progress", "--no-tensorboard",
                 "--sampler", "ray", "--workers", "2", "--out", str(out)]) == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["env_steps"]) == 2 * 2 * 2 * 10
    assert np.isfinite(float(rows[0]["post_return"]))
    assert json.loads((out / "config.json").read_text())["train"]["sampler"] == "ray"


def test_metaworld_family_on_ray_equals_vector(local_ray):
    """A local Ray run with a Meta-World family (a gymnasium loop family with episode statistics):
    the vector backend's batch, success included."""
    pytest.importorskip("metaworld", reason='Meta-World families need: pip install -e ".[metaworld]"')
    key = jax.random.PRNGKey(5)
    out = {}
    for backend in ("vector", "ray"):
        with make_sampler("ml1-reach-v3", 3, 1, 15, backend=backend, num_workers=2, seed=1) as s:
            policy, params = _policy_params(s, 3)
            out[backend] = s.sample(policy, params, s.sample_tasks(), key, call=0)[0]
    assert out["vector"].stats["success"].shape == (3, 1)
    _assert_same(out["ray"], out["vector"])
