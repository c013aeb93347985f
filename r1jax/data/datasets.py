"""Prompt datasets (JSONL files, synthetic tasks, conversations) and their checkpointable
iterators.

A prompt record is a dict with at least "question" and "answer" (the gold final answer,
as a string), or, for a general prompt without a gold answer (R1 §2.3.4), "question" (its
last user turn) and "messages" (the conversation before the answer to give). `load_prompts`
reads:
  gsm8k:<train|test>       data/gsm8k/*.jsonl; the gold is the text after '####'
  math500 | aime24 | amc23 data/<name>/test.jsonl
  arithmetic:<train|test>  the synthetic tasks of `r1jax.data.tasks` (countdown records
  countdown:<train|test>   also hold "numbers" and "target", for the countdown reward)
  <path>.jsonl             any file whose lines have the two fields (names configurable)
  tiny_general:<split>     general prompts: the conversations of `r1jax.data.conversations`
                           (also tiny_cold_start, tiny_reasoning), each up to its last
                           assistant turn
  chat:<conversations>     the same for any `load_conversations` spec, e.g. chat:chats.jsonl

`PromptIterator` serves shuffled batches of one record list, `MixtureIterator` batches of
several interleaved by weight; both resume exactly from `get_state()`.
"""

from __future__ import annotations

import logging
import os
from math import isfinite
from typing import Any, Iterator, Mapping

import grain

from r1jax.data import conversations, tasks
from r1jax.data.jsonl import read_jsonl

# The JSONL files live in the repository's data/ (see data/README.md); R1JAX_DATA_DIR
# points elsewhere, e.g. for a non-editable install.
DATA_DIR = os.environ.get("R1JAX_DATA_DIR",
                          os.path.join(os.path.dirname(__file__), "..", "..", "data"))

# dataset -> (file, question field, answer field)
_FILES = {
    "gsm8k": ("gsm8k/{split}.jsonl", "question", "answer"),
    "math500": ("math500/test.jsonl", "problem", "answer"),
    "aime24": ("aime24/test.jsonl", "problem", "answer"),
    "amc23": ("amc23/test.jsonl", "problem", "answer"),
}


def _gsm8k_gold(answer_field: str) -> str:
  return answer_field.split("####")[-1].strip().replace(",", "")


def conversation_prompts(spec: str, *, seed: int = 0,
                         on_error: str = "raise") -> list[dict[str, Any]]:
  """{"question", "messages"} records of the conversations of `spec` (a
  `conversations.load_conversations` spec): "messages" are the turns before the last
  assistant turn, which is left for the policy to write; "question" is the last user turn."""
  records, no_user = [], 0
  for msgs in conversations.load_conversations(spec, seed=seed, on_error=on_error):
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    users = [m["content"] for m in msgs[:last] if m["role"] == "user"]
    if not users:
      no_user += 1
      continue
    records.append({"question": users[-1], "messages": msgs[:last]})
  if no_user:
    if on_error == "raise":
      raise ValueError(f"{spec}: {no_user} conversation(s) have no user turn before their "
                       "last assistant turn, so no prompt; fix them or set "
                       "config.data.on_error='skip'")
    logging.warning("%s: skipped %d conversation(s) without a user turn before their last "
                    "assistant turn", spec, no_user)
  return records


