"""Reward model: a decoder with a scalar head, trained on preference pairs (R1 §2.3.4).

R1's all-scenario RL scores general data (helpfulness, harmlessness) with reward models
of human preferences, the helpfulness one reading only the final summary. This module
makes one from any decoder the loop can load (a preset, a Hugging Face checkpoint, an
r1jax workdir):

    r(x, y) = w · h_last + b        h_last [D]: the final-norm hidden state of the last
                                    non-pad token of prompt x + response y (an EOS
                                    appended to every sequence)

trained as `config.stage = "reward_model"` of the one train loop with the Bradley-Terry
loss (InstructGPT eq. 1) on pairs (x, y_chosen, y_rejected):

    L = −mean log σ(r(x, y_c) − r(x, y_r))

The head {"w": [D], "b": ()} lives in the trainable tree as params["reward_head"], so it
is optimised, checkpointed and resumed with the decoder; `load_reward_model(workdir)`
restores both and returns a reward function for GRPO.

Preference data (`load_preferences`), each a dict {"prompt", "chosen", "rejected"} of
texts, the prompt rendered as the model sees it:
  <path>.jsonl               rows {"prompt", "chosen", "rejected"}: strings are raw text
                             (e.g. an R1-Zero prompt), used as they are; if any is a list
                             of messages, the row is a conversation in R1's chat format
                             (a str prompt is a user turn, a str response an assistant
                             turn; "prompt" may be left out when chosen/rejected are whole
                             conversations); optional "system"
  tiny_preferences:<split>   generated: additions in R1's chat format, chosen = the right
                             sum in <answer> tags, rejected = a wrong sum or no tags
Pairs whose chosen and rejected texts are identical carry no preference: they are skipped
with a counted warning (all of them: an error).

Batches: tokens, positions, segment_ids [B, 2, T] (axis 1: chosen, rejected; right-padded,
segment 0 = padding) and pair_mask [B] (0 for filler pairs of the last eval batch).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from typing import Any, Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from r1jax import checkpoint as ckpt_lib
from r1jax import sharding
from r1jax.data import conversations, tasks
from r1jax.data.datasets import PromptIterator, read_jsonl
from r1jax.models import ModelConfig, init_params
from r1jax.models.transformer import Transformer
from r1jax.rl.templates import BOS, EOS, r1_chat_prompt
from r1jax.stages import Stage
from r1jax.train import make_optimizer

HEAD = "reward_head"
Pair = dict[str, str]  # {"prompt", "chosen", "rejected"}
OVERFLOW = ("drop", "truncate")

# ------------------------------------------------------------------------- the model


def init_head(cfg: ModelConfig) -> dict[str, jax.Array]:
  """{"w": [D], "b": ()} float32, zero: every response starts at reward 0 (BT loss log 2,
  pairwise accuracy ½); the first update moves w, the next ones the decoder too. b gets
  no gradient from the BT loss (it cancels in r_c − r_r) and stays 0 unless set."""
  return {"w": jnp.zeros((cfg.dim,), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def split_params(params: dict) -> tuple[dict, dict]:
  """({"params", "buffers"} of the decoder alone, the head) of reward-model weights."""
  tree = params["params"]
  decoder = {"params": {k: v for k, v in tree.items() if k != HEAD},
             "buffers": params.get("buffers", {})}
  return decoder, tree[HEAD]


def hidden_states(cfg: ModelConfig, params: dict, tokens: jax.Array, positions: jax.Array,
                  segment_ids: jax.Array) -> tuple[jax.Array, dict]:
  """The decoder's final-norm hidden states h [B, T, D] and its aux (expert loads...).

  `params` is the decoder's {"params", "buffers"}. The output of the module named
  "final_norm" (what the LM head reads) is captured with flax's capture_intermediates,
  so the model code needs no change; under jit the unused logits are dead code.
  """
  chex.assert_rank(tokens, 2)
  chex.assert_equal_shape([tokens, positions, segment_ids])
  (_, _, aux), state = Transformer(cfg).apply(
      params, tokens.astype(jnp.int32), positions.astype(jnp.int32),
      segment_ids.astype(jnp.int32), None, False,
      capture_intermediates=lambda mdl, method: mdl.name == "final_norm",
      mutable=["intermediates"])
  h = state["intermediates"]["final_norm"]["__call__"][0]
  return h, aux


def last_token_index(segment_ids: jax.Array) -> jax.Array:
  """[B, T] -> [B]: the column of each row's last non-pad token (segment_ids != 0)."""
  T = segment_ids.shape[1]
  cols = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), segment_ids.shape)
  return jnp.max(jnp.where(segment_ids != 0, cols, 0), axis=1)


