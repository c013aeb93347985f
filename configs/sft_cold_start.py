"""Cold-start SFT (R1 §2.3.1): long-CoT conversations in a readable format, before RL.

    python -m r1jax.train --config=configs/sft_cold_start.py --workdir=workdirs/sft_cold_start

R1 fine-tunes DeepSeek-V3-Base on thousands of long-CoT examples written as
|special_token|<reasoning_process>|special_token|<summary>, gathered partly from R1-Zero's
outputs and refined by annotators. The embedded default fine-tunes the shipped tiny base
(`r1jax/assets/tiny_base`, the V3-Base stand-in) on 1,000 generated 2-digit additions in
R1's chat format, "<think>\\n{reasoning}\\n</think>\\n\\n<answer> {sum} </answer>"
(`r1jax.data.conversations.arithmetic_conversations`), evaluated on the held-out pairs.
Train on your own conversations (JSONL: {"messages": [...]} or {"prompt", "completion"}):

    --config.data.source=cold_start.jsonl --config.data.eval_source= \\
    --config.data.eval_fraction=0.05

The result is the start of reasoning-oriented RL (R1 §2.3.2), prompted with the same chat
format: `r1_chat_prompt([user], bos="")` encoded with add_bos=True gives the tokens SFT saw.
"""

import os

import ml_collections

import r1jax

from configs import pretrain_tiny


def get_config() -> ml_collections.ConfigDict:
  c = pretrain_tiny.get_config()
  c.stage = "sft"
  # R1 starts every SFT from the base model; R1-Zero only supplies cold-start data.
  c.init_from = os.path.join(os.path.dirname(r1jax.__file__), "assets", "tiny_base")

  c.data = ml_collections.ConfigDict()
  c.data.source = "tiny_cold_start:train"  # .jsonl path(s) or a generated set; "," joins
  c.data.template = "r1_chat"  # r1_chat | chat: the checkpoint's own chat template
  c.data.eval_source = "tiny_cold_start:test"  # "" to hold out eval_fraction of the source
  c.data.eval_fraction = 0.0
  c.data.batch_size = 16  # packed rows per step
  c.data.seq_len = 256  # ~3 tiny conversations (~80 tokens each) per row
  c.data.overflow = "truncate"  # conversations longer than seq_len: truncate | drop
  c.data.on_error = "raise"  # malformed rows / unknown roles: raise | skip

  # 21 batches an epoch on the default data: 180 steps are ~8.5 epochs. Measured from the
  # tiny base, greedy on 128 held-out additions with the chat prompt: format 100 %,
  # accuracy 23 % (90 steps: 94 % / 3 %; lr 3e-4: 26 % / 0 %); ~8 min on 2 CPU cores.
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 10
  c.optim.final_lr_fraction = 0.1
  c.train.num_steps = 180
  c.train.log_every = 5
  c.train.eval_every = 60
  c.train.save_every = 60
  return c
