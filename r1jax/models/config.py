"""`ModelConfig`: one frozen dataclass for the DeepSeek-V3 decoder and dense students.

A config describes a decoder with `n_layers` blocks: the first `n_dense_layers` use a
SwiGLU MLP of width `inter_dim`, the rest a DeepSeekMoE layer (V3 §2.1.2). Attention is
either MLA (`attention="mla"`, V2 §2.1) or grouped-query attention (`attention="gqa"`,
Qwen2 / Llama). Dense students are configs with `n_dense_layers == n_layers`.

Every check lives in `__post_init__`, so a bad config fails when it is built, naming the
field, the value and what would be accepted.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

RopeScaling = Literal["none", "yarn", "llama3"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Shape and numerics of a decoder. Field names follow the papers / HF configs."""

  name: str
  vocab_size: int
  dim: int
  n_layers: int
  n_heads: int
  inter_dim: int  # width of the dense SwiGLU MLP
  n_dense_layers: int | None = None  # None: every layer dense (a student model)

  # --- attention ---
  attention: Literal["mla", "gqa"] = "gqa"
  # GQA (Qwen2 / Llama)
  n_kv_heads: int | None = None  # None: = n_heads (MHA)
  head_dim: int | None = None  # None: dim // n_heads
  qkv_bias: bool = False  # Qwen2 has biases on q, k, v
  # MLA (DeepSeek-V2/V3); q_lora_rank == 0 projects the query directly
  q_lora_rank: int = 0
  kv_lora_rank: int = 512
  qk_nope_head_dim: int = 128
  qk_rope_head_dim: int = 64
  v_head_dim: int = 128

  # --- MoE (DeepSeekMoE, V3 §2.1.2) ---
  n_routed_experts: int = 0
  n_shared_experts: int = 0
  n_activated_experts: int = 0  # top-k
  moe_inter_dim: int = 0
  n_expert_groups: int = 1
  n_limited_groups: int = 1  # top-k groups a token may route to
  score_func: Literal["sigmoid", "softmax"] = "sigmoid"
  route_scale: float = 1.0  # routed_scaling_factor
  norm_topk_prob: bool = True
  bias_update_rate: float = 0.001  # γ of the auxiliary-loss-free balancing (V3 eq. 16)
  seq_aux_loss_alpha: float = 0.0  # α of the sequence-wise balance loss (V3 eq. 17-20)
  moe_dispatch: Literal["dense", "ragged", "capacity", "all_to_all"] = "ragged"
  capacity_factor: float = 1.25  # for moe_dispatch "capacity" and "all_to_all"

  # --- positions ---
  rope_theta: float = 10000.0
  rope_scaling: RopeScaling = "none"
  rope_factor: float = 1.0
  rope_original_max_position: int = 4096
  yarn_beta_fast: float = 32.0
  yarn_beta_slow: float = 1.0
  yarn_mscale: float = 1.0
  yarn_mscale_all_dim: float = 0.0
  llama3_low_freq_factor: float = 1.0
  llama3_high_freq_factor: float = 4.0
  rope_interleave: bool = False  # DeepSeek rotates adjacent pairs; Qwen/Llama rotate halves
  max_position_embeddings: int = 4096

  # --- the rest ---
  norm_eps: float = 1e-6
  tie_embeddings: bool = False
  n_mtp_modules: int = 0  # multi-token prediction depth (V3 §2.2); 0 = off
  mtp_loss_weight: float = 0.3  # λ of V3 eq. 25
  init_std: float = 0.02
  dtype: str = "float32"  # compute dtype of activations
  param_dtype: str = "float32"
  remat: Literal["none", "full", "dots"] = "none"
  attention_impl: Literal["xla", "cudnn"] = "xla"
  scan_layers: bool = True  # one compiled block per layer kind instead of unrolled layers

  def __post_init__(self):
    def bad(field, msg):
      raise ValueError(f"ModelConfig({self.name!r}).{field}: {msg}")

    for f in ("vocab_size", "dim", "n_layers", "n_heads", "inter_dim"):
      if getattr(self, f) <= 0:
        bad(f, f"must be positive, got {getattr(self, f)}")
    if self.n_dense_layers is None:
      object.__setattr__(self, "n_dense_layers", self.n_layers)
    if not 0 <= self.n_dense_layers <= self.n_layers:
      bad("n_dense_layers", f"{self.n_dense_layers} must lie in [0, n_layers={self.n_layers}]")
    if self.attention not in ("mla", "gqa"):
      bad("attention", f"{self.attention!r} is not one of 'mla', 'gqa'")
    if self.attention == "gqa":
      if self.n_kv_heads is None:
        object.__setattr__(self, "n_kv_heads", self.n_heads)
      if self.n_heads % self.n_kv_heads:
        bad("n_kv_heads", f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}")
      if self.head_dim is None:
        if self.dim % self.n_heads:
          bad("head_dim", f"dim={self.dim} is not divisible by n_heads={self.n_heads}; set head_dim")
        object.__setattr__(self, "head_dim", self.dim // self.n_heads)
    else:
      if self.qk_rope_head_dim % 2:
        bad("qk_rope_head_dim", f"must be even for RoPE, got {self.qk_rope_head_dim}")
      for f in ("kv_lora_rank", "qk_nope_head_dim", "v_head_dim"):
        if getattr(self, f) <= 0:
          bad(f, f"must be positive for MLA, got {getattr(self, f)}")
    if self.n_moe_layers:
      E, G = self.n_routed_experts, self.n_expert_groups
      if E <= 0 or self.moe_inter_dim <= 0:
        bad("n_routed_experts", f"MoE layers need n_routed_experts > 0 and moe_inter_dim > 0, got {E} and {self.moe_inter_dim}")
      if G <= 0 or E % G:
        bad("n_expert_groups", f"n_routed_experts={E} is not divisible by n_expert_groups={G}")
      if not 1 <= self.n_limited_groups <= G:
        bad("n_limited_groups", f"{self.n_limited_groups} must lie in [1, n_expert_groups={G}]")
      if G > 1 and E // G < 2:
        bad("n_expert_groups", f"group scores sum each group's top-2 experts, so groups need >= 2 experts; got {E // G}")
      reachable = self.n_limited_groups * (E // G)
      if not 1 <= self.n_activated_experts <= reachable:
        bad("n_activated_experts", f"{self.n_activated_experts} must lie in [1, {reachable}] "
            f"(n_limited_groups × experts per group)")
      if self.score_func not in ("sigmoid", "softmax"):
        bad("score_func", f"{self.score_func!r} is not one of 'sigmoid', 'softmax'")
      if self.moe_dispatch not in ("dense", "ragged", "capacity", "all_to_all"):
        bad("moe_dispatch", f"{self.moe_dispatch!r} is not one of 'dense', 'ragged', "
            "'capacity', 'all_to_all'")
      if self.capacity_factor <= 0:
        bad("capacity_factor", f"must be positive, got {self.capacity_factor}")
    if self.rope_scaling not in ("none", "yarn", "llama3"):
      bad("rope_scaling", f"{self.rope_scaling!r} is not one of 'none', 'yarn', 'llama3'")
    if self.rope_scaling != "none" and self.rope_factor < 1:
      bad("rope_factor", f"must be >= 1 with rope_scaling={self.rope_scaling!r}, got {self.rope_factor}")
    if self.n_mtp_modules < 0:
      bad("n_mtp_modules", f"must be >= 0, got {self.n_mtp_modules}")
    if self.remat not in ("none", "full", "dots"):
      bad("remat", f"{self.remat!r} is not one of 'none', 'full', 'dots'")
    if self.attention_impl not in ("xla", "cudnn"):
      bad("attention_impl", f"{self.attention_impl!r} is not one of 'xla', 'cudnn'")

  # --- derived shapes ---
  @property
  def n_moe_layers(self) -> int:
    return self.n_layers - self.n_dense_layers

  @property
  def is_moe(self) -> bool:
    return self.n_moe_layers > 0

  @property
  def qk_head_dim(self) -> int:
    return self.qk_nope_head_dim + self.qk_rope_head_dim

  @property
  def rope_dim(self) -> int:
    """Number of rotated channels per head."""
    return self.qk_rope_head_dim if self.attention == "mla" else self.head_dim

  @property
  def softmax_scale(self) -> float:
    """1/sqrt(d_qk), times YaRN's mscale² for MLA only (DeepSeek's attention; HF
    `yarn_apply_mscale`); YaRN in Llama/Qwen scales cos/sin instead (`rope_inv_freq`)."""
    d = self.qk_head_dim if self.attention == "mla" else self.head_dim
    scale = d**-0.5
    if self.attention == "mla" and self.rope_scaling == "yarn" and self.yarn_mscale_all_dim:
      m = yarn_get_mscale(self.rope_factor, self.yarn_mscale_all_dim)
      scale *= m * m
    return scale

  @property
  def cache_width_per_token(self) -> int:
    """Values cached per token per layer: latent + rope key (MLA) or K and V (GQA)."""
    if self.attention == "mla":
      return self.kv_lora_rank + self.qk_rope_head_dim
    return 2 * self.n_kv_heads * self.head_dim

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)


def yarn_get_mscale(factor: float, mscale: float = 1.0) -> float:
  """YaRN attention temperature 0.1·m·ln(s) + 1 (Peng et al. 2023, eq. 22)."""
  return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0