def rewards(cfg: ModelConfig, params: dict, tokens: jax.Array, positions: jax.Array,
            segment_ids: jax.Array) -> tuple[jax.Array, dict]:
  """r [B] float32 = w · h[b, last non-pad] + b for reward-model weights, and the aux.

  tokens, positions, segment_ids [B, T]; every row must hold at least one token. Any
  padding layout works (left, right, both): only the last non-pad column is read, and
  padding (segment 0) is never attended to.
  """
  decoder, head = split_params(params)
  h_btd, aux = hidden_states(cfg, decoder, tokens, positions, segment_ids)
  T = tokens.shape[1]
  # A one-hot contraction rather than a gather: elementwise over the batch, so it stays
  # local to each device's batch shard whatever the partitioner does with gathers.
  last_bt = jnp.arange(T)[None, :] == last_token_index(segment_ids)[:, None]
  h_bd = jnp.einsum("bt,btd->bd", last_bt.astype(h_btd.dtype), h_btd,
                    preferred_element_type=jnp.float32)
  return h_bd @ head["w"] + head["b"], aux


def bradley_terry_loss(r_chosen: jax.Array, r_rejected: jax.Array,
                       weights: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """−Σ_i m_i log σ(r_c,i − r_r,i) / Σ_i m_i (InstructGPT eq. 1), and pair metrics.

  r_chosen, r_rejected, weights (default 1) [B]. Metrics: pairwise_accuracy (share with
  r_c > r_r, ties counting one half), reward_margin (mean r_c − r_r), reward_chosen,
  reward_rejected.
  """
  chex.assert_equal_shape([r_chosen, r_rejected])
  m = jnp.ones_like(r_chosen) if weights is None else weights.astype(jnp.float32)
  diff = r_chosen - r_rejected
  won = (diff > 0).astype(jnp.float32) + 0.5 * (diff == 0).astype(jnp.float32)
  # Every sum over the pairs in one reduction, so a batch split over devices needs one
  # all-reduce, after the rewards. A lone Σm depends on the batch alone: XLA:CPU could
  # start it on some devices while others were in the model's collectives, and hang.
  terms_b6 = jnp.stack([-jax.nn.log_sigmoid(diff), won, diff, r_chosen, r_rejected,
                        jnp.ones_like(diff)], axis=1)
  sums = (terms_b6 * m[:, None]).sum(0)
  n = jnp.maximum(sums[5], 1.0)
  loss, accuracy, margin, chosen, rejected = (sums[i] / n for i in range(5))
  metrics = {"bt_loss": loss, "pairwise_accuracy": accuracy, "reward_margin": margin,
             "reward_chosen": chosen, "reward_rejected": rejected}
  return loss, metrics


def make_loss(cfg: ModelConfig) -> Callable:
  """loss_fn(params, batch) -> (BT loss [+ MoE balance loss], (metrics, model aux)).

  One forward over the 2B sequences of a pair batch (see the module docstring).
  """

  def loss_fn(params: dict[str, Any], batch: dict[str, jax.Array]):
    B, two, T = batch["tokens"].shape
    chex.assert_equal(two, 2)
    flat = [batch[k].reshape(2 * B, T) for k in ("tokens", "positions", "segment_ids")]
    r, aux = rewards(cfg, params, *flat)
    r_b2 = r.reshape(B, 2)
    loss, metrics = bradley_terry_loss(r_b2[:, 0], r_b2[:, 1], batch.get("pair_mask"))
    if "balance_loss" in aux:
      loss = loss + aux["balance_loss"]
    return loss, (metrics, aux)

  return loss_fn


# --------------------------------------------------------------------------- the data


def encode(tokenizer, prompt: str, response: str) -> list[int]:
  """[bos] + prompt + response + [eos] token ids, prompt and response encoded apart (as
  at generation time). R1's BOS/EOS strings inside the texts become the tokenizer's ids
  (as in SFT); a trailing EOS of the response is not doubled."""
  eos_text = tokenizer.decode([tokenizer.eos_id], skip_special=False)
  response = response.removesuffix(EOS).removesuffix(eos_text) if eos_text else response
  ids = [tokenizer.bos_id]
  for i, part in enumerate(prompt.removeprefix(BOS).split(EOS)):
    ids += ([tokenizer.eos_id] if i else []) + (tokenizer.encode(part) if part else [])
  return ids + (tokenizer.encode(response) if response else []) + [tokenizer.eos_id]


def summary(completion: str) -> str:
  """The text after the last "</think>" ("" if there is none): what R1's helpfulness
  reward model scores (§2.3.4)."""
  _, sep, tail = completion.rpartition("</think>")
  return tail if sep else ""


def tiny_preferences(split: str, n: int, *, seed: int = 0, p_wrong: float = 0.5) -> list[Pair]:
  """`n` addition pairs in R1's chat format (the prompt ends in "<｜Assistant｜><think>\\n"):
  chosen = the cold-start answer, the right sum in <answer> tags; rejected = the same
  reasoning with a wrong sum in the tags (prob. p_wrong), or the right sum with neither
  </think> nor tags."""
  rng = random.Random(f"preferences-{seed}-{split}")
  pairs = []
  for ex in tasks.arithmetic_examples(split, n, seed=seed):
    total = int(ex["answer"])
    reasoning = ex["cot"] + f" , so {ex['question'][8:-1]} = {total} ."
    chosen = f"{reasoning}\n</think>\n\n<answer> {total} </answer>"
    if rng.random() < p_wrong:
      wrong = total + rng.choice([-1, 1]) * rng.randint(1, 10)
      rejected = f"{reasoning}\n</think>\n\n<answer> {wrong} </answer>"
    else:
      rejected = f"{reasoning} The answer is {total}."
    pairs.append({"prompt": r1_chat_prompt([{"role": "user", "content": ex["question"]}]),
                  "chosen": chosen, "rejected": rejected})
  return pairs


GENERATED = {"tiny_preferences": (tiny_preferences, {"train": 2000, "test": 128})}


def _render(msgs: list[dict]) -> tuple[str, str]:
  """(prompt text up to the last "<｜Assistant｜>", last assistant answer) in R1's chat format."""
  pieces = conversations.chat_pieces(msgs)
  return "".join(t for _, t in pieces[:-2]), pieces[-2][1]


def to_pair(row: dict[str, Any]) -> Pair:
  """The pair of a JSONL row (see the module docstring); ValueError says what is wrong."""
  missing = [k for k in ("chosen", "rejected") if k not in row]
  if missing:
    raise ValueError(f"missing field(s) {missing}; a row is {{'prompt', 'chosen', 'rejected'}}")
  if all(isinstance(row.get(k, ""), str) for k in ("prompt", "chosen", "rejected")):
    if not row["chosen"] or not row["rejected"]:
      raise ValueError("'chosen' and 'rejected' must be non-empty")
    return {"prompt": row.get("prompt", ""), "chosen": row["chosen"], "rejected": row["rejected"]}

  def conversation(k):  # conversations.to_messages' forms: prompt + completion, or messages
    if "prompt" in row:
      return conversations.to_messages({"prompt": row["prompt"], "completion": row[k],
                                        "system": row.get("system")})
    return conversations.to_messages({"messages": row[k]})

  (p_c, chosen), (p_r, rejected) = (_render(conversation(k)) for k in ("chosen", "rejected"))
  if p_c != p_r:
    raise ValueError("the chosen and rejected conversations differ before their last "
                     "assistant turn; a pair needs one prompt")
  return {"prompt": p_c, "chosen": chosen, "rejected": rejected}


def _read_file(path: str, on_error: str) -> list[Pair]:
  return read_jsonl(path, ("chosen", "rejected"), on_error=on_error, parse=to_pair,
                    what="malformed or invalid preference pair")


def load_preferences(spec: str, *, seed: int = 0, on_error: str = "raise",
                     only_summary: bool = False) -> list[Pair]:
  """The pairs of `spec` ("a,b" concatenates), responses cut to their `summary` with
  only_summary; pairs whose chosen and rejected texts are then identical are skipped."""
  pairs: list[Pair] = []
  for part in (s.strip() for s in spec.split(",")):
    name, _, split = part.partition(":")
    if name in GENERATED:
      make, sizes = GENERATED[name]
      if split not in sizes:
        raise ValueError(f"preference source {part!r}: use {name}:train or {name}:test")
      pairs += make(split, sizes[split], seed=seed)
    elif part.endswith(".jsonl"):
      pairs += _read_file(part, on_error)
    else:
      raise ValueError(f"unknown preference source {part!r}: a .jsonl path or one of "
                       f"{[f'{k}:train' for k in GENERATED]}")
  if only_summary:
    pairs = [dict(p, chosen=summary(p["chosen"]), rejected=summary(p["rejected"])) for p in pairs]
  kept = [p for p in pairs if p["chosen"] != p["rejected"]]
  if not kept:
    raise ValueError(f"{spec}: all {len(pairs)} preference pairs have identical chosen and "
                     "rejected texts; there is nothing to learn")
  if len(kept) < len(pairs):
    logging.warning("%s: skipped %d of %d preference pairs whose chosen and rejected texts "
                    "are identical", spec, len(pairs) - len(kept), len(pairs))
  return kept


def fit(ids: list[int], seq_len: int) -> list[int]:
  """ids cut to seq_len by dropping tokens after BOS: the end, where the reward is read,
  stays."""
  return ids if len(ids) <= seq_len else ids[:1] + ids[len(ids) - seq_len + 1:]


def encode_pairs(pairs: Sequence[Pair], tokenizer, seq_len: int, overflow: str = "drop",
                 *, source: str = "") -> list[tuple[list[int], list[int]]]:
  """(chosen ids, rejected ids) per pair; pairs longer than seq_len dropped or cut (`fit`)."""
  if overflow not in OVERFLOW:
    raise ValueError(f"config.data.overflow={overflow!r}; use one of {OVERFLOW}")
  out, long = [], 0
  for p in pairs:
    c, r = (encode(tokenizer, p["prompt"], p[k]) for k in ("chosen", "rejected"))
    if max(len(c), len(r)) > seq_len:
      long += 1
      if overflow == "drop":
        continue
      c, r = fit(c, seq_len), fit(r, seq_len)
    out.append((c, r))
  if long:
    logging.warning("%s: %d of %d preference pairs are longer than seq_len=%d: %s",
                    source or "preferences", long, len(pairs), seq_len,
                    "dropped" if overflow == "drop" else "cut from the left")
  if not out:
    raise ValueError(f"{source or 'preferences'}: no pair fits in seq_len={seq_len}; raise "
                     "config.data.seq_len or set config.data.overflow='truncate'")
  return out


def sequence_batch(seqs: Sequence[Sequence[int]], length: int, pad_id: int,
                   rows: int | None = None) -> dict[str, np.ndarray]:
  """tokens, positions, segment_ids [rows, length] int32, right-padded; rows beyond
  len(seqs) hold a lone pad token (segment 1) so every row has a last token."""
  R = rows or len(seqs)
  tokens = np.full((R, length), pad_id, np.int32)
  segment_ids = np.zeros((R, length), np.int32)
  segment_ids[len(seqs):, 0] = 1
  for i, ids in enumerate(seqs):
    tokens[i, :len(ids)] = ids
    segment_ids[i, :len(ids)] = 1
  positions = np.broadcast_to(np.arange(length, dtype=np.int32), (R, length)).copy()
  return {"tokens": tokens, "positions": positions, "segment_ids": segment_ids}


def pair_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], seq_len: int, pad_id: int,
               batch_size: int | None = None) -> dict[str, np.ndarray]:
  """A pair batch [B, 2, seq_len] (+ pair_mask [B]); filler pairs up to batch_size."""
  B = batch_size or len(pairs)
  flat = sequence_batch([s for p in pairs for s in p], seq_len, pad_id, 2 * B)
  batch = {k: v.reshape(B, 2, seq_len) for k, v in flat.items()}
  batch["pair_mask"] = (np.arange(B) < len(pairs)).astype(np.float32)
  return batch


