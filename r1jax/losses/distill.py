"""Logit distillation (beyond R1 §2.4's pure SFT): a student against a teacher's top-k.

With CE the SFT loss of `r1jax.losses.lm`, the loss is

    L = (1 − α) · CE + α · τ² · KL(p̃ ‖ q)               α = config.distill.kd_weight

averaged over the assistant tokens t the SFT loss trains on, where for each t

    p̃_i = exp(z_i / τ) / Σ_{j ∈ K} exp(z_j / τ),   i ∈ K   the teacher's softmax at
                                                           temperature τ, renormalised
                                                           over its top-k ids K
    log q_i = log_softmax(s / τ)_i                          the student's tempered
                                                           log-probs over its whole
                                                           vocabulary, gathered at K
                                                           (not renormalised)
    KL(p̃ ‖ q) = Σ_{i ∈ K} p̃_i (log p̃_i − log q_i)      forward KL, ≥ 0 since Σ_K q_i ≤ 1

with z the teacher's and s the student's logits. The KL is 0 only when the student puts
all its mass on K, in the teacher's proportions; τ² keeps the gradient's scale
independent of τ (Hinton et al., 2015). α = 0 is the paper's pure SFT. The teacher's
side is computed outside the train step (`make_teacher_fn`), so only its top-k ids and
log-probs reach the loss.

Dimension letters: B batch, T tokens per row, V vocabulary, k the teacher's top-k.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from r1jax.losses import lm
from r1jax.models import ModelConfig, forward


def teacher_topk(logits_btv: jax.Array, top_k: int,
                 temperature: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The teacher's targets from its logits [B, T, V]: (ids [B, T, k] int32, log p̃ [B, T, k],
  mass [B, T]).

  p̃ is softmax(logits / τ) renormalised over the k largest logits; mass is the share of
  the full tempered softmax those k ids held (how much the truncation dropped).
  """
  z = logits_btv.astype(jnp.float32) / temperature
  top, ids = jax.lax.top_k(z, top_k)
  log_norm = jax.nn.logsumexp(top, axis=-1)
  logp = top - log_norm[..., None]
  mass = jnp.exp(log_norm - jax.nn.logsumexp(z, axis=-1))
  return ids.astype(jnp.int32), logp, mass


def topk_forward_kl(student_logits_btv: jax.Array, teacher_ids: jax.Array,
                    teacher_logp: jax.Array, mask: jax.Array,
                    temperature: float) -> jax.Array:
  """Mean over mask of Σ_{i ∈ K} p̃_i (log p̃_i − log q_i) (see the module docstring).

  student_logits [B, T, V]; teacher_ids, teacher_logp [B, T, k] (from `teacher_topk`);
  mask [B, T] (1 on the tokens that count). Returns a scalar, without the τ² factor.
  The teacher's side is a constant: no gradient reaches the teacher through it.
  """
  logq = jax.nn.log_softmax(student_logits_btv.astype(jnp.float32) / temperature, axis=-1)
  logq_k = jnp.take_along_axis(logq, teacher_ids, axis=-1)
  teacher_logp = jax.lax.stop_gradient(teacher_logp)
  kl_bt = (jnp.exp(teacher_logp) * (teacher_logp - logq_k)).sum(-1)
  mask = mask.astype(jnp.float32)
  return (kl_bt * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def make_teacher_fn(teacher_cfg: ModelConfig, *, top_k: int, temperature: float,
                    vocab_limit: int) -> Callable:
  """teacher_fn(weights, batch) -> {"teacher_ids", "teacher_logp" [B, T−1, k],
  "teacher_topk_mass" [B, T−1]}: the targets for tokens[:, 1:] of a token batch (see
  `r1jax.losses.lm`), from the teacher's logits at ids below `vocab_limit`."""
  if not 1 <= top_k <= vocab_limit:
    raise ValueError(f"config.distill.top_k={top_k} must lie in [1, {vocab_limit}] (the "
                     "tokenizer's vocab_size)")

  def teacher_fn(weights: dict[str, Any], batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    tokens = batch["tokens"]
    logits = forward(teacher_cfg, weights, tokens[:, :-1], positions=batch["positions"][:, :-1],
                     segment_ids=batch["segment_ids"][:, :-1])
    ids, logp, mass = teacher_topk(logits[..., :vocab_limit], top_k, temperature)
    return {"teacher_ids": ids, "teacher_logp": logp, "teacher_topk_mass": mass}

  return teacher_fn


def make_distill_loss(cfg: ModelConfig, *, kd_weight: float, temperature: float) -> Callable:
  """loss_fn(params, batch) -> ((1 − α)·CE + α·τ²·KL, (metrics, model aux)).

  batch: a token batch (see `r1jax.losses.lm`) with the `make_teacher_fn` targets added. CE is
  `r1jax.losses.lm.make_lm_loss`'s masked NLL, and a MoE or MTP student adds its balance and
  MTP losses as there. metrics: nll, token_accuracy, kd_kl (without τ²), kd_agreement
  (student argmax = the teacher's top-1), kd_topk_mass, all over the target tokens.
  """
  if not 0.0 <= kd_weight <= 1.0:
    raise ValueError(f"config.distill.kd_weight={kd_weight} must lie in [0, 1] (0: pure SFT "
                     "on the traces, as in R1)")
  if temperature <= 0:
    raise ValueError(f"config.distill.temperature={temperature} must be > 0")

  def loss_fn(params: dict[str, Any], batch: dict[str, jax.Array]):
    tokens = batch["tokens"]
    logits, aux = forward(cfg, params, tokens[:, :-1], positions=batch["positions"][:, :-1],
                          segment_ids=batch["segment_ids"][:, :-1], return_aux=True)
    mask = batch["loss_mask"][:, 1:].astype(jnp.float32)
    n = jnp.maximum(mask.sum(), 1.0)
    ce, metrics = lm.masked_nll(logits, tokens[:, 1:], mask)
    kl = topk_forward_kl(logits, batch["teacher_ids"], batch["teacher_logp"], mask, temperature)
    agree = (jnp.argmax(logits, -1) == batch["teacher_ids"][..., 0]).astype(jnp.float32)
    metrics.update(kd_kl=kl, kd_agreement=(agree * mask).sum() / n,
                   kd_topk_mass=(batch["teacher_topk_mass"] * mask).sum() / n)
    loss = (1.0 - kd_weight) * ce + kd_weight * temperature**2 * kl
    loss = lm.add_model_losses(cfg, loss, aux, batch, metrics)
    return loss, (metrics, aux)

  return loss_fn
