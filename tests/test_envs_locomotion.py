"""Locomotion families: rewards on scripted states, the fast path against gymnasium, Ant termination."""

import numpy as np
import pytest

from bomrl.envs import get_family
from bomrl.envs.locomotion import (
    DT,
    ant_healthy,
    ant_reward,
    cheetah_reward,
    load_model,
    reset_noise,
)


# ---- rewards against hand-computed values ---------------------------------------------------------
def test_cheetah_rewards_hand_computed():
    task = np.array([[1.5], [0.0]])
    x0 = np.array([0.0, 2.0])
    x1 = np.array([0.1, 1.95])               # v = 2.0 and -1.0
    a = np.array([[1.0, 0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0, 0]])  # ||a||^2 = 1.0, 0.5
    vel = cheetah_reward("vel", task, x0, x1, a)
    np.testing.assert_allclose(vel, [-abs(2.0 - 1.5) - 0.05 * 1.0, -abs(-1.0 - 0.0) - 0.05 * 0.5])
    d = np.array([[-1.0], [1.0]])
    dirr = cheetah_reward("dir", d, x0, x1, a)
    np.testing.assert_allclose(dirr, [-2.0 - 0.05, -1.0 - 0.025])


def test_ant_rewards_hand_computed():
    x0, x1 = np.array([0.0, 0.0]), np.array([0.05, -0.1])        # v_x = 1.0, -2.0
    a = np.zeros((2, 8))
    a[0, :2] = [1.0, -1.0]                                           # ||a||^2 = 2
    forces = np.zeros((2, 14, 6))
    forces[0, 3, :2] = [3.0, -0.5]                                   # clip -> 1.0, -0.5: 1.25
    forces[1, 5, 0] = 0.2                                            # 0.04
    healthy = np.array([True, False])
    rv = ant_reward("vel", np.array([[2.5], [0.5]]), x0, x1, a, forces, healthy)
    np.testing.assert_allclose(rv, [-1.5 + 1.0 - 0.5 * 2 - 5e-4 * 1.25, -2.5 + 0.0 - 0.0 - 5e-4 * 0.04])
    rd = ant_reward("dir", np.array([[1.0], [-1.0]]), x0, x1, a, forces, healthy)
    np.testing.assert_allclose(rd, [1.0 + 1.0 - 1.0 - 5e-4 * 1.25, 2.0 - 5e-4 * 0.04])
    assert DT == 0.05


def test_released_reward_variants_hand_computed():
    from bomrl.envs.locomotion import ant_reward_released

    x0, x1 = np.array([0.0, 0.0]), np.array([0.05, -0.1])        # v_x = 1.0, -2.0
    a = np.zeros((2, 8))
    a[0, :2] = [1.0, -1.0]                                           # ||a||^2 = 2
    rd = ant_reward_released("dir", np.array([[1.0], [-1.0]]), x0, x1, a, np.array([True, False]))
    np.testing.assert_allclose(rd, [1.0 + 0.05 + 1.0 - 0.01 * 0.5 * 2, 2.0 + 0.05])
    fam = get_family("halfcheetah-vel-noctrl")
    assert fam.name == "halfcheetah-vel-noctrl" and get_family("ant-dir-released").name == "ant-dir-released"
    assert fam.reward(np.array([1.5]), None, np.ones(6), None, {"x_velocity": 2.0}) == -0.5


def test_ant_healthy_rule():
    qpos = np.zeros((5, 15))
    qpos[:, 2] = [0.2, 1.0, 0.19, 1.01, 0.5]
    qvel = np.zeros((5, 14))
    qvel[4, 3] = np.nan
    np.testing.assert_array_equal(ant_healthy(qpos, qvel), [True, True, False, False, False])


