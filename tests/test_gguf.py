"""GGUF files r1jax cannot read are refused with what they are and what is supported.

(Reading a real file, against transformers, is tests/test_real_model.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

from r1jax.models.gguf import _unpermute, load_gguf_checkpoint


def _write(path, arch: str, tokenizer_model: str = "gpt2", pre: str = "smollm") -> str:
  """A one-tensor GGUF file with the metadata keys the loader reads first."""
  import gguf

  w = gguf.GGUFWriter(str(path), arch)
  w.add_block_count(1)
  w.add_tokenizer_model(tokenizer_model)
  w.add_tokenizer_pre(pre)
  w.add_token_list(["a", "b", "<|endoftext|>"])
  w.add_eos_token_id(2)
  w.add_tensor("token_embd.weight", np.zeros((3, 4), np.float32))
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return str(path)


def test_unsupported_files_say_what_is_supported(tmp_path):
  with pytest.raises(ValueError, match=r"architecture 'mamba' is not supported; r1jax reads "
                                        r"GGUF files of llama, qwen2"):
    load_gguf_checkpoint(_write(tmp_path / "a.gguf", "mamba"))
  with pytest.raises(ValueError, match=r"tokenizer type 'llama' is not supported; r1jax reads "
                                        r"byte-level BPE"):
    load_gguf_checkpoint(_write(tmp_path / "b.gguf", "llama", tokenizer_model="llama"))
  with pytest.raises(ValueError, match=r"pre-tokenizer 'bloom' is not supported; known: .*smollm"):
    load_gguf_checkpoint(_write(tmp_path / "c.gguf", "llama", pre="bloom"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    load_gguf_checkpoint(tmp_path / "missing.gguf")


def test_unpermute_inverts_llama_cpps_rotary_row_order():
  """llama.cpp writes each head's rows [first half | second half] interleaved: row j of
  the first half at 2j, of the second half at 2j + 1."""
  heads, head_dim, cols = 3, 8, 5
  hf = np.arange(heads * head_dim * cols, dtype=np.float32).reshape(heads * head_dim, cols)
  gguf_rows = []
  for h in range(heads):
    block = hf[h * head_dim:(h + 1) * head_dim]
    for j in range(head_dim // 2):
      gguf_rows += [block[j], block[head_dim // 2 + j]]
  np.testing.assert_array_equal(_unpermute(np.stack(gguf_rows), heads), hf)
  # qwen2's q/k biases, one value per row, are reordered as their rows are
  np.testing.assert_array_equal(_unpermute(np.stack(gguf_rows)[:, 0], heads), hf[:, 0])