# -------------------------------------------------------------------------- the stage


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
    sharding.check_divisibility(cfg, mesh, batch_size=d.batch_size)
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


# ---------------------------------------------------------------- the reward function


def _resolve_workdir(path: str) -> tuple[str, int | None]:
  """(workdir, step) for a workdir, its checkpoints/ folder, or checkpoints/<step>."""
  path = os.path.abspath(path)
  base, parent = os.path.basename(path), os.path.dirname(path)
  if base.isdigit() and os.path.basename(parent) == "checkpoints":
    return os.path.dirname(parent), int(base)
  if base == "checkpoints":
    return parent, None
  return path, None


def restore_reward_weights(workdir: str, *, step: int | None = None
                           ) -> tuple[ModelConfig, dict, dict]:
  """(model config, reward-model weights {"params" (with "reward_head"), "buffers"}, the
  run's config as a dict) of a reward_model run's checkpoint (default: the latest)."""
  c = ckpt_lib.Checkpointer(workdir, async_save=False, create=False)
  try:
    try:
      meta = c.restore_meta(step)
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{workdir} holds no r1jax checkpoints; pass the workdir of a "
                              "config.stage='reward_model' run") from e
    cfg = ckpt_lib.model_config_from_dict(meta["model"])
    run_config = json.loads(meta.get("config") or "{}")
    if run_config.get("stage", "reward_model") != "reward_model":
      raise ValueError(f"{workdir} is a {run_config['stage']!r} run, not a reward model; "
                       "pass the workdir of a config.stage='reward_model' run")
    target = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    target["params"][HEAD] = jax.eval_shape(lambda: init_head(cfg))
    return cfg, c.restore_weights(ckpt_lib.on_local_device(target), step), run_config
  finally:
    c.close()


