"""The four MuJoCo locomotion task families of the paper's Section 6.2 (docs/MATH.md §5).

Built on gymnasium's HalfCheetah-v5 and Ant-v5 (gymnasium 1.x, MuJoCo >= 4.0): the same model XML, frame skip 5
(dt = 0.05), reset noise (qpos + U[-0.1, 0.1], qvel + 0.1·N(0, 1), drawn exactly as gymnasium
draws them from `reset(seed=s)`), observation and Ant termination. The environments are stepped
directly on MjData through `mujoco.batch.Batch` (MuJoCo's C thread pool) instead of through
gymnasium wrappers; tests/test_envs_locomotion.py checks the fast path against gymnasium's own env
on scripted rollouts.

Rewards (a = the env action in [-1, 1]: the policy's action clipped to [-s, s] and divided by the
action scale s, 10 by default as in the MAML-family code, see bomrl.envs.families; v = forward
velocity):

    halfcheetah-vel  -|v - v*| - 0.05 ||a||^2                         v* ~ U[0, 2]
    halfcheetah-dir  d v - 0.05 ||a||^2                                d ∈ {-1, +1}
    ant-vel          -|v_x - v*| + 1.0·healthy - 0.5 ||a||^2 - 5e-4 ||clip(cfrc_ext, -1, 1)||^2   v* ~ U[0, 3]
    ant-dir           d v_x      + 1.0·healthy - 0.5 ||a||^2 - 5e-4 ||clip(cfrc_ext, -1, 1)||^2   d ∈ {-1, +1}

Reward variants of the paper's released scripts (docs/REPRODUCTION.md, "Under the released
scripts' protocol"; the same dynamics, observations and termination):

    ant-dir-released / ant-vel-released   move + 0.05 + 1.0·healthy - 0.01·0.5 ||a||^2   (no contact
                                          cost; 36902121699, 36942303703)
    halfcheetah-vel-noctrl                -|v - v*|   (the released HalfCheetah-vel training reward,
                                          read only indirectly: 40943159830; its meta-test keeps
                                          the control cost: test on halfcheetah-vel)

v = (x_after - x_before) / dt with dt = 0.05 (HalfCheetah: x = qpos[0], the root slide joint;
Ant: x = xpos of the torso body, as gymnasium Ant-v5 reads it). Sources of every coefficient are in
docs/ENVIRONMENTS.md. Ant episodes end as soon as the torso is unhealthy (state not finite or torso
z ∉ [0.2, 1.0]); HalfCheetah never terminates. Horizon 200.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import re
import sys
from pathlib import Path

import mujoco
import numpy as np

from bomrl.envs.families import TaskFamily
from bomrl.errors import ConfigError
from bomrl.utils import configure_mujoco_log

DT = 0.05                 # 0.01 s timestep × frame skip 5 (both models)
FRAME_SKIP = 5
RESET_NOISE = 0.1         # gymnasium v5 reset_noise_scale
CHEETAH_CTRL = 0.05       # MAML-family HalfCheetah tasks (gymnasium's own default is 0.1)
ANT_CTRL = 0.5            # gymnasium Ant-v5 ctrl_cost_weight
ANT_CONTACT = 5e-4        # gymnasium Ant-v5 contact_cost_weight
ANT_HEALTHY = 1.0         # gymnasium Ant-v5 healthy_reward
ANT_Z_RANGE = (0.2, 1.0)  # gymnasium Ant-v5 healthy_z_range
ANT_CONTACT_RANGE = (-1.0, 1.0)
RELEASED_ANT_BONUS = 0.05        # the released Ant scripts: + 0.05 per step on top of the survive reward
RELEASED_ANT_CTRL_SCALE = 0.01   # ... and 0.01 × gymnasium's control reward


def _asset(name: str) -> Path:
    """Path of one of gymnasium's MuJoCo model files (found without importing gymnasium)."""
    spec = importlib.util.find_spec("gymnasium")
    if spec is None or spec.origin is None:
        raise ConfigError("the MuJoCo task families need gymnasium: pip install 'gymnasium[mujoco]'")
    return Path(spec.origin).parent / "envs" / "mujoco" / "assets" / name


