"""Named model configs: `r1jax.models.presets.get("deepseek_v3_671b")`.

Real shapes are copied from the released `config.json` of each model; the `*_tiny`
presets keep the structure (MLA + group-limited MoE + shared expert + YaRN, or GQA +
SwiGLU) at a size that runs on a laptop CPU in seconds, with the project's own
1024-piece SentencePiece vocabulary.
"""

from __future__ import annotations

import difflib

from r1jax.models.config import ModelConfig

TINY_VOCAB = 1024


def deepseek_v3_671b() -> ModelConfig:
  """DeepSeek-V3 / R1: 671B total, 37B activated (V3 Table 1 and the released config)."""
  return ModelConfig(
      name="deepseek_v3_671b", vocab_size=129280, dim=7168, n_layers=61, n_dense_layers=3,
      n_heads=128, inter_dim=18432, attention="mla", q_lora_rank=1536, kv_lora_rank=512,
      qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
      n_routed_experts=256, n_shared_experts=1, n_activated_experts=8, moe_inter_dim=2048,
      n_expert_groups=8, n_limited_groups=4, score_func="sigmoid", route_scale=2.5,
      rope_theta=10000.0, rope_scaling="yarn", rope_factor=40.0,
      rope_original_max_position=4096, yarn_beta_fast=32.0, yarn_beta_slow=1.0,
      yarn_mscale=1.0, yarn_mscale_all_dim=1.0, rope_interleave=True,
      max_position_embeddings=163840, norm_eps=1e-6, n_mtp_modules=1, init_std=0.006,
      dtype="bfloat16", moe_dispatch="capacity", remat="full")


def deepseek_v3_tiny() -> ModelConfig:
  """The V3 structure at ~2M parameters: MLA, 1 dense + 3 MoE blocks, 16 experts in 4 groups."""
  return ModelConfig(
      name="deepseek_v3_tiny", vocab_size=TINY_VOCAB, dim=128, n_layers=4, n_dense_layers=1,
      n_heads=4, inter_dim=384, attention="mla", q_lora_rank=64, kv_lora_rank=32,
      qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
      n_routed_experts=16, n_shared_experts=1, n_activated_experts=4, moe_inter_dim=64,
      n_expert_groups=4, n_limited_groups=2, score_func="sigmoid", route_scale=2.5,
      rope_theta=10000.0, rope_scaling="yarn", rope_factor=4.0,
      rope_original_max_position=512, yarn_mscale=1.0, yarn_mscale_all_dim=1.0,
      rope_interleave=True, max_position_embeddings=2048, norm_eps=1e-6,
      moe_dispatch="dense")


def deepseek_v3_1b() -> ModelConfig:
  """The V3 structure at ~0.9B activated / 3.0B total: the MoE benchmark model.

  Small enough that bf16 weights + fp32 Adam state fit one 80 GB GPU.
  """
  return ModelConfig(
      name="deepseek_v3_1b", vocab_size=32768, dim=2048, n_layers=18, n_dense_layers=1,
      n_heads=16, inter_dim=5632, attention="mla", q_lora_rank=512, kv_lora_rank=256,
      qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64,
      n_routed_experts=32, n_shared_experts=2, n_activated_experts=6, moe_inter_dim=768,
      n_expert_groups=4, n_limited_groups=2, score_func="sigmoid", route_scale=2.5,
      rope_theta=10000.0, rope_scaling="yarn", rope_factor=4.0,
      rope_original_max_position=4096, yarn_mscale=1.0, yarn_mscale_all_dim=1.0,
      rope_interleave=True, max_position_embeddings=16384, dtype="bfloat16",
      moe_dispatch="capacity")


def qwen2_tiny() -> ModelConfig:
  """Qwen2 layout (GQA with q/k/v biases, tied embeddings) at ~0.5M parameters."""
  return ModelConfig(
      name="qwen2_tiny", vocab_size=TINY_VOCAB, dim=128, n_layers=2, n_heads=4, n_kv_heads=2,
      inter_dim=256, qkv_bias=True, tie_embeddings=True, rope_theta=1e6, norm_eps=1e-6,
      max_position_embeddings=2048)


def qwen2_5_0_5b() -> ModelConfig:
  """Qwen2.5-0.5B (-Instruct) shapes."""
  return ModelConfig(
      name="qwen2_5_0_5b", vocab_size=151936, dim=896, n_layers=24, n_heads=14, n_kv_heads=2,
      inter_dim=4864, qkv_bias=True, tie_embeddings=True, rope_theta=1e6, norm_eps=1e-6,
      max_position_embeddings=32768, dtype="bfloat16")


def qwen2_5_1_5b() -> ModelConfig:
  """Qwen2.5-1.5B / DeepSeek-R1-Distill-Qwen-1.5B shapes."""
  return ModelConfig(
      name="qwen2_5_1_5b", vocab_size=151936, dim=1536, n_layers=28, n_heads=12, n_kv_heads=2,
      inter_dim=8960, qkv_bias=True, tie_embeddings=True, rope_theta=1e6, norm_eps=1e-6,
      max_position_embeddings=32768, dtype="bfloat16")


def llama3_tiny() -> ModelConfig:
  """Llama-3 layout (GQA, llama3 RoPE scaling, untied head) at ~0.6M parameters."""
  return ModelConfig(
      name="llama3_tiny", vocab_size=TINY_VOCAB, dim=128, n_layers=2, n_heads=4, n_kv_heads=2,
      inter_dim=256, rope_theta=500000.0, rope_scaling="llama3", rope_factor=8.0,
      rope_original_max_position=256, norm_eps=1e-5, max_position_embeddings=2048)


def llama3_2_1b() -> ModelConfig:
  """Llama-3.2-1B shapes (the ~1B dense benchmark model)."""
  return ModelConfig(
      name="llama3_2_1b", vocab_size=128256, dim=2048, n_layers=16, n_heads=32, n_kv_heads=8,
      inter_dim=8192, tie_embeddings=True, rope_theta=500000.0, rope_scaling="llama3",
      rope_factor=32.0, rope_original_max_position=8192, norm_eps=1e-5,
      max_position_embeddings=131072, dtype="bfloat16")


def llama3_1_8b() -> ModelConfig:
  """Llama-3.1-8B / DeepSeek-R1-Distill-Llama-8B shapes."""
  return ModelConfig(
      name="llama3_1_8b", vocab_size=128256, dim=4096, n_layers=32, n_heads=32, n_kv_heads=8,
      inter_dim=14336, rope_theta=500000.0, rope_scaling="llama3", rope_factor=8.0,
      rope_original_max_position=8192, norm_eps=1e-5, max_position_embeddings=131072,
      dtype="bfloat16")


PRESETS = {f.__name__: f for f in (deepseek_v3_671b, deepseek_v3_tiny, deepseek_v3_1b,
                                   qwen2_tiny, qwen2_5_0_5b, qwen2_5_1_5b, llama3_tiny,
                                   llama3_2_1b, llama3_1_8b)}


def get(name: str, **overrides) -> ModelConfig:
  """The preset `name`, with any field overridden (`get("deepseek_v3_tiny", dtype="bfloat16")`)."""
  if name not in PRESETS:
    close = difflib.get_close_matches(name, PRESETS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown model preset {name!r}.{hint} Known presets: {', '.join(sorted(PRESETS))}")
  cfg = PRESETS[name]()
  return cfg.replace(**overrides) if overrides else cfg
