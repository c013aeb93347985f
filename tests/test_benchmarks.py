"""The GPU benchmark scripts stay runnable: each runs here on tiny presets."""

import math

from benchmarks import model_step
from r1jax.models import presets


def test_model_step_runs_on_tiny_presets(capsys):
  report = model_step.main(["--presets=deepseek_v3_tiny,qwen2_tiny", "--seq=32", "--batch=2",
                            "--steps=1", "--warmup=1", "--matmul_n=0", "--remat=none",
                            "--dispatch=capacity"])
  assert [r["preset"] for r in report["results"]] == ["deepseek_v3_tiny", "qwen2_tiny"]
  for r in report["results"]:
    assert r["tokens_per_s"] > 0 and math.isfinite(r["model_tflops_per_s"])
  assert report["results"][0]["moe_dispatch"] == "capacity"
  assert '"benchmark": "model_step"' in capsys.readouterr().out


def test_flops_per_token_dense_by_hand():
  cfg = presets.get("llama3_1_8b")
  seq = 2048
  # 8.03B parameters, untied: the embedding is a gather, the head a matmul.
  n_matmul = 8_030_261_248 - cfg.vocab_size * cfg.dim
  attn = 32 * 2 * (seq / 2) * (128 + 128) * 32
  assert math.isclose(model_step.model_flops_per_token(cfg, seq), 6 * n_matmul + 3 * attn)