def load_prompts(spec: str, *, limit: int | None = None, seed: int = 0,
                 on_error: str = "raise", question_field: str = "question",
                 answer_field: str = "answer") -> list[dict[str, Any]]:
  """Prompt records for `spec` (see the module docstring)."""
  name, _, split = spec.partition(":")
  if name == "arithmetic":
    return tasks.arithmetic_examples(split or "train", limit or None, seed=seed)
  if name == "countdown":
    return tasks.countdown_examples(split or "train", limit or 2000, seed=seed)
  if name == "chat" or name in conversations.GENERATED:
    records = conversation_prompts(split if name == "chat" else spec, seed=seed,
                                   on_error=on_error)
  elif name in _FILES:
    file, q, a = _FILES[name]
    path = os.path.join(DATA_DIR, file.format(split=split or "test"))
    rows = read_jsonl(path, (q, a), on_error=on_error)
    gold = _gsm8k_gold if name == "gsm8k" else str
    records = [{"question": r[q], "answer": gold(r[a])} for r in rows]
  elif spec.endswith(".jsonl"):
    rows = read_jsonl(spec, (question_field, answer_field), on_error=on_error)
    records = [{**r, "question": r[question_field], "answer": str(r[answer_field])} for r in rows]
  else:
    raise ValueError(f"unknown prompt dataset {spec!r}: use one of "
                     f"{sorted(_FILES) + ['arithmetic', 'countdown']} (with ':train'/':test'), "
                     f"a .jsonl path, a conversation set ({', '.join(conversations.GENERATED)} with "
                     "':train'/':test') or chat:<conversations .jsonl>")
  return records[:limit] if limit else records


def _shuffled_indices(n: int, seed: int) -> grain.IterDataset:
  """0..n-1 shuffled with `seed`, epoch after epoch (each epoch its own order)."""
  ds = grain.MapDataset.range(n).shuffle(seed=seed).repeat()
  # Indices cost nothing to read: grain's default 16 prefetch threads would only add overhead.
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))


class PromptIterator:
  """Endless shuffled batches of records; `get_state`/`set_state` make it resumable."""

  def __init__(self, records: list[dict], batch_size: int, *, seed: int):
    if not records:
      raise ValueError("the prompt dataset is empty")
    self.records, self.batch_size = records, batch_size
    self._it = iter(_shuffled_indices(len(records), seed))

  def __iter__(self) -> Iterator[list[dict]]:
    return self

  def __next__(self) -> list[dict]:
    return [self.records[int(next(self._it))] for _ in range(self.batch_size)]

  def get_state(self) -> dict:
    return self._it.get_state()

  def set_state(self, state: dict) -> None:
    self._it.set_state(state)


class MixtureIterator:
  """Endless batches of (source, record) drawn from several record lists by weight.

  Each source is shuffled and repeated as by `PromptIterator`; grain's `IterDataset.mix`
  interleaves them deterministically: of the first n draws, n·w_s/Σw (rounded) come from
  source s, and so, within one, of any n in a row (weights 3, 1: b a a a b a a a ...).
  The batches depend on the seed and the position alone; `get_state`/`set_state` resume
  exactly, each source's position kept under its name.

  sources: name -> records; weights: name -> share (> 0), the same names.
  """

  def __init__(self, sources: Mapping[str, list[dict]], weights: Mapping[str, float],
               batch_size: int, *, seed: int):
    if not sources:
      raise ValueError("no prompt sources given")
    if set(weights) != set(sources):
      raise ValueError(f"weights are for {sorted(weights)}, the sources are {sorted(sources)}")
    for name, w in weights.items():
      if not (isinstance(w, (int, float)) and not isinstance(w, bool) and isfinite(w) and w > 0):
        raise ValueError(f"source {name!r} has weight {w!r}; use a number > 0")
      if not sources[name]:
        raise ValueError(f"the prompt source {name!r} is empty")
    self.sources, self.batch_size = dict(sources), batch_size

    def tagged(name):
      return _shuffled_indices(len(sources[name]), seed).map(lambda i: (name, int(i)))

    mixed = grain.IterDataset.mix({name: tagged(name) for name in sources},
                                  {name: float(w) for name, w in weights.items()})
    self._it = iter(mixed)

  def __iter__(self) -> Iterator[list[tuple[str, dict]]]:
    return self

  def __next__(self) -> list[tuple[str, dict]]:
    return [(name, self.sources[name][i]) for name, i in
            (next(self._it) for _ in range(self.batch_size))]

  def get_state(self) -> dict:
    return self._it.get_state()

  def set_state(self, state: dict) -> None:
    self._it.set_state(state)