# ---- the model and the fast path are gymnasium's -------------------------------------------------
def test_model_without_settotalmass_is_identical(capfd):
    import mujoco

    from bomrl.envs.locomotion import _asset

    ours = load_model("half_cheetah.xml")
    assert "settotalmass" not in capfd.readouterr().out      # no deprecation warning from ours
    ref = mujoco.MjModel.from_xml_path(str(_asset("half_cheetah.xml")))
    checked = 0
    for name in dir(ref):
        a = getattr(ref, name, None)
        if isinstance(a, np.ndarray) and a.dtype.kind in "fiu" and a.size:
            np.testing.assert_array_equal(getattr(ours, name), a, err_msg=name)
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("name", ["halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir", "ant-dir-released",
                                  "ant-vel-released", "halfcheetah-vel-noctrl"])
def test_fast_path_equals_gymnasium(name):
    """Scripted rollout (fixed seeds, fixed random actions incl. out-of-bounds ones that are
    clipped): observation, reward and termination bit-identical to gymnasium's env."""
    fam = get_family(name)
    n, steps = 3, 40
    rng = np.random.default_rng(7)
    tasks = fam.sample_tasks(rng, n)
    seeds = np.array([3, 4, 5])
    stepper = fam.make_stepper(n, 2)
    envs = [fam.make_env() for _ in range(n)]
    obs = stepper.reset(tasks, seeds)
    ref = np.stack([e.reset(seed=int(s))[0] for e, s in zip(envs, seeds)])
    np.testing.assert_array_equal(obs, ref)
    active = np.ones(n, bool)
    for _ in range(steps):
        act = np.clip(rng.normal(0.0, 1.5, (n, fam.act_dim)), -1, 1)
        obs, rew, term = stepper.step(act, active)
        for i in np.flatnonzero(active):
            o, _, t, _, info = envs[i].step(act[i])
            np.testing.assert_array_equal(obs[i], o)
            assert rew[i] == fam.reward(tasks[i], None, act[i], o, info)
            assert term[i] == t
        active &= ~term
    stepper.close()


def test_reset_noise_matches_gymnasium():
    import gymnasium as gym

    env = gym.make("HalfCheetah-v5").unwrapped
    env.reset(seed=123)
    dq, dv = reset_noise(123, env.model.nq, env.model.nv)
    np.testing.assert_array_equal(env.data.qpos, env.init_qpos + dq)
    np.testing.assert_array_equal(env.data.qvel, env.init_qvel + dv)


def test_ant_terminates_when_unhealthy_like_gymnasium():
    """Lift one Ant's torso above z = 1: that episode ends on its first step with healthy = 0."""
    fam = get_family("ant-dir")
    tasks = np.array([[1.0], [1.0]])
    stepper = fam.make_stepper(2, 1)
    stepper.reset(tasks, np.array([0, 1]))
    # set the same state in the batch and in gymnasium's env
    stepper.qpos[0, 2] = 1.4
    stepper.batch.forward()
    stepper._after_call(None, after_step=False)
    env = fam.make_env().unwrapped
    env.reset(seed=0)
    qpos = env.data.qpos.copy()
    qpos[2] = 1.4
    env.set_state(qpos, env.data.qvel.copy())
    act = np.zeros((2, 8))
    _, rew, term = stepper.step(act, np.ones(2, bool))
    _, ref_rew, ref_term, _, info = env.step(act[0])
    assert term.tolist() == [True, False]
    assert ref_term and info["reward_survive"] == 0.0
    assert rew[0] == fam.reward(tasks[0], None, act[0], None, info)
    assert abs(rew[0] - ref_rew) < 1e-12          # d = +1: gymnasium's own Ant reward


def test_gymnasium_envs_built_quietly(capfd):
    """gymnasium's HalfCheetah-v5 compiles an XML with the deprecated settotalmass: one MuJoCo
    warning per env, hundreds per sampler. make_env drops exactly that warning."""
    import mujoco

    fam = get_family("halfcheetah-dir")
    envs = [fam.make_env() for _ in range(3)]
    out = capfd.readouterr()
    assert "settotalmass" not in out.out + out.err
    assert mujoco.get_mju_user_warning() is None          # the default handler is back
    for env in envs:
        env.close()
