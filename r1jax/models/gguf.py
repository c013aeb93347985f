"""GGUF checkpoints (llama.cpp's single-file format) -> r1jax: llama and qwen2 models.

    cfg, params, tokenizer = load_gguf_checkpoint("SmolLM2-135M-Instruct.Q4_1.gguf")
    python -m r1jax.tools.export_hf --from_gguf=model.gguf --out=hf_dir   # an HF directory

A GGUF file holds the weights (often quantised), the model's hyper-parameters and its
tokenizer (vocabulary, merges, special tokens, chat template) as metadata. The `gguf`
package reads it and dequantises every tensor to float32; this module renames the tensors
to Hugging Face's names, undoes llama.cpp's reordering of the query and key rows, builds the
config.json dict of the same model, and hands both to `r1jax.models.hf`, so a GGUF model is
checked and placed exactly as an HF checkpoint is.

The q/k rows: Llama and Qwen2 rotate the two halves of each head's dimensions; llama.cpp
rotates adjacent pairs, so its converter permutes each head's rows of q_proj and k_proj
(row j of the first half goes to 2j, of the second half to 2j + 1). `_unpermute` inverts
that, per head (per KV head for k).

The tokenizer (byte-level BPE, `tokenizer.ggml.model = "gpt2"`, the kind Llama-3, Qwen2 and
SmolLM use) becomes a Hugging Face `tokenizers.Tokenizer`: the vocabulary and merges as
given, control tokens (<|im_start|>...) as special added tokens and user-defined ones as
plain added tokens, so each stays whole in text, and the pre-tokenizer that
`tokenizer.ggml.pre` names (`PRE_TOKENIZERS`): the regular expression llama.cpp splits text
with before merging. For SmolLM that is digits one by one, then GPT-2's split (what the
original tokenizer.json does; transformers' own GGUF reader leaves out the digit split,
which tokenizes a run of spaces before a digit differently).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tokenizers as hf_tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers

from r1jax.data.tokenizers import HFTokenizer
from r1jax.models.config import ModelConfig
from r1jax.models.hf import load_hf_tensors

ARCHITECTURES = ("llama", "qwen2")

# GGUF tensor name (within blk.{i}) -> HF name (within model.layers.{i})
_BLOCK = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_TOP = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight"}

_GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# tokenizer.ggml.pre -> the splits applied in order (each piece of one split is split by
# the next) before byte-level BPE, as llama.cpp's vocabulary code does for that name.
PRE_TOKENIZERS = {
    "default": (_GPT2_SPLIT,), "gpt-2": (_GPT2_SPLIT,),
    "smollm": (r"\p{N}", _GPT2_SPLIT),
    "llama-bpe": (_LLAMA3_SPLIT,), "llama3": (_LLAMA3_SPLIT,), "smaug-bpe": (_LLAMA3_SPLIT,),
    "qwen2": (_QWEN2_SPLIT,), "deepseek-r1-qwen": (_QWEN2_SPLIT,),
}
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types


def _fields(reader) -> dict:
  """The file's metadata as plain Python values (strings, numbers, lists)."""
  return {key: field.contents() for key, field in reader.fields.items()}


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
  """llama.cpp's interleaved rotary rows of a q or k projection ([heads·H, ...]) back to
  Hugging Face's rotate-half order (see the module docstring)."""
  head_dim = w.shape[0] // n_heads
  return w.reshape(n_heads, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _dequantize(tensor, path) -> np.ndarray:
  """A GGUF tensor as float32 in numpy (row-major) order."""
  from gguf import GGMLQuantizationType, quants

  kind = tensor.tensor_type
  shape = tuple(int(n) for n in reversed(tensor.shape))  # GGUF lists dimensions fastest first
  try:
    if kind in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
      values = np.asarray(tensor.data)
    else:
      values = quants.dequantize(tensor.data, kind)
  except NotImplementedError:
    raise ValueError(f"{path}: tensor {tensor.name!r} is quantised as {kind.name}, which the "
                     "gguf package cannot dequantise (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
                     "Q5_1, Q8_0 and the K-quants)") from None
  return np.asarray(values, np.float32).reshape(shape)


def _hf_config(meta: dict, arch: str, tied: bool, path) -> dict:
  """The config.json dict (transformers' keys) of a llama/qwen2 GGUF model."""
  def get(key, default=None):
    value = meta.get(f"{arch}.{key}", default)
    if value is None:
      raise ValueError(f"{path}: metadata {arch}.{key} is missing; is it a complete {arch} file?")
    return value

  rope = meta.get(f"{arch}.rope.scaling.type", "none")
  if rope not in ("none", None):
    raise ValueError(f"{path}: rope scaling {rope!r} in a GGUF file is not supported; r1jax reads "
                     "GGUF llama/qwen2 models with plain RoPE (convert with transformers instead)")
  n_heads = int(get("attention.head_count"))
  dim = int(get("embedding_length"))
  head_dim = int(meta.get(f"{arch}.attention.key_length") or meta.get(f"{arch}.rope.dimension_count")
                 or dim // n_heads)
  return {
      "model_type": arch, "architectures": [{"llama": "LlamaForCausalLM",
                                             "qwen2": "Qwen2ForCausalLM"}[arch]],
      "vocab_size": int(meta.get(f"{arch}.vocab_size") or len(meta["tokenizer.ggml.tokens"])),
      "hidden_size": dim, "intermediate_size": int(get("feed_forward_length")),
      "num_hidden_layers": int(get("block_count")), "num_attention_heads": n_heads,
      "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv", n_heads)),
      "head_dim": head_dim, "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon")),
      "rope_theta": float(meta.get(f"{arch}.rope.freq_base", 10000.0)),
      "max_position_embeddings": int(get("context_length")), "tie_word_embeddings": tied,
      "hidden_act": "silu",
  }


