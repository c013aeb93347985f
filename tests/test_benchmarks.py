"""The GPU benchmark scripts stay runnable: each runs here on tiny presets."""

import json
import math

from benchmarks import decode, model_step
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


def test_decode_runs_on_tiny_presets_beside_transformers(capsys):
  report = decode.main(["--presets=deepseek_v3_tiny", "--batches=2", "--contexts=24",
                        "--new_tokens=4", "--repeats=1", "--hf"])
  (r,) = report["results"]
  assert r["prompt"] == 20 and r["decode_tokens_per_s"] > 0 and r["decode_step_s"] > 0
  assert r["hf"]["decode_tokens_per_s"] > 0 and r["speedup_vs_hf"] > 0
  assert r["cache_bytes_per_token"] < r["full_kv_bytes_per_token"]  # MLA's latent
  assert '"benchmark": "decode"' in capsys.readouterr().out


def test_decode_bytes_by_hand():
  cfg = presets.get("deepseek_v3_671b")
  # MLA caches the 512-wide latent and the 64-wide rope key per layer; a full cache would
  # hold K (192) and V (128) for 128 heads
  assert decode.cache_bytes_per_token(cfg) == {"cache": 61 * 576 * 2,
                                               "full_kv": 61 * 128 * 320 * 2}
  qwen = presets.get("qwen2_5_0_5b")  # GQA caches K and V of its 2 KV heads: nothing saved
  assert decode.cache_bytes_per_token(qwen) == {"cache": 24 * 2 * 2 * 64 * 2,
                                                "full_kv": 24 * 2 * 2 * 64 * 2}
  llama = presets.get("llama3_1_8b")
  assert decode.weight_bytes_per_step(llama, 1) == 2 * (8_030_261_248 - 128256 * 4096)
  # one row touches 8 experts per MoE layer; 256 rows touch all 256
  per_layer = 3 * 7168 * 2048 * 2
  assert (decode.weight_bytes_per_step(cfg, 256) - decode.weight_bytes_per_step(cfg, 1)
          == 58 * (256 - 8) * per_layer)


def test_grpo_step_dry_run_times_r1jax_and_skips_missing_peers(tmp_path, capsys):
  from benchmarks import grpo_step
  # (the variable-length prompts run the same code; gpu_check.sh's dry run times them)
  report = grpo_step.main(["--dry_run", "--prompts=same_length", "--batch_layout=groups",
                           f"--workdir={tmp_path}", "--python_trl=/nonexistent/python"])
  by = {(r["prompts"], r["framework"]): r for r in report["results"]}
  r = by[("same_length", "r1jax")]
  assert "error" not in r and "skipped" not in r, r
  assert r["steps_in_median"] == 1 and r["median_step_s"] > 0 and r["median_first_step_s"] > 0
  assert r["completion_tokens_per_row"] == [4.0]  # eos ignored: every row runs to the end
  assert r["same_prompts"] and r["peak_rss_mb"] > 0
  assert {"rollout", "reward", "logprob", "update", "compile"} <= set(r["phases_median_s"])
  assert "skipped" in by[("same_length", "trl")]
  assert r["prompt_len_buckets"] == [96.0]  # 82 tokens, one bucket
  # 2 prompts, each one row of the prompt bucket and its 2 completions of 4 tokens
  assert r["median_train_tokens"] == 2 * (96 + 2 * 4)
  lengths = report["workload"]["prompts"]["same_length"]
  assert lengths["tokens_min"] == lengths["tokens_max"] == grpo_step.SAME_LENGTH
  assert report["ratios"]["same_length"]["trl/r1jax"]["median_step"] is None
  assert '"benchmark": "grpo_step"' in capsys.readouterr().out


def test_digit_reward():
  from benchmarks.grpo_step import digit_reward
  assert digit_reward(["q"] * 3, ["ab12", "", "7"]) == [0.5, 0.0, 1.0]


def test_decode_takes_a_hugging_face_directory_as_a_preset(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({
      "model_type": "qwen2", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 96,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "max_position_embeddings": 256, "tie_word_embeddings": False}))
  cfg = decode.model_config(str(tmp_path), "float32")
  assert (cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_kv_heads) == (512, 64, 2, 2)
  assert cfg.dtype == cfg.param_dtype == "float32" and not cfg.tie_embeddings
  assert decode.model_config("qwen2_tiny", "bfloat16").dtype == "bfloat16"


def test_gpu_check_dry_run(tmp_path):
  """benchmarks/gpu_check.sh, as a lent GPU would run it, on tiny presets and the CPU."""
  import json
  import os
  import re
  import subprocess
  import sys
  from pathlib import Path

  root = Path(__file__).resolve().parents[1]
  env = dict(os.environ, PYTHON=sys.executable)
  env["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\S+", "",
                            env.get("XLA_FLAGS", ""))
  out = tmp_path / "gpu_check"
  done = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh"), "--dry_run", str(out)],
                        env=env, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  files = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
  assert set(files) == {"devices.json", "model_step.json", "decode.json", "grpo_step_dense.json"}
  assert [r["preset"] for r in files["model_step.json"]["results"]] == ["qwen2_tiny"]
  assert {r["preset"] for r in files["decode.json"]["results"]} == {"qwen2_tiny"}
  report = files["grpo_step_dense.json"]
  (r,) = report["results"]
  assert report["workload"]["model"]["type"] == "qwen2_tiny" and r["median_step_s"] > 0, r


def test_code_sandbox_benchmark_compares_two_trees(tmp_path):
  from benchmarks import code_sandbox
  out = tmp_path / "sandbox.json"
  result = code_sandbox.main(["--before=HEAD", "--problems=2", "--rounds=1", f"--out={out}"])
  assert result["test_cases"] == 8 and result["ratio_after_over_before"] > 0
  assert json.loads(out.read_text())["seconds_per_case"]["after"] > 0


def test_rollout_lengths_benchmark_forces_the_drawn_lengths(tmp_path):
  from benchmarks import rollout_lengths
  out = tmp_path / "rollout.json"
  r = rollout_lengths.main(["--prompts=2", "--n=4", "--max_new_tokens=32", "--repeats=1",
                            "--dim=64", "--layers=1", "--prompt_len=16", f"--out={out}"])
  assert r["same_tokens"] and r["rows"] == 8 and 4 <= r["lengths"]["min"] <= r["lengths"]["max"] <= 32
  assert set(json.loads(out.read_text())["useful_tokens_per_s"]) == {"one_loop", "drop_finished"}
