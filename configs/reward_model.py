"""A reward model of preferences (R1 §2.3.4), trained with the Bradley-Terry loss.

    python -m r1jax.train --config=configs/reward_model.py --workdir=workdirs/reward_model

R1's all-scenario RL rewards general data with reward models of human preferences, the
helpfulness one scoring only the final summary. The embedded default puts a scalar head
on the shipped tiny base (`r1jax/assets/tiny_base`) and trains it on 2,000 generated
R1-Zero additions whose chosen answer is the right sum in the <think>/<answer> format and
whose rejected one is a wrong sum or the right sum without the tags
(`r1jax.reward_model.tiny_preferences`), evaluated on 128 held-out pairs. Train on your
own pairs (JSONL rows {"prompt", "chosen", "rejected"}: raw text, or messages in R1's
chat format):

    --config.data.source=prefs.jsonl --config.data.eval_source=prefs_test.jsonl

Use it in GRPO: `r1jax.reward_model.load_reward_model(workdir, score_only_summary=True)`
is a reward function `fn(prompts, completions, **refs) -> list[float]`.
"""

import os

import ml_collections

import r1jax

from configs import pretrain_tiny


def get_config() -> ml_collections.ConfigDict:
  c = pretrain_tiny.get_config()
  c.stage = "reward_model"
  # R1's reward models start from a trained model (DeepSeek-V3's from its SFT checkpoints).
  c.init_from = os.path.join(os.path.dirname(r1jax.__file__), "assets", "tiny_base")

  c.data = ml_collections.ConfigDict()
  c.data.source = "tiny_preferences:train"  # .jsonl path(s) or a generated set; "," joins
  c.data.eval_source = "tiny_preferences:test"  # "" for no evaluation
  c.data.batch_size = 16  # pairs per step: 32 sequences
  c.data.seq_len = 96  # prompt + response + EOS; the tiny pairs are <= 83 tokens
  c.data.overflow = "drop"  # pairs longer than seq_len: drop | truncate (keeps the end)
  c.data.num_eval = 0  # the first num_eval held-out pairs (0: all)
  c.data.on_error = "raise"  # malformed rows: raise | skip
  c.data.score_only_summary = False  # train on / score the text after </think> only

  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 10
  c.optim.final_lr_fraction = 0.1
  # Measured on 2 CPU cores (one busy), ~1m45s in all: held-out pairwise accuracy 0.5 at
  # step 0 (the zero head ties every pair), 0.73 at step 20, 0.81 at step 60: all 73
  # format pairs right, the 55 wrong-sum pairs near chance (56 %); they need longer.
  c.train.num_steps = 60
  c.train.log_every = 10
  c.train.eval_every = 20
  c.train.save_every = 20
  return c
