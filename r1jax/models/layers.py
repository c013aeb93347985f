"""Small building blocks shared by every r1jax decoder: norm, RoPE, SwiGLU, attention.

Dimension letters used in einsums throughout `r1jax.models`:
  B batch, T query length, S key length, D model width, F ffn width, N query heads,
  K kv heads, H head dim, C kv latent (kv_lora_rank), Q query latent (q_lora_rank),
  R rotary dim, E experts, V vocabulary, L layers.

Parameters carry logical axis names (`embed`, `mlp`, `heads`, ...) through
`nn.with_logical_partitioning`; `r1jax.runtime.sharding` maps them onto a mesh.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from r1jax.models.config import ModelConfig, yarn_get_mscale

NEG_INF = -0.7 * float(np.finfo(np.float32).max)  # finite, so fully-masked rows stay NaN-free


def param(module: nn.Module, name: str, shape, axes, cfg: ModelConfig, init=None):
  """Declares a parameter with logical axis names; normal(init_std) unless `init` is given."""
  init = init or nn.initializers.normal(cfg.init_std)
  return module.param(name, nn.with_logical_partitioning(init, axes), shape,
                      jnp.dtype(cfg.param_dtype))


def dense(x: jax.Array, w: jax.Array, contract: int = 1) -> jax.Array:
  """x [..., *w.shape[:contract]] · w -> [..., *w.shape[contract:]], as one 2-D matmul.

  The same contraction as an einsum over the trailing axes, but XLA:CPU differentiates a
  [B, T, D]·[D, F] product by physically transposing the activations, which made the tiny
  models' train steps ~3x slower than the flattened [B·T, D]·[D, F] form.
  """
  k = math.prod(w.shape[:contract])
  lead = x.shape[:x.ndim - contract]
  y = x.reshape(-1, k) @ w.reshape(k, -1)
  return y.reshape(*lead, *w.shape[contract:])


def head_logits(h: jax.Array, w_head: jax.Array, dtype) -> jax.Array:
  """The output head: h [..., D] · w_head [D, V] in `dtype`, accumulated in float32 ->
  [..., V] float32, as one 2-D matmul (see `dense`)."""
  y = jnp.dot(h.reshape(-1, h.shape[-1]), w_head.astype(dtype), preferred_element_type=jnp.float32)
  return y.reshape(*h.shape[:-1], w_head.shape[-1])


class RMSNorm(nn.Module):
  """x / rms(x) · scale, computed in float32 (Zhang & Sennrich 2019)."""
  cfg: ModelConfig
  width: int | None = None
  eps: float | None = None  # None: cfg.norm_eps

  @nn.compact
  def __call__(self, x):
    width = self.width or self.cfg.dim
    eps = self.cfg.norm_eps if self.eps is None else self.eps
    scale = param(self, "scale", (width,), ("norm",), self.cfg, nn.initializers.ones)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (y * jnp.expand_dims(scale.astype(jnp.float32), range(x.ndim - 1))).astype(self.cfg.dtype)


class SwiGLU(nn.Module):
  """down(silu(x·gate) * (x·up)) over [..., D] -> [..., D] (Shazeer 2020)."""
  cfg: ModelConfig
  hidden: int

  @nn.compact
  def __call__(self, x):
    cfg, F = self.cfg, self.hidden
    dt = cfg.dtype
    w_gate = param(self, "gate_proj", (cfg.dim, F), ("embed", "mlp"), cfg).astype(dt)
    w_up = param(self, "up_proj", (cfg.dim, F), ("embed", "mlp"), cfg).astype(dt)
    w_down = param(self, "down_proj", (F, cfg.dim), ("mlp", "embed"), cfg).astype(dt)
    h = jax.nn.silu(dense(x, w_gate)) * dense(x, w_up)
    return dense(h, w_down)


# ----------------------------------------------------------------------------- RoPE


def rope_inv_freq(cfg: ModelConfig) -> tuple[np.ndarray, float]:
  """Inverse frequencies [R/2] and the cos/sin magnitude ("attention factor").

  `none`: θ^(-2i/R). `yarn`: blend of interpolated and extrapolated frequencies over the
  correction range [β_fast, β_slow] rotations (Peng et al. 2023 §3.2), as in DeepSeek-V3.
  `llama3`: low frequencies divided by `factor`, smoothed in between (Llama 3.1).
  """
  dim, base = cfg.rope_dim, cfg.rope_theta
  inv_freq = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
  attention_factor = 1.0
  if cfg.rope_scaling == "yarn":
    factor, orig = cfg.rope_factor, cfg.rope_original_max_position

    def correction_dim(rotations):
      return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction_dim(cfg.yarn_beta_fast)), 0)
    high = min(math.ceil(correction_dim(cfg.yarn_beta_slow)), dim - 1)
    if low == high:
      high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    extrapolate = 1.0 - ramp
    inv_freq = inv_freq / factor * (1 - extrapolate) + inv_freq * extrapolate
    if cfg.yarn_mscale and cfg.yarn_mscale_all_dim:
      attention_factor = (yarn_get_mscale(factor, cfg.yarn_mscale)
                          / yarn_get_mscale(factor, cfg.yarn_mscale_all_dim))
    else:
      attention_factor = yarn_get_mscale(factor)
  elif cfg.rope_scaling == "llama3":
    factor, orig = cfg.rope_factor, cfg.rope_original_max_position
    lo, hi = cfg.llama3_low_freq_factor, cfg.llama3_high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > orig / lo, inv_freq / factor, inv_freq)
    smooth = (orig / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= orig / hi) & (wavelen <= orig / lo)
    inv_freq = np.where(medium, smoothed, scaled)
  return inv_freq.astype(np.float32), float(attention_factor)


def rope_tables(cfg: ModelConfig, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
  """sin, cos of shape [B, T, R/2] for integer positions [B, T]."""
  inv_freq, attention_factor = rope_inv_freq(cfg)
  angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)[None, None, :]
  return jnp.sin(angles) * attention_factor, jnp.cos(angles) * attention_factor


def apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array, interleave: bool) -> jax.Array:
  """Rotates the last axis of x [B, T, ..., R] by the angles in sin/cos [B, T, R/2].

  interleave=True rotates pairs (x0, x1), (x2, x3), … as DeepSeek does and returns the
  result de-interleaved ([rotated evens, rotated odds]), as transformers does: q and k
  go through the same permutation, so q·k is that of the interleaved rotation.
  interleave=False rotates (x_i, x_{i+R/2}) pairs (GPT-NeoX / Llama / Qwen layout).
  """
  extra = x.ndim - sin.ndim
  sin = sin.reshape(sin.shape[:2] + (1,) * extra + sin.shape[2:])
  cos = cos.reshape(cos.shape[:2] + (1,) * extra + cos.shape[2:])
  x32 = x.astype(jnp.float32)
  if interleave:
    x1, x2 = x32[..., 0::2], x32[..., 1::2]
  else:
    half = x.shape[-1] // 2
    x1, x2 = x32[..., :half], x32[..., half:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


# ----------------------------------------------------------------------- attention


def attention_mask(q_pos, kv_pos, q_seg, kv_seg, q_branch=None, kv_branch=None):
  """Boolean mask [B, T, S]: causal by position, same non-zero segment (0 = padding), and
  with branch ids [B, T] / [B, S] a key of branch b > 0 is seen only by its own branch:
  a query sees the shared trunk (branch 0) and its own branch, as G completions packed
  after their one prompt need."""
  causal = kv_pos[:, None, :] <= q_pos[:, :, None]
  same = (q_seg[:, :, None] == kv_seg[:, None, :]) & (kv_seg[:, None, :] != 0)
  if q_branch is None:
    return causal & same
  visible = (kv_branch[:, None, :] == 0) | (kv_branch[:, None, :] == q_branch[:, :, None])
  return causal & same & visible


def dot_attention(q, k, v, mask, scale: float, impl: str = "xla"):
  """softmax(q·kᵀ·scale + mask)·v with grouped heads.

  q [B, T, N, H], k [B, S, K, H], v [B, S, K, Hv], mask bool [B, T, S] -> [B, T, N, Hv].
  Scores and softmax in float32. `impl="cudnn"` hands the same computation to
  `jax.nn.dot_product_attention` (flash attention on NVIDIA GPUs).
  """
  B, T, N, H = q.shape
  K, Hv = k.shape[2], v.shape[-1]
  if impl == "cudnn":
    if Hv != H:  # cuDNN wants one head size; pad v and slice the result
      v = jnp.pad(v, ((0, 0), (0, 0), (0, 0), (0, H - Hv)))
    out = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None], scale=scale,
                                       implementation="cudnn")
    return out[..., :Hv]
  qg = q.reshape(B, T, K, N // K, H)
  scores = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
  scores = jnp.where(mask[:, None, None], scores, NEG_INF)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  out = jnp.einsum("bkgts,bskh->btkgh", probs, v)
  return out.reshape(B, T, N, Hv)
