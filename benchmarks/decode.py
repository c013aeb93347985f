"""Decode throughput of r1jax's sampler against the HBM roofline; prints one JSON object.

    python benchmarks/decode.py --presets=llama3_2_1b,deepseek_v3_1b --batches=1,32,256 \
        --contexts=1024,8192 --hf --out=benchmarks/results/decode_h100.json

For each preset, batch B and context S: B prompts of S - N random tokens, N = --new_tokens
sampled at T = 1.0 with no stop token (every row decodes all N), bf16 (`--dtype`) weights and cache,
random parameters. `r1jax.sampling.generate` is timed for N new tokens and for 1; their
difference is the decode loop, so decode tokens/s = B·(N - 1) / (t_N - t_1) excludes the
prefill. A decode step reads the weights it uses (all of a dense model; for a MoE, the
shared parts plus min(E, B·K) experts per layer) and the cache up to the current length,
so its time is at least those bytes over the memory bandwidth (`HBM_BYTES_PER_S`):
`fraction_of_roofline` is that bound over the measured step time. `--hf` times Hugging
Face `transformers` `generate` (torch, same shapes, bf16, static cache, sampling with
min_new_tokens = max_new_tokens) in the same run for presets transformers implements.
Each result also gives the cache bytes per token, next to what a full K/V cache of the same
attention would take (MLA stores the latent and the rope key only).
`--presets=qwen2_tiny --batches=1 --contexts=32 --new_tokens=4` runs on a CPU in seconds
(the test suite does that to keep this script working). A preset may also be a Hugging Face
checkpoint directory: its config.json gives the shape (the weights stay random), e.g. the
model `benchmarks/grpo_step.py` builds, timed in its float32 with `--dtype=float32`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

if __package__ != "benchmarks":  # run as a file: python benchmarks/<name>.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import report  # noqa: E402
from r1jax.models import ModelConfig, count_params, hf, init_params, presets
from r1jax.sampling import SamplingParams, generate

HBM_BYTES_PER_S = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}  # SXM parts


def cache_bytes_per_token(cfg: ModelConfig, dtype_bytes: int = 2) -> dict[str, int]:
  """What one token costs in the decode cache over all layers, and in a full K/V cache."""
  if cfg.attention == "mla":
    cached = cfg.kv_lora_rank + cfg.qk_rope_head_dim
    full = cfg.n_heads * (cfg.qk_head_dim + cfg.v_head_dim)
  else:
    cached = full = 2 * cfg.n_kv_heads * cfg.head_dim
  return {"cache": cfg.n_layers * cached * dtype_bytes,
          "full_kv": cfg.n_layers * full * dtype_bytes}


def weight_bytes_per_step(cfg: ModelConfig, batch: int, dtype_bytes: int = 2) -> float:
  """Bytes of weights one decode step of `batch` rows reads (embedding rows are gathered,
  so only the head counts for the vocabulary)."""
  total = count_params(cfg)["total"]
  params = total - cfg.vocab_size * cfg.dim * (0 if cfg.tie_embeddings else 1)
  if cfg.is_moe:
    per_expert = 3 * cfg.dim * cfg.moe_inter_dim
    experts = cfg.n_moe_layers * cfg.n_routed_experts * per_expert
    touched = min(cfg.n_routed_experts, batch * cfg.n_activated_experts)
    params = params - experts + cfg.n_moe_layers * touched * per_expert
  return params * dtype_bytes


def roofline_step_s(cfg: ModelConfig, batch: int, prompt: int, new: int, bandwidth: float,
                    dtype_bytes: int = 2) -> float:
  """The lower bound on one decode step's time: bytes read / bandwidth, at the mean length."""
  mean_len = prompt + new / 2
  cache = batch * mean_len * cache_bytes_per_token(cfg, dtype_bytes)["cache"]
  return (weight_bytes_per_step(cfg, batch, dtype_bytes) + cache) / bandwidth


def _timed(fn, repeats: int) -> float:
  fn()  # compile and warm up
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def bench_r1jax(cfg: ModelConfig, params, batch: int, prompt: int, new: int,
                repeats: int) -> dict:
  rng = np.random.default_rng(0)
  prompts = rng.integers(0, cfg.vocab_size, (batch, prompt)).tolist()

  def run(n_new):
    sp = SamplingParams(max_new_tokens=n_new, temperature=1.0, seed=1)
    return lambda: generate(cfg, params, prompts, sp, bucket=False)

  t_n, t_1 = _timed(run(new), repeats), _timed(run(1), repeats)
  decode_s = max(t_n - t_1, 1e-9)
  return {"prefill_s": t_1, "total_s": t_n, "decode_step_s": decode_s / (new - 1),
          "decode_tokens_per_s": batch * (new - 1) / decode_s}


