"""Reasoning-oriented RL (R1 §2.3.2): GRPO from the cold-start checkpoint, with the
language-consistency reward summed with accuracy.

    python -m r1jax.train --config=configs/sft_cold_start.py --workdir=workdirs/sft_cold_start
    python -m r1jax.train --config=configs/grpo_reasoning.py --workdir=workdirs/grpo_reasoning

"After fine-tuning DeepSeek-V3-Base on the cold start data, we apply the same large-scale
reinforcement learning training process as employed in DeepSeek-R1-Zero ... we introduce a
language consistency reward during RL training, which is calculated as the proportion of
target language words in the CoT ... we combine the accuracy of reasoning tasks and the
reward for language consistency by directly summing them to form the final reward."

Prompts use R1's chat format (`r1_chat`, the format cold-start SFT taught), whose prompt
ends in "<think>\\n": the completion is "reasoning\\n</think>\\n\\n<answer> X </answer>".
The reward is accuracy + language (`r1jax.rewards.language`, share of English word
units in the CoT), as in the paper; the format reward R1-Zero needed is dropped, the
cold-start model already writes the format. Start from another checkpoint with
`--config.init_from=<workdir or Hugging Face dir>`. The target language is English; a
dataset whose records carry a "language" field ("en" or "zh") sets it per prompt.
"""

import ml_collections

from configs import grpo_zero


def get_config() -> ml_collections.ConfigDict:
  c = grpo_zero.get_config()
  c.init_from = "workdirs/sft_cold_start"  # configs/sft_cold_start.py's default workdir
  c.data.template = "r1_chat"
  c.rl.rewards = ml_collections.ConfigDict(dict(accuracy=1.0, language=1.0))
  c.rl.max_new_tokens = 64  # the cold-start rendering is longer than R1-Zero's
  return c
