"""SFT conversations: reading, R1 chat rendering with an assistant-only mask, packing.

A conversation is a list of messages `[{"role": "system" | "user" | "assistant",
"content": str}, ...]`. `load_conversations(spec)` reads:
  <path>.jsonl            rows {"messages": [...]} or {"prompt": ..., "completion": ...}
                          (str, or lists of messages as TRL writes them; optional "system");
                          an assistant's "reasoning_content" becomes its <think> block
  tiny_cold_start:<split> generated: 2-digit addition answered in R1's readable format
  tiny_reasoning:<split>  the same task, more of it: the stand-in for rejection-sampled data
  tiny_general:<split>    generated non-reasoning turns (greetings, comparisons, self-cognition)
                          and two-turn arithmetic, for R1's stage-2 mix
and "a,b" concatenates sources.

Rendering (`chat_pieces`, `tokenize`) follows `r1jax.data.templates.r1_chat_prompt`: BOS,
the system prompt, "<｜User｜>"+text, "<｜Assistant｜>"+answer+EOS. As there, earlier
assistant turns keep only the text after their last "</think>" (R1 does not feed back past
reasoning); the last assistant turn is the one being learned and keeps its reasoning.
Messages after the last assistant turn are dropped. BOS and EOS are the tokenizer's ids,
not their DeepSeek strings, so the tokens are the same for a DeepSeek tokenizer and right
for any other. The loss mask is 1 on the last assistant turn and its EOS, 0 on everything
else: earlier turns are context rendered as at inference, without the reasoning the model
would have written, and learning them would teach answering without thinking. To learn
every turn of a conversation, give each prefix ending in an assistant turn as its own row.

Packing (`pack`, `packed_batch`): first-fit of whole conversations into rows of seq_len,
segment ids 1, 2, … per row (0 = padding) and positions restarting at 0 for each, so with
the model's segment mask a packed row computes what the conversations would alone.
`ConversationIterator` shuffles per epoch with (seed, epoch), packs the epoch and serves
fixed-shape batches; its state is {"epoch", "batch"}.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any, Iterator, Sequence

import numpy as np

from r1jax.data import tasks
from r1jax.data.jsonl import read_jsonl
from r1jax.data.templates import ASSISTANT, BOS, EOS, USER, PromptFormat, r1_chat_prompt

Messages = list[dict[str, str]]
Example = tuple[Sequence[int], Sequence[int]]  # (token ids, loss mask), equal lengths

OVERFLOW = ("truncate", "drop")


# ----------------------------------------------------------------------- generated sets


def _cold_start_answer(example: dict[str, Any]) -> str:
  """R1's readable format (§2.3.1: |special_token|<reasoning_process>|special_token|<summary>)
  with <think> </think> as the special tokens and the <answer> tags of the format reward."""
  a, b = example["question"].removeprefix("What is ").removesuffix("?").split(" + ")
  return (f"<think>\n{example['cot']} , so {a} + {b} = {example['answer']} .\n</think>\n\n"
          f"<answer> {example['answer']} </answer>")


def arithmetic_conversations(split: str, n: int, *, seed: int = 0) -> list[Messages]:
  """`n` single-turn addition conversations of `tasks.arithmetic_examples(split)`."""
  return [[{"role": "user", "content": ex["question"]},
           {"role": "assistant", "content": _cold_start_answer(ex)}]
          for ex in tasks.arithmetic_examples(split, n, seed=seed)]


_GREETINGS = ("Hello", "Hi", "Hi there", "Hello!", "Good morning")
NO_THINK = "<think>\n\n</think>\n\n"  # what R1 writes for queries that need no reasoning


def general_conversations(split: str, n: int, *, seed: int = 0) -> list[Messages]:
  """`n` non-reasoning or multi-turn conversations (R1 §2.3.3's "non-reasoning data").

  Greetings and self-cognition answered without reasoning (an empty think block, as R1
  does), "which is larger" answered directly, and two-turn additions whose first answer
  is history, so its reasoning is dropped by the template.
  """
  rng = random.Random(f"general-{seed}-{split}")
  examples = tasks.arithmetic_examples(split, 2 * n, seed=seed)
  out: list[Messages] = []
  for i in range(n):
    x, y = examples[2 * i], examples[2 * i + 1]
    kind = rng.randrange(4)
    if kind == 0:
      msgs = [{"role": "user", "content": rng.choice(_GREETINGS)},
              {"role": "assistant", "content": NO_THINK + "Hello! Ask me to add two numbers."}]
    elif kind == 1:
      msgs = [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "Who are you?"},
              {"role": "assistant", "content": NO_THINK + "I am r1jax tiny, a small model "
                                                          "that adds numbers step by step."}]
    elif kind == 2:
      p, q = int(x["answer"]), int(y["answer"])
      msgs = [{"role": "user", "content": f"Which is larger, {p} or {q}?"},
              {"role": "assistant",
               "content": NO_THINK + (f"{max(p, q)}" if p != q else "They are equal.")}]
    else:
      msgs = [{"role": "user", "content": x["question"]},
              {"role": "assistant", "content": _cold_start_answer(x)},
              {"role": "user", "content": "And " + y["question"].removeprefix("What is ")},
              {"role": "assistant", "content": _cold_start_answer(y)}]
    out.append(msgs)
  return out


# name -> (generator, size per split)
GENERATED = {
    "tiny_cold_start": (arithmetic_conversations, {"train": 1000, "test": 128}),
    "tiny_reasoning": (arithmetic_conversations, {"train": 6000, "test": 128}),
    "tiny_general": (general_conversations, {"train": 2000, "test": 64}),
}


# ------------------------------------------------------------------------------ reading


def to_messages(row: dict[str, Any]) -> Messages:
  """The messages of a JSONL row: {"messages"} or {"prompt", "completion"[, "system"]}."""
  if "messages" in row:
    msgs = row["messages"]
    if not isinstance(msgs, list):
      raise ValueError(f"'messages' must be a list, got {type(msgs).__name__}")
  elif "prompt" in row and "completion" in row:
    prompt, completion = row["prompt"], row["completion"]
    msgs = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    msgs += prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    msgs += (completion if isinstance(completion, list)
             else [{"role": "assistant", "content": completion}])
  else:
    raise ValueError(f"a row needs 'messages' or 'prompt' and 'completion'; has {sorted(row)}")
  return [_message(m) for m in msgs]


def _message(m: Any) -> Any:
  """{"role", "content"} of a message; an assistant's separate "reasoning_content" (as
  DeepSeek's API returns it) goes back into the content as <think>…</think>."""
  if not (isinstance(m, dict) and {"role", "content"} <= m.keys()):
    return m  # r1_chat_prompt's checks name what is wrong
  content = m["content"]
  if (m["role"] == "assistant" and isinstance(content, str)
      and isinstance(m.get("reasoning_content"), str)):
    content = f"<think>\n{m['reasoning_content']}\n</think>\n\n{content}"
  return {"role": m["role"], "content": content}


def _valid_messages(row: dict[str, Any]) -> Messages:
  msgs = to_messages(row)
  r1_chat_prompt(msgs, add_generation_prompt=False)  # validates roles and contents
  return msgs


def _read_file(path: str, on_error: str) -> list[Messages]:
  rows = read_jsonl(path, (), on_error=on_error, parse=_valid_messages,
                    what="malformed or invalid conversation")
  convs = [msgs for msgs in rows if any(m["role"] == "assistant" for m in msgs)]
  if len(convs) < len(rows):
    logging.warning("%s: skipped %d conversation(s) without an assistant turn (nothing to "
                    "learn) of %d", path, len(rows) - len(convs), len(rows))
  if not rows:
    raise ValueError(f"{path} holds no conversations (it is empty, or every line was skipped)")
  if not convs:
    raise ValueError(f"{path}: none of its {len(rows)} conversations has an assistant turn")
  return convs


def load_conversations(spec: str, *, seed: int = 0, on_error: str = "raise") -> list[Messages]:
  """Conversations of `spec` (see the module docstring); "a,b" concatenates sources."""
  convs: list[Messages] = []
  for part in (s.strip() for s in spec.split(",")):
    name, _, split = part.partition(":")
    if name in GENERATED:
      make, sizes = GENERATED[name]
      if split not in sizes:
        raise ValueError(f"source {part!r}: use {name}:train or {name}:test")
      convs += make(split, sizes[split], seed=seed)
    elif part.endswith(".jsonl"):
      convs += _read_file(part, on_error)
    else:
      raise ValueError(f"unknown conversation source {part!r}: a .jsonl path or one of "
                       f"{[f'{k}:train' for k in GENERATED]}")
  return convs


def hold_out(convs: Sequence[Messages], fraction: float, *,
             seed: int = 0) -> tuple[list[Messages], list[Messages]]:
  """(train, held_out): a seeded random `fraction` of `convs` held out (0: none)."""
  if not fraction:
    return list(convs), []
  if not 0 < fraction < 1:
    raise ValueError(f"config.data.eval_fraction={fraction} must lie in [0, 1)")
  n_eval = max(1, round(len(convs) * fraction))
  if n_eval >= len(convs):
    raise ValueError(f"config.data.eval_fraction={fraction} of {len(convs)} conversations "
                     "leaves none to train on")
  order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(convs))
  return ([convs[i] for i in sorted(order[n_eval:])], [convs[i] for i in order[:n_eval]])


