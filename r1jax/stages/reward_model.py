"""The reward-model stage (R1 §2.3.4): a decoder with a scalar head trained on preferences.

R1's all-scenario RL scores general data (helpfulness, harmlessness) with reward models
of human preferences, the helpfulness one reading only the final summary.
`config.stage = "reward_model"` makes one from any decoder the loop can load (a preset,
a Hugging Face checkpoint, an r1jax workdir): the model r(x, y) = w · h_last + b
(`r1jax.models.reward_model`), the Bradley-Terry loss on pairs (x, y_chosen, y_rejected)
(`r1jax.losses.bradley_terry`), the pairs of `r1jax.data.preferences`.
`r1jax.rewards.reward_model.load_reward_model(workdir)` turns the run into a GRPO reward.
"""

from __future__ import annotations

import logging

import jax
import ml_collections

from r1jax.data.datasets import PromptIterator
from r1jax.data.preferences import encode_pairs, load_preferences, pair_batch
from r1jax.losses.bradley_terry import make_loss
from r1jax.models import ModelConfig
from r1jax.models.partitioning import check_divisibility
from r1jax.models.reward_model import HEAD, init_head
from r1jax.runtime import sharding
from r1jax.runtime.optimizer import make_optimizer
from r1jax.stages.base import Stage


class RewardModelStage(Stage):
  """`config.stage = "reward_model"`: the Bradley-Terry loss on preference pairs.

  config.data:
    source         a .jsonl of pairs, a generated set ("tiny_preferences:train"), "," joins
    eval_source    held-out pairs, same forms ("" : no evaluation)
    batch_size     pairs per step (2 × batch_size sequences); seq_len: tokens per sequence
    overflow       "drop" | "truncate": pairs longer than seq_len
    num_eval       use the first num_eval held-out pairs (0: all)
    on_error       "raise" | "skip": malformed rows
    score_only_summary  train on the responses' text after "</think>" only (R1 §2.3.4's
                   helpfulness model); `load_reward_model` scores the same way
  The head is added to the decoder's weights here (`extra_state`), unless init_from
  already holds one (a reward-model run).
  """

  progress_keys = ("loss", "pairwise_accuracy", "eval/pairwise_accuracy")

  def __init__(self, config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
    self.config, self.cfg, self.tokenizer, self.mesh = config, cfg, tokenizer, mesh
    d = config.data
    check_divisibility(cfg, mesh, batch_size=d.batch_size)
    overflow = d.get("overflow", "drop")

    def load(spec):
      pairs = load_preferences(spec, seed=config.seed, on_error=d.get("on_error", "raise"),
                               only_summary=d.get("score_only_summary", False))
      return encode_pairs(pairs, tokenizer, d.seq_len, overflow, source=spec)

    train = load(d.source)
    self.train_iter = PromptIterator(train, d.batch_size, seed=config.seed)
    self.eval_pairs = load(d.eval_source) if d.get("eval_source", "") else []
    self.eval_pairs = self.eval_pairs[:d.get("num_eval", 0) or None]
    logging.warning("reward_model: %d training pairs (%.2f epochs in train.num_steps=%d), %d "
                    "held-out pairs", len(train),
                    config.train.num_steps * d.batch_size / len(train),
                    config.train.num_steps, len(self.eval_pairs))
    self.loss_fn = make_loss(cfg)
    self._eval_loss = jax.jit(self.loss_fn)
    self._last: list[tuple] = []

  def extra_state(self, weights) -> dict:
    """Adds params["reward_head"] (and re-makes the optimizer state to cover it)."""
    if HEAD in weights["params"]:
      return {}
    head = jax.device_put(init_head(self.cfg), sharding.replicated(self.mesh))
    params = dict(weights["params"], **{HEAD: head})
    return {"params": params, "opt_state": make_optimizer(self.config).init(params)}

  def _batch(self, pairs, batch_size=None):
    d = self.config.data
    batch = pair_batch(pairs, d.seq_len, self.tokenizer.pad_id, batch_size)
    return sharding.shard_batch(batch, self.mesh)

  def next_batch(self, state, rng):
    del state, rng  # the iterator's position alone decides the batch
    pairs = next(self.train_iter)
    self._last = pairs[:1]
    n_tokens = sum(len(c) + len(r) for c, r in pairs)
    return self._batch(pairs), {"data/tokens_per_pair": n_tokens / len(pairs)}

  def evaluate(self, state, rng) -> dict[str, float]:
    """Pair-weighted BT loss, pairwise accuracy and margin over the held-out pairs."""
    del rng
    if not self.eval_pairs:
      return {}
    weights = {"params": state["params"], "buffers": state["buffers"]}
    bs, totals, count = self.config.data.batch_size, {}, 0
    for i in range(0, len(self.eval_pairs), bs):
      chunk = self.eval_pairs[i:i + bs]
      _, (metrics, _) = self._eval_loss(weights, self._batch(chunk, bs))
      for k, v in metrics.items():
        totals[k] = totals.get(k, 0.0) + float(v) * len(chunk)
      count += len(chunk)
    return {f"eval/{k}": v / count for k, v in totals.items()}

  def samples(self) -> list[str]:
    return [f"chosen:\n{self.tokenizer.decode(c)}\nrejected:\n{self.tokenizer.decode(r)}"
            for c, r in self._last]
