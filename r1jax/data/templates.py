"""Prompt rendering: R1-Zero's plain-text template (R1 Table 1) and R1's chat format.

  r1_zero_prompt("What is 2 + 3?")   the base-model prompt, ending in "Assistant:"
  r1_chat_prompt(messages)           <｜begin▁of▁sentence｜>{system}<｜User｜>{user}
                                     <｜Assistant｜>{answer}<｜end▁of▁sentence｜>…
                                     <｜Assistant｜><think>\\n
  render_chat(chat_template, msgs)   a checkpoint's own Jinja chat template, rendered as
                                     transformers' apply_chat_template renders it
  prompt_format(template, tokenizer) what config.data.template names (r1_zero | r1_chat |
                                     chat | plain): `.question()`, `.record()`,
                                     `.conversation()`, `.encode()` and `.stop_ids()`

Every stage and program renders prompts here: GRPO rollouts, SFT, evaluation, rejection
sampling and cold-start data see the same text and ids for the same record.

The chat layout follows DeepSeek-R1's tokenizer chat template: the system prompt right
after BOS, no separators between turns, and past assistant turns reduced to the text after
their last "</think>" (the reasoning of earlier turns is not fed back). The generation
prompt opens the think block, so the completion starts inside it (see
rewards.format.think_is_prefilled).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.sandbox

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


# ----------------------------------------------------------- a checkpoint's chat template

# Tokens that end an assistant turn in common chat templates (ChatML, Llama 3, Phi, Gemma):
# generation stops at those a template uses, as well as at the tokenizer's eos.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|end_of_turn|>")


class _Generation(jinja2.ext.Extension):
  """`{% generation %}...{% endgeneration %}` (transformers' marker of assistant text in
  some templates) renders its body; r1jax finds assistant tokens by rendering prefixes."""
  tags = {"generation"}

  def parse(self, parser):
    lineno = next(parser.stream).lineno
    body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
    return jinja2.nodes.Scope(body, lineno=lineno)


def _raise(message: str):
  raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
  return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                    sort_keys=sort_keys)


@functools.lru_cache(maxsize=16)
def _compile(chat_template: str) -> jinja2.Template:
  """A chat template compiled in a sandbox, with the environment transformers'
  apply_chat_template gives templates (trim_blocks, lstrip_blocks, loop controls, tojson,
  raise_exception, strftime_now), so templates written for it render the same here."""
  env = jinja2.sandbox.ImmutableSandboxedEnvironment(
      trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols])
  env.filters["tojson"] = _tojson
  env.globals.update(raise_exception=_raise,
                     strftime_now=lambda fmt: datetime.datetime.now().strftime(fmt))
  return env.from_string(chat_template)


def render_chat(chat_template: str, messages: list[dict], *, add_generation_prompt: bool,
                special_tokens: dict[str, str] | None = None, where: str = "") -> str:
  """`messages` in a Jinja chat template, as transformers' `apply_chat_template(...,
  tokenize=False)` renders them. `special_tokens` ({"bos_token": "<s>", ...}) are the
  template's variables of those names. Errors name the template's source (`where`) and,
  for a template that fails on some messages, the first message it fails on."""
  _check_messages(messages)
  try:
    template = _compile(chat_template)
  except jinja2.exceptions.TemplateError as e:
    raise ValueError(f"the chat template of {where or 'the tokenizer'} does not compile: {e}") from None
  context = dict(special_tokens or {})

  def render(msgs, generation_prompt):
    return template.render(messages=msgs, add_generation_prompt=generation_prompt, **context)

  try:
    return render(list(messages), add_generation_prompt)
  except jinja2.exceptions.TemplateError as e:
    failing = next((k for k in range(1, len(messages)) if _fails(render, messages[:k])),
                   len(messages))
    raise ValueError(f"the chat template of {where or 'the tokenizer'} fails on messages"
                     f"[{failing - 1}] (role {messages[failing - 1]['role']!r}): {e}") from None


def _fails(render, messages) -> bool:
  try:
    render(list(messages), False)
    return False
  except jinja2.exceptions.TemplateError:
    return True


# ------------------------------------------------------------- what a config asks for

TEMPLATES = ("r1_zero", "r1_chat", "chat", "plain")  # config.data.template


@dataclasses.dataclass(frozen=True)
class PromptFormat:
  """How a config's prompts become text and token ids (config.data.template):

    r1_zero  R1's plain-text template for base models (R1 Table 1)
    r1_chat  DeepSeek-R1's chat format, the generation prompt opening <think>
    chat     the checkpoint's own Jinja chat template (`tokenizer.chat_template`), with
             its generation prompt, as transformers' apply_chat_template renders it
    plain    the question as it is

  `encode` gives the ids the model sees: for r1_* and plain the tokenizer's bos id, then
  the text (R1's EOS string, which ends an earlier turn of a conversation, as eos_id, as
  SFT tokenized it); for chat the text alone, since a template writes the bos it wants
  (Llama 3's does, ChatML's has none), so no bos is ever doubled.
  """
  template: str
  chat_template: str | None = None
  special_tokens: tuple[tuple[str, str], ...] = ()  # the chat template's bos_token, ...
  where: str = ""  # where the chat template came from, for errors

  def question(self, question: str, instruction: str = "") -> str:
    """The prompt for `question`, `instruction` appended (e.g. "Please reason step by
    step, and put your final answer within \\boxed{}." as DeepSeek recommends)."""
    question = f"{question} {instruction}".strip() if instruction else question
    if self.template == "r1_zero":
      return r1_zero_prompt(question)
    if self.template == "plain":
      return question
    return self.conversation([{"role": "user", "content": question}])

  def record(self, record: dict, instruction: str = "") -> str:
    """The prompt of a prompt record: its question or, for a conversation record (with
    "messages", see r1jax.data.datasets), its turns and the generation prompt (the
    instruction is not added)."""
    if "messages" not in record:
      return self.question(record["question"], instruction)
    if self.template not in ("r1_chat", "chat"):
      raise ValueError(f"conversation prompts need a chat format; set the template to "
                       f"'r1_chat' or 'chat', not {self.template!r}")
    return self.conversation(record["messages"])

  def conversation(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
    """`messages` rendered in the chat format (r1_chat without the BOS string, which the
    tokenizer adds as its id: `encode`)."""
    if self.template == "r1_chat":
      return r1_chat_prompt(messages, add_generation_prompt=add_generation_prompt, bos="")
    if self.template != "chat":
      raise ValueError(f"template {self.template!r} has no conversations")
    return render_chat(self.chat_template, messages, add_generation_prompt=add_generation_prompt,
                       special_tokens=dict(self.special_tokens), where=self.where)

  def encode(self, tokenizer, text: str) -> list[int]:
    """The token ids of a prompt in this format (see the class docstring)."""
    if self.template == "chat":
      return tokenizer.encode(text)
    ids = [tokenizer.bos_id]
    for i, part in enumerate(text.split(EOS)):
      ids += ([tokenizer.eos_id] if i else []) + (tokenizer.encode(part) if part else [])
    return ids

  def stop_ids(self, tokenizer) -> tuple[int, ...]:
    """Ids that end a completion: the eos, and the end-of-turn tokens a chat template uses."""
    ids = [tokenizer.eos_id]
    for token in END_OF_TURN if self.template == "chat" else ():
      i = tokenizer.token_to_id(token)
      if i is not None and token in self.chat_template and i not in ids:
        ids.append(i)
    return tuple(ids)


def prompt_format(template: str, tokenizer=None) -> PromptFormat:
  """The PromptFormat for config.data.template; "chat" reads the tokenizer's chat template
  and its special tokens (a clear error when the checkpoint has none)."""
  if template not in TEMPLATES:
    raise ValueError(f"unknown config.data.template={template!r}; one of "
                     f"{', '.join(map(repr, TEMPLATES))}")
  if template != "chat":
    return PromptFormat(template)
  where = str(getattr(tokenizer, "path", "the tokenizer"))
  chat_template = getattr(tokenizer, "chat_template", None)
  if not chat_template:
    raise ValueError(f"config.data.template='chat' renders prompts with the checkpoint's own "
                     f"chat template, and {where} has none (no chat_template in its "
                     "tokenizer_config.json, no chat_template.jinja); use 'r1_chat', 'r1_zero' "
                     "or 'plain'")
  special = {f"{k}_token": tokenizer.decode([getattr(tokenizer, f"{k}_id")], skip_special=False)
             for k in ("bos", "eos", "pad")}
  return PromptFormat("chat", chat_template, tuple(sorted(special.items())), where)
