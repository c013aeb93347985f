"""GRPO on GSM8K for a dense student loaded from a Hugging Face checkpoint.

    python -m r1jax.train --config=configs/grpo_gsm8k.py \
        --config.init_from=/path/to/DeepSeek-R1-Distill-Qwen-1.5B --workdir=workdirs/gsm8k

The model shape, the tokenizer and the chat template come from the checkpoint directory
(config.json, tokenizer.json, tokenizer_config.json); prompts are the question with the
recommended instruction in the checkpoint's own chat template (for R1-Distill models that
is DeepSeek-R1's format), rewarded by math-verify accuracy on the final \\boxed{} answer. The defaults are sized
for one 80 GB GPU; the 671B preset runs the same config on a pod with
`--config.mesh.expert=64 ...`.
"""

import ml_collections

from configs import grpo_zero


def get_config() -> ml_collections.ConfigDict:
  c = grpo_zero.get_config()
  c.model = "from_checkpoint"
  c.tokenizer = "from_checkpoint"
  c.init_from = ""  # required: a Hugging Face checkpoint directory
  c.model_overrides = ml_collections.ConfigDict(dict(dtype="bfloat16", remat="dots"))

  c.data.train = "gsm8k:train"
  c.data.num_train = 0  # 0: the whole split
  c.data.eval = "gsm8k:test"
  c.data.num_eval = 256
  c.data.template = "chat"  # the checkpoint's own; "r1_chat" for DeepSeek's without one
  c.data.instruction = "Please reason step by step, and put your final answer within \\boxed{}."

  c.rl.prompts_per_step = 32
  c.rl.num_generations = 16
  c.rl.max_new_tokens = 1024
  c.rl.stop_strings = ()
  c.rl.rewards = ml_collections.ConfigDict(dict(accuracy=1.0))
  c.eval.temperature = 0.6  # R1's evaluation setting
  c.eval.top_p = 0.95

  c.optim.learning_rate = 1e-6
  c.optim.warmup_steps = 10
  c.optim.weight_decay = 0.0
  c.train.num_steps = 500
  c.train.log_every = 1
  c.train.eval_every = 50
  c.train.save_every = 50
  return c
