"""Forward+backward throughput and MFU of r1jax models; prints one JSON object.

    python benchmarks/model_step.py --presets=llama3_2_1b,deepseek_v3_1b --seq=2048 \
        --batch=8 --attention_impl=cudnn --out=benchmarks/results/model_step_h100.json

Each preset is measured in mixed precision (float32 parameters, bfloat16 compute) on
`jax.value_and_grad` of the next-token loss plus an AdamW update, jitted once with the
state donated. MFU counts model FLOPs (6 · activated matmul parameters per token, plus
causal attention) against the accelerator's peak; a plain bf16 matmul measured in the
same run gives the practical ceiling. `--presets=deepseek_v3_tiny --seq=64` runs on a
CPU in seconds (the test suite does that to keep this script working).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

if __package__ != "benchmarks":  # run as a file: python benchmarks/<name>.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import report  # noqa: E402
from r1jax.models import count_params, forward, init_params, presets

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, no sparsity


def model_flops_per_token(cfg, seq: int) -> float:
  """Training FLOPs per token: 6·N_matmul + causal attention (fwd 2·T/2·(d_qk+d_v)·N per layer)."""
  counts = count_params(cfg)
  matmul_params = counts["activated"] - cfg.vocab_size * cfg.dim  # the embedding is a gather
  if cfg.tie_embeddings:
    matmul_params += cfg.vocab_size * cfg.dim  # ...but a tied table is also the head
  if cfg.attention == "mla":
    d_qk, d_v = cfg.qk_head_dim, cfg.v_head_dim
  else:
    d_qk = d_v = cfg.head_dim
  attn_fwd = cfg.n_layers * 2 * (seq / 2) * (d_qk + d_v) * cfg.n_heads
  return 6 * matmul_params + 3 * attn_fwd


def _time(fn, *args, steps: int, warmup: int):
  for _ in range(warmup):
    args = fn(*args)
  jax.block_until_ready(args)
  t0 = time.perf_counter()
  for _ in range(steps):
    args = fn(*args)
  jax.block_until_ready(args)
  return (time.perf_counter() - t0) / steps


def matmul_ceiling(n: int = 8192, steps: int = 20) -> float:
  """Achieved FLOP/s of one bf16 n×n×n matmul: the practical peak of this device."""
  a = jnp.ones((n, n), jnp.bfloat16)
  f = jax.jit(lambda x: (x @ a) * (1.0 / n))
  dt = _time(lambda x: (f(x),), a, steps=steps, warmup=3)
  return 2 * n**3 / dt


def bench_preset(name: str, args) -> dict:
  overrides = dict(dtype="bfloat16", param_dtype="float32", remat=args.remat,
                   attention_impl=args.attention_impl)
  if args.dispatch:
    overrides["moe_dispatch"] = args.dispatch
  cfg = presets.get(name, **overrides)
  if not cfg.is_moe:
    overrides.pop("moe_dispatch", None)
  params = init_params(cfg, jax.random.key(0))
  opt = optax.adamw(1e-4)
  opt_state = opt.init(params["params"])
  tokens = jax.random.randint(jax.random.key(1), (args.batch, args.seq + 1), 0, cfg.vocab_size)

  def loss_fn(p, buffers):
    logits = forward(cfg, {"params": p, "buffers": buffers}, tokens[:, :-1])
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(p, s):
    loss, grads = jax.value_and_grad(loss_fn)(p, params["buffers"])
    updates, s = opt.update(grads, s, p)
    return optax.apply_updates(p, updates), s

  t_compile = time.perf_counter()
  compiled = step.lower(params["params"], opt_state).compile()
  t_compile = time.perf_counter() - t_compile
  dt = _time(compiled, params["params"], opt_state, steps=args.steps, warmup=args.warmup)
  tokens_per_step = args.batch * args.seq
  flops = model_flops_per_token(cfg, args.seq) * tokens_per_step
  counts = count_params(cfg)
  return {"preset": name, "moe_dispatch": cfg.moe_dispatch if cfg.is_moe else None,
          "params_total": counts["total"], "params_activated": counts["activated"],
          "batch": args.batch, "seq": args.seq, "step_s": dt, "compile_s": t_compile,
          "tokens_per_s": tokens_per_step / dt, "model_tflops_per_s": flops / dt / 1e12}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--presets", default="llama3_2_1b,deepseek_v3_1b")
  p.add_argument("--seq", type=int, default=2048)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--remat", default="dots", choices=["none", "full", "dots"])
  p.add_argument("--attention_impl", default="xla", choices=["xla", "cudnn"])
  p.add_argument("--dispatch", default=None, choices=[None, "dense", "ragged", "capacity", "all_to_all"])
  p.add_argument("--matmul_n", type=int, default=8192, help="0 skips the matmul ceiling")
  p.add_argument("--out", default=None, help="also write the JSON here")
  args = p.parse_args(argv)

  device = jax.devices()[0]
  kind = getattr(device, "device_kind", device.platform)
  peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in kind), None)
  ceiling = matmul_ceiling(args.matmul_n) if args.matmul_n else None
  results = []
  for name in args.presets.split(","):
    r = bench_preset(name.strip(), args)
    if peak:
      r["mfu"] = r["model_tflops_per_s"] * 1e12 / peak
    if ceiling:
      r["fraction_of_matmul_ceiling"] = r["model_tflops_per_s"] * 1e12 / ceiling
    results.append(r)
  return report.emit("model_step", kind, args, results, peak_bf16_flops=peak,
                     matmul_ceiling_flops=ceiling)


if __name__ == "__main__":
  main()