def write_jsonl(path: str, conversations: Sequence[Messages]) -> None:
  """Writes conversations as {"messages": [...]} lines (the format `load_conversations` reads)."""
  with open(path, "w", encoding="utf-8") as f:
    for msgs in conversations:
      f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- rendering, tokenizing


def chat_pieces(messages: Messages) -> list[tuple[str, str]]:
  """The conversation in R1's chat format as (kind, text) pieces up to its last assistant
  turn, kind "prompt" | "answer" | "eos"; "".join of the texts is `r1_chat_prompt` of the
  earlier messages followed by ASSISTANT + the last answer, reasoning included, + EOS.
  The last two pieces are the learned answer and its EOS."""
  r1_chat_prompt(messages, add_generation_prompt=False)  # the template's input checks
  last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
  if last is None:
    raise ValueError("the conversation has no assistant turn: nothing to train on")
  pieces, prompt = [], BOS
  for i, m in enumerate(messages[:last + 1]):
    if m["role"] == "system":
      prompt += m["content"]
    elif m["role"] == "user":
      prompt += USER + m["content"]
    else:
      answer = m["content"] if i == last else m["content"].split("</think>")[-1]
      pieces += [("prompt", prompt + ASSISTANT), ("answer", answer), ("eos", EOS)]
      prompt = ""
  return pieces


