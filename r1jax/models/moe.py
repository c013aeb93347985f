"""DeepSeekMoE: shared expert + routed experts with auxiliary-loss-free balancing.

Routing (V3 §2.1.2, eqs. 12-16), for each token t with hidden u_t:
  1. s_{t,i} = sigmoid(u_t · e_i)                       affinity to expert i
  2. b = s + bias                                       bias only steers selection
  3. group score = sum of the top-2 of b in each of the G groups; keep the top
     `n_limited_groups` groups, mask the other experts' b to -inf
  4. pick the top-K experts by b; gate g_{t,i} = s_{t,i} / Σ_selected s · route_scale
  5. h'_t = u_t + shared(u_t) + Σ_i g_{t,i} · expert_i(u_t)   (the residual is added
     by the block)

The per-expert bias is a non-trainable buffer (collection "buffers"); the train step
moves it with `update_router_bias` (eq. 16's sign rule) from the load this layer reports.

Dispatch of tokens to experts is selected by `cfg.moe_dispatch`:
  * "dense": every expert on every token, weighted by the gates. Exact, E× the FLOPs:
    the reference for tests and tiny models.
  * "ragged": tokens sorted by expert, grouped matmuls with `jax.lax.ragged_dot`.
    Exact and dropless.
  * "capacity": tokens sorted by expert into [E, capacity, D] buckets and one batched
    matmul; tokens past an expert's capacity are dropped (they keep the residual and
    the shared expert). Exact when capacity_factor ≥ E / K.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from r1jax.models.config import ModelConfig
from r1jax.models.layers import SwiGLU, param


def route(logits_te: jax.Array, bias_e: jax.Array, cfg: ModelConfig):
  """Group-limited top-k routing (steps 1-4 above).

  logits_te [T, E] float32, bias_e [E] -> (gates_tk [T, K] float32, experts_tk [T, K]
  int32, scores_te [T, E] float32).
  """
  T, E = logits_te.shape
  G, K = cfg.n_expert_groups, cfg.n_activated_experts
  if cfg.score_func == "sigmoid":
    scores = jax.nn.sigmoid(logits_te)
  else:
    scores = jax.nn.softmax(logits_te, axis=-1)
  choice = scores + bias_e[None, :]
  if G > 1:
    group_scores = jax.lax.top_k(choice.reshape(T, G, E // G), 2)[0].sum(-1)  # [T, G]
    _, top_groups = jax.lax.top_k(group_scores, cfg.n_limited_groups)
    group_mask = jnp.zeros((T, G), bool).at[jnp.arange(T)[:, None], top_groups].set(True)
    choice = jnp.where(jnp.repeat(group_mask, E // G, axis=1), choice, -jnp.inf)
  _, experts = jax.lax.top_k(choice, K)
  gates = jnp.take_along_axis(scores, experts, axis=-1)
  if cfg.norm_topk_prob:
    gates = gates / (gates.sum(-1, keepdims=True) + 1e-20)
  return gates * cfg.route_scale, experts.astype(jnp.int32), scores


def balance_loss(scores_bse: jax.Array, experts_bsk: jax.Array, valid_bs: jax.Array,
                 cfg: ModelConfig) -> jax.Array:
  """Sequence-wise balance loss Σ_i f_i·P_i (V3 eqs. 17-20), averaged over sequences.

  scores [B, S, E] affinities, experts [B, S, K] chosen ids, valid [B, S] token mask.
  α is applied by the caller (`cfg.seq_aux_loss_alpha`).
  """
  E, K = cfg.n_routed_experts, cfg.n_activated_experts
  w = valid_bs.astype(jnp.float32)
  n = jnp.maximum(w.sum(-1), 1.0)  # tokens per sequence
  picked = jax.nn.one_hot(experts_bsk, E).sum(2) * w[..., None]  # [B, S, E]
  f = E / (K * n[:, None]) * picked.sum(1)
  normed = scores_bse / (scores_bse.sum(-1, keepdims=True) + 1e-20)
  P = (normed * w[..., None]).sum(1) / n[:, None]
  return jnp.mean(jnp.sum(f * P, axis=-1))


def update_router_bias(bias: jax.Array, load: jax.Array, rate: float) -> jax.Array:
  """Auxiliary-loss-free balancing (V3 eq. 16 text): b_i += γ·sign(mean load − load_i).

  bias, load: [..., E] (any leading layer axes); overloaded experts are pushed down.
  """
  mean = jnp.mean(load, axis=-1, keepdims=True)
  return bias + rate * jnp.sign(mean - load).astype(bias.dtype)


def capacity(num_tokens: int, cfg: ModelConfig) -> int:
  """Slots per expert: ceil(T·K/E · capacity_factor), at most T, rounded up to 8."""
  c = math.ceil(num_tokens * cfg.n_activated_experts / cfg.n_routed_experts * cfg.capacity_factor)
  c = min(c, num_tokens)
  return max(8, -(-c // 8) * 8)


def _sort_by_expert(experts_tk: jax.Array, E: int):
  """Order of the T·K assignments grouped by expert, and tokens per expert [E]."""
  flat = experts_tk.reshape(-1)
  order = jnp.argsort(flat, stable=True)
  return order, flat[order], jnp.bincount(flat, length=E).astype(jnp.int32)


class MoE(nn.Module):
  """Shared expert + routed experts. x [B, S, D] -> (y [B, S, D], aux)."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x, valid_bs):
    cfg = self.cfg
    B, S, D = x.shape
    E, F, K = cfg.n_routed_experts, cfg.moe_inter_dim, cfg.n_activated_experts
    dt = cfg.dtype
    w_router = param(self, "gate", (D, E), ("embed", "expert_router"), cfg)
    bias = self.variable("buffers", "e_score_correction_bias", nn.with_logical_partitioning(
        lambda: jnp.zeros((E,), jnp.float32), ("expert",))).value
    w_gate = param(self, "w_gate", (E, D, F), ("expert", "embed", "expert_mlp"), cfg).astype(dt)
    w_up = param(self, "w_up", (E, D, F), ("expert", "embed", "expert_mlp"), cfg).astype(dt)
    w_down = param(self, "w_down", (E, F, D), ("expert", "expert_mlp", "embed"), cfg).astype(dt)

    xt = x.reshape(B * S, D)
    logits = jnp.dot(xt.astype(jnp.float32), w_router.astype(jnp.float32))
    gates, experts, scores = route(logits, jax.lax.stop_gradient(bias), cfg)

    if cfg.moe_dispatch == "dense":
      # Three plain matmuls over the concatenated experts ([D, E·F] and [E·F, D]), the
      # gates applied to the hidden units: batched per-token einsums were 8x slower on CPU.
      combine = jnp.zeros((B * S, E), jnp.float32).at[jnp.arange(B * S)[:, None], experts].add(gates)
      stacked = lambda w: w.transpose(1, 0, 2).reshape(D, E * F)  # noqa: E731
      h = jax.nn.silu(xt @ stacked(w_gate)) * (xt @ stacked(w_up))  # [T, E·F]
      h = (h.reshape(B * S, E, F) * combine.astype(dt)[:, :, None]).reshape(B * S, E * F)
      routed = h @ w_down.reshape(E * F, D)
    elif cfg.moe_dispatch == "ragged":
      order, _, sizes = _sort_by_expert(experts, E)
      token = order // K
      xs = xt[token]
      h = jax.nn.silu(jax.lax.ragged_dot(xs, w_gate, sizes)) * jax.lax.ragged_dot(xs, w_up, sizes)
      ys = jax.lax.ragged_dot(h, w_down, sizes) * gates.reshape(-1)[order, None].astype(dt)
      routed = jnp.zeros_like(xt).at[token].add(ys)
    else:  # capacity-bucketed batched matmul
      cap = capacity(B * S, cfg)
      order, sorted_e, sizes = _sort_by_expert(experts, E)
      token = order // K
      starts = jnp.cumsum(sizes) - sizes
      rank = jnp.arange(B * S * K) - starts[sorted_e]
      slot = jnp.where(rank < cap, sorted_e * cap + rank, E * cap)  # E·cap = dropped
      buckets = jnp.zeros((E * cap, D), dt).at[slot].set(xt[token], mode="drop").reshape(E, cap, D)
      h = jax.nn.silu(jnp.einsum("ecd,edf->ecf", buckets, w_gate)) * jnp.einsum(
          "ecd,edf->ecf", buckets, w_up)
      out = jnp.einsum("ecf,efd->ecd", h, w_down).reshape(E * cap, D)
      ys = out.at[slot].get(mode="fill", fill_value=0) * gates.reshape(-1)[order, None].astype(dt)
      routed = jnp.zeros_like(xt).at[token].add(ys)

    y = routed.reshape(B, S, D)
    if cfg.n_shared_experts:
      y = y + SwiGLU(cfg, F * cfg.n_shared_experts, name="shared_experts")(x)

    valid = valid_bs.reshape(-1).astype(jnp.float32)
    load = (jax.nn.one_hot(experts, E, dtype=jnp.float32).sum(1) * valid[:, None]).sum(0)
    aux = {"expert_load": load}
    if cfg.seq_aux_loss_alpha:
      aux["balance_loss"] = cfg.seq_aux_loss_alpha * balance_loss(
          scores.reshape(B, S, E), experts.reshape(B, S, K), valid_bs, cfg)
    return y, aux