@dataclasses.dataclass(frozen=True)
class RewardModelFn:
  """`fn(prompts, completions, **_) -> list[float]`: a trained reward model's scores.

  Made by `load_reward_model`. `dataclasses.replace(fn, score_only_summary=...)` gives the
  other view of the same weights (R1 §2.3.4 scores helpfulness on the summary and
  harmlessness on the whole response) without loading them again.
  """
  cfg: ModelConfig
  weights: dict
  tokenizer: Any
  score_only_summary: bool
  max_len: int
  batch_size: int
  score: Callable = dataclasses.field(repr=False)  # jitted (weights, batch) -> [batch] logits

  def __call__(self, prompts: Sequence[str], completions: Sequence[str], **_) -> list[float]:
    if len(prompts) != len(completions):
      raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    texts = [summary(c) for c in completions] if self.score_only_summary else list(completions)
    seqs = [fit(encode(self.tokenizer, p, c), self.max_len) for p, c in zip(prompts, texts)]
    out: list[float] = []
    # Outside any caller's mesh (the train loop makes rollouts under the policy's): the
    # weights sit on one device, and a multi-device mesh would reject them.
    with jax.set_mesh(None):
      for i in range(0, len(seqs), self.batch_size):
        chunk = seqs[i:i + self.batch_size]
        length = min(-(-max(map(len, chunk)) // 64) * 64, max(self.max_len, 1))
        length = max(length, max(map(len, chunk)))
        r = self.score(self.weights, sequence_batch(chunk, length, self.tokenizer.pad_id,
                                                    self.batch_size))
        out += [float(v) for v in np.asarray(r)[:len(chunk)]]
    return out


def load_reward_model(path: str, *, step: int | None = None,
                      score_only_summary: bool | None = None,
                      tokenizer=None, batch_size: int = 32,
                      max_len: int | None = None) -> RewardModelFn:
  """A reward function `fn(prompts, completions, **_) -> list[float]` from a reward_model run.

  path: its workdir (or checkpoints/ or checkpoints/<step> in it). Each (prompt, completion)
  is encoded as in training (`encode`), cut to max_len (default: the run's data.seq_len)
  from the left, and scored in jitted batches of `batch_size` rows, padded to a multiple
  of 64 tokens so few shapes compile. score_only_summary: score only the completion's
  text after its last "</think>" (R1 §2.3.4's helpfulness reward; "" if it has none);
  default: as the run was trained (config.data.score_only_summary).
  The weights sit on the default device and scoring runs outside any mesh. GRPO uses it
  through config.rl.reward_models (`r1jax.rl.rewards.load_reward_models`).
  """
  workdir, path_step = _resolve_workdir(path)
  cfg, weights, run_config = restore_reward_weights(workdir, step=path_step if step is None
                                                    else step)
  if tokenizer is None:
    from r1jax.tokenizers import load_tokenizer
    spec = run_config.get("tokenizer", "")
    spec = run_config.get("init_from", "") if spec == "from_checkpoint" else spec
    if not spec:
      raise ValueError(f"{workdir}'s config names no tokenizer; pass tokenizer=")
    tokenizer = load_tokenizer(spec)
  if score_only_summary is None:
    score_only_summary = bool(run_config.get("data", {}).get("score_only_summary", False))
  max_len = max_len or run_config.get("data", {}).get("seq_len") or cfg.max_position_embeddings
  score = jax.jit(lambda p, b: rewards(cfg, p, b["tokens"], b["positions"],
                                       b["segment_ids"])[0])
  return RewardModelFn(cfg, weights, tokenizer, score_only_summary, max_len, batch_size, score)
