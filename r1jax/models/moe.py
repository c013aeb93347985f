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
  * "all_to_all": expert parallelism by hand (GShard). Under a mesh whose rules split the
    experts (`r1jax.runtime.sharding.activation_sharding`), each device buckets its own tokens as
    "capacity" does (capacity per source device), an all-to-all over the expert axis
    sends every bucket to the device holding its expert, the experts run on what they
    received, and a second all-to-all brings the outputs home. Expert weights arrive
    whole on their embed axis (fsdp is all-gathered, as for any weight) and split on
    their hidden axis, whose partial outputs are summed over the tensor axis. Without
    such a mesh, or with fewer than E/K tokens per device (decode steps), it is
    "capacity". Exact when capacity_factor ≥ E / K.

The first three leave the partitioning of the dispatch to XLA (GSPMD); "all_to_all"
fixes the communication to the two exchanges of [E, capacity, D] tokens per layer.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

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
  experts = experts.astype(jnp.int32)
  return expert_gates(scores, experts, cfg), experts, scores


def expert_gates(scores_te: jax.Array, experts_tk: jax.Array, cfg: ModelConfig) -> jax.Array:
  """Step 4's gates of the chosen experts: scores [T, E], experts [T, K] -> [T, K] float32."""
  gates = jnp.take_along_axis(scores_te, experts_tk, axis=-1)
  if cfg.norm_topk_prob:
    gates = gates / (gates.sum(-1, keepdims=True) + 1e-20)
  return gates * cfg.route_scale


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


def _experts_ffn(x_ecd, w_gate, w_up, w_down):
  """SwiGLU of every expert on its bucket: [E, C, D] -> [E, C, D]."""
  h = jax.nn.silu(jnp.einsum("ecd,edf->ecf", x_ecd, w_gate)) * jnp.einsum(
      "ecd,edf->ecf", x_ecd, w_up)
  return jnp.einsum("ecf,efd->ecd", h, w_down)


def _bucketed(xt, gates, experts, n_experts: int, cap: int, run):
  """Capacity dispatch around `run` ([E, cap, D] buckets -> [E, cap, D] outputs).

  xt [T, D], gates/experts [T, K]: each expert's first `cap` assignments (in token order)
  fill its bucket, later ones are dropped; outputs come back weighted by their gates and
  summed per token -> [T, D].
  """
  T, D = xt.shape
  K = experts.shape[1]
  order, sorted_e, sizes = _sort_by_expert(experts, n_experts)
  token = order // K
  starts = jnp.cumsum(sizes) - sizes
  rank = jnp.arange(T * K) - starts[sorted_e]
  slot = jnp.where(rank < cap, sorted_e * cap + rank, n_experts * cap)  # E·cap = dropped
  buckets = jnp.zeros((n_experts * cap, D), xt.dtype).at[slot].set(xt[token], mode="drop")
  out = run(buckets.reshape(n_experts, cap, D)).reshape(n_experts * cap, D)
  ys = out.at[slot].get(mode="fill", fill_value=0) * gates.reshape(-1)[order, None].astype(xt.dtype)
  return jnp.zeros_like(xt).at[token].add(ys)


def capacity_dispatch(xt, gates, experts, w_gate, w_up, w_down, cfg: ModelConfig):
  """The "capacity" dispatch: xt [T, D], gates/experts [T, K] -> routed output [T, D],
  every expert's bucket [capacity(T), D] in one batched matmul."""
  return _bucketed(xt, gates, experts, cfg.n_routed_experts, capacity(xt.shape[0], cfg),
                   lambda b: _experts_ffn(b, w_gate, w_up, w_down))


def _mesh_axes(names) -> tuple[str, ...]:
  """The mesh axes a logical name maps to under the current rules, as a tuple."""
  spec = nn.logical_to_mesh_axes((names,))[0]
  return () if spec is None else ((spec,) if isinstance(spec, str) else tuple(spec))


