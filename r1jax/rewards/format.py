"""R1-Zero's format reward (R1 §2.2.2): reasoning in <think>, the answer in <answer>.

  format_reward     1.0 iff the completion is exactly <think> … </think> <answer> … </answer>
  tag_count_reward  0.25 per tag used exactly once: a denser signal for tiny models

The R1-Zero prompt ends with "Assistant:", so the completion itself opens the think block.
A template may instead prefill "<think>" at the end of the prompt (`r1_zero_prompt(...,
prefill_think=True)`, the R1 chat template); then the completion starts inside the block
and must not open it again. `think_prefilled=None` (the default) infers this from the
prompt; True/False forces it.

The rollout decodes completions with their stop token, so trailing special tokens such as
"</s>", "<|endoftext|>" or "<｜end▁of▁sentence｜>" are ignored; any other text after
</answer> fails the format.
"""

from __future__ import annotations

import re

TAGS = ("<think>", "</think>", "<answer>", "</answer>")

_FORMAT = re.compile(r"\s*<think>(.*)</think>\s*<answer>(.*)</answer>\s*", re.DOTALL)
_SPECIAL_TOKEN = re.compile(r"</s>|<eos>|<\|[^<>|\s]+\|>|<｜[^<>｜\s]+｜>")


def think_is_prefilled(prompt: str) -> bool:
  """Whether `prompt` ends by opening the think block (the completion starts inside it)."""
  return prompt.rstrip().endswith("<think>")


def full_text(prompt: str, completion: str, think_prefilled: bool | None) -> str:
  """The completion with a prefilled "<think>" put back and trailing stop tokens removed."""
  if think_prefilled is None:
    think_prefilled = think_is_prefilled(prompt)
  # Walk back over "… </s> </s>" by index: slicing off one token at a time would copy the
  # text once per token, quadratic in a completion of a million stop tokens.
  text, end = completion, len(completion.rstrip())
  while (i := text.rfind("<", 0, end)) >= 0 and _SPECIAL_TOKEN.fullmatch(text, i, end):
    end = i
    while end and text[end - 1].isspace():
      end -= 1
  text = text[:end]
  return "<think>" + text if think_prefilled else text


def is_well_formatted(text: str) -> bool:
  """<think>r</think> <answer>a</answer> with r, a non-blank and free of the four tags."""
  if any(text.count(t) != 1 for t in TAGS):  # also keeps the regex below linear-time
    return False
  m = _FORMAT.fullmatch(text)
  return bool(m) and all(part.strip() for part in m.groups())


def format_reward(prompts: list[str], completions: list[str], *,
                  think_prefilled: bool | None = None, **_) -> list[float]:
  """1.0 where the completion follows R1-Zero's <think>/<answer> format exactly, else 0.0."""
  return [float(is_well_formatted(full_text(p, c, think_prefilled)))
          for p, c in zip(prompts, completions, strict=True)]


def tag_count_reward(prompts: list[str], completions: list[str], *,
                     think_prefilled: bool | None = None, **_) -> list[float]:
  """0.25 for each of <think>, </think>, <answer>, </answer> that occurs exactly once.

  Partial credit for tiny models that rarely hit the whole format by chance; the order of
  the tags is format_reward's business. With a prefilled "<think>" that tag counts as used
  (and a second one in the completion makes it used twice).
  """
  out = []
  for p, c in zip(prompts, completions, strict=True):
    text = full_text(p, c, think_prefilled)
    out.append(0.25 * sum(text.count(t) == 1 for t in TAGS))
  return out
