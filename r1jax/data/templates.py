"""Prompt templates: R1-Zero's plain-text template (R1 Table 1) and R1's chat format.

  r1_zero_prompt("What is 2 + 3?")   the base-model prompt, ending in "Assistant:"
  r1_chat_prompt(messages)           <｜begin▁of▁sentence｜>{system}<｜User｜>{user}
                                     <｜Assistant｜>{answer}<｜end▁of▁sentence｜>…
                                     <｜Assistant｜><think>\\n

The chat layout follows DeepSeek-R1's tokenizer chat template: the system prompt right
after BOS, no separators between turns, and past assistant turns reduced to the text after
their last "</think>" (the reasoning of earlier turns is not fed back). The generation
prompt opens the think block, so the completion starts inside it (see
rewards.format.think_is_prefilled).
"""

from __future__ import annotations

# R1 Table 1, verbatim; {prompt} is the question.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: {prompt}. Assistant:")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
ROLES = ("system", "user", "assistant")


def r1_zero_prompt(question: str, *, prefill_think: bool = False) -> str:
  """R1_ZERO_TEMPLATE around `question` (stripped); with `prefill_think`, " <think>" is
  appended so the completion starts inside the reasoning block."""
  if not isinstance(question, str):
    raise ValueError(f"question must be a str, got {type(question).__name__}")
  if not question.strip():
    raise ValueError("question is empty; every prompt record needs a non-empty 'question'")
  prompt = R1_ZERO_TEMPLATE.format(prompt=question.strip())
  return prompt + " <think>" if prefill_think else prompt


def _check_messages(messages: list[dict]) -> None:
  if not isinstance(messages, (list, tuple)) or not messages:
    raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...}")
  for i, m in enumerate(messages):
    if not isinstance(m, dict) or "role" not in m or "content" not in m:
      raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {m!r:.80}")
    if m["role"] not in ROLES:
      raise ValueError(f"messages[{i}] has unknown role {m['role']!r}; use one of {ROLES}")
    if not isinstance(m["content"], str):
      raise ValueError(f"messages[{i}]['content'] must be a str, got "
                       f"{type(m['content']).__name__}")
    if m["role"] == "system" and i:
      raise ValueError(f"messages[{i}] is a system message; only messages[0] may be one "
                       "(merge system prompts into the first message)")
    if m["role"] == "user" and not m["content"].strip():
      raise ValueError(f"messages[{i}] is a user message with empty content")


def r1_chat_prompt(messages: list[dict], *, add_generation_prompt: bool = True,
                   bos: str = BOS) -> str:
  """The conversation in DeepSeek-R1's chat format (see the module docstring).

  messages: [{"role": "system" | "user" | "assistant", "content": str}, ...], a system
  message only first. With `add_generation_prompt` the text ends in "<｜Assistant｜><think>\\n".
  """
  _check_messages(messages)
  parts = [bos]
  for m in messages:
    if m["role"] == "system":
      parts.append(m["content"])
    elif m["role"] == "user":
      parts.append(USER + m["content"])
    else:
      parts.append(ASSISTANT + m["content"].split("</think>")[-1] + EOS)
  if add_generation_prompt:
    parts.append(ASSISTANT + "<think>\n")
  return "".join(parts)
