"""Gradient accumulation (config.train.micro_batches): the same update as the whole batch.

An SGD step with learning rate 1 moves the parameters by exactly the gradient, so equal
parameters after one step mean equal gradients. Completions of unequal lengths make the
token-averaged losses (DAPO's token-mean, the LM loss) weigh micro-batches unequally: a
plain mean of micro-batch gradients fails those cases.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax.losses import grpo, lm
from r1jax.models import init_params, presets
from r1jax.stages.grpo_batch import pack_groups
from r1jax.train import make_train_step

B, L = 16, 12


def _grpo_batch(rng: np.random.Generator, vocab: int) -> dict[str, np.ndarray]:
  tokens = rng.integers(1, vocab, (B, L)).astype(np.int32)
  mask = np.zeros((B, L), np.int32)
  for row in range(B):  # prompt of 4, completions of 1..8 tokens
    mask[row, 4:4 + 1 + (row * 5) % 8] = 1
  segment_ids = np.where(np.arange(L) < 4, 1, mask).astype(np.int32)
  return {"tokens": tokens, "positions": np.broadcast_to(np.arange(L, dtype=np.int32), (B, L)),
          "segment_ids": segment_ids, "completion_mask": mask,
          "sampler_logps": rng.normal(-3.0, 0.3, (B, L - 1)).astype(np.float32),
          "ref_logps": rng.normal(-3.0, 0.3, (B, L - 1)).astype(np.float32),
          "advantages": rng.normal(size=B).astype(np.float32)}


def _grpo_groups(rng: np.random.Generator, vocab: int) -> dict[str, np.ndarray]:
  """The groups layout (one row per prompt and its 2 completions): 8 prompts of 2..5
  tokens, completions of 1..8 tokens."""
  prompts = [list(rng.integers(1, vocab, 2 + i % 4)) for i in range(8)]
  C = 8
  completions = rng.integers(1, vocab, (16, C)).astype(np.int32)
  mask = (np.arange(C) < 1 + (np.arange(16)[:, None] * 5) % 8).astype(np.int32)
  batch = pack_groups(prompts, completions, mask, 0, logps=rng.normal(-3.0, 0.3, (16, C)))
  batch["ref_logps"] = rng.normal(-3.0, 0.3, (8, 2, C)).astype(np.float32)
  batch["advantages"] = rng.normal(size=(8, 2)).astype(np.float32)
  return batch


def _step(cfg, loss_fn, params, batch, k):
  step = make_train_step(cfg, loss_fn, optax.sgd(1.0), micro_batches=k)
  state = {"params": params["params"], "buffers": params["buffers"],
           "opt_state": optax.sgd(1.0).init(params["params"]),
           "step": jnp.zeros((), jnp.int32), "skipped": jnp.zeros((), jnp.int32)}
  state = jax.tree.map(jnp.copy, state)  # the step donates its state
  new, metrics = step(state, jax.tree.map(jnp.asarray, batch))
  return new, {k: float(v) for k, v in metrics.items()}


def _assert_same_update(cfg, loss_fn, batch, skip_metrics=()):
  params = init_params(cfg, jax.random.key(0))
  whole, m1 = _step(cfg, loss_fn, params, batch, 1)
  split, m4 = _step(cfg, loss_fn, params, batch, 4)
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), whole["params"], params["params"])
  assert max(jax.tree.leaves(moved)) > 1e-4  # the step did move the parameters
  diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), whole["params"], split["params"])
  assert max(jax.tree.leaves(diff)) < 2e-6
  np.testing.assert_allclose(m4["loss"], m1["loss"], rtol=1e-5, atol=1e-7)
  for k in set(m1) - set(skip_metrics):
    np.testing.assert_allclose(m4[k], m1[k], rtol=1e-4, atol=1e-6, err_msg=k)
  return whole, split


# grpo: rows weigh alike; dapo: tokens weigh; gspo: sequence ratios (dr_grpo weighs rows
# as grpo does)
@pytest.mark.parametrize("preset,layout", [("grpo", "rows"), ("dapo", "rows"), ("gspo", "rows"),
                                           ("grpo", "groups"), ("dapo", "groups")])
def test_grpo_micro_batches_give_the_whole_batch_update(preset, layout):
  cfg = presets.get("qwen2_tiny", dtype="float32")
  kwargs = dict(grpo.LOSS_PRESETS[preset]["loss"], beta=0.04)
  if kwargs["agg"] == "seq-mean-token-sum-norm":
    kwargs["max_len"] = L
  if preset == "gspo":  # ε = 3e-4 would clip every sequence of the random old log-probs
    kwargs.update(epsilon=0.2, epsilon_high=0.2)
  loss_fn = grpo.make_grpo_loss(cfg, **kwargs)
  build = _grpo_batch if layout == "rows" else _grpo_groups  # groups: 2 whole groups each
  batch = build(np.random.default_rng(0), cfg.vocab_size)
  # token-averaged metrics (clip fraction, kl, entropy, the mismatch) are weighed by the
  # loss's own units: equal for token-mean; for the row-averaged losses, by rows
  skip = () if kwargs["agg"] == "token-mean" else (
      "clip_fraction", "kl", "ratio_mean", "entropy", "mismatch/logp_diff_mean",
      "mismatch/token_out_of_clip", "mismatch/seq_out_of_clip")
  _assert_same_update(cfg, loss_fn, batch, skip)


def test_lm_micro_batches_weigh_by_tokens_and_move_router_biases_alike():
  cfg = presets.get("deepseek_v3_tiny", dtype="float32")
  rng = np.random.default_rng(1)
  tokens = rng.integers(1, cfg.vocab_size, (B, L)).astype(np.int32)
  loss_mask = (np.arange(L)[None] < 3 + (np.arange(B)[:, None] * 7) % (L - 3)).astype(np.int32)
  batch = {"tokens": tokens, "positions": np.broadcast_to(np.arange(L, dtype=np.int32), (B, L)),
           "segment_ids": np.ones((B, L), np.int32), "loss_mask": loss_mask}
  whole, split = _assert_same_update(cfg, lm.make_lm_loss(cfg), batch)
  # the aux-loss-free bias update reads the loads averaged over the micro-batches
  np.testing.assert_allclose(jax.tree.leaves(split["buffers"]),
                             jax.tree.leaves(whole["buffers"]), atol=1e-6)


def test_micro_batches_must_divide_the_batch():
  cfg = presets.get("qwen2_tiny", dtype="float32")
  loss_fn = grpo.make_grpo_loss(cfg, beta=0.0)
  batch = _grpo_batch(np.random.default_rng(0), cfg.vocab_size)
  params = init_params(cfg, jax.random.key(0))
  with pytest.raises(ValueError, match="micro_batches=3 does not divide the batch of 16 rows"):
    _step(cfg, loss_fn, params, batch, 3)
  with pytest.raises(ValueError, match="micro_batches=0"):
    make_train_step(cfg, loss_fn, optax.sgd(1.0), micro_batches=0)
