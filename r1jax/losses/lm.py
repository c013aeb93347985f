"""Next-token losses: pretraining and SFT are the same masked cross-entropy.

A token batch is {"tokens", "loss_mask", "segment_ids", "positions"}, all [B, L] int32;
loss_mask[b, t] = 1 when tokens[b, t] is a target (predicted from position t − 1), so
SFT masks the prompt and pretraining masks only padding. A row may pack several
sequences (`r1jax.data.conversations.packed_batch`): segment ids 1, 2, … with positions
restarting at 0; the first token of each sequence is never a target, and MTP targets
count only within their sequence, so the loss is that of the sequences one per row.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from r1jax.losses import LOSS_WEIGHT
from r1jax.models import ModelConfig, forward


def token_batch(sequences: Sequence[Sequence[int]], targets: Sequence[Sequence[int]] | None,
                length: int, pad_id: int) -> dict[str, np.ndarray]:
  """Right-pads token lists to `length` (longer ones are cut) into a token batch.

  targets[i][t] = 1 marks token t of sequence i as trained on (default: every token).
  """
  B = len(sequences)
  batch = {k: np.zeros((B, length), np.int32) for k in ("tokens", "loss_mask", "segment_ids")}
  batch["tokens"][:] = pad_id
  for i, seq in enumerate(sequences):
    seq = list(seq)[:length]
    n = len(seq)
    batch["tokens"][i, :n] = seq
    batch["segment_ids"][i, :n] = 1
    mask = [1] * n if targets is None else list(targets[i])[:n]
    batch["loss_mask"][i, :n] = mask
  batch["positions"] = np.broadcast_to(np.arange(length, dtype=np.int32), (B, length)).copy()
  return batch


def masked_nll(logits: jax.Array, targets: jax.Array, mask: jax.Array
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean NLL over the masked targets and its metrics {"nll", "token_accuracy",
  LOSS_WEIGHT (the number of targets)}.

  logits [B, T, V], targets [B, T] int, mask [B, T] float32 (1 where a token is trained on).
  """
  logp = jax.nn.log_softmax(logits)
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  n = jnp.maximum(mask.sum(), 1.0)
  loss = (nll * mask).sum() / n
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return loss, {"nll": loss, "token_accuracy": (correct * mask).sum() / n, LOSS_WEIGHT: n}


def add_model_losses(cfg: ModelConfig, loss: jax.Array, aux: dict, batch: dict,
                     metrics: dict) -> jax.Array:
  """loss + the model's own terms: the MoE balance loss and the MTP loss (logged)."""
  if "balance_loss" in aux:
    loss = loss + aux["balance_loss"]
  if "mtp_logits" in aux:
    # MTP module k at position i predicts t_{i+k+1}; its targets follow the same mask.
    tokens = batch["tokens"]
    metrics["mtp_loss"] = packed_mtp_loss(aux["mtp_logits"], tokens[:, :-1],
                                          batch["loss_mask"][:, :-1],
                                          batch["segment_ids"][:, :-1], cfg.mtp_loss_weight)
    loss = loss + metrics["mtp_loss"]
  return loss


def make_lm_loss(cfg: ModelConfig) -> Callable:
  """loss_fn(params, batch) -> (mean NLL over target tokens, (metrics, model aux))."""

  def loss_fn(params: dict[str, Any], batch: dict[str, jax.Array]):
    tokens = batch["tokens"]
    chex.assert_rank(tokens, 2)
    logits, aux = forward(cfg, params, tokens[:, :-1], positions=batch["positions"][:, :-1],
                          segment_ids=batch["segment_ids"][:, :-1], return_aux=True)
    loss, metrics = masked_nll(logits, tokens[:, 1:], batch["loss_mask"][:, 1:].astype(jnp.float32))
    return add_model_losses(cfg, loss, aux, batch, metrics), (metrics, aux)

  return loss_fn


def packed_mtp_loss(mtp_logits: jax.Array, tokens: jax.Array, mask: jax.Array,
                    segment_ids: jax.Array, weight: float) -> jax.Array:
  """λ/D · Σ_k CE of MTP module k predicting t_{i+k+1} (V3 eq. 24-25), within sequences.

  mtp_logits [D, B, T, V]; tokens, mask (1 where a token is a target), segment_ids [B, T].
  As `r1jax.models.mtp_loss`, except that position i's target t_{i+k+1} counts only when
  it lies in i's segment: in a packed row it may be the next sequence's token.
  """
  n_mtp, _, T, _ = mtp_logits.shape
  total = 0.0
  for k in range(1, n_mtp + 1):
    logp = jax.nn.log_softmax(mtp_logits[k - 1, :, : T - k - 1], axis=-1)
    nll = -jnp.take_along_axis(logp, tokens[:, k + 1:, None], axis=-1)[..., 0]
    m = (mask[:, k + 1:] * (segment_ids[:, k + 1:] == segment_ids[:, : T - k - 1]))
    m = m.astype(jnp.float32)
    total = total + (nll * m).sum() / jnp.maximum(m.sum(), 1.0)
  return weight * total / n_mtp
