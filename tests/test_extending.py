"""docs/EXTENDING.md's examples, run as printed: each ```python block whose first line names a file
(`# fomaml.py`) is written to that file and loaded as a plugin, the way a user would."""

import importlib
import json
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from bomrl.cli import main

DOC = Path(__file__).parents[1] / "docs" / "EXTENDING.md"
TINY = ["--tasks", "2", "--episodes", "2", "--horizon", "10", "--workers", "1", "--no-progress", "--no-tensorboard"]


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """{file name: path} of the page's examples, written to tmp_path (on sys.path)."""
    out = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S):
        name = block.splitlines()[0].lstrip("# ").strip()
        assert name.endswith(".py"), f"a python block of {DOC.name} does not start with its file name: {name!r}"
        (tmp_path / name).write_text(block)
        out[name] = tmp_path / name
    monkeypatch.syspath_prepend(str(tmp_path))
    assert set(out) == {"fomaml.py", "mytasks.py", "mydist.py", "gmres_solve.py"}
    return out


def test_the_new_algorithm_learns_trains_resumes_and_meta_tests(plugins, tmp_path, capsys):
    from bomrl.bench.config import BenchLearningConfig
    from bomrl.bench.learning import run

    # the page's learning claim: nav2d, 10 tasks × 10 episodes, 8 iterations, rise ≥ 8 (as the MAML family)
    lines = run(BenchLearningConfig(algo="fomaml", env="nav2d", tasks=10, episodes=10, horizon=50, iterations=8,
                                    seeds=(0,), workers=1, plugins=("fomaml",)))
    curve = [ln for ln in lines if not ln.get("summary")]
    assert sum(ln["post_return"] for ln in curve[-3:]) / 3 - curve[0]["pre_return"] >= 8.0, curve
    # its settings are typed flags; the run resumes and meta-tests with the plugin re-imported
    run_dir = tmp_path / "fo"
    argv = ["train", "--plugins", "fomaml", "--algo", "fomaml", "--env", "nav2d", *TINY, "--out", str(run_dir)]
    assert main([*argv, "--meta-lr", "0.02", "--iterations", "2"]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["algo_config"]["meta_lr"] == 0.02 and saved["train"]["plugins"] == ["fomaml"]
    assert main(["train", "--resume", str(run_dir), "--iterations", "3"]) == 0
    out = tmp_path / "mt.json"
    assert main(["meta-test", str(run_dir), "--tasks", "2", "--adapt-steps", "1", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["returns"]) == 2
    capsys.readouterr()
    assert main(["train", "--plugins", "fomaml", "--algo", "fomaml", "--meta-lr", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "meta_lr=-1.0 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--plugins", "fomaml", "--algo", "fomaml", "--help"])
    assert "Adam step size of the meta-update" in " ".join(capsys.readouterr().out.split())


def test_the_new_task_family_trains(plugins, tmp_path):
    run_dir = tmp_path / "hop"
    assert main(["train", "--plugins", "mytasks", "--env", "hopper-vel", "--algo", "maml-trpo", *TINY,
                 "--iterations", "1", "--out", str(run_dir)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["train"]["env"] == "hopper-vel"


def test_the_new_distance_is_the_mean_of_d1_and_d2_and_trains(plugins, tmp_path):
    import jax

    import jax.numpy as jnp

    from bomrl.core import DISTANCES
    from bomrl.core.distances import get_distance, task_distance_sq
    from bomrl.core.policies import gaussian_mlp

    importlib.import_module("mydist")   # as --plugins does (once per process)
    assert "sym-kl" in DISTANCES
    policy = gaussian_mlp(3, 2, hidden=(8,))
    phi = policy.init(jax.random.PRNGKey(0))
    theta = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(1), x.shape), phi)   # std too
    obs = jax.random.normal(jax.random.PRNGKey(2), (5, 3))
    d = {name: float(task_distance_sq(get_distance(name, policy), policy, theta, phi, obs, jnp.ones(5)))
         for name in ("sym-kl", "d1", "d2")}
    assert d["sym-kl"] == pytest.approx(0.5 * (d["d1"] + d["d2"]), rel=1e-5) and d["d1"] != pytest.approx(d["d2"])
    run_dir = tmp_path / "sym"
    assert main(["train", "--plugins", "mydist", "--algo", "bomrl", "--distance", "sym-kl", "--lam", "0.5",
                 "--env", "nav2d", *TINY, "--iterations", "1", "--out", str(run_dir)]) == 0
    assert np.isfinite(float(json.loads((run_dir / "config.json").read_text())["algo_config"]["lam"]))


def test_the_linear_solve_gives_the_exact_derivative(plugins):
    namespace = runpy.run_path(str(plugins["gmres_solve.py"]))   # the example asserts the Jacobian = A⁻¹
    assert np.allclose(namespace["jacobian"] @ namespace["A"], np.eye(2), atol=1e-4)