def _tensors(reader, config: dict, path) -> dict[str, np.ndarray]:
  """Every tensor of the file, dequantised and renamed to Hugging Face's names."""
  heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
  out = {}
  for tensor in reader.tensors:
    name, kind = tensor.name, None
    if name in _TOP:
      hf_name = _TOP[name]
    else:
      parts = name.split(".", 2)  # blk, its index, the rest
      if parts[0] != "blk" or len(parts) < 3 or parts[2] not in _BLOCK:
        raise ValueError(f"{path}: tensor {name!r} has no place in a {config['model_type']} model")
      hf_name, kind = f"model.layers.{parts[1]}.{_BLOCK[parts[2]]}", parts[2].split(".")[0]
    w = _dequantize(tensor, path)
    out[hf_name] = _unpermute(w, heads[kind]) if kind in heads else w
  return out


def gguf_tokenizer(meta: dict, path) -> HFTokenizer:
  """The file's tokenizer (see the module docstring) with its bos/eos/pad and chat template."""
  kind, pre = meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre", "default")
  if kind != "gpt2":
    raise ValueError(f"{path}: tokenizer type {kind!r} is not supported; r1jax reads byte-level "
                     "BPE tokenizers (tokenizer.ggml.model = 'gpt2': Llama 3, Qwen2, SmolLM)")
  if pre not in PRE_TOKENIZERS:
    raise ValueError(f"{path}: pre-tokenizer {pre!r} is not supported; known: "
                     f"{', '.join(sorted(PRE_TOKENIZERS))}")
  tokens = list(meta["tokenizer.ggml.tokens"])
  merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
  tok = hf_tokenizers.Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                                           merges=merges, ignore_merges=False))
  tok.pre_tokenizer = pre_tokenizers.Sequence(
      [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in PRE_TOKENIZERS[pre]]
      + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  tok.decoder = decoders.ByteLevel()
  types = list(meta.get("tokenizer.ggml.token_type", []))
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                          for t, k in zip(tokens, types) if k == _CONTROL])
  tok.add_tokens([AddedToken(t, special=False, normalized=False)
                  for t, k in zip(tokens, types) if k == _USER_DEFINED])
  if "tokenizer.ggml.eos_token_id" not in meta:
    raise ValueError(f"{path}: no tokenizer.ggml.eos_token_id; r1jax stops generation at eos")
  ids = {k: meta.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "padding")}
  return HFTokenizer.from_tokenizer(
      tok, bos_id=ids["bos"], eos_id=int(ids["eos"]), pad_id=ids["padding"],
      chat_template=meta.get("tokenizer.chat_template"), name=path)


def load_gguf_checkpoint(path: str | os.PathLike, *, dtype: str | None = None, mesh=None
                         ) -> tuple[ModelConfig, dict, HFTokenizer]:
  """(cfg, params, tokenizer) of a llama or qwen2 GGUF file; params as `load_hf_checkpoint`
  gives them (float32 unless `dtype`, placed on `mesh` when given)."""
  from gguf import GGUFReader

  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"GGUF file {path} does not exist")
  reader = GGUFReader(str(path))
  meta = _fields(reader)
  arch = meta.get("general.architecture")
  if arch not in ARCHITECTURES:
    raise ValueError(f"{path}: architecture {arch!r} is not supported; r1jax reads GGUF files of "
                     f"{', '.join(ARCHITECTURES)}")
  tokenizer = gguf_tokenizer(meta, path)
  tied = not any(t.name == "output.weight" for t in reader.tensors)
  config = _hf_config(meta, arch, tied, path)
  cfg, params = load_hf_tensors(config, _tensors(reader, config, path), name=path.stem,
                                dtype=dtype, mesh=mesh)
  return cfg, params, tokenizer