def tokenize(messages: Messages, tokenizer, fmt: PromptFormat | None = None) -> Example:
  """(ids, mask) of the rendered conversation; mask 1 on the last assistant answer and its
  end (EOS, or the chat template's end-of-turn text).

  In R1's chat format (the default) each piece is encoded on its own, so a prompt is
  tokenized as at generation time and the mask boundaries are exact; BOS and EOS become
  the tokenizer's bos_id and eos_id. With a checkpoint's own chat template (`fmt` of
  template "chat") the prompt is the conversation before the last assistant turn with
  the generation prompt, the answer what rendering that turn too adds after it; each is
  encoded on its own, as at generation time.
  """
  if fmt is not None and fmt.template == "chat":
    return _tokenize_chat(messages, tokenizer, fmt)
  if fmt is not None and fmt.template != "r1_chat":
    raise ValueError(f"SFT renders conversations in a chat format; set config.data.template "
                     f"to 'r1_chat' or 'chat', not {fmt.template!r}")
  ids, mask = [], []
  pieces = chat_pieces(messages)
  for i, (kind, text) in enumerate(pieces):
    if kind == "eos":
      piece = [tokenizer.eos_id]
    elif text.startswith(BOS):
      piece = [tokenizer.bos_id] + tokenizer.encode(text[len(BOS):])
    else:
      piece = tokenizer.encode(text)
    ids += piece
    mask += [int(i >= len(pieces) - 2)] * len(piece)
  return ids, mask


