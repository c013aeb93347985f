"""Synthetic reasoning tasks the tiny default learns, with a fixed held-out split.

`arithmetic`: "What is 47 + 38?" → 85, with a digit-by-digit chain of thought
("7 + 8 = 15 , 4 + 3 + 1 = 8"). Which operand pairs are held out is decided by a hash
of the pair, so train and test never share a problem whatever the seed or size.

`countdown`: reach a target from 3–4 numbers with + − × ÷, each number used once (the
task of TinyZero and "Countdown" R1-Zero replications); every problem is generated from
a solution, so it is solvable, and held out by a hash of (numbers, target).

`base_document` renders the noisy pretraining text that makes a base model in the
spirit of R1-Zero's starting point: its reasoning is right, but it follows the
<think>/<answer> format only sometimes and reports a wrong final answer some of the
time, so RL has something to sharpen.
"""

from __future__ import annotations

import fractions
import hashlib
import logging
import operator
import random
from typing import Any

HELD_OUT_PERCENT = 10


def _held_out(*key) -> bool:
  h = hashlib.sha256("+".join(map(str, key)).encode()).digest()
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


def arithmetic_examples(split: str, n: int | None = None, *, seed: int = 0,
                        digits: int = 2) -> list[dict[str, Any]]:
  """`n` addition problems of `digits`-digit operands from `split` ("train" or "test").

  Each is {"question", "answer", "cot"}; the test split is the hashed 10 % of pairs.
  n=None: every pair of the split once. A larger n repeats training pairs, but never
  test pairs: an evaluation set holds each problem once (capped, with a warning).
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  lo, hi = 10 ** (digits - 1), 10**digits - 1
  pairs = [(a, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1)
           if _held_out(a, b) == (split == "test")]
  rng = random.Random(f"{seed}-{split}")
  rng.shuffle(pairs)
  n = len(pairs) if n is None else n
  if n > len(pairs) and split == "test":
    logging.warning("arithmetic:test has %d distinct problems; using those, not %d", len(pairs), n)
  elif n > len(pairs):
    pairs = pairs * (n // len(pairs) + 1)
  return [{"question": f"What is {a} + {b}?", "answer": str(a + b), "cot": addition_cot(a, b)}
          for a, b in pairs[:n]]


COUNTDOWN_QUESTION = ("Using the numbers {numbers}, create an equation that equals {target}. "
                      "You can use basic arithmetic operations (+, -, *, /) and each number "
                      "can only be used once.")


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _combine(rng: random.Random, terms: list[tuple[fractions.Fraction, str]]
             ) -> tuple[fractions.Fraction, str]:
  """Folds (value, expression) terms with random operators into one; exact fractions."""
  while len(terms) > 1:
    (x, ex), (y, ey) = terms.pop(rng.randrange(len(terms))), terms.pop(rng.randrange(len(terms)))
    ops = ["+", "-", "*"] + (["/"] if y != 0 and (x / y).denominator == 1 else [])
    op = rng.choice(ops)
    terms.append((_OPS[op](x, y), f"({ex} {op} {ey})"))
  return terms[0]


def countdown_examples(split: str, n: int, *, seed: int = 0, sizes: tuple[int, ...] = (3, 4),
                       max_number: int = 99, max_target: int = 999) -> list[dict[str, Any]]:
  """`n` countdown problems from `split` ("train" or "test").

  Each is {"question", "answer" (one solution), "numbers", "target"}: numbers drawn from
  1..max_number, `len(numbers)` from `sizes`, target a positive integer ≤ max_target
  reached by a random expression over all of them (integer division only). The test
  split is the hashed 10 % of (sorted numbers, target).
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  if n < 1 or not sizes or min(sizes) < 2 or max_number < 1 or max_target < 1:
    raise ValueError(f"bad countdown settings: n={n}, sizes={sizes}, max_number={max_number}, "
                     f"max_target={max_target}")
  rng = random.Random(f"countdown-{seed}-{split}")
  out, seen = [], set()
  for _ in range(1000 * n):
    if len(out) == n:
      break
    numbers = [rng.randint(1, max_number) for _ in range(rng.choice(sizes))]
    value, expr = _combine(rng, [(fractions.Fraction(v), str(v)) for v in numbers])
    key = (tuple(sorted(numbers)), value)
    if (value.denominator != 1 or not 1 <= value <= max_target or key in seen
        or _held_out(*key) != (split == "test")):
      continue
    seen.add(key)
    target = int(value)
    out.append({"question": COUNTDOWN_QUESTION.format(numbers=numbers, target=target),
                "answer": expr[1:-1], "numbers": numbers, "target": target})
  if len(out) < n:
    raise ValueError(f"could only make {len(out)} of {n} distinct countdown problems with "
                     f"sizes={sizes}, max_number={max_number}, max_target={max_target}")
  return out


def base_document(example: dict[str, Any], rng: random.Random, *, p_format: float = 0.5,
                  p_correct: float = 0.5) -> str:
  """A completion as the noisy base model would write it (after the prompt's 'Assistant:').

  The reasoning is always right and ends in the sum ("7 + 8 = 15 , 4 + 3 + 1 = 8 , so
  85"); the final answer then copies it with probability p_correct, else is off by a
  little, so the base has the skill but does not reliably report it, the gap R1-Zero's
  RL closes. With probability p_format the text uses <think> … </think> <answer> …
  </answer>, else a bare sentence.
  """
  total = int(example["answer"])
  answer = total
  if rng.random() >= p_correct:
    answer += rng.choice([-1, 1]) * rng.randint(1, 10)
  reasoning = f"{example['cot']} , so {total}"
  if rng.random() < p_format:
    return f" <think> {reasoning} </think> <answer> {answer} </answer>"
  return f" {reasoning} . the result is {answer} ."
