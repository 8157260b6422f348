"""The action-scale convention (policy acts in [−s, s], mapped onto the env's bounds): the mapping
itself, what the environment receives through every sampler path, pickling for the worker
backends, and how `bomrl train` records it (legacy runs = 1)."""

import json
import pickle

import jax
import numpy as np
import pytest

from bomrl.cli import main
from bomrl.core.policies import gaussian_mlp
from bomrl.envs import get_family, make_sampler
from bomrl.envs.families import scale_action
from bomrl.envs.locomotion import CHEETAH_CTRL
from bomrl.errors import ConfigError


def test_scale_action_known_values():
    low, high = -np.ones(3), np.ones(3)
    a = np.array([[-25.0, 5.0, 10.0], [0.0, -3.0, 11.0]])
    np.testing.assert_allclose(scale_action(a, low, high, 10.0), [[-1.0, 0.5, 1.0], [0.0, -0.3, 1.0]])
    np.testing.assert_allclose(scale_action(a, low, high, 1.0), np.clip(a, -1, 1))   # s = 1: plain clip
    # asymmetric bounds: -s -> low, 0 -> midpoint, s -> high
    lo, hi = np.array([0.0, -2.0]), np.array([4.0, 0.0])
    np.testing.assert_allclose(scale_action(np.array([[-10.0, 0.0], [10.0, 5.0]]), lo, hi, 10.0),
                               [[0.0, -1.0], [4.0, -0.5]])
    # unbounded dimensions pass through
    np.testing.assert_allclose(scale_action(np.array([[7.0, 7.0]]), np.array([-np.inf, -1.0]),
                                            np.array([np.inf, 1.0]), 10.0), [[7.0, 0.7]])
    np.testing.assert_allclose(scale_action(a, None, None, 10.0), a)


def test_locomotion_default_is_the_maml_family_convention():
    for name in ("halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir"):
        assert get_family(name).action_scale == 10.0
    fam = get_family("halfcheetah-dir")
    fam.action_scale = 3.0
    assert pickle.loads(pickle.dumps(fam)).action_scale == 3.0          # process / Ray backends


@pytest.mark.parametrize("scale", [10.0, 1.0])
def test_env_receives_scaled_action_and_pays_control_cost_on_it(scale):
    """Replaying the stored (policy-unit) actions divided by s through a fresh stepper gives the
    sampler's rewards exactly; the control cost is that of the env action."""
    T, E, H = 2, 2, 15
    family = get_family("halfcheetah-vel")
    with make_sampler(family, T, E, H, seed=4, dtype=np.float64, action_scale=scale) as s:
        assert s.action_scale == scale and family.action_scale == 10.0   # the family object is not modified
        policy = gaussian_mlp(s.obs_dim, s.act_dim, dtype=np.float64)
        params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(1), T))
        tasks = s.sample_tasks()
        batch, _ = s.sample(policy, params, tasks, jax.random.PRNGKey(2), call=0)
        seeds = s.reset_seeds(0)
    assert get_family("halfcheetah-vel").action_scale == 10.0            # the registry is untouched
    stepper = get_family("halfcheetah-vel").make_stepper(T * E)
    stepper.reset(np.repeat(tasks, E, axis=0), seeds)
    act = batch.act.reshape(T * E, H, -1)
    for t in range(H):
        env_act = np.clip(act[:, t] / scale, -1.0, 1.0)
        x0 = stepper.qpos[:, 0].copy()
        _, rew, _ = stepper.step(env_act, np.ones(T * E, bool))
        # the sampler's affine map of the action and this division differ in the last bit; 15 steps of
        # MuJoCo grow that to 1.4e-12 with XLA limited to SSE4.2 (other actions): 1e-9 holds anywhere
        np.testing.assert_allclose(batch.rew.reshape(T * E, H)[:, t], rew, rtol=0, atol=1e-9)
        v = (stepper.qpos[:, 0] - x0) / 0.05
        hand = -np.abs(v - np.repeat(tasks[:, 0], E)) - CHEETAH_CTRL * np.sum(env_act**2, -1)
        np.testing.assert_allclose(rew, hand, atol=1e-12)
    # at s = 10 the initial std-1 noise is std 0.1 in env units: nothing saturates
    frac_saturated = np.mean(np.abs(act) >= scale)
    assert (frac_saturated < 0.01) if scale == 10.0 else (frac_saturated > 0.2)


