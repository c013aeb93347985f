"""What each `config.stage` feeds the one train loop.

A stage supplies the loss and the batches; the loop owns the optimizer, checkpoints and
logging. Interface (duck-typed, see `LMStage`):

    loss_fn(params, batch) -> (loss, (metrics, model_aux))     pure, jitted by the loop
    begin_step(state) -> state         e.g. refresh the GRPO reference model
    next_batch(state, rng) -> (batch of device arrays, host metrics)
    updates_per_batch                                           μ of GRPO, 1 otherwise
    extra_state(weights) -> dict      more train state (e.g. the GRPO reference model)
    evaluate(state, rng) -> dict      "eval/..." metrics
    samples() -> list[str]            a few texts to log
    data_state() / set_data_state()   the data iterator's position, for exact resumes
    progress_keys                     metrics shown on the progress bar
"""

from __future__ import annotations

import random
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax import sharding
from r1jax.data import tasks
from r1jax.data.datasets import PromptIterator, load_prompts
from r1jax.models import ModelConfig
from r1jax.rl.templates import r1_zero_prompt
from r1jax.sft import make_lm_loss, token_batch


class Stage:
  """Defaults: one update per batch, no extra state, a resumable `self.train_iter`."""

  updates_per_batch = 1

  def begin_step(self, state):
    return state

  def extra_state(self, weights) -> dict:
    return {}

  def data_state(self) -> dict:
    return self.train_iter.get_state()

  def set_data_state(self, state: dict | None) -> None:
    if state:
      self.train_iter.set_state(state)


class LMStage(Stage):
  """Next-token training on text: `pretrain` (every token) and `sft` (completion only).

  config.data.source:
    "tiny_base"  R1-Zero prompts for the arithmetic task followed by the noisy completions
                 of `tasks.base_document` (the embedded default's base model).
  """

  progress_keys = ("loss", "token_accuracy")

  def __init__(self, config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
    self.config, self.cfg, self.tokenizer, self.mesh = config, cfg, tokenizer, mesh
    d = config.data
    if d.source != "tiny_base":
      raise ValueError(f"config.data.source={d.source!r} is not a text source of stage "
                       f"{config.stage!r}; available: 'tiny_base'")
    sharding.check_divisibility(cfg, mesh, batch_size=d.batch_size)
    self.train_iter = PromptIterator(load_prompts("arithmetic:train", limit=d.num_train,
                                                  seed=config.seed), d.batch_size, seed=config.seed)
    self.eval_records = load_prompts("arithmetic:test", limit=d.num_eval, seed=config.seed)
    self.loss_fn = make_lm_loss(cfg)
    self._eval_loss = jax.jit(self.loss_fn)
    self._last_texts: list[str] = []
    self._batches = 0

  def _documents(self, records: list[dict], seed: Any) -> list[str]:
    d = self.config.data
    rng = random.Random(str(seed))
    return [r1_zero_prompt(r["question"]) + tasks.base_document(
        r, rng, p_format=d.p_format, p_correct=d.p_correct) for r in records]

  def _batch(self, texts: list[str]) -> dict[str, jax.Array]:
    ids = [self.tokenizer.encode(t, add_bos=True, add_eos=True) for t in texts]
    batch = token_batch(ids, None, self.config.data.seq_len, self.tokenizer.pad_id)
    return sharding.shard_batch(batch, self.mesh)

  def next_batch(self, state, rng):
    del rng  # the text noise is seeded by (seed, batch index) so resumes are exact
    records = next(self.train_iter)
    texts = self._documents(records, (self.config.seed, int(state["step"])))
    self._last_texts = texts[:2]
    return self._batch(texts), {}

  def evaluate(self, state, rng) -> dict[str, float]:
    del rng
    texts = self._documents(self.eval_records, ("eval", self.config.seed))
    bs = self.config.data.batch_size
    losses = []
    for i in range(0, len(texts) - bs + 1, bs):
      loss, (metrics, _) = self._eval_loss({"params": state["params"], "buffers": state["buffers"]},
                                           self._batch(texts[i:i + bs]))
      losses.append(float(metrics["nll"]))
    return {"eval/nll": float(np.mean(losses))} if losses else {}

  def samples(self) -> list[str]:
    return self._last_texts


def make_stage(config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
  """The stage object for `config.stage`."""
  if config.stage in ("pretrain", "sft"):
    return LMStage(config, cfg, tokenizer, mesh)
  if config.stage == "grpo":
    from r1jax.rl.rollout import GRPOStage
    return GRPOStage(config, cfg, tokenizer, mesh)
  raise ValueError(f"unknown config.stage={config.stage!r}; one of 'pretrain', 'sft', 'grpo'")
