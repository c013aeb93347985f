"""Tokenizers: the shipped SentencePiece model (round trips, tags, digits, ids) and an HF
tokenizer.json trained here, checked against `tokenizers` and `transformers` directly."""

import json

import numpy as np
import pytest
import sentencepiece as spm
import tokenizers as hf

from r1jax.data.tokenizers import (TAGS, TINY_PATH, HFTokenizer, SentencePieceTokenizer, Tokenizer,
                              load_tokenizer)

TEXTS = [
    "What is 47 + 38?",
    "Janet’s ducks lay 16 eggs per day.  She eats three\nfor breakfast.\n#### 18",
    "  leading and trailing spaces, tabs\tand\r\nCRLF  ",
    "$\\frac{\\pi}{2}$ and \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
    "中文：你好，世界！ 日本語 한국어 Ελληνικά ∑∫√ ½ 🙂🚀👩‍👩‍👧",
    "\x00 control \x7f bytes and a lone <unk> or <s> written as text",
    "",
]


@pytest.fixture(scope="module")
def tiny():
  return load_tokenizer("r1jax_tiny")


@pytest.fixture(scope="module")
def sp_ref():
  return spm.SentencePieceProcessor(model_file=str(TINY_PATH))


def test_shipped_model_round_trips_any_text(tiny):
  assert isinstance(tiny, Tokenizer) and isinstance(tiny, SentencePieceTokenizer)
  for text in TEXTS:
    ids = tiny.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tiny.vocab_size for i in ids)
    assert tiny.decode(ids) == text
  assert tiny.decode_batch(tiny.encode_batch(TEXTS)) == TEXTS
  assert 1 not in tiny.encode(TEXTS[4])  # byte fallback, never <unk>


def test_ids_and_vocab(tiny, sp_ref):
  assert (tiny.vocab_size, tiny.pad_id, tiny.bos_id, tiny.eos_id) == (1024, 0, 2, 3)
  assert [sp_ref.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
  assert sp_ref.unk_id() == 1 and sp_ref.get_piece_size() == 1024
  assert TINY_PATH.stat().st_size < 64_000


def test_tags_are_single_ids_and_survive(tiny, sp_ref):
  for tag in TAGS:
    i = tiny.token_to_id(tag)
    assert i is not None and tiny.special_tokens[tag] == i
    assert tiny.encode(tag) == [i] and sp_ref.id_to_piece(i) == tag
  text = " <think> 7 + 8 = 15 </think> <answer>15</answer>"
  ids = tiny.encode(text)
  assert [i for i in ids if i in tiny.special_tokens.values()] == [
      tiny.special_tokens[t] for t in TAGS]
  assert tiny.decode(ids) == tiny.decode(ids, skip_special=True) == text
  assert tiny.token_to_id("no such piece") is None
  assert tiny.token_to_id("<unk>") == 1


def test_digits_are_one_token_each(tiny, sp_ref):
  ids = tiny.encode("12345")
  assert [sp_ref.id_to_piece(i) for i in ids] == ["1", "2", "3", "4", "5"]
  ids = tiny.encode("x = 9081726354")
  assert sum(sp_ref.id_to_piece(i).isdigit() for i in ids) == 10
  assert all(len(p) == 1 for p in map(sp_ref.id_to_piece, ids) if any(c.isdigit() for c in p))


def test_bos_eos_and_decoding_specials(tiny):
  body = tiny.encode("<answer> 18 </answer>")
  assert tiny.encode("<answer> 18 </answer>", add_bos=True) == [2] + body
  assert tiny.encode("<answer> 18 </answer>", add_eos=True) == body + [3]
  ids = tiny.encode("<answer> 18 </answer>", add_bos=True, add_eos=True) + [0, 0]
  assert tiny.decode(ids) == "<s><answer> 18 </answer></s><pad><pad>"
  assert tiny.decode(np.asarray(ids), skip_special=True) == "<answer> 18 </answer>"
  # Specials between runs must not eat the space that starts the next run.
  assert tiny.decode(tiny.encode("a") + [3] + tiny.encode(" b")) == "a</s> b"


def test_prompt_and_completion_encode_like_the_whole(tiny):
  # SFT encodes prompt and completion separately; rollouts see them as one text.
  prompt = "User: What is 47 + 38?. Assistant:"
  completion = " <think> 7 + 8 = 15 , 4 + 3 + 1 = 8 </think> <answer> 85 </answer>"
  assert tiny.encode(prompt) + tiny.encode(completion) == tiny.encode(prompt + completion)


def test_sentencepiece_model_without_pad_pads_with_eos(tmp_path):
  path = tmp_path / "nopad.model"
  with open(path, "wb") as f:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["the cat sat on the mat", "a dog and a cat"] * 50),
        model_writer=f, vocab_size=30, model_type="bpe", byte_fallback=False,
        minloglevel=2)
  tok = load_tokenizer(path)
  ref = spm.SentencePieceProcessor(model_file=str(path))
  assert ref.pad_id() == -1
  assert tok.pad_id == tok.eos_id == ref.eos_id() and tok.bos_id == ref.bos_id()
  assert tok.encode("the cat") == ref.encode("the cat")
  # This model adds a dummy-prefix space: "a dog" starts with the piece "▁a".
  ids = ref.encode("the cat") + [ref.eos_id()] + ref.encode("a dog")
  assert tok.decode(ids) == "the cat</s> a dog"
  assert tok.decode(ids, skip_special=True) == ref.decode(ids) == "the cat a dog"
  assert not any(t in tok.special_tokens for t in TAGS)