def _tokenize_chat(messages: Messages, tokenizer, fmt: PromptFormat) -> Example:
  last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
  if last is None:
    raise ValueError("the conversation has no assistant turn: nothing to train on")
  prompt = fmt.conversation(messages[:last], add_generation_prompt=True) if last else ""
  full = fmt.conversation(messages[:last + 1], add_generation_prompt=False)
  if not full.startswith(prompt):
    raise ValueError(f"the chat template of {fmt.where} renders the turns before the last "
                     "assistant turn (with its generation prompt) differently from the start of "
                     "the whole conversation, so its answer tokens cannot be told apart; use "
                     "config.data.template='r1_chat'")
  prompt_ids, answer_ids = tokenizer.encode(prompt), tokenizer.encode(full[len(prompt):])
  return prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids)


def fit_to_length(examples: Sequence[Example], seq_len: int, overflow: str = "truncate",
                  *, source: str = "") -> list[Example]:
  """Examples longer than seq_len cut to it ("truncate") or left out ("drop"), with a count.

  A truncated example left without any trained token is dropped.
  """
  if overflow not in OVERFLOW:
    raise ValueError(f"config.data.overflow={overflow!r}; use one of {OVERFLOW}")
  out, long, empty = [], 0, 0
  for ids, mask in examples:
    if len(ids) > seq_len:
      long += 1
      if overflow == "drop":
        continue
      ids, mask = ids[:seq_len], mask[:seq_len]
      if not any(mask):
        empty += 1
        continue
    out.append((ids, mask))
  if long:
    logging.warning("%s: %d of %d conversations are longer than seq_len=%d: %s%s", source or
                    "conversations", long, len(examples), seq_len,
                    "dropped" if overflow == "drop" else "truncated",
                    f" ({empty} dropped: no answer token left)" if empty else "")
  if not out:
    raise ValueError(f"{source or 'conversations'}: no conversation fits in seq_len={seq_len}; "
                     "raise config.data.seq_len")
  return out


# ----------------------------------------------------------------------------- packing


def pack(lengths: Sequence[int], seq_len: int, *, window: int = 64) -> list[list[int]]:
  """First-fit packing: rows of indices into `lengths`, each row's total <= seq_len.

  An item goes into the first open row with room, else opens a row; only the `window`
  most recent rows stay open, so the cost is O(len(lengths)·window). Rows come in the
  order they were opened, items in each row in input order.
  """
  rows: list[list[int]] = []
  room: list[int] = []
  open_rows: list[int] = []
  for i, n in enumerate(lengths):
    if not 0 < n <= seq_len:
      raise ValueError(f"item {i} has length {n}, outside (0, seq_len={seq_len}]")
    for r in open_rows:
      if room[r] >= n:
        break
    else:
      r = len(rows)
      rows.append([])
      room.append(seq_len)
      open_rows.append(r)
      if len(open_rows) > window:
        open_rows.pop(0)
    rows[r].append(i)
    room[r] -= n
    if room[r] == 0:
      open_rows.remove(r)
  return rows


