"""Tokenizers: one small protocol over SentencePiece and Hugging Face `tokenizers` files.

  tok = load_tokenizer("r1jax_tiny")        # the shipped SentencePiece model (1024 ids)
  tok = load_tokenizer("path/to/sp.model")  # any SentencePiece model
  tok = load_tokenizer("path/to/hf_dir")    # a directory holding tokenizer.json
  ids = tok.encode("<think> 7 + 8 = 15 </think>", add_bos=True)   # list[int]
  text = tok.decode(ids, skip_special=True)

Conventions shared by every implementation:
  * `encode` never adds bos/eos on its own (the HF post-processor is bypassed); callers ask
    with `add_bos` / `add_eos`.
  * `bos_id`, `eos_id` and `pad_id` are always ints: a model without a pad pads with eos,
    one without a bos starts with eos (as GPT-2 does).
  * `special_tokens` maps the reasoning tags <think> </think> <answer> </answer> (those the
    vocabulary has as single tokens) and the bos/eos/pad tokens to their ids.
  * `decode(..., skip_special=False)` renders bos/eos/pad as their text ("</s>",
    "<|endoftext|>"); `skip_special=True` drops them. The reasoning tags are text the
    rewards read, never dropped by SentencePiece (for HF: unless tokenizer.json marks them
    special).
  * `chat_template` is the checkpoint's own Jinja chat template (tokenizer_config.json's
    "chat_template" or chat_template.jinja), or None; `r1jax.data.templates` renders it.

This module is host-side only; `transformers` is deliberately not imported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import sentencepiece as spm
import tokenizers as hf_tokenizers

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
TINY = "r1jax_tiny"
TINY_PATH = Path(__file__).parent.parent / "assets" / "tokenizer" / "r1jax_tiny.model"


@runtime_checkable
class Tokenizer(Protocol):
  """What r1jax needs from a tokenizer (see the module docstring for the conventions)."""

  vocab_size: int
  bos_id: int
  eos_id: int
  pad_id: int
  special_tokens: dict[str, int]
  chat_template: str | None

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]: ...

  def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str: ...

  def encode_batch(self, texts: Sequence[str], *, add_bos: bool = False,
                   add_eos: bool = False) -> list[list[int]]: ...

  def decode_batch(self, batch: Sequence[Sequence[int]], *,
                   skip_special: bool = False) -> list[str]: ...

  def token_to_id(self, token: str) -> int | None: ...


def _check_text(text) -> str:
  if not isinstance(text, str):
    raise TypeError(f"encode expects a str, got {type(text).__name__}; "
                    "use encode_batch for a list of texts")
  return text


class _Base:
  """encode/decode plumbing shared by both implementations; subclasses set the ids and
  provide `_encode(text) -> list[int]` and `_decode(ids, skip_special) -> str`."""

  vocab_size: int
  bos_id: int
  eos_id: int
  pad_id: int
  special_tokens: dict[str, int]
  chat_template: str | None = None

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of `text`, with bos first / eos last when asked."""
    ids = self._encode(_check_text(text))
    return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

  def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
    """Text of `ids` (a list, tuple or 1-D integer array)."""
    if isinstance(ids, (str, bytes)):
      raise TypeError(f"decode expects a sequence of token ids, got {type(ids).__name__}")
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < self.vocab_size]
    if bad:
      raise ValueError(f"token ids {bad[:5]} are outside this tokenizer's vocabulary "
                       f"[0, {self.vocab_size}); were they produced by another tokenizer or "
                       "a model with a larger vocab_size?")
    return self._decode(ids, skip_special)

  def encode_batch(self, texts: Sequence[str], *, add_bos: bool = False,
                   add_eos: bool = False) -> list[list[int]]:
    return [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]

  def decode_batch(self, batch: Sequence[Sequence[int]], *,
                   skip_special: bool = False) -> list[str]:
    return [self.decode(ids, skip_special=skip_special) for ids in batch]

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({str(self.path)!r}, vocab_size={self.vocab_size}, "
            f"bos={self.bos_id}, eos={self.eos_id}, pad={self.pad_id})")


