"""A checkpoint's own Jinja chat template renders, and tokenizes, as transformers does.

Three real templates (tests/data/chat_templates: SmolLM2's ChatML with a default system
prompt, Qwen2.5's with tools, Llama 3's that writes the BOS itself) on multi-turn
conversations with and without a system message: the text equals transformers'
`apply_chat_template(tokenize=False)` and the ids its `tokenize=True` (so no BOS is doubled
or added), with and without the generation prompt; SFT's assistant mask covers exactly
the last answer; and bad input fails with a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tokenizers as hf_tok

from r1jax.data import conversations
from r1jax.data.templates import PromptFormat, prompt_format, render_chat
from r1jax.data.tokenizers import HFTokenizer

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
SPECIAL = {"smollm2": ("<|im_start|>", "<|im_end|>", "<|im_end|>"),
           "qwen2_5": ("<|endoftext|>", "<|im_end|>", "<|endoftext|>"),
           "llama3": ("<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"),
           "blocks": ("<|begin_of_text|>", "<|endoftext|>", "<|endoftext|>")}
ADDED = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>",
         "<|start_header_id|>", "<|end_header_id|>"]
CONVERSATIONS = [
    [{"role": "user", "content": "What is 12 + 30?"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "Natalia sold clips to 48 of her friends."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "  Add 3 and 5.  "}],
    [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"},
     {"role": "assistant", "content": "<think> 3 + 3 = 6 </think> 6"}],
]


def _tokenizer(tmp: Path, name: str) -> HFTokenizer:
  """A small byte-level BPE with the template's special tokens, written as a checkpoint's
  tokenizer directory (tokenizer.json + tokenizer_config.json with the chat template)."""
  tok = hf_tok.Tokenizer(hf_tok.models.BPE())
  tok.pre_tokenizer = hf_tok.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = hf_tok.decoders.ByteLevel()
  trainer = hf_tok.trainers.BpeTrainer(vocab_size=400, special_tokens=ADDED, show_progress=False,
                                       initial_alphabet=hf_tok.pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator([m["content"] for c in CONVERSATIONS for m in c] * 20, trainer)
  path = tmp / name
  path.mkdir()
  tok.save(str(path / "tokenizer.json"))
  bos, eos, pad = SPECIAL[name]
  (path / "tokenizer_config.json").write_text(json.dumps({
      "bos_token": bos, "eos_token": eos, "pad_token": pad, "add_bos_token": False,
      "tokenizer_class": "PreTrainedTokenizerFast",
      "chat_template": (TEMPLATES / f"{name}.jinja").read_text()}))
  return HFTokenizer(path)


@pytest.fixture(scope="module", params=sorted(SPECIAL))
def pair(request, tmp_path_factory):
  """(r1jax's tokenizer, transformers' AutoTokenizer) of one template's directory."""
  from transformers import AutoTokenizer

  ours = _tokenizer(tmp_path_factory.mktemp("tok"), request.param)
  return request.param, ours, AutoTokenizer.from_pretrained(str(ours.path))


@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_renders_and_tokenizes_as_transformers(pair, index, generation_prompt):
  name, tok, ref = pair
  messages = CONVERSATIONS[index]
  fmt = prompt_format("chat", tok)
  text = fmt.conversation(messages, add_generation_prompt=generation_prompt)
  assert text == ref.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=generation_prompt)
  ids = ref.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
  ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
  assert fmt.encode(tok, text) == list(ids)
  bos = tok.token_to_id(SPECIAL[name][0])
  assert fmt.encode(tok, text).count(bos) == text.count(SPECIAL[name][0])  # never added


def test_a_question_is_a_user_turn(pair):
  name, tok, ref = pair
  fmt = prompt_format("chat", tok)
  want = ref.apply_chat_template([{"role": "user", "content": "What is 2 + 3? Be brief."}],
                                 tokenize=False, add_generation_prompt=True)
  assert fmt.question("What is 2 + 3?", "Be brief.") == want
  assert fmt.record({"question": "ignored", "messages": CONVERSATIONS[2]}) == \
      ref.apply_chat_template(CONVERSATIONS[2], tokenize=False, add_generation_prompt=True)
  stops = fmt.stop_ids(tok)
  assert stops[0] == tok.eos_id and tok.token_to_id(SPECIAL[name][1]) in stops
  if name == "qwen2_5":  # its eos is <|im_end|>'s, and <|endoftext|> ends nothing here
    assert stops == (tok.eos_id,)


def test_sft_trains_the_last_answer_only(pair):
  name, tok, _ = pair
  fmt = prompt_format("chat", tok)
  messages = CONVERSATIONS[3]
  ids, mask = conversations.tokenize(messages, tok, fmt)
  assert ids == fmt.encode(tok, fmt.conversation(messages, add_generation_prompt=False))
  learned = tok.decode([i for i, m in zip(ids, mask) if m], skip_special=False)
  assert learned.lstrip().startswith("<think> 3 + 3 = 6 </think> 6") and SPECIAL[name][1] in learned
  context = tok.decode([i for i, m in zip(ids, mask) if not m], skip_special=False)
  assert "Answer with a number." in context and context.count("4") >= 1
  assert mask == sorted(mask)  # the answer is one run at the end


def test_errors_name_the_checkpoint_and_the_choices(tmp_path):
  tok = _tokenizer(tmp_path, "smollm2")
  tok.chat_template = None
  with pytest.raises(ValueError, match=r"has none.*'r1_chat', 'r1_zero' or 'plain'") as e:
    prompt_format("chat", tok)
  assert str(tok.path) in str(e.value)
  with pytest.raises(ValueError, match=r"unknown config.data.template='chatml'.*'plain'"):
    prompt_format("chatml", tok)
  failing = PromptFormat("chat", "{% for m in messages %}{% if m.role == 'assistant' %}"
                         "{{ raise_exception('no assistant turns here') }}{% endif %}"
                         "{{ m.content }}{% endfor %}", where="ckpt/")
  with pytest.raises(ValueError, match=r"ckpt/ fails on messages\[1\] \(role 'assistant'\): "
                                        "no assistant turns here"):
    failing.conversation(CONVERSATIONS[2])
  with pytest.raises(ValueError, match=r"does not compile"):
    render_chat("{% for m in messages %}", CONVERSATIONS[0], add_generation_prompt=True)
  with pytest.raises(ValueError, match=r"conversation prompts need a chat format"):
    prompt_format("r1_zero").record({"question": "q", "messages": CONVERSATIONS[0]})
  with pytest.raises(ValueError, match=r"SFT renders conversations in a chat format"):
    conversations.tokenize(CONVERSATIONS[3], tok, prompt_format("plain"))


def test_the_generation_tag_renders_its_body():
  template = ("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
              "{{ m.content }}{% endgeneration %}{% else %}[{{ m.content }}]{% endif %}{% endfor %}")
  assert render_chat(template, CONVERSATIONS[2], add_generation_prompt=False) == \
      "[Hi]Hello! How can I help?[  Add 3 and 5.  ]"
