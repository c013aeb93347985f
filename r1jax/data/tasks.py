"""Synthetic reasoning tasks the tiny default learns, with a fixed held-out split.

`arithmetic`: "What is 47 + 38?" → 85, with a digit-by-digit chain of thought
("7 + 8 = 15 , 4 + 3 + 1 = 8"). Which operand pairs are held out is decided by a hash
of the pair, so train and test never share a problem whatever the seed or size.

`base_document` renders the noisy pretraining text that makes a base model in the
spirit of R1-Zero's starting point: it follows the <think>/<answer> format only
sometimes and writes a wrong answer some of the time, so RL has something to sharpen.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

HELD_OUT_PERCENT = 10


def _held_out(a: int, b: int) -> bool:
  h = hashlib.sha256(f"{a}+{b}".encode()).digest()
  return h[0] * 100 // 256 < HELD_OUT_PERCENT


def addition_cot(a: int, b: int) -> str:
  """Digit-by-digit addition, least significant first: '7 + 8 = 15 , 4 + 3 + 1 = 8'."""
  steps, carry = [], 0
  da, db = str(a)[::-1], str(b)[::-1]
  for i in range(max(len(da), len(db))):
    x = int(da[i]) if i < len(da) else 0
    y = int(db[i]) if i < len(db) else 0
    s = x + y + carry
    steps.append(f"{x} + {y}" + (f" + {carry}" if carry else "") + f" = {s}")
    carry = s // 10
  return " , ".join(steps)


def arithmetic_examples(split: str, n: int, *, seed: int = 0, digits: int = 2) -> list[dict[str, Any]]:
  """`n` addition problems of `digits`-digit operands from `split` ("train" or "test").

  Each is {"question", "answer", "cot"}; the test split is the hashed 10 % of pairs.
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  lo, hi = 10 ** (digits - 1), 10**digits - 1
  pairs = [(a, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1)
           if _held_out(a, b) == (split == "test")]
  rng = random.Random(f"{seed}-{split}")
  rng.shuffle(pairs)
  if n > len(pairs):
    pairs = pairs * (n // len(pairs) + 1)
  return [{"question": f"What is {a} + {b}?", "answer": str(a + b), "cot": addition_cot(a, b)}
          for a, b in pairs[:n]]


def base_document(example: dict[str, Any], rng: random.Random, *, p_format: float = 0.5,
                  p_correct: float = 0.5) -> str:
  """A completion as the noisy base model would write it (after the prompt's 'Assistant:').

  With probability p_format it uses <think> … </think> <answer> … </answer>, else a bare
  sentence; with probability p_correct the final answer is right, else off by a little.
  """
  answer = int(example["answer"])
  if rng.random() >= p_correct:
    answer += rng.choice([-1, 1]) * rng.randint(1, 10)
  if rng.random() < p_format:
    return f" <think> {example['cot']} </think> <answer> {answer} </answer>"
  return f" {example['cot']} . so the result is {answer} ."
