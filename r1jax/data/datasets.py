"""Prompt datasets (JSONL files and synthetic tasks) and their checkpointable iterator.

A prompt record is a dict with at least "question" and "answer" (the gold final answer,
as a string). `load_prompts(spec)` reads:
  gsm8k:<train|test>       data/gsm8k/*.jsonl; the gold is the text after '####'
  math500 | aime24 | amc23 data/<name>/test.jsonl
  arithmetic:<train|test>  the synthetic tasks of `r1jax.data.tasks` (countdown records
  countdown:<train|test>   also hold "numbers" and "target", for the countdown reward)
  <path>.jsonl             any file whose lines have the two fields (names configurable)
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterator

import grain

from r1jax.data import tasks

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


def read_jsonl(path: str, required: tuple[str, ...], *, on_error: str = "raise") -> list[dict]:
  """Rows of a JSONL file; malformed lines or lines missing a `required` field raise a
  ValueError naming the file and line number, or are skipped with a warning (counted) when
  on_error="skip".

  Lines end at "\\n" only and are decoded one by one, so that a line of invalid UTF-8,
  binary garbage or JSON nested too deeply to parse is one malformed line, not the end of
  the read. A UTF-8 byte-order mark at the start of a line (an editor's, or files joined
  with `cat`) is dropped.
  """
  if on_error not in ("raise", "skip"):
    raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"dataset file not found: {path}")
  rows, skipped = [], 0
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8").removeprefix("\ufeff")
        if not line.strip():
          continue
        row = json.loads(line)
        if not isinstance(row, dict):
          raise ValueError("not a JSON object")
        missing = [k for k in required if k not in row]
        if missing:
          raise ValueError(f"missing field(s) {missing}")
      except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        if on_error == "raise":
          raise ValueError(f"{path}:{lineno}: {e}") from None
        skipped += 1
        continue
      rows.append(row)
  if skipped:
    logging.warning("%s: skipped %d malformed line(s) of %d", path, skipped, skipped + len(rows))
  return rows


def _gsm8k_gold(answer_field: str) -> str:
  return answer_field.split("####")[-1].strip().replace(",", "")


def load_prompts(spec: str, *, limit: int | None = None, seed: int = 0,
                 on_error: str = "raise", question_field: str = "question",
                 answer_field: str = "answer") -> list[dict[str, Any]]:
  """Prompt records for `spec` (see the module docstring)."""
  name, _, split = spec.partition(":")
  if name == "arithmetic":
    return tasks.arithmetic_examples(split or "train", limit or None, seed=seed)
  if name == "countdown":
    return tasks.countdown_examples(split or "train", limit or 2000, seed=seed)
  if name in _FILES:
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
                     f"{sorted(_FILES) + ['arithmetic', 'countdown']} (with ':train'/':test'), or a .jsonl path")
  return records[:limit] if limit else records


class PromptIterator:
  """Endless shuffled batches of records; `get_state`/`set_state` make it resumable."""

  def __init__(self, records: list[dict], batch_size: int, *, seed: int):
    if not records:
      raise ValueError("the prompt dataset is empty")
    self.records, self.batch_size = records, batch_size
    ds = grain.MapDataset.range(len(records)).shuffle(seed=seed).repeat()
    self._it = iter(ds.to_iter_dataset())

  def __iter__(self) -> Iterator[list[dict]]:
    return self

  def __next__(self) -> list[dict]:
    return [self.records[int(next(self._it))] for _ in range(self.batch_size)]

  def get_state(self) -> dict:
    return self._it.get_state()

  def set_state(self, state: dict) -> None:
    self._it.set_state(state)
