"""The optimizer every stage trains with: `config.optim` -> an optax transformation."""

from __future__ import annotations

import ml_collections
import optax


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with linear warm-up then cosine decay, after global-norm clipping."""
  o = config.optim
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, o.learning_rate, max(o.warmup_steps, 1), max(config.train.num_steps, o.warmup_steps + 1),
      end_value=o.learning_rate * o.get("final_lr_fraction", 0.1))
  return optax.chain(optax.clip_by_global_norm(o.grad_clip),
                     optax.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay))
