"""Checkpoints: round trip, atomic replacement, keep-last-2, corruption/truncation detection and
fallback to the previous good checkpoint, structure checks."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from bomrl.algos.base import AlgoState
from bomrl.workflow.checkpoint import (CheckpointError, checkpoint_path, list_checkpoints, load_checkpoint,
                                       load_latest, restore_tree, save_checkpoint)


def _state(scale=1.0):
    params = {"w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3) * scale, "b": jnp.ones(3, jnp.float32)}
    return AlgoState(params, (), jnp.asarray(3, jnp.int32), {"eta": jnp.asarray(5e-4, jnp.float64)})


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_round_trip_restores_identical_pytree(tmp_path):
    state = _state(2.5)
    save_checkpoint(tmp_path, 7, _leaves(state), {"wall_s": 1.5, "env": "x"})
    ckpt = load_checkpoint(checkpoint_path(tmp_path, 7))
    assert ckpt.iteration == 7 and ckpt.meta["wall_s"] == 1.5 and ckpt.meta["env"] == "x"
    restored = restore_tree(_state(0.0), ckpt)
    for a, b in zip(_leaves(state), _leaves(restored)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert isinstance(restored, AlgoState)


def test_keeps_last_two_and_no_temp_files(tmp_path):
    for it in (1, 2, 3, 4):
        save_checkpoint(tmp_path, it, _leaves(_state(it)), {})
    assert [i for i, _ in list_checkpoints(tmp_path)] == [4, 3]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_damaged_latest_is_reported_and_previous_used(tmp_path, damage):
    save_checkpoint(tmp_path, 1, _leaves(_state(1.0)), {})
    save_checkpoint(tmp_path, 2, _leaves(_state(2.0)), {})
    path = checkpoint_path(tmp_path, 2)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-100] ^= 0x01
    elif damage == "empty":
        data = b""
    else:
        data = b"not a checkpoint at all\n" * 3
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg
    warnings = []
    ckpt = load_latest(tmp_path, warn=warnings.append)
    assert ckpt.iteration == 1
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert np.array_equal(_leaves(restore_tree(_state(0.0), ckpt))[-1], _leaves(_state(1.0))[-1])


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_latest(tmp_path)
    save_checkpoint(tmp_path, 1, _leaves(_state()), {})
    checkpoint_path(tmp_path, 1).write_bytes(b"BOMRL-CKPT 1\nabc 12\nshort")
    with pytest.raises(CheckpointError, match="no usable checkpoint.*truncated"):
        load_latest(tmp_path)


def test_structure_mismatch_is_reported(tmp_path):
    save_checkpoint(tmp_path, 1, _leaves(_state()), {})
    other = AlgoState({"w": jnp.zeros((2, 4), jnp.float32), "b": jnp.ones(3, jnp.float32)}, (),
                      jnp.asarray(0, jnp.int32), {"eta": jnp.asarray(0.0, jnp.float64)})
    with pytest.raises(CheckpointError, match="does not match this run's config"):
        restore_tree(other, load_latest(tmp_path))
