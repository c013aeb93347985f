"""Train the shipped tiny SentencePiece tokenizer on the project's own data.

  python -m r1jax.tools.train_tokenizer \
      --out r1jax/assets/tokenizer/r1jax_tiny.model --vocab_size 1024

The corpus, one sentence per line: GSM8K train questions and answers, MATH-500 problems
and solutions, generated lines of the synthetic tasks (multi-digit arithmetic, Countdown)
and the R1-Zero template around GSM8K questions. The model is a byte-fallback BPE whose
every digit is its own token (`split_digits`: the arithmetic tasks need digit-level
tokens), with ids pad=0 unk=1 bos=2 eos=3 and the reasoning tags as single ids 4-7. The
normaliser is the identity, whitespace is kept as is and no dummy-prefix space is added,
so decode(encode(text)) == text for any text, a tag alone encodes to its one id, and a
text cut before a space encodes piece by piece to the same ids as whole (prompt +
completion). Training is single-threaded over a fixed corpus: same data, same file.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

import sentencepiece as spm

from r1jax.data.tokenizers import TAGS

REPO = Path(__file__).resolve().parents[2]
R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: {q}. Assistant:")
COUNTDOWN = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic "
    "arithmetic operations (+, -, *, /) and each number can only be used once. Show your work "
    "in <think> </think> tags. And return the final answer in <answer> </answer> tags, for "
    "example <answer> (1 + 2) / 3 </answer>.")

_OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}


def _jsonl(path: Path) -> list[dict]:
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing; the tokenizer is trained on the datasets in "
                            f"{REPO / 'data'} (see data/README.md), pass --data_dir")
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _lines(text: str) -> list[str]:
  return [line for line in text.split("\n") if line.strip()]


def arithmetic_lines(rng: random.Random, n: int) -> Iterator[str]:
  """'123 + 456 = 579', 'What is 47 + 38?' and digit-by-digit chains of thought."""
  for _ in range(n):
    a, b = (rng.randint(0, 10 ** rng.randint(1, 5)) for _ in range(2))
    op = rng.choice("+-*")
    value = _OPS[op](a, b)
    yield f"{a} {op} {b} = {value}"
    yield f"What is {a} {op} {b}?"
    if op == "+":
      steps, carry = [], 0
      for x, y in zip(f"{a:06d}"[::-1], f"{b:06d}"[::-1]):
        s = int(x) + int(y) + carry
        steps.append(f"{x} + {y}" + (f" + {carry}" if carry else "") + f" = {s}")
        carry = s // 10
      yield f" <think> {' , '.join(steps)} </think> <answer> {value} </answer>"


def countdown_lines(rng: random.Random, n: int) -> Iterator[str]:
  """A Countdown prompt and a solution: '(50 + 25) + 7 = 82'."""
  for _ in range(n):
    nums = [rng.randint(1, 99) for _ in range(rng.choice((3, 4)))]
    a, b, c = nums[:3]
    op1, op2 = rng.choice("+-*"), rng.choice("+-*")
    expr = f"({a} {op1} {b}) {op2} {c}"
    target = _OPS[op2](_OPS[op1](a, b), c)
    yield COUNTDOWN.format(nums=nums, target=target)
    yield f" <think> {expr} = {target} </think> <answer> {expr} </answer>"


def corpus(data_dir: Path, seed: int = 0) -> list[str]:
  """Every training sentence, in a fixed order."""
  rng = random.Random(seed)
  gsm = _jsonl(data_dir / "gsm8k" / "train.jsonl")
  math = _jsonl(data_dir / "math500" / "test.jsonl")
  out: list[str] = []
  for r in gsm:
    out += _lines(r["question"]) + _lines(r["answer"])
  for r in math:
    out += _lines(r["problem"]) + _lines(r["solution"])
  out += arithmetic_lines(rng, 20_000)
  out += countdown_lines(rng, 5_000)
  out += [R1_ZERO.format(q=r["question"].strip()) for r in gsm[:1000]]
  return out


def train(out: Path, vocab_size: int, data_dir: Path, seed: int = 0) -> None:
  """Write the model to `out` (and nothing else: no .vocab file, no training-path record)."""
  sentences = corpus(data_dir, seed)
  out.parent.mkdir(parents=True, exist_ok=True)
  with open(out, "wb") as f:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=f,
        model_type="bpe", vocab_size=vocab_size, character_coverage=0.9995,
        split_digits=True, byte_fallback=True, user_defined_symbols=list(TAGS),
        pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=False, input_sentence_size=0, shuffle_input_sentence=False,
        max_sentence_length=1 << 16, num_threads=1, minloglevel=2)
  print(f"wrote {out} ({out.stat().st_size} bytes, {vocab_size} pieces) "
        f"from {len(sentences)} sentences")


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", type=Path, required=True, help="path of the .model file to write")
  p.add_argument("--vocab_size", type=int, default=1024)
  p.add_argument("--data_dir", type=Path, default=REPO / "data")
  p.add_argument("--seed", type=int, default=0, help="seed of the synthetic lines")
  args = p.parse_args(argv)
  reserved = 4 + len(TAGS) + 256  # control ids, tags, byte pieces
  if args.vocab_size < 2 * reserved:
    p.error(f"--vocab_size {args.vocab_size} is too small: {reserved} ids are reserved for "
            f"control pieces, tags and bytes; use at least {2 * reserved}")
  train(args.out, args.vocab_size, args.data_dir, args.seed)


if __name__ == "__main__":
  main()