class SentencePieceTokenizer(_Base):
  """A SentencePiece model file; bos/eos/pad are its control pieces (pad falls back to eos)."""

  def __init__(self, model_path: str | os.PathLike):
    self.path = Path(model_path)
    if not self.path.is_file():
      raise FileNotFoundError(f"SentencePiece model {self.path} does not exist")
    self._sp = spm.SentencePieceProcessor(model_file=str(self.path))
    self.vocab_size = self._sp.get_piece_size()
    eos = self._sp.eos_id()
    if eos < 0:
      raise ValueError(f"SentencePiece model {self.path} has no eos piece; retrain it with "
                       "eos_id >= 0 (r1jax stops generation at eos)")
    self.eos_id = eos
    self.bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else eos
    self.pad_id = self._sp.pad_id() if self._sp.pad_id() >= 0 else eos
    self._control = {i for i in (self.bos_id, self.eos_id, self.pad_id)}
    named = {self._sp.id_to_piece(i): i for i in sorted(self._control)}
    self.special_tokens = {t: i for t in TAGS if (i := self.token_to_id(t)) is not None}
    self.special_tokens.update(named)

  def token_to_id(self, token: str) -> int | None:
    """The id of the piece `token`, or None if the vocabulary has no such piece."""
    i = self._sp.piece_to_id(token)
    return None if i == self._sp.unk_id() and token != self._sp.id_to_piece(i) else i

  def _encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def _decode(self, ids: list[int], skip_special: bool) -> str:
    if skip_special:
      return self._sp.decode([i for i in ids if i not in self._control])
    # sp.decode drops control pieces silently; to show them, decode the runs between them
    # and put the pieces back. Models with a dummy prefix (not r1jax_tiny) lose the space
    # that starts each run, which only the first run should.
    parts, run = [], []
    for i in ids + [None]:
      if i is not None and i not in self._control:
        run.append(i)
        continue
      if run:
        text = self._sp.decode(run)
        if parts and self._sp.id_to_piece(run[0]).startswith("▁") and text[:1] != " ":
          text = " " + text
        parts.append(text)
        run = []
      if i is not None:
        parts.append(self._sp.id_to_piece(i))
    return "".join(parts)

def _read_json(path: Path) -> dict:
  if not path.is_file():
    return {}
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _chat_template(path: Path) -> str | None:
  """The chat template a Hugging Face tokenizer directory ships: chat_template.jinja, else
  tokenizer_config.json's "chat_template" (a string, or named templates: the "default")."""
  if (path / "chat_template.jinja").is_file():
    return (path / "chat_template.jinja").read_text(encoding="utf-8")
  value = _read_json(path / "tokenizer_config.json").get("chat_template")
  if isinstance(value, list):
    value = {t.get("name"): t.get("template") for t in value}.get("default")
  return value if isinstance(value, str) else None


