"""Prompt rendering: R1-Zero's plain-text template (R1 Table 1) and R1's chat format.

  r1_zero_prompt("What is 2 + 3?")   the base-model prompt, ending in "Assistant:"
  r1_chat_prompt(messages)           <｜begin▁of▁sentence｜>{system}<｜User｜>{user}
                                     <｜Assistant｜>{answer}<｜end▁of▁sentence｜>…
                                     <｜Assistant｜><think>\\n
  prompt_text(template, question)    a question in the template a config names
                                     (config.data.template: r1_zero | r1_chat | none)
  record_prompt(template, record)    a prompt record's prompt (a question or a conversation)
  encode_prompt(tokenizer, text)     its token ids, as SFT tokenized the conversation

Every stage and program renders prompts here: GRPO rollouts, evaluation, rejection
sampling and cold-start data see the same text for the same record.

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


def prompt_text(template: str, question: str, instruction: str = "") -> str:
  """The prompt for `question`: the R1-Zero template (R1 Table 1), DeepSeek-R1's chat
  format ending in "<｜Assistant｜><think>\n" (for R1 and its distilled students; without
  the BOS string, which the tokenizer adds as its id, as SFT does), or the bare question.
  `instruction` is appended to the question, e.g. "Please reason step by step, and put
  your final answer within \\boxed{}." as DeepSeek recommends."""
  question = f"{question} {instruction}".strip() if instruction else question
  if template == "r1_zero":
    return r1_zero_prompt(question)
  if template == "r1_chat":  # the tokenizer adds BOS as its id: encode with add_bos=True
    return r1_chat_prompt([{"role": "user", "content": question}], bos="")
  if template == "none":
    return question
  raise ValueError(f"unknown config.data.template={template!r}; one of 'r1_zero', 'r1_chat', "
                   "'none'")


def record_prompt(template: str, record: dict, instruction: str = "") -> str:
  """The prompt of a prompt record: `prompt_text` of its question or, for a conversation
  record (with "messages", see r1jax.data.datasets), its turns in R1's chat format ending
  in the generation prompt (template "r1_chat" only; the instruction is not added)."""
  if "messages" not in record:
    return prompt_text(template, record["question"], instruction)
  if template != "r1_chat":
    raise ValueError(f"conversation prompts are rendered in R1's chat format; set the "
                     f"template to 'r1_chat', not {template!r}")
  return r1_chat_prompt(record["messages"], bos="")


def encode_prompt(tokenizer, text: str) -> list[int]:
  """[bos_id] + the ids of `text`, each R1 EOS string in it (the end of an earlier
  assistant turn of a conversation) as eos_id, as SFT tokenized the conversation."""
  ids = [tokenizer.bos_id]
  for i, part in enumerate(text.split(EOS)):
    ids += ([tokenizer.eos_id] if i else []) + (tokenizer.encode(part) if part else [])
  return ids