def model_config(name: str, dtype: str) -> ModelConfig:
  """The preset `name`, or the model of the Hugging Face checkpoint directory `name`."""
  if os.path.isdir(name):
    with open(os.path.join(name, "config.json")) as f:
      return hf.config_from_hf(json.load(f)).replace(dtype=dtype, param_dtype=dtype)
  return presets.get(name, dtype=dtype, param_dtype=dtype)


def bench_hf(cfg: ModelConfig, batch: int, prompt: int, new: int, repeats: int,
             dtype: str = "bfloat16") -> dict | None:
  """transformers generate of a random model of the same shape, or None if it has none."""
  import torch
  import transformers

  hf_config = hf.config_to_hf(cfg, dtype=dtype)
  try:
    config = transformers.AutoConfig.for_model(hf_config.pop("model_type"), **hf_config)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
  except (ValueError, KeyError, ImportError):
    return None
  device = "cuda" if torch.cuda.is_available() else "cpu"
  model = model.to(device).eval()
  ids = torch.randint(0, cfg.vocab_size, (batch, prompt), device=device)

  def run(n_new):
    def go():
      with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                       min_new_tokens=n_new, do_sample=True, temperature=1.0, top_k=0,
                       cache_implementation="static", pad_token_id=0)
      if device == "cuda":
        torch.cuda.synchronize()
    return go

  t_n, t_1 = _timed(run(new), repeats), _timed(run(1), repeats)
  decode_s = max(t_n - t_1, 1e-9)
  return {"prefill_s": t_1, "total_s": t_n, "decode_step_s": decode_s / (new - 1),
          "decode_tokens_per_s": batch * (new - 1) / decode_s}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--presets", default="llama3_2_1b,deepseek_v3_1b")
  p.add_argument("--batches", default="1,32,256")
  p.add_argument("--contexts", default="1024,8192", help="prompt + new tokens")
  p.add_argument("--new_tokens", type=int, default=128)
  p.add_argument("--repeats", type=int, default=3, help="timed runs per point (best kept)")
  p.add_argument("--hf", action="store_true", help="also time transformers generate")
  p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                 help="weights, compute and cache, in both implementations")
  p.add_argument("--out", default=None, help="also write the JSON here")
  args = p.parse_args(argv)
  if args.new_tokens < 2:
    p.error("--new_tokens must be at least 2 (decode time is t(N) - t(1))")

  device = jax.devices()[0]
  kind = getattr(device, "device_kind", device.platform)
  bandwidth = next((v for k, v in HBM_BYTES_PER_S.items() if k in kind), None)
  results = []
  for name in (n.strip() for n in args.presets.split(",")):
    cfg = model_config(name, args.dtype)
    params = init_params(cfg, jax.random.key(0))
    nbytes = {"bfloat16": 2, "float32": 4}[args.dtype]
    per_token = cache_bytes_per_token(cfg, nbytes)
    for context in (int(c) for c in args.contexts.split(",")):
      prompt = context - args.new_tokens
      if prompt < 1 or context > cfg.max_position_embeddings:
        raise SystemExit(f"context {context} does not fit {args.new_tokens} new tokens and "
                         f"a prompt within {name}'s {cfg.max_position_embeddings} positions")
      for batch in (int(b) for b in args.batches.split(",")):
        r = {"preset": name, "batch": batch, "context": context, "prompt": prompt,
             "new_tokens": args.new_tokens, "cache_bytes_per_token": per_token["cache"],
             "full_kv_bytes_per_token": per_token["full_kv"],
             **bench_r1jax(cfg, params, batch, prompt, args.new_tokens, args.repeats)}
        if bandwidth:
          bound = roofline_step_s(cfg, batch, prompt, args.new_tokens, bandwidth, nbytes)
          r["roofline_step_s"] = bound
          r["fraction_of_roofline"] = bound / r["decode_step_s"]
        if args.hf:
          theirs = bench_hf(cfg, batch, prompt, args.new_tokens, args.repeats, args.dtype)
          if theirs is not None:
            r["hf"] = theirs
            r["speedup_vs_hf"] = r["decode_tokens_per_s"] / theirs["decode_tokens_per_s"]
        results.append(r)
  return report.emit("decode", kind, args, results, hbm_bytes_per_s=bandwidth)


if __name__ == "__main__":
  main()