def packed_batch(rows: Sequence[Sequence[Example]], seq_len: int, pad_id: int,
                 batch_size: int | None = None) -> dict[str, np.ndarray]:
  """A token batch (see `r1jax.losses.lm`) of [B, seq_len] arrays from rows of examples.

  Example k of a row gets segment id k + 1 and positions 0, 1, …; padding has segment 0,
  loss mask 0 and pad_id. batch_size (default len(rows)) adds empty rows at the end.
  """
  B = batch_size or len(rows)
  if len(rows) > B:
    raise ValueError(f"{len(rows)} rows do not fit a batch of {B}")
  batch = {k: np.zeros((B, seq_len), np.int32)
           for k in ("tokens", "loss_mask", "segment_ids", "positions")}
  batch["tokens"][:] = pad_id
  for b, row in enumerate(rows):
    t = 0
    for k, (ids, mask) in enumerate(row):
      n = len(ids)
      if t + n > seq_len:
        raise ValueError(f"row {b} holds {t + n} tokens, more than seq_len={seq_len}")
      batch["tokens"][b, t:t + n] = ids
      batch["loss_mask"][b, t:t + n] = mask
      batch["segment_ids"][b, t:t + n] = k + 1
      batch["positions"][b, t:t + n] = np.arange(n)
      t += n
  return batch


def packed_batches(examples: Sequence[Example], seq_len: int, batch_size: int,
                   pad_id: int) -> list[dict[str, np.ndarray]]:
  """Every example, packed in order, as batches (the last one padded with empty rows)."""
  rows = pack([len(ids) for ids, _ in examples], seq_len)
  return [packed_batch([[examples[i] for i in row] for row in rows[j:j + batch_size]],
                       seq_len, pad_id, batch_size) for j in range(0, len(rows), batch_size)]


class ConversationIterator:
  """Endless packed batches, epoch after epoch; `get_state`/`set_state` make it resumable.

  Epoch e visits every example once in the order of a permutation seeded by (seed, e),
  packed first-fit into rows of seq_len; its last batch is filled up with empty rows.
  """

  def __init__(self, examples: Sequence[Example], *, batch_size: int, seq_len: int,
               pad_id: int, seed: int):
    if not examples:
      raise ValueError("the conversation dataset is empty")
    # arrays, not lists of Python ints: a tenth of the memory for large datasets
    self.examples = [(np.asarray(ids, np.int32), np.asarray(mask, np.int8))
                     for ids, mask in examples]
    self.batch_size, self.seq_len = batch_size, seq_len
    self.pad_id, self.seed = pad_id, seed
    self.epoch, self.batch = 0, 0
    self._rows_epoch, self._rows = -1, []

  def rows(self, epoch: int) -> list[list[int]]:
    """The packed rows of `epoch` (indices into the examples)."""
    if epoch != self._rows_epoch:
      order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
      rows = pack([len(self.examples[i][0]) for i in order], self.seq_len)
      self._rows, self._rows_epoch = [[int(order[i]) for i in row] for row in rows], epoch
    return self._rows

  def batches_in_epoch(self, epoch: int) -> int:
    return -(-len(self.rows(epoch)) // self.batch_size)

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self.batch >= self.batches_in_epoch(self.epoch):
      self.epoch, self.batch = self.epoch + 1, 0
    rows = self.rows(self.epoch)[self.batch * self.batch_size:(self.batch + 1) * self.batch_size]
    self.batch += 1
    return packed_batch([[self.examples[i] for i in row] for row in rows], self.seq_len,
                        self.pad_id, self.batch_size)

  @property
  def progress(self) -> float:
    """Epochs done, fractional: 1.5 = halfway through the second epoch."""
    return self.epoch + self.batch / self.batches_in_epoch(self.epoch)

  def get_state(self) -> dict[str, int]:
    return {"epoch": self.epoch, "batch": self.batch, "num_examples": len(self.examples)}

  def set_state(self, state: dict[str, int]) -> None:
    if state.get("num_examples", len(self.examples)) != len(self.examples):
      logging.warning("the checkpoint's data state is for %d conversations, this run has %d; "
                      "resuming at its epoch %d, batch %d anyway", state["num_examples"],
                      len(self.examples), state["epoch"], state["batch"])
    self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