class HFTokenizer(_Base):
  """A Hugging Face `tokenizer.json` plus the bos/eos/pad and chat template named next to it.

  Token strings come from special_tokens_map.json, else tokenizer_config.json (a string or
  {"content": ...}); missing ones fall back to the ids in generation_config.json, else
  config.json (`bos_token_id`, `eos_token_id`, `pad_token_id`; the first of a list). A
  tokenizer without a pad token pads with eos (and one without a bos starts with eos).
  `from_tokenizer` wraps one built in memory (e.g. from a GGUF file); `save` writes a
  directory that this class and transformers' AutoTokenizer both read.
  """

  def __init__(self, path: str | os.PathLike):
    self.path = Path(path)
    file = self.path / "tokenizer.json"
    if not file.is_file():
      raise FileNotFoundError(f"{file} does not exist; an HF tokenizer directory needs "
                              "tokenizer.json (the 'fast' tokenizer file)")
    self._tok = hf_tokenizers.Tokenizer.from_file(str(file))
    ids = {k: self._find_id(k) for k in ("bos", "eos", "pad")}
    if ids["eos"] is None:
      raise ValueError(f"no eos token found for {self.path}: name 'eos_token' in its "
                       "tokenizer_config.json or 'eos_token_id' in its config.json")
    self._set_ids(ids["bos"], ids["eos"], ids["pad"], _chat_template(self.path))

  @classmethod
  def from_tokenizer(cls, tok: hf_tokenizers.Tokenizer, *, bos_id: int | None, eos_id: int,
                     pad_id: int | None, chat_template: str | None,
                     name: str | os.PathLike) -> "HFTokenizer":
    """A tokenizer built in memory (`name` says where it came from, for messages)."""
    self = cls.__new__(cls)
    self.path, self._tok = Path(name), tok
    self._set_ids(bos_id, eos_id, pad_id, chat_template)
    return self

  def _set_ids(self, bos: int | None, eos: int, pad: int | None, chat_template: str | None):
    self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
    self.eos_id = eos
    self.bos_id = bos if bos is not None else eos
    self.pad_id = pad if pad is not None else eos
    self.chat_template = chat_template
    self.special_tokens = {t: i for t in TAGS if (i := self.token_to_id(t)) is not None}
    for i in (self.bos_id, self.eos_id, self.pad_id):
      self.special_tokens[self._tok.id_to_token(i)] = i

  def save(self, directory: str | os.PathLike) -> None:
    """tokenizer.json and tokenizer_config.json (special tokens, chat template) in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    self._tok.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
              "add_eos_token": False, "clean_up_tokenization_spaces": False,
              "model_max_length": int(1e30),
              **{f"{k}_token": self._tok.id_to_token(getattr(self, f"{k}_id"))
                 for k in ("bos", "eos", "pad")}}
    if self.chat_template is not None:
      config["chat_template"] = self.chat_template
    with open(directory / "tokenizer_config.json", "w", encoding="utf-8") as f:
      json.dump(config, f, indent=2, ensure_ascii=False)

  def _find_id(self, kind: str) -> int | None:
    key = f"{kind}_token"
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
      value = _read_json(self.path / name).get(key)
      if isinstance(value, dict):
        value = value.get("content")
      if isinstance(value, str):
        i = self._tok.token_to_id(value)
        if i is None:
          raise ValueError(f"{self.path / name} names {key}={value!r}, which is not in "
                           f"{self.path / 'tokenizer.json'}; fix one of the two files")
        return i
    for name in ("generation_config.json", "config.json"):
      value = _read_json(self.path / name).get(f"{key}_id")
      if isinstance(value, list):
        value = value[0] if value else None
      if isinstance(value, int):
        return value
    return None

  def token_to_id(self, token: str) -> int | None:
    """The id of `token` in the vocabulary (added tokens included), or None."""
    return self._tok.token_to_id(token)

  def _encode(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  def _decode(self, ids: list[int], skip_special: bool) -> str:
    return self._tok.decode(ids, skip_special_tokens=skip_special)


def load_tokenizer(spec: str | os.PathLike) -> Tokenizer:
  """The tokenizer named by `spec`:

  "r1jax_tiny"              the shipped SentencePiece model (r1jax/assets/tokenizer/)
  "<file>.model"            a SentencePiece model
  "<dir>" or "<dir>/tokenizer.json"   a Hugging Face tokenizer directory
  """
  if not isinstance(spec, (str, os.PathLike)):
    raise TypeError(f"tokenizer spec must be a str or path, got {type(spec).__name__}")
  if str(spec) == TINY:
    if not TINY_PATH.is_file():
      raise FileNotFoundError(f"{TINY_PATH} is missing; rebuild it with `python -m "
                              f"r1jax.tools.train_tokenizer --out {TINY_PATH}`")
    return SentencePieceTokenizer(TINY_PATH)
  path = Path(spec)
  if path.suffix == ".model":
    return SentencePieceTokenizer(path)
  if path.name == "tokenizer.json" and path.is_file():
    return HFTokenizer(path.parent)
  if path.is_dir() and (path / "tokenizer.json").is_file():
    return HFTokenizer(path)
  found = ("is a directory without tokenizer.json" if path.is_dir()
           else "exists but is neither" if path.exists() else "does not exist")
  raise ValueError(f"unknown tokenizer {str(spec)!r} ({found}): pass {TINY!r}, a path to a "
                   "SentencePiece .model file, or a directory containing a Hugging Face "
                   "tokenizer.json")


def tokenizer_spec(config) -> str:
  """config.tokenizer, where "from_checkpoint" means the tokenizer.json of config.init_from."""
  return config.init_from if config.tokenizer == "from_checkpoint" else config.tokenizer
