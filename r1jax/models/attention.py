"""Attention layers: multi-head latent attention (MLA) and grouped-query attention (GQA).

Both take x [B, T, D] and a `Context` (positions, segments, RoPE tables) and return
[B, T, D]. Given the decode cache of their group of layers (stacked: [L, B, S, ...]) and
their layer index, they write the new tokens into slots ctx.cache_slot .. + T - 1 of
their layer (one `dynamic_update_slice`, the same slots for every row, so XLA updates the
cache in place) and attend over the whole cache, masked by each slot's segment and
position (`Context.kv_segment_ids`, `kv_positions`): a slot need not equal its token's
position, so prompts of different lengths share slots.

MLA (DeepSeek-V2 §2.1, V3 §2.1.1) has two paths that compute the same function:
  * expanded (training / no cache): the latent c_kv [B, S, C] is up-projected to
    per-head keys and values, then ordinary attention;
  * absorbed (with a cache): only the normalised latent c_kv and the roped key k_pe
    (C + R values per token, 576 for V3) are cached; W_UK is folded into the query and
    W_UV into the output, so attention runs in the C-wide latent space.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from r1jax.models.config import ModelConfig
from r1jax.models.layers import (NEG_INF, RMSNorm, apply_rope, attention_mask, dense,
                                 dot_attention, param)


# DeepSeek's reference code (and transformers) fix the latent norms' eps, whatever the
# model's rms_norm_eps.
MLA_LATENT_EPS = 1e-6


class Context(NamedTuple):
  """Per-call inputs shared by every layer.

  positions, segment_ids: [B, T] int32; sin, cos: [B, T, R/2] float32; branch_ids [B, T]
  int32 or None (no cache): the trunk/branch ids of `layers.attention_mask`.
  With a cache: cache_slot, the int32 scalar slot of this call's first token (token i goes
  to slot cache_slot + i in every row); kv_segment_ids, kv_positions [B, S], the segment
  and position of each cache slot after this call's writes.
  """
  positions: jax.Array
  segment_ids: jax.Array
  sin: jax.Array
  cos: jax.Array
  cache_slot: jax.Array | None = None
  kv_segment_ids: jax.Array | None = None
  kv_positions: jax.Array | None = None
  branch_ids: jax.Array | None = None


def write_slots(buf: jax.Array, new: jax.Array, slot, layer=None) -> jax.Array:
  """buf with new stored at slots slot .. slot + T - 1 of every row: buf [B, S, ...] and
  new [B, T, ...], or with `layer`, buf [L, B, S, ...] and new going to that layer."""
  new = new.astype(buf.dtype)
  if layer is None:
    return jax.lax.dynamic_update_slice_in_dim(buf, new, slot, axis=1)
  start = (layer, 0, slot) + (0,) * (buf.ndim - 3)
  return jax.lax.dynamic_update_slice(buf, new[None], start)


def _mask(ctx: Context, cached: bool):
  if not cached:
    return attention_mask(ctx.positions, ctx.positions, ctx.segment_ids, ctx.segment_ids,
                          ctx.branch_ids, ctx.branch_ids)
  return attention_mask(ctx.positions, ctx.kv_positions, ctx.segment_ids, ctx.kv_segment_ids)


class MLA(nn.Module):
  """Multi-head latent attention with decoupled RoPE (V2 eqs. 37-47)."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x, ctx: Context, cache: dict | None = None, layer=None):
    cfg = self.cfg
    dt = cfg.dtype
    N, C, R = cfg.n_heads, cfg.kv_lora_rank, cfg.qk_rope_head_dim
    Hn, Hv = cfg.qk_nope_head_dim, cfg.v_head_dim

    # Query: low-rank (q_lora_rank > 0) or direct projection.
    if cfg.q_lora_rank:
      w_dq = param(self, "q_a_proj", (cfg.dim, cfg.q_lora_rank), ("embed", "q_lora"), cfg)
      c_q = RMSNorm(cfg, cfg.q_lora_rank, eps=MLA_LATENT_EPS, name="q_a_norm")(dense(x, w_dq.astype(dt)))
      w_uq = param(self, "q_b_proj", (cfg.q_lora_rank, N, cfg.qk_head_dim),
                   ("q_lora", "heads", "head_dim"), cfg)
      q = dense(c_q, w_uq.astype(dt))  # [B, T, N, Hn + R]
    else:
      w_q = param(self, "q_proj", (cfg.dim, N, cfg.qk_head_dim), ("embed", "heads", "head_dim"), cfg)
      q = dense(x, w_q.astype(dt))
    q_nope, q_pe = q[..., :Hn], q[..., Hn:]
    q_pe = apply_rope(q_pe, ctx.sin, ctx.cos, cfg.rope_interleave)

    # Key/value latent and the shared rope key.
    w_dkv = param(self, "kv_a_proj", (cfg.dim, C + R), ("embed", "kv_lora"), cfg)
    kv_a = dense(x, w_dkv.astype(dt))
    c_kv = RMSNorm(cfg, C, eps=MLA_LATENT_EPS, name="kv_a_norm")(kv_a[..., :C])  # [B, T, C]
    k_pe = apply_rope(kv_a[..., C:], ctx.sin, ctx.cos, cfg.rope_interleave)  # [B, T, R]
    w_ukv = param(self, "kv_b_proj", (C, N, Hn + Hv), ("kv_lora", "heads", "head_dim"), cfg)
    w_ukv = w_ukv.astype(dt)
    w_o = param(self, "o_proj", (N, Hv, cfg.dim), ("heads", "head_dim", "embed"), cfg).astype(dt)

    if cache is None:  # expanded path
      kv = dense(c_kv, w_ukv)  # [B, S, N, Hn + Hv]
      k_nope, v = kv[..., :Hn], kv[..., Hn:]
      k_pe_heads = jnp.broadcast_to(k_pe[:, :, None, :], k_nope.shape[:3] + (R,))
      k = jnp.concatenate([k_nope, k_pe_heads], axis=-1)
      q_full = jnp.concatenate([q_nope, q_pe], axis=-1)
      out = dot_attention(q_full, k, v, _mask(ctx, False), cfg.softmax_scale, cfg.attention_impl)
      return dense(out, w_o, contract=2), None

    # absorbed path over the latent cache (this layer's [B, S, C] and [B, S, R])
    cache = {"c_kv": write_slots(cache["c_kv"], c_kv, ctx.cache_slot, layer),
             "k_pe": write_slots(cache["k_pe"], k_pe, ctx.cache_slot, layer)}
    c_all, pe_all = (cache[k][layer].astype(dt) for k in ("c_kv", "k_pe"))
    q_lat = jnp.einsum("btnh,cnh->btnc", q_nope, w_ukv[..., :Hn])  # W_UK absorbed
    scores = (jnp.einsum("btnc,bsc->bnts", q_lat, c_all, preferred_element_type=jnp.float32)
              + jnp.einsum("btnr,bsr->bnts", q_pe, pe_all, preferred_element_type=jnp.float32))
    scores = scores * cfg.softmax_scale
    mask = _mask(ctx, True)
    scores = jnp.where(mask[:, None], scores, NEG_INF)
    probs = jax.nn.softmax(scores, axis=-1).astype(dt)
    o_lat = jnp.einsum("bnts,bsc->btnc", probs, c_all)
    out = jnp.einsum("btnc,cnh->btnh", o_lat, w_ukv[..., Hn:])  # W_UV absorbed
    return dense(out, w_o, contract=2), cache


