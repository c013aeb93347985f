"""Checkpoints: exact round trips, weights-only restore, and refusing another model's run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import init_params, loading, presets
from r1jax.runtime import checkpoint as ckpt_lib
from r1jax.runtime.metrics import MetricsWriter, read_metrics

CFG = presets.get("qwen2_tiny")


def _state():
  w = init_params(CFG, jax.random.key(0))
  return {"params": w["params"], "buffers": w["buffers"], "step": jnp.array(7, jnp.int32),
          "opt_state": {"mu": jax.tree.map(jnp.ones_like, w["params"])}}


def test_round_trip_and_weights_only(tmp_path):
  state = _state()
  meta = {"model": loading.model_config_dict(CFG), "data": {"next_index": 12}}
  c = ckpt_lib.Checkpointer(str(tmp_path))
  c.save(7, state, meta)
  c.close()
  c = ckpt_lib.Checkpointer(str(tmp_path))
  assert c.latest_step() == 7
  restored, meta2 = c.restore(ckpt_lib.abstract(state))
  assert meta2 == meta
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), restored, state)
  weights = c.restore_weights(ckpt_lib.abstract({"params": state["params"], "buffers": {}}))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), weights["params"], state["params"])
  assert loading.model_config_from_dict(meta2["model"]) == CFG
  c.close()


def test_other_model_is_refused():
  saved = loading.model_config_dict(CFG)
  loading.check_same_model(saved, CFG.replace(dtype="bfloat16"), "d")  # numerics may change
  with pytest.raises(ValueError, match=r"different model \(dim: checkpoint 128 vs config 64"):
    loading.check_same_model(saved, CFG.replace(dim=64), "d")


def test_no_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint under"):
    ckpt_lib.Checkpointer(str(tmp_path)).restore_meta()
  # a reader pointed at a wrong path leaves nothing behind (a later writer would resume it)
  wrong = tmp_path / "typo"
  with pytest.raises(FileNotFoundError, match="no checkpoint under"):
    loading.restore_run_weights(str(wrong))
  assert not wrong.exists()


def test_metrics_jsonl(tmp_path):
  w = MetricsWriter(str(tmp_path), enabled=True)
  w.write(1, {"loss": jnp.float32(2.5), "n": 3})
  w.write(2, {"loss": float("nan")})
  w.close()
  assert read_metrics(str(tmp_path)) == [{"step": 1, "loss": 2.5, "n": 3}, {"step": 2, "loss": None}]
  assert list((tmp_path / "tensorboard").iterdir())
  silent = MetricsWriter(str(tmp_path / "other"), enabled=False)
  silent.write(1, {"loss": 1.0})
  assert read_metrics(str(tmp_path / "other")) == []