@functools.lru_cache(maxsize=None)
def _xml(name: str) -> str:
    return _asset(name).read_text()


def load_model(xml_name: str):
    """Compile one of gymnasium's MuJoCo assets.

    half_cheetah.xml uses the compiler attribute settotalmass, deprecated in MuJoCo 4 (one warning
    per compile). We strip it and apply the documented replacement, mj_setTotalmass + mj_setConst,
    which gives a model numerically identical to the original (checked in the tests).
    """
    configure_mujoco_log()
    text = _xml(xml_name)
    match = re.search(r'\ssettotalmass="([^"]+)"', text)
    if match is None:
        return mujoco.MjModel.from_xml_string(text)
    model = mujoco.MjModel.from_xml_string(text.replace(match.group(0), ""))
    mujoco.mj_setTotalmass(model, float(match.group(1)))
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


def reset_noise(seed: int, nq: int, nv: int, scale: float = RESET_NOISE) -> tuple[np.ndarray, np.ndarray]:
    """The (qpos, qvel) perturbations gymnasium's MuJoCo v5 envs draw in `reset(seed=seed)`."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
    dq = rng.uniform(low=-scale, high=scale, size=nq)
    dv = scale * rng.standard_normal(nv)
    return dq, dv


@contextlib.contextmanager
def _drop_settotalmass_warning():
    """While gymnasium compiles half_cheetah.xml itself: drop MuJoCo's settotalmass deprecation
    warning (one per env, i.e. hundreds per sampler), pass any other warning on to stderr and the
    log file. Only around model compilation in this thread, never while a Batch is stepping."""
    prev = mujoco.get_mju_user_warning()

    def handler(msg: str) -> None:
        if "settotalmass" in msg:
            return
        print(f"WARNING: {msg}", file=sys.stderr)
        mujoco.mju_writeLog("WARNING", msg)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(prev)


# ---- rewards as pure numpy functions (vectorized over a leading env axis) ------------------------
def cheetah_reward(kind: str, task: np.ndarray, x_before: np.ndarray, x_after: np.ndarray,
                   action: np.ndarray) -> np.ndarray:
    """HalfCheetah task reward. task [N, 1], x_* [N], action [N, 6] (clipped) -> [N]."""
    v = (x_after - x_before) / DT
    move = -np.abs(v - task[:, 0]) if kind == "vel" else task[:, 0] * v
    return move - CHEETAH_CTRL * np.sum(np.square(action), axis=-1)


def ant_healthy(qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """gymnasium Ant-v5 is_healthy: finite state and torso z in [0.2, 1.0]. qpos [N, 15] -> [N] bool."""
    finite = np.isfinite(qpos).all(-1) & np.isfinite(qvel).all(-1)
    z = qpos[:, 2]
    with np.errstate(invalid="ignore"):
        return finite & (ANT_Z_RANGE[0] <= z) & (z <= ANT_Z_RANGE[1])


def ant_reward(kind: str, task: np.ndarray, x_before: np.ndarray, x_after: np.ndarray,
               action: np.ndarray, cfrc_ext: np.ndarray, healthy: np.ndarray) -> np.ndarray:
    """Ant task reward. task [N, 1], x_* [N] torso x, action [N, 8] (clipped),
    cfrc_ext [N, nbody, 6] raw external contact forces, healthy [N] bool -> [N]."""
    v = (x_after - x_before) / DT
    move = -np.abs(v - task[:, 0]) if kind == "vel" else task[:, 0] * v
    ctrl = ANT_CTRL * np.sum(np.square(action), axis=-1)
    contact = ANT_CONTACT * np.sum(np.square(np.clip(cfrc_ext, *ANT_CONTACT_RANGE)), axis=(-2, -1))
    return move + ANT_HEALTHY * healthy - ctrl - contact


def ant_reward_released(kind: str, task: np.ndarray, x_before: np.ndarray, x_after: np.ndarray,
                        action: np.ndarray, healthy: np.ndarray) -> np.ndarray:
    """The released Ant scripts' reward: move + 0.05 + 1.0·healthy + 0.01 × (−0.5 ||a||²), no
    contact cost. Shapes as `ant_reward`."""
    v = (x_after - x_before) / DT
    move = -np.abs(v - task[:, 0]) if kind == "vel" else task[:, 0] * v
    ctrl = ANT_CTRL * np.sum(np.square(action), axis=-1)
    return move + RELEASED_ANT_BONUS + ANT_HEALTHY * healthy - RELEASED_ANT_CTRL_SCALE * ctrl


# ---- fast stepper on MuJoCo's batch thread pool ---------------------------------------------------
class MujocoBatchStepper:
    """Steps N copies of one MuJoCo model on `mujoco.batch.Batch` (nthread C threads).

    Subclasses define `_x()` (forward position [N]), `_obs()` ([N, obs_dim]) and
    `_reward_and_done(x_before, actions)` (([N], [N] bool)); the stepper interface is
    bomrl.envs.families'. Terminated simulations are not stepped (`ids` = the active ones).
    """

    xml = ""
    needs_contact_forces = False

    def __init__(self, family: "LocomotionFamily", num_envs: int, num_threads: int = 1):
        try:
            from mujoco import batch as mjbatch
        except ImportError:
            raise ConfigError(f"the {family.name} family steps MuJoCo through mujoco.batch, which needs "
                              f"mujoco>=4.0 (installed: {mujoco.__version__})") from None
        self.family = family
        self.model = load_model(self.xml)
        self.num_envs = num_envs
        # persistent: each simulation keeps its whole MjData, so derived fields (xpos, contacts)
        # are those gymnasium's env would hold after its mj_step.
        self.batch = mjbatch.Batch(self.model, nsim=num_envs, nthread=max(1, int(num_threads)),
                                   persistent=self.needs_contact_forces)
        self.qpos = self.batch.bind("qpos")
        self.qvel = self.batch.bind("qvel")
        self.ctrl = self.batch.bind("ctrl")
        self.init_qpos = self.model.qpos0.copy()
        self.init_qvel = np.zeros(self.model.nv)
        self.tasks = np.zeros((num_envs, family.task_dim))
        self._mujoco = mujoco
        self._stage_none = mujoco.mjtStage.mjSTAGE_NONE.value

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        self.tasks = np.asarray(tasks, np.float64).reshape(self.num_envs, -1).copy()
        self.batch.reset(stage=self._stage_none)
        nq, nv = self.model.nq, self.model.nv
        for i, s in enumerate(seeds):
            dq, dv = reset_noise(int(s), nq, nv)
            self.qpos[i] = self.init_qpos + dq
            self.qvel[i] = self.init_qvel + dv
        self.batch.forward()  # gymnasium's set_state ends with mj_forward
        self._after_call(None, after_step=False)
        return self._obs()

    def _after_call(self, ids, after_step: bool = True) -> None:
        """Hook run after every batch call (Ant: contact forces)."""

    def step(self, actions: np.ndarray, active: np.ndarray):
        ids = None if active.all() else np.flatnonzero(active).astype(np.int32)
        x_before = self._x().copy()
        self.ctrl[:] = actions
        if ids is None or len(ids):
            self.batch.step(ids=ids, nstep=FRAME_SKIP)
            self._after_call(ids)
        rew, done = self._reward_and_done(x_before, actions)
        return self._obs(), rew, done

    def close(self) -> None:
        self.batch = None


class CheetahStepper(MujocoBatchStepper):
    xml = "half_cheetah.xml"

    def _x(self) -> np.ndarray:
        return self.qpos[:, 0]

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.qpos[:, 1:], self.qvel], axis=1)

    def _reward_and_done(self, x_before, actions):
        rew = cheetah_reward(self.family.kind, self.tasks, x_before, self.qpos[:, 0], actions)
        return rew, np.zeros(self.num_envs, bool)


class AntStepper(MujocoBatchStepper):
    """Ant-v5: after mj_step gymnasium calls mj_rnePostConstraint so that cfrc_ext holds the
    contact forces. The batch cannot run it, so it is run here per simulation on a copy of that
    simulation's MjData (a persistent batch keeps each simulation's derived fields)."""

    xml = "ant.xml"
    needs_contact_forces = True

    def __init__(self, family, num_envs, num_threads=1):
        super().__init__(family, num_envs, num_threads)
        self._scratch = self._mujoco.MjData(self.model)
        nb = self.model.nbody
        self.cfrc_ext = np.zeros((num_envs, nb, 6))
        self.torso_x = np.zeros(num_envs)

    def _after_call(self, ids, after_step: bool = True) -> None:
        mj = self._mujoco
        d = self._scratch
        for i in (range(self.num_envs) if ids is None else ids):
            self.batch.get_data(int(i), d)
            if after_step:  # gymnasium runs it after mj_step only (reset's mj_forward does not)
                mj.mj_rnePostConstraint(self.model, d)
            self.cfrc_ext[i] = d.cfrc_ext
            self.torso_x[i] = d.xpos[1, 0]

    def _x(self) -> np.ndarray:
        return self.torso_x

    def _obs(self) -> np.ndarray:
        forces = np.clip(self.cfrc_ext[:, 1:], *ANT_CONTACT_RANGE).reshape(self.num_envs, -1)
        return np.concatenate([self.qpos[:, 2:], self.qvel, forces], axis=1)

    def _reward_and_done(self, x_before, actions):
        healthy = ant_healthy(self.qpos, self.qvel)
        rew = ant_reward(self.family.kind, self.tasks, x_before, self.torso_x, actions, self.cfrc_ext, healthy)
        return rew, ~healthy


class AntReleasedStepper(AntStepper):
    def _reward_and_done(self, x_before, actions):
        healthy = ant_healthy(self.qpos, self.qvel)
        rew = ant_reward_released(self.family.kind, self.tasks, x_before, self.torso_x, actions, healthy)
        return rew, ~healthy


class CheetahNoCtrlStepper(CheetahStepper):
    def _reward_and_done(self, x_before, actions):
        v = (self.qpos[:, 0] - x_before) / DT
        move = -np.abs(v - self.tasks[:, 0]) if self.family.kind == "vel" else self.tasks[:, 0] * v
        return move, np.zeros(self.num_envs, bool)


# ---- the families --------------------------------------------------------------------------------
class LocomotionFamily(TaskFamily):
    """A gymnasium MuJoCo v5 robot with a goal-velocity ("vel") or goal-direction ("dir") task."""

    gym_id = ""
    stepper_cls: type = MujocoBatchStepper
    vel_range = (0.0, 2.0)
    horizon = 200
    task_dim = 1

    variant = ""   # a reward variant's name suffix (e.g. "-released")

    def __init__(self, kind: str = "vel", horizon: int = 200):
        self.kind = kind
        self.horizon = int(horizon)
        self.name = f"{self.robot}-{kind}{self.variant}"

    def make_env(self):
        """gymnasium's own env (used by the generic loop stepper and the equality tests)."""
        import gymnasium as gym   # only here: the samplers and worker processes step MuJoCo directly

        configure_mujoco_log()
        with _drop_settotalmass_warning():
            return gym.make(self.gym_id, **self.gym_kwargs)

    def sample_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "vel":
            return rng.uniform(*self.vel_range, size=(n, 1))
        return rng.choice(np.array([-1.0, 1.0]), size=(n, 1))

    def fixed_tasks(self, n: int) -> np.ndarray | None:
        """Direction families: −1, +1, −1, +1, ... (the released scripts' list of 4, 36902121699);
        velocity families have none."""
        if self.kind != "dir":
            return None
        return np.where(np.arange(n) % 2 == 0, -1.0, 1.0)[:, None]

    def test_grid(self) -> np.ndarray:
        """The released meta-test scripts' tasks (36952404750, 36942303703): target velocities 0.1,
        0.2, ... up to the range's end minus 0.1 (v* = 0 is run there but left out of every mean);
        directions −1, +1."""
        if self.kind == "dir":
            return np.array([[-1.0], [1.0]])
        return (np.arange(1, int(round(self.vel_range[1] * 10))) / 10.0)[:, None]

    def move_reward(self, task, v: float) -> float:
        """Moving reward: −|v − v*| for goal velocity, d·v for goal direction (docs/MATH.md §5)."""
        return -abs(v - task[0]) if self.kind == "vel" else task[0] * v

    def make_stepper(self, num_envs: int, num_threads: int = 1):
        return self.stepper_cls(self, num_envs, num_threads)

    def spaces(self):
        a = np.ones(self.n_act)
        return (self.n_obs, self.n_act, -a, a, False)

    def __reduce__(self):  # picklable for the process and Ray backends (state: action_scale)
        return (type(self), (self.kind, self.horizon), {"action_scale": self.action_scale})


