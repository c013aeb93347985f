"""Numerical guards: a non-finite loss or gradient skips the update, is counted, and a run
of consecutive skips stops training with a clear message."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import pretrain_tiny
from r1jax.models import presets
from r1jax.runtime.metrics import read_metrics
from r1jax.train import make_train_step, train_and_evaluate


def test_a_non_finite_update_is_skipped_and_counted():
  cfg = presets.get("llama3_tiny")
  optimizer = optax.adam(0.1)

  def loss_fn(params, batch):  # NaN when batch["poison"] is set
    loss = jnp.sum(params["params"]["w"] ** 2) * batch["scale"]
    return loss, ({}, {})

  params = {"w": jnp.ones(3)}
  state = {"params": params, "buffers": {}, "opt_state": optimizer.init(params),
           "step": jnp.int32(0), "skipped": jnp.int32(0)}
  step = make_train_step(cfg, loss_fn, optimizer)
  state, m = step(state, {"scale": jnp.float32(1.0)})
  w1, mu1 = np.asarray(state["params"]["w"]), np.asarray(state["opt_state"][0].mu["w"])
  assert m["skipped_steps"] == 0 and not np.allclose(w1, 1.0)
  for bad in (jnp.nan, jnp.inf):
    state, m = step(state, {"scale": jnp.float32(bad)})
  np.testing.assert_array_equal(state["params"]["w"], w1)  # nothing moved
  np.testing.assert_array_equal(state["opt_state"][0].mu["w"], mu1)  # moments untouched
  assert int(m["skipped_steps"]) == 2 and int(state["step"]) == 3
  state, m = step(state, {"scale": jnp.float32(1.0)})
  assert int(m["skipped_steps"]) == 2 and not np.allclose(state["params"]["w"], w1)


def test_consecutive_skips_stop_the_run(tmp_path):
  c = pretrain_tiny.get_config()
  c.data.batch_size, c.data.num_eval = 8, 8
  c.train.num_steps, c.train.log_every, c.train.eval_every = 12, 1, 0
  c.train.max_consecutive_skips = 2
  # An infinite learning rate turns the first update into NaN weights; from then on
  # every loss is NaN and every update is skipped.
  c.optim.learning_rate = float("inf")
  with pytest.raises(FloatingPointError, match="3 consecutive updates skipped.*step 4"):
    train_and_evaluate(c, str(tmp_path))
  rows = read_metrics(str(tmp_path))
  assert [r["skipped_steps"] for r in rows] == [0, 1, 2]  # step 4 raised before logging
  assert rows[1]["loss"] is None  # NaN is written as null in metrics.jsonl
