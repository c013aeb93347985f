"""Reinforcement learning: GRPO and its variants as pure functions of arrays.

    p = grpo.LOSS_PRESETS["dapo"]
    adv = grpo.group_advantages(rewards, group_size, **p["advantages"])     # [B*G]
    loss, metrics = grpo.policy_loss(logps, old_logps, ref_logps, adv, mask, **p["loss"])
"""

from r1jax.rl import grpo
from r1jax.rl.grpo import (ADVANTAGE_SCALES, AGGREGATIONS, LOSS_PRESETS, RATIO_LEVELS,
                           chunked_sequence_logps, group_advantages, k3_kl, overlong_penalty,
                           policy_loss, sequence_logps, token_entropy, zero_variance_groups)

__all__ = ["grpo", "ADVANTAGE_SCALES", "AGGREGATIONS", "LOSS_PRESETS", "RATIO_LEVELS",
           "chunked_sequence_logps", "group_advantages", "k3_kl", "overlong_penalty",
           "policy_loss", "sequence_logps", "token_entropy", "zero_variance_groups"]