class HalfCheetahFamily(LocomotionFamily):
    robot = "halfcheetah"
    gym_id = "HalfCheetah-v5"
    gym_kwargs = {"ctrl_cost_weight": CHEETAH_CTRL}
    stepper_cls = CheetahStepper
    vel_range = (0.0, 2.0)
    n_obs, n_act = 17, 6

    def reward(self, task, obs, action, next_obs, info):
        move = self.move_reward(task, info["x_velocity"])
        return float(move - CHEETAH_CTRL * np.sum(np.square(action)))


class AntFamily(LocomotionFamily):
    robot = "ant"
    gym_id = "Ant-v5"
    gym_kwargs = {}
    stepper_cls = AntStepper
    vel_range = (0.0, 3.0)
    n_obs, n_act = 105, 8

    def reward(self, task, obs, action, next_obs, info):
        move = self.move_reward(task, info["x_velocity"])
        return float(move + info["reward_survive"] + info["reward_ctrl"] + info["reward_contact"])


class AntReleasedFamily(AntFamily):
    """Ant with the released scripts' reward (`ant_reward_released`)."""

    variant = "-released"
    stepper_cls = AntReleasedStepper

    def reward(self, task, obs, action, next_obs, info):
        move = self.move_reward(task, info["x_velocity"])
        return float(move + RELEASED_ANT_BONUS + info["reward_survive"] + RELEASED_ANT_CTRL_SCALE * info["reward_ctrl"])


class HalfCheetahNoCtrlFamily(HalfCheetahFamily):
    """HalfCheetah without the control cost (the released HalfCheetah-vel training reward)."""

    variant = "-noctrl"
    stepper_cls = CheetahNoCtrlStepper

    def reward(self, task, obs, action, next_obs, info):
        return float(self.move_reward(task, info["x_velocity"]))


# the factories registered by name in bomrl.envs.families.FAMILIES
halfcheetah_vel = functools.partial(HalfCheetahFamily, "vel")
halfcheetah_dir = functools.partial(HalfCheetahFamily, "dir")
ant_vel = functools.partial(AntFamily, "vel")
ant_dir = functools.partial(AntFamily, "dir")
ant_dir_released = functools.partial(AntReleasedFamily, "dir")
ant_vel_released = functools.partial(AntReleasedFamily, "vel")
halfcheetah_vel_noctrl = functools.partial(HalfCheetahNoCtrlFamily, "vel")
