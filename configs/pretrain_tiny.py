"""Pretrains the embedded default's base model (the V3-Base stand-in of R1-Zero).

    python -m r1jax.train --config=configs/pretrain_tiny.py --workdir=workdirs/pretrain_tiny

`deepseek_v3_tiny` learns 2-digit addition from R1-Zero-formatted text whose reasoning is
always right ("7 + 8 = 15 , 4 + 3 + 1 = 8 , so 85") but whose <think>/<answer> format
appears only half the time and whose final answer copies the reasoning's sum only half
the time: a base model that can solve the task but does not reliably say so, the gap
R1-Zero's RL closes (`r1jax.data.tasks.base_document`).
"""

import ml_collections

from r1jax.runtime.compilation import default_cache_dir


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.stage = "pretrain"
  c.model = "deepseek_v3_tiny"
  c.model_overrides = ml_collections.ConfigDict()
  c.tokenizer = "r1jax_tiny"
  c.init_from = ""
  c.seed = 0
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, expert=1, tensor=1))
  # JAX's persistent compilation cache: a repeated or resumed run skips compiles; "" off.
  c.compilation_cache = default_cache_dir()

  c.data = ml_collections.ConfigDict()
  c.data.source = "tiny_base"
  c.data.batch_size = 32
  c.data.seq_len = 144
  c.data.num_train = 7000
  c.data.num_eval = 64
  c.data.p_format = 0.5  # share of documents in the <think>/<answer> format
  c.data.p_correct = 0.5  # share of documents whose final answer is right

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 3e-3
  c.optim.warmup_steps = 50
  c.optim.final_lr_fraction = 0.1
  c.optim.weight_decay = 0.01
  c.optim.grad_clip = 1.0
  c.optim.b1 = 0.9
  c.optim.b2 = 0.95

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1500
  c.train.log_every = 25
  c.train.eval_every = 250
  c.train.save_every = 250
  c.train.keep_checkpoints = 1
  c.train.max_consecutive_skips = 20  # stop when this many updates in a row were non-finite
  # Gradient accumulation: the update's batch in this many slices, one slice's activations
  # in memory at a time; the same update (each slice weighed by its tokens or rows).
  c.train.micro_batches = 1
  return c
