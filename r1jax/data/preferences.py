"""Preference pairs for reward models: reading, generating, encoding, batching.

A pair is a dict {"prompt", "chosen", "rejected"} of texts, the prompt rendered as the
model sees it. `load_preferences(spec)` reads:
  <path>.jsonl               rows {"prompt", "chosen", "rejected"}: strings are raw text
                             (e.g. an R1-Zero prompt), used as they are; if any is a list
                             of messages, the row is a conversation in R1's chat format
                             (a str prompt is a user turn, a str response an assistant
                             turn; "prompt" may be left out when chosen/rejected are whole
                             conversations); optional "system"
  tiny_preferences:<split>   generated: additions in R1's chat format, chosen = the right
                             sum in <answer> tags, rejected = a wrong sum or no tags
and "a,b" concatenates sources. Pairs whose chosen and rejected texts are identical carry
no preference: they are skipped with a counted warning (all of them: an error).

Batches (`pair_batch`): tokens, positions, segment_ids [B, 2, T] (axis 1: chosen,
rejected; right-padded, segment 0 = padding) and pair_mask [B] (0 for filler pairs of
the last eval batch). A sequence is [bos] + prompt + response + [eos] (`encode`), as the
reward model scores it at GRPO time.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Sequence

import numpy as np

from r1jax.data import conversations, tasks
from r1jax.data.jsonl import read_jsonl
from r1jax.data.templates import BOS, EOS, PromptFormat, r1_chat_prompt

Pair = dict[str, str]  # {"prompt", "chosen", "rejected"}
OVERFLOW = ("drop", "truncate")
R1_CHAT = PromptFormat("r1_chat")  # how a prompt in R1's chat format becomes ids


def encode(tokenizer, prompt: str, response: str) -> list[int]:
  """[bos] + prompt + response + [eos] token ids, prompt and response encoded apart (as
  at generation time). R1's BOS/EOS strings inside the texts become the tokenizer's ids
  (as in SFT); a trailing EOS of the response is not doubled."""
  eos_text = tokenizer.decode([tokenizer.eos_id], skip_special=False)
  response = response.removesuffix(EOS).removesuffix(eos_text) if eos_text else response
  ids = R1_CHAT.encode(tokenizer, prompt.removeprefix(BOS))
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
