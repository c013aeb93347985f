"""Writes a Hugging Face checkpoint directory: from an r1jax run, or from a GGUF file.

    python -m r1jax.tools.export_hf --workdir=workdirs/pretrain_tiny --out=/tmp/export
    python -m r1jax.tools.export_hf --from_gguf=SmolLM2-135M-Instruct.Q4_1.gguf --out=/tmp/smollm2

The directory holds config.json + safetensors that `transformers` loads and that r1jax
runs accept as `--config.init_from`. From a run, the latest checkpoint is exported unless
--step says. From a GGUF file (llama or qwen2, `r1jax.models.gguf`), the weights are
dequantised to --dtype and the file's tokenizer is written too (tokenizer.json and
tokenizer_config.json with its special tokens and chat template).
"""

from __future__ import annotations

import argparse

import jax

from r1jax.models import loading
from r1jax.models.gguf import load_gguf_checkpoint
from r1jax.models.hf import save_hf_checkpoint


def export(workdir: str, out: str, *, step: int | None = None, dtype: str = "float32") -> str:
  cfg, weights = loading.restore_run_weights(workdir, step=step)
  save_hf_checkpoint(cfg, jax.device_get(weights), out, dtype=dtype)
  return out


def export_gguf(path: str, out: str, *, dtype: str = "float32") -> str:
  cfg, params, tokenizer = load_gguf_checkpoint(path)
  save_hf_checkpoint(cfg, jax.device_get(params), out, dtype=dtype)
  tokenizer.save(out)
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--workdir", help="an r1jax run directory")
  src.add_argument("--from_gguf", help="a llama or qwen2 .gguf file")
  p.add_argument("--out", required=True)
  p.add_argument("--step", type=int, default=None)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  a = p.parse_args(argv)
  if a.from_gguf:
    print(export_gguf(a.from_gguf, a.out, dtype=a.dtype))
  else:
    print(export(a.workdir, a.out, step=a.step, dtype=a.dtype))


if __name__ == "__main__":
  main()
