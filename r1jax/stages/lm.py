"""Language-model stages: next-token training on text (`pretrain`, and `sft` on the
generated tiny base documents) and SFT on conversations (`sft`, R1 §2.3.1 and §2.3.3).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import jax
import ml_collections
import numpy as np

from r1jax.data import conversations, tasks
from r1jax.data.datasets import PromptIterator, load_prompts
from r1jax.data.templates import prompt_format, r1_zero_prompt
from r1jax.losses.lm import make_lm_loss, token_batch
from r1jax.models import ModelConfig
from r1jax.models.partitioning import check_divisibility
from r1jax.runtime import sharding
from r1jax.stages.base import Stage


class LMStage(Stage):
  """Next-token training on every token of text: `pretrain`, and `sft` on "tiny_base".

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
    check_divisibility(cfg, mesh, batch_size=d.batch_size)
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
    """Each process tokenizes only the rows its devices hold."""
    def build(rows):
      ids = [self.tokenizer.encode(texts[i], add_bos=True, add_eos=True) for i in rows]
      return token_batch(ids, None, self.config.data.seq_len, self.tokenizer.pad_id)
    return sharding.shard_rows(build, len(texts), self.mesh)

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


class SFTStage(Stage):
  """Supervised fine-tuning on conversations (R1 §2.3.1 cold start, §2.3.3 stage 2).

  Conversations are rendered in R1's chat format (config.data.template "r1_chat", the
  default) or the checkpoint's own chat template ("chat"), trained on their last
  assistant turn only, packed several to a row (`r1jax.data.conversations`), epoch after
  epoch.

  config.data:
    source         a .jsonl of conversations, a generated set ("tiny_cold_start:train"…),
                   or several joined by ","
    eval_source    held-out conversations, same forms; "" to split off eval_fraction of
                   the source instead (0: no evaluation)
    batch_size     packed rows per step; seq_len: tokens per row
    overflow       "truncate" | "drop": conversations longer than seq_len
    on_error       "raise" | "skip": malformed rows and invalid conversations
  """

  progress_keys = ("loss", "token_accuracy")

  def __init__(self, config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
    self.config, self.tokenizer, self.mesh = config, tokenizer, mesh
    d = config.data
    check_divisibility(cfg, mesh, batch_size=d.batch_size)

    def load(spec):
      return conversations.load_conversations(spec, seed=config.seed,
                                              on_error=d.get("on_error", "raise"))

    fmt = prompt_format(d.get("template", "r1_chat"), tokenizer)

    def examples(convs, name):
      return conversations.fit_to_length([conversations.tokenize(m, tokenizer, fmt) for m in convs],
                                         d.seq_len, d.get("overflow", "truncate"), source=name)

    train = load(d.source)
    if d.get("eval_source", ""):
      held_out = load(d.eval_source)
    else:
      train, held_out = conversations.hold_out(train, d.get("eval_fraction", 0.0),
                                               seed=config.seed)
    self.train_iter = conversations.ConversationIterator(
        examples(train, d.source), batch_size=d.batch_size, seq_len=d.seq_len,
        pad_id=tokenizer.pad_id, seed=config.seed)
    self.eval_batches = conversations.packed_batches(
        examples(held_out, d.get("eval_source", "") or "held-out split"), d.seq_len,
        d.batch_size, tokenizer.pad_id) if held_out else []
    n_batches = self.train_iter.batches_in_epoch(0)
    logging.warning("sft: %d conversations in %d packed rows of %d tokens, %d batches an epoch: "
                    "train.num_steps=%d is %.2f epochs; %d held-out conversations",
                    len(self.train_iter.examples), len(self.train_iter.rows(0)), d.seq_len,
                    n_batches, config.train.num_steps, config.train.num_steps / n_batches,
                    len(held_out))
    self.loss_fn = make_lm_loss(cfg)
    self._eval_loss = jax.jit(self.loss_fn)
    self._last_batch: dict[str, np.ndarray] | None = None

  def next_batch(self, state, rng):
    del state, rng  # the iterator's position alone decides the batch
    batch = next(self.train_iter)
    self._last_batch = batch
    host = {"data/epoch": self.train_iter.progress,
            "data/fill": float((batch["segment_ids"] != 0).mean()),
            "data/target_tokens": float(batch["loss_mask"].sum())}
    return sharding.shard_batch(batch, self.mesh), host

  def evaluate(self, state, rng) -> dict[str, float]:
    """Token-weighted NLL and next-token accuracy over the held-out answers."""
    del rng
    if not self.eval_batches:
      return {}
    weights = {"params": state["params"], "buffers": state["buffers"]}
    nll = correct = count = 0.0
    for batch in self.eval_batches:
      _, (metrics, _) = self._eval_loss(weights, sharding.shard_batch(batch, self.mesh))
      n = float(batch["loss_mask"][:, 1:].sum())
      nll += float(metrics["nll"]) * n
      correct += float(metrics["token_accuracy"]) * n
      count += n
    return {"eval/nll": nll / count, "eval/token_accuracy": correct / count}

  def samples(self) -> list[str]:
    """The first conversation of the last batch, as the model saw it."""
    if self._last_batch is None:
      return []
    seg = self._last_batch["segment_ids"][0]
    return [self.tokenizer.decode(self._last_batch["tokens"][0][seg == 1])]