# --------------------------------------------------------------------------- HF


def _write_hf_dir(path, tokenizer_config: dict, config: dict | None = None):
  tok = hf.Tokenizer(hf.models.BPE())
  tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = hf.decoders.ByteLevel()
  trainer = hf.trainers.BpeTrainer(
      vocab_size=400, special_tokens=["<|endoftext|>", "<|pad|>"],
      initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
  corpus = ["The cat sat on the mat.", "What is 47 + 38? The answer is 85.",
            "A conversation between User and Assistant."] * 20
  tok.train_from_iterator(corpus, trainer)
  # Like DeepSeek-R1's tokenizer.json: the tags are added tokens, but not special ones.
  tok.add_tokens([hf.AddedToken(t, special=False, normalized=False) for t in TAGS])
  path.mkdir(parents=True, exist_ok=True)
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
  if config is not None:
    (path / "config.json").write_text(json.dumps(config))
  return path


def test_hf_tokenizer_matches_tokenizers_and_transformers(tmp_path):
  d = _write_hf_dir(tmp_path / "hf", {
      "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>",
      "pad_token": {"__type": "AddedToken", "content": "<|pad|>", "lstrip": False,
                    "normalized": False, "rstrip": False, "single_word": False}})
  tok = load_tokenizer(str(d))
  assert isinstance(tok, HFTokenizer) and isinstance(tok, Tokenizer)
  ref = hf.Tokenizer.from_file(str(d / "tokenizer.json"))
  assert tok.vocab_size == ref.get_vocab_size(with_added_tokens=True)
  assert tok.eos_id == ref.token_to_id("<|endoftext|>")
  assert tok.pad_id == ref.token_to_id("<|pad|>")
  assert tok.bos_id == tok.eos_id  # no bos named anywhere: GPT-2's convention
  for t in TAGS:
    assert tok.special_tokens[t] == ref.token_to_id(t)
  texts = [t for t in TEXTS if t] + ["<think> 7 + 8 = 15 </think><answer>15</answer>"]
  for text in texts:
    ids = tok.encode(text)
    assert ids == ref.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text
  assert tok.encode("hi", add_bos=True, add_eos=True) == [tok.bos_id] + tok.encode("hi") + [
      tok.eos_id]
  ids = tok.encode("<answer>85</answer>") + [tok.eos_id, tok.pad_id]
  assert tok.decode(ids) == "<answer>85</answer><|endoftext|><|pad|>"
  assert tok.decode(ids, skip_special=True) == "<answer>85</answer>"

  transformers = pytest.importorskip("transformers")
  auto = transformers.AutoTokenizer.from_pretrained(str(d))
  for text in texts:
    assert tok.encode(text) == auto(text, add_special_tokens=False)["input_ids"]
  assert (tok.eos_id, tok.pad_id) == (auto.eos_token_id, auto.pad_token_id)
  assert tok.decode(ids, skip_special=True) == auto.decode(ids, skip_special_tokens=True)


def test_hf_ids_fall_back_to_config_json(tmp_path):
  d = _write_hf_dir(tmp_path / "hf", {}, config={"bos_token_id": 5, "eos_token_id": [1, 0]})
  tok = HFTokenizer(d)
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (5, 1, 1)


def test_bad_inputs_raise_with_a_useful_message(tiny, tmp_path):
  with pytest.raises(ValueError, match=r"unknown tokenizer 'gpt2' \(does not exist\).*r1jax_tiny"):
    load_tokenizer("gpt2")
  with pytest.raises(ValueError, match="directory without tokenizer.json"):
    load_tokenizer(tmp_path)
  with pytest.raises(FileNotFoundError, match=r"nowhere/sp\.model does not exist"):
    load_tokenizer("nowhere/sp.model")
  with pytest.raises(FileNotFoundError, match=r"tokenizer\.json does not exist"):
    HFTokenizer(tmp_path)
  with pytest.raises(TypeError, match="tokenizer spec must be a str or path, got int"):
    load_tokenizer(3)
  with pytest.raises(TypeError, match="encode expects a str, got list; use encode_batch"):
    tiny.encode(["a", "b"])
  with pytest.raises(TypeError, match="encode expects a str, got NoneType"):
    tiny.encode(None)
  with pytest.raises(ValueError, match=r"token ids \[1024, -1\] are outside .*\[0, 1024\)"):
    tiny.decode([5, 1024, -1])
  with pytest.raises(TypeError, match="decode expects a sequence of token ids, got str"):
    tiny.decode("hello")
  d = _write_hf_dir(tmp_path / "bad", {"eos_token": "</s>"})
  with pytest.raises(ValueError, match=r"names eos_token='</s>', which is not in"):
    load_tokenizer(d)
  d = _write_hf_dir(tmp_path / "noeos", {})
  with pytest.raises(ValueError, match="no eos token found"):
    load_tokenizer(d / "tokenizer.json")