class GQA(nn.Module):
  """Grouped-query attention with RoPE (Ainslie et al. 2023), Qwen2 / Llama layout."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x, ctx: Context, cache: dict | None = None, layer=None):
    cfg = self.cfg
    dt = cfg.dtype
    N, K, H = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim

    def proj(name, heads, axis):
      w = param(self, name, (cfg.dim, heads, H), ("embed", axis, "head_dim"), cfg)
      y = dense(x, w.astype(dt))  # [B, T, heads, H]
      if cfg.qkv_bias:
        b = param(self, name.replace("proj", "bias"), (heads, H), (axis, "head_dim"), cfg,
                  nn.initializers.zeros)
        y = y + b.astype(dt)[None, None]
      return y

    q = apply_rope(proj("q_proj", N, "heads"), ctx.sin, ctx.cos, cfg.rope_interleave)
    k = apply_rope(proj("k_proj", K, "kv_heads"), ctx.sin, ctx.cos, cfg.rope_interleave)
    v = proj("v_proj", K, "kv_heads")
    w_o = param(self, "o_proj", (N, H, cfg.dim), ("heads", "head_dim", "embed"), cfg).astype(dt)

    if cache is None:
      mask = _mask(ctx, False)
    else:  # this layer's [B, S, K, H] after the write
      cache = {"k": write_slots(cache["k"], k, ctx.cache_slot, layer),
               "v": write_slots(cache["v"], v, ctx.cache_slot, layer)}
      k, v = cache["k"][layer].astype(dt), cache["v"][layer].astype(dt)
      mask = _mask(ctx, True)
    out = dot_attention(q, k, v, mask, cfg.softmax_scale, cfg.attention_impl)
    return dense(out, w_o, contract=2), cache
