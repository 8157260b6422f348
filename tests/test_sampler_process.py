"""Multi-process sampler backend: same batches as the vector backend, repeated create/close never
hangs, a crashing or raising worker gives a one-line error quickly.

The families below are imported by the worker processes (this module is on the parent's sys.path,
which the workers adopt), so JAX is only imported inside the tests."""

import os
import time

import numpy as np
import pytest

from bomrl.envs.locomotion import HalfCheetahFamily


class _FailingStepper:
    def __init__(self, inner, fail_at, how):
        self.inner, self.fail_at, self.how, self.n = inner, fail_at, how, 0

    def reset(self, tasks, seeds):
        return self.inner.reset(tasks, seeds)

    def step(self, actions, active):
        self.n += 1
        if self.n == self.fail_at:
            if self.how == "exit":
                os._exit(3)                     # a hard crash: no reply, no cleanup
            raise RuntimeError("boom in the stepper")
        return self.inner.step(actions, active)

    def close(self):
        self.inner.close()


class FailingCheetah(HalfCheetahFamily):
    def __init__(self, fail_at=3, how="exit"):
        super().__init__("vel", 200)
        self.fail_at, self.how = fail_at, how

    def make_stepper(self, num_envs, num_threads=1):
        return _FailingStepper(super().make_stepper(num_envs, num_threads), self.fail_at, self.how)

    def __reduce__(self):
        return (FailingCheetah, (self.fail_at, self.how))


def _policy(s, T):
    import jax

    from bomrl.core.policies import gaussian_mlp

    policy = gaussian_mlp(s.obs_dim, s.act_dim)
    return policy, jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), T))


def test_process_backend_equals_vector_backend():
    import jax

    from bomrl.envs import make_sampler

    out = {}
    for backend in ("vector", "process"):
        # action scale 1: std-1 actions make the Ant hop out of its healthy range (early ends)
        with make_sampler("ant-vel", 3, 2, 30, backend=backend, num_workers=2, seed=9, action_scale=1.0) as s:
            policy, params = _policy(s, 3)
            out[backend] = s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(2), call=0)[0]
    for x, y in zip(out["vector"], out["process"]):
        np.testing.assert_array_equal(x, y)
    assert out["process"].lengths.min() < 30  # terminations crossed the worker boundary too


def test_two_samplers_in_a_row_then_close_twice():
    import jax

    from bomrl.envs import make_sampler

    t0 = time.monotonic()
    for _ in range(2):
        s = make_sampler("halfcheetah-dir", 2, 2, 5, backend="process", num_workers=2)
        procs = list(s._stepper.procs)
        policy, params = _policy(s, 2)
        s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(0), call=0)
        s.close()
        s.close()                               # idempotent
        assert all(p.poll() is not None for p in procs)
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("how, message", [("exit", "died with exit code 3"),
                                          ("raise", "RuntimeError: boom in the stepper")])
def test_worker_failure_is_a_clear_error_not_a_hang(how, message):
    import jax

    from bomrl.envs import make_sampler
    from bomrl.errors import BomrlError

    t0 = time.monotonic()
    with make_sampler(FailingCheetah(3, how), 2, 2, 10, backend="process", num_workers=1) as s:
        policy, params = _policy(s, 2)
        with pytest.raises(BomrlError) as err:
            s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(0), call=0)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert time.monotonic() - t0 < 60
