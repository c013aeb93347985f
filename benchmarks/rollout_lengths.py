"""Rollouts whose completions end at very different lengths: useful tokens/s of the sampler
with finished rows dropped between chunks against one loop over every row; prints JSON.

    python benchmarks/rollout_lengths.py --out=benchmarks/results/rollout_lengths_cpu.json

The workload (issue 17): a random Qwen2 of --dim/--layers (float32; the 5M shape of
benchmarks/grpo_step.py by default), --prompts prompts x --n completions of up to
--max_new_tokens, T = 1, a fixed seed. Completion lengths are drawn log-uniformly between
--min_len and --max_new_tokens, as in R1 rollouts where they vary 10x within a batch, and
forced: a calibration run without stops gives every row's tokens (a row's draws depend on
its seed and row only), and each row's last `k` tokens at its drawn length become a stop
sequence that occurs nowhere earlier in any row. Both ways are then timed, interleaved,
after a warm-up that compiles them; the tokens must be identical. Useful tokens/s = the
generated tokens (up to each row's stop) / seconds.
`--prompts=2 --n=4 --max_new_tokens=32 --repeats=1` runs in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

if __package__ != "benchmarks":  # run as a file: python benchmarks/<name>.py
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from r1jax.models import init_params, presets  # noqa: E402
from r1jax.sampling import SamplingParams, generate  # noqa: E402


def _stop_sequences(tokens: np.ndarray, targets: np.ndarray, k: int) -> list[tuple[int, ...]]:
  """One sequence per row: its `k` tokens ending at its target length, lengthened until it
  occurs in no row before that row's own end (so each row stops exactly at its target)."""
  rows, M = tokens.shape
  seqs = []
  for r in range(rows):
    for width in range(k, M + 1):
      seq = tuple(tokens[r, max(0, targets[r] - width):targets[r]].tolist())
      if not _occurs_early(tokens, targets, seqs + [seq]):
        seqs.append(seq)
        break
    else:
      raise RuntimeError(f"row {r}: no stop sequence ends it at {targets[r]}")
  return seqs


def _occurs_early(tokens, targets, seqs) -> bool:
  """Whether any sequence ends some row before that row's target."""
  for r in range(tokens.shape[0]):
    row = tokens[r, :targets[r]].tolist()
    for seq in seqs:
      n = len(seq)
      for end in range(n, targets[r]):  # ends before the target
        if tuple(row[end - n:end]) == seq:
          return True
  return False


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--prompts", type=int, default=8)
  p.add_argument("--n", type=int, default=8)
  p.add_argument("--prompt_len", type=int, default=64)
  p.add_argument("--max_new_tokens", type=int, default=256)
  p.add_argument("--min_len", type=int, default=16)
  p.add_argument("--dim", type=int, default=256)
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="")
  args = p.parse_args(argv)

  cfg = dataclasses.replace(presets.get("qwen2_tiny"), name="qwen2_5m", vocab_size=4096,
                            dim=args.dim, n_layers=args.layers, n_dense_layers=args.layers,
                            n_heads=4, n_kv_heads=2,
                            inter_dim=688, tie_embeddings=False, dtype="float32")
  params = init_params(cfg, jax.random.key(args.seed))
  rng = np.random.default_rng(args.seed)
  prompts = [rng.integers(1, cfg.vocab_size, args.prompt_len).tolist()
             for _ in range(args.prompts)]
  M, R = args.max_new_tokens, args.prompts * args.n
  base = SamplingParams(M, n=args.n, seed=args.seed)
  calibration = generate(cfg, params, prompts, base, chunk=0).tokens
  targets = np.exp(rng.uniform(np.log(args.min_len), np.log(M), R)).astype(int).clip(4, M)
  sp = dataclasses.replace(base, stop_sequences=tuple(_stop_sequences(calibration, targets, 3)))

  ways = {"one_loop": 0, "drop_finished": None}  # generate's `chunk`
  results = {name: generate(cfg, params, prompts, sp, chunk=chunk)  # warm-up: compiles
             for name, chunk in ways.items()}
  np.testing.assert_array_equal(results["one_loop"].lengths, targets)
  for name, res in results.items():
    np.testing.assert_array_equal(res.tokens, results["one_loop"].tokens, err_msg=name)
  seconds = {name: [] for name in ways}
  for _ in range(args.repeats):
    for name, chunk in ways.items():
      start = time.perf_counter()
      generate(cfg, params, prompts, sp, chunk=chunk)
      seconds[name].append(time.perf_counter() - start)
  useful = int(targets.sum())
  median = {k: statistics.median(v) for k, v in seconds.items()}
  result = {
      "benchmark": "rollout_lengths",
      "command": "python benchmarks/rollout_lengths.py " + " ".join(argv or sys.argv[1:]),
      "device": jax.devices()[0].device_kind, "devices": jax.device_count(),
      "model": {"dim": args.dim, "layers": args.layers, "vocab": cfg.vocab_size,
                "dtype": "float32"},
      "rows": R, "prompt_len": args.prompt_len, "max_new_tokens": M,
      "lengths": {"min": int(targets.min()), "median": int(np.median(targets)),
                  "max": int(targets.max()), "useful_tokens": useful,
                  "useful_fraction_of_rows_x_max": useful / (R * M)},
      "same_tokens": True,
      "seconds": seconds, "median_seconds": median,
      "useful_tokens_per_s": {k: useful / v for k, v in median.items()},
      "speedup_drop_finished": median["one_loop"] / median["drop_finished"],
  }
  text = json.dumps(result, indent=2)
  print(text)
  if args.out:
    Path(args.out).write_text(text + "\n")
  return result


if __name__ == "__main__":
  main()