def all_to_all_dispatch(xt, gates, experts, w_gate, w_up, w_down, cfg: ModelConfig):
  """The "all_to_all" dispatch: xt [T, D], gates/experts [T, K] -> routed output [T, D].

  Runs under `shard_map` on the mesh of the enclosing `jax.set_mesh` context (a plain
  capacity dispatch where there is nothing to exchange, see below). Each device holds
  its batch shard's T_l tokens and E_l = E / n_ep experts; buckets of capacity(T_l)
  slots travel [n_ep, E_l, cap, D] -> all_to_all -> [n_ep sources, E_l, cap, D] ->
  experts -> all_to_all back.
  """
  E = cfg.n_routed_experts
  mesh = jax.sharding.get_abstract_mesh()
  ep, mlp, batch = _mesh_axes("expert"), _mesh_axes("expert_mlp"), _mesh_axes("batch")
  size = dict(mesh.shape) if not mesh.empty else {}
  n_ep = math.prod(size.get(a, 1) for a in ep)
  n_batch = math.prod(size.get(a, 1) for a in batch)
  if (n_ep == 1 or not set(ep) <= set(batch) or xt.shape[0] % n_batch
      or xt.shape[0] // n_batch * cfg.n_activated_experts < E):
    # Nothing to exchange: no expert axis, or tokens not split over it (rules that keep
    # the batch off it; a decode batch that does not divide the mesh). Or too little: a
    # device with fewer assignments than experts (a decode step: T_l = its rows) would
    # send E·cap mostly empty slots, where XLA's partitioning moves only [T, D] outputs.
    return capacity_dispatch(xt, gates, experts, w_gate, w_up, w_down, cfg)
  axis = ep[0] if len(ep) == 1 else ep

  def local(x, g, e, wg, wu, wd):
    def run(buckets):  # [E, cap, D] -> [E, cap, D]
      E_l, cap, D = E // n_ep, buckets.shape[1], buckets.shape[2]
      mine = jax.lax.all_to_all(buckets.reshape(n_ep, E_l, cap, D), axis, 0, 0)
      out = _experts_ffn(mine.transpose(1, 0, 2, 3).reshape(E_l, n_ep * cap, D), wg, wu, wd)
      if mlp:  # each tensor shard holds part of every expert's hidden units
        out = jax.lax.psum(out, mlp)
      out = out.reshape(E_l, n_ep, cap, D).transpose(1, 0, 2, 3)
      return jax.lax.all_to_all(out, axis, 0, 0).reshape(E, cap, D)
    return _bucketed(x, g, e, E, capacity(x.shape[0], cfg), run)

  tokens, w_in, w_out = P(batch, None), P(ep, None, mlp or None), P(ep, mlp or None, None)
  return jax.shard_map(local, in_specs=(tokens, tokens, tokens, w_in, w_in, w_out),
                       out_specs=tokens)(xt, gates, experts, w_gate, w_up, w_down)


class MoE(nn.Module):
  """Shared expert + routed experts. x [B, S, D] -> (y [B, S, D], aux).

  `replay` [B, S, K] int (optional): experts to use instead of the router's top-k at the
  valid tokens (routing replay, R3: the experts that produced a sampled token are the ones
  the trainer runs and trains); a token whose first id is negative keeps its router's
  choice. The gates are the current router's scores of the experts used, so the router
  still learns. aux: expert_load [E], balance_loss (when enabled),
  routing [B, S, K] int32 (the router's own top-k, replayed or not).
  """
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x, valid_bs, replay=None):
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
    own = experts
    if replay is not None:
      replayed = replay.reshape(B * S, K).astype(jnp.int32)
      use = valid_bs.reshape(-1, 1) & (replayed[:, :1] >= 0)
      experts = jnp.where(use, replayed, own)
      gates = expert_gates(scores, experts, cfg)

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
    elif cfg.moe_dispatch == "capacity":
      routed = capacity_dispatch(xt, gates, experts, w_gate, w_up, w_down, cfg)
    else:
      routed = all_to_all_dispatch(xt, gates, experts, w_gate, w_up, w_down, cfg)

    y = routed.reshape(B, S, D)
    if cfg.n_shared_experts:
      y = y + SwiGLU(cfg, F * cfg.n_shared_experts, name="shared_experts")(x)

    valid = valid_bs.reshape(-1).astype(jnp.float32)
    load = (jax.nn.one_hot(experts, E, dtype=jnp.float32).sum(1) * valid[:, None]).sum(0)
    aux = {"expert_load": load, "routing": own.reshape(B, S, K)}
    if cfg.seq_aux_loss_alpha:
      aux["balance_loss"] = cfg.seq_aux_loss_alpha * balance_loss(
          scores.reshape(B, S, E), experts.reshape(B, S, K), valid_bs, cfg)
    return y, aux