def test_process_backend_uses_the_same_scale():
    T, E, H = 2, 1, 8
    out = {}
    for backend in ("vector", "process"):
        with make_sampler("halfcheetah-dir", T, E, H, seed=0, backend=backend, num_workers=2,
                          action_scale=4.0) as s:
            policy = gaussian_mlp(s.obs_dim, s.act_dim)
            params = jax.vmap(policy.init)(jax.random.split(jax.random.PRNGKey(0), T))
            out[backend], _ = s.sample(policy, params, s.sample_tasks(), jax.random.PRNGKey(5), call=0)
    np.testing.assert_array_equal(out["vector"].rew, out["process"].rew)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), True, "10"])
def test_bad_action_scale_is_a_one_line_error(bad):
    with pytest.raises(ConfigError) as err:
        make_sampler("halfcheetah-vel", 1, 1, 5, action_scale=bad)
    assert "action_scale" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["0", "-2", "nan", "inf"])
def test_train_rejects_bad_action_scale(capsys, tmp_path, value):
    code = main(["train", "--env", "nav2d", "--action-scale", value, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--action-scale" in err
    assert not (tmp_path / "r").exists()


def test_train_records_the_scale_and_legacy_runs_resume_with_one(tmp_path, capsys):
    common = ["--env", "halfcheetah-vel", "--algo", "maml-trpo", "--tasks", "2", "--episodes", "1",
              "--horizon", "5", "--workers", "1", "--no-progress", "--no-tensorboard"]
    run = tmp_path / "r"
    assert main(["train", *common, "--iterations", "1", "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["action_scale"] == 10.0
    # a run saved before the setting existed: resumed (and meta-tested) with plain clipping. Such a
    # run's checkpoints predate the recorded settings too: rewrite this one as they were
    del saved["train"]["action_scale"]
    (run / "config.json").write_text(json.dumps(saved))
    from bomrl.workflow.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint

    (_, path), = list_checkpoints(run)
    ckpt = load_checkpoint(path)
    save_checkpoint(run, ckpt.iteration, ckpt.leaves, {k: v for k, v in ckpt.meta.items() if k != "settings"})
    from bomrl.workflow.train import load_run

    cfg, _ = load_run(run)
    assert cfg.action_scale == 1.0
    assert main(["train", "--resume", str(run), "--iterations", "2", "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["action_scale"] == 1.0
    capsys.readouterr()


def test_legacy_bomrl_run_keeps_the_solver_it_ran_with(tmp_path):
    """A BO-MRL config.json saved before inner_solver/line_search existed loads as it ran (Adam,
    linear line search), not with today's defaults; so does one of today's runs."""
    from bomrl.workflow.train import load_run

    run = tmp_path / "old"
    run.mkdir()
    algo_config = {"lam": 0.5, "distance": "kl", "surrogate": "h", "inner_steps_adam": 50, "inner_lr": 0.01,
                   "hypergradient": "practical", "max_kl": 0.001}
    (run / "config.json").write_text(json.dumps({"train": {"env": "nav2d", "algo": "bomrl"},
                                                 "algo_config": algo_config}))
    cfg, algo_cfg = load_run(run)
    assert (algo_cfg.inner_solver, algo_cfg.line_search, cfg.action_scale) == ("adam", "linear", 1.0)
    assert algo_cfg.inner_steps == 50   # saved as inner_steps_adam, its name before 2026-12
    algo_config.update(inner_solver="sgd", line_search="surrogate")
    (run / "config.json").write_text(json.dumps({"train": {"env": "nav2d", "algo": "bomrl", "action_scale": 0.1},
                                                 "algo_config": algo_config}))
    cfg, algo_cfg = load_run(run)
    assert (algo_cfg.inner_solver, algo_cfg.line_search, cfg.action_scale) == ("sgd", "surrogate", 0.1)
