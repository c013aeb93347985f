"""The Bradley-Terry loss of reward models (InstructGPT eq. 1) on preference pairs.

    L = −mean log σ(r(x, y_c) − r(x, y_r))

with r the reward model's score (`r1jax.models.reward_model`). A pair batch holds
tokens, positions, segment_ids [B, 2, T] (axis 1: chosen, rejected; right-padded,
segment 0 = padding) and pair_mask [B] (0 for filler pairs of the last eval batch); see
`r1jax.data.preferences.pair_batch`.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp

from r1jax.models import ModelConfig
from r1jax.models.reward_model import rewards


def bradley_terry_loss(r_chosen: jax.Array, r_rejected: jax.Array,
                       weights: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """−Σ_i m_i log σ(r_c,i − r_r,i) / Σ_i m_i (InstructGPT eq. 1), and pair metrics.

  r_chosen, r_rejected, weights (default 1) [B]. Metrics: pairwise_accuracy (share with
  r_c > r_r, ties counting one half), reward_margin (mean r_c − r_r), reward_chosen,
  reward_rejected.
  """
  chex.assert_equal_shape([r_chosen, r_rejected])
  m = jnp.ones_like(r_chosen) if weights is None else weights.astype(jnp.float32)
  diff = r_chosen - r_rejected
  won = (diff > 0).astype(jnp.float32) + 0.5 * (diff == 0).astype(jnp.float32)
  # Every sum over the pairs in one reduction, so a batch split over devices needs one
  # all-reduce, after the rewards. A lone Σm depends on the batch alone: XLA:CPU could
  # start it on some devices while others were in the model's collectives, and hang.
  terms_b6 = jnp.stack([-jax.nn.log_sigmoid(diff), won, diff, r_chosen, r_rejected,
                        jnp.ones_like(diff)], axis=1)
  sums = (terms_b6 * m[:, None]).sum(0)
  n = jnp.maximum(sums[5], 1.0)
  loss, accuracy, margin, chosen, rejected = (sums[i] / n for i in range(5))
  metrics = {"bt_loss": loss, "pairwise_accuracy": accuracy, "reward_margin": margin,
             "reward_chosen": chosen, "reward_rejected": rejected}
  return loss, metrics


def make_loss(cfg: ModelConfig) -> Callable:
  """loss_fn(params, batch) -> (BT loss [+ MoE balance loss], (metrics, model aux)).

  One forward over the 2B sequences of a pair batch (see the module docstring).
  """

  def loss_fn(params: dict[str, Any], batch: dict[str, jax.Array]):
    B, two, T = batch["tokens"].shape
    chex.assert_equal(two, 2)
    flat = [batch[k].reshape(2 * B, T) for k in ("tokens", "positions", "segment_ids")]
    r, aux = rewards(cfg, params, *flat)
    r_b2 = r.reshape(B, 2)
    loss, metrics = bradley_terry_loss(r_b2[:, 0], r_b2[:, 1], batch.get("pair_mask"))
    if "balance_loss" in aux:
      loss = loss + aux["balance_loss"]
    return loss, (metrics, aux)

  return loss_fn
