"""Rewards for the synthetic arithmetic tasks: Countdown (TinyZero) and plain sums.

Countdown: given `numbers` (e.g. [19, 36, 55, 7]) and a `target` (65), the answer is an
arithmetic expression ("55 + 36 - 7 - 19") with + - * / (also × ÷ −, \\times \\div \\cdot),
parentheses and unary minus, using each given number once: "exactly once" with
`use_all=True` (the R1 recipes' rule), "at most once" with `use_all=False`. "expr = 65" is
accepted when the right side is the target itself.

The expression is evaluated by a small recursive-descent parser over exact fractions, never
by `eval`: anything but integers, the operators and parentheses is rejected, and so are
numbers not in the list (or used too often), division by zero, nesting deeper than
MAX_DEPTH and expressions longer than MAX_EXPR_CHARS. Exponents do not exist in the
grammar, so "2**99999999" is a syntax error, not a computation. Non-integer intermediate
values ("(7 / 2) * 2") are allowed by default, as in TinyZero's checker; pass
`allow_fractions=False` to require every division to be exact.
"""

from __future__ import annotations

import fractions
import re
from collections import Counter
from collections.abc import Sequence

from r1jax.rewards.math import extract_answer

MAX_EXPR_CHARS = 200
MAX_DEPTH = 32

_TOKEN = re.compile(r"\s*(?:(\d+)|(\\times|\\cdot|\\div|[-+*/()×÷·−]))")
_CANONICAL = {"\\times": "*", "\\cdot": "*", "×": "*", "·": "*", "\\div": "/", "÷": "/",
              "−": "-"}


def _tokenize(expr: str) -> list[str | int]:
  tokens: list[str | int] = []
  pos, end = 0, len(expr.rstrip())
  while pos < end:
    m = _TOKEN.match(expr, pos)
    if not m:
      raise ValueError(f"unexpected {expr[pos:].lstrip()[:10]!r} at {pos}")
    number, op = m.groups()
    tokens.append(int(number) if number is not None else _CANONICAL.get(op, op))
    pos = m.end()
  return tokens


class _Parser:
  """expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
  unary := ('+'|'-') unary | NUMBER | '(' expr ')'."""

  def __init__(self, tokens: list[str | int], allow_fractions: bool):
    self.tokens, self.i, self.allow_fractions = tokens, 0, allow_fractions
    self.literals: list[int] = []

  def peek(self):
    return self.tokens[self.i] if self.i < len(self.tokens) else None

  def take(self):
    tok = self.peek()
    if tok is None:
      raise ValueError("expression ends too early")
    self.i += 1
    return tok

  def expr(self, depth: int) -> fractions.Fraction:
    value = self.term(depth)
    while self.peek() in ("+", "-"):
      value = value + self.term(depth) if self.take() == "+" else value - self.term(depth)
    return value

  def term(self, depth: int) -> fractions.Fraction:
    value = self.unary(depth)
    while self.peek() in ("*", "/"):
      if self.take() == "*":
        value *= self.unary(depth)
        continue
      divisor = self.unary(depth)
      if divisor == 0:
        raise ValueError("division by zero")
      if not self.allow_fractions and value % divisor:
        raise ValueError(f"{value} / {divisor} is not an integer")
      value /= divisor
    return value

  def unary(self, depth: int) -> fractions.Fraction:
    if depth > MAX_DEPTH:
      raise ValueError(f"nested deeper than MAX_DEPTH={MAX_DEPTH}")
    tok = self.take()
    if isinstance(tok, int):
      self.literals.append(tok)
      return fractions.Fraction(tok)
    if tok in ("+", "-"):
      value = self.unary(depth + 1)
      return value if tok == "+" else -value
    if tok == "(":
      value = self.expr(depth + 1)
      if self.take() != ")":
        raise ValueError("missing ')'")
      return value
    raise ValueError(f"unexpected {tok!r}")


def evaluate(expr: str, *, allow_fractions: bool = True) -> tuple[fractions.Fraction, list[int]]:
  """The exact value of an arithmetic expression and the integer literals it uses.

  Raises ValueError (saying what is wrong) for anything outside the grammar in the module
  docstring, division by zero, or an expression longer than MAX_EXPR_CHARS.
  """
  if len(expr) > MAX_EXPR_CHARS:
    raise ValueError(f"expression has {len(expr)} characters, more than "
                     f"MAX_EXPR_CHARS={MAX_EXPR_CHARS}")
  parser = _Parser(_tokenize(expr), allow_fractions)
  value = parser.expr(0)
  if parser.peek() is not None:
    raise ValueError(f"unexpected {parser.peek()!r} after a complete expression")
  return value, parser.literals


def _ints(values) -> list[int]:
  """[3, 5] / ["3", "5"] / "[3, 5]" -> [3, 5]."""
  if isinstance(values, str):
    return [int(v) for v in re.findall(r"-?\d+", values)]
  return [int(v) for v in values]


def check_countdown(expr: str, numbers: Sequence[int] | str, target: int | str, *,
                    use_all: bool = True, allow_fractions: bool = True) -> bool:
  """Whether `expr` reaches `target` using the given numbers (see the module docstring)."""
  if not isinstance(expr, str) or len(expr) > MAX_EXPR_CHARS:
    return False
  target = fractions.Fraction(target)
  lhs, eq, rhs = expr.partition("=")
  if eq and parse_integer(rhs) != target:  # "expr = target" only
    return False
  try:
    value, used = evaluate(lhs, allow_fractions=allow_fractions)
  except (ValueError, ZeroDivisionError):
    return False
  given, taken = Counter(_ints(numbers)), Counter(used)
  if use_all and taken != given or any(taken[n] > given[n] for n in taken):
    return False
  return value == target


def countdown_reward(prompts: list[str], completions: list[str], *, numbers: list, target: list,
                     use_all: bool = True, **_) -> list[float]:
  """1.0 where the extracted answer is an expression of `numbers` equal to `target`."""
  del prompts
  return [float(check_countdown(extract_answer(c), n, t, use_all=use_all))
          for c, n, t in zip(completions, numbers, target, strict=True)]


_INTEGER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)")
# Python refuses int() of more than 4300 digits (sys.get_int_max_str_digits) with a
# ValueError; no answer is anywhere near this long, so longer text is simply not an integer.
MAX_INTEGER_CHARS = 1000


def parse_integer(text: str | None) -> int | None:
  """"1,234" / "-7" / " 85 " -> int; anything else (decimals, words, None, more than
  MAX_INTEGER_CHARS characters) -> None."""
  if not isinstance(text, str):
    return None
  text = text.strip()
  if len(text) > MAX_INTEGER_CHARS or not _INTEGER.fullmatch(text):
    return None
  return int(text.replace(",", ""))


def arithmetic_reward(prompts: list[str], completions: list[str], *, answer: list, **_
                      ) -> list[float]:
  """1.0 where the extracted answer is exactly the integer `answer` ("What is 47 + 38?")."""
  del prompts
  out = []
  for c, a in zip(completions, answer, strict=True):
    gold = parse_integer(str(a))
    if gold is None:
      raise ValueError(f"arithmetic_reward needs integer gold answers, got {str(a)[:80]!r}")
    out.append(float(parse_integer(extract_answer(c)) == gold))
  return out
