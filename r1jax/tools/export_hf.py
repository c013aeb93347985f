"""Exports the weights of an r1jax run as a Hugging Face checkpoint.

    python -m r1jax.tools.export_hf --workdir=workdirs/pretrain_tiny --out=/tmp/export

The directory holds config.json + safetensors that `transformers` loads and that r1jax
runs accept as `--config.init_from`. The latest checkpoint is exported unless --step says.
"""

from __future__ import annotations

import argparse

import jax

from r1jax.models import loading
from r1jax.models.hf import save_hf_checkpoint


def export(workdir: str, out: str, *, step: int | None = None, dtype: str = "float32") -> str:
  cfg, weights = loading.restore_run_weights(workdir, step=step)
  save_hf_checkpoint(cfg, jax.device_get(weights), out, dtype=dtype)
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--step", type=int, default=None)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  a = p.parse_args(argv)
  print(export(a.workdir, a.out, step=a.step, dtype=a.dtype))


if __name__ == "__main__":
  main()
