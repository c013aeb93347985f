"""The decoder: embed -> dense blocks -> MoE blocks -> RMSNorm -> head (+ MTP).

One module serves DeepSeek-V3 (MLA + MoE) and dense students (GQA + SwiGLU); the
config picks the attention and how many leading blocks are dense. Blocks of one kind
are stacked with `nn.scan`, so parameters carry a leading layer axis ("layers") and
the 61-layer model compiles two blocks, not 61.

Parameter tree (`init_params(cfg, rng)["params"]`):
  embed [V, D]; dense_layers / moe_layers: {attn_norm, attn, ffn_norm, mlp | moe}
  stacked over layers; final_norm; lm_head [D, V] unless tie_embeddings; mtp_{k}.
Non-trainable buffers (`["buffers"]`): the MoE router bias, [L_moe, E].
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from r1jax.models.attention import GQA, MLA, Context, write_slots
from r1jax.models.config import ModelConfig
from r1jax.models.layers import RMSNorm, SwiGLU, dense, head_logits, param, rope_tables
from r1jax.models.moe import MoE, update_router_bias

Params = dict[str, Any]


# The residual stream's layout when training: split over the batch, as the sharding rules
# say (`r1jax.runtime.sharding.activation_sharding`); a no-op outside such a context. Without it
# XLA may keep activations replicated on fsdp meshes (4x the memory on fsdp=8).
ACTIVATION_AXES = ("batch", None, None)


class Block(nn.Module):
  """Pre-norm residual block.

  ((x [B, T, D], cache), ctx, layer index, MoE replay [B, T, K] or None) -> ((x, cache), aux).
  cache: None, or the decode cache of the block's whole group ([L, B, S, ...] leaves), which
  the block updates at its own layer. It travels in the scan's carry, not as a scanned
  input/output: the stacked ys of a scan would copy every layer's cache at every decode
  step, where a carried buffer is updated in place.
  """
  cfg: ModelConfig
  moe: bool

  @nn.compact
  def __call__(self, carry, ctx: Context, layer, replay=None):
    cfg = self.cfg
    x, cache = carry
    if cache is None:  # decoding batches need not divide the mesh; only training pins
      x = nn.with_logical_constraint(x, ACTIVATION_AXES)
    attn_cls = MLA if cfg.attention == "mla" else GQA
    h, cache = attn_cls(cfg, name="attn")(RMSNorm(cfg, name="attn_norm")(x), ctx, cache, layer)
    x = x + h
    y = RMSNorm(cfg, name="ffn_norm")(x)
    if self.moe:
      y, aux = MoE(cfg, name="moe")(y, ctx.segment_ids != 0, replay)
    else:
      y, aux = SwiGLU(cfg, cfg.inter_dim, name="mlp")(y), {}
    return (x + y, cache), aux


def _block_stack(cfg: ModelConfig, moe: bool, length: int, name: str):
  block = Block
  if cfg.remat != "none":
    policy = (jax.checkpoint_policies.dots_with_no_batch_dims_saveable
              if cfg.remat == "dots" else None)
    block = nn.remat(Block, policy=policy, prevent_cse=False)
  stack = nn.scan(block, variable_axes={"params": 0, "buffers": 0},
                  split_rngs={"params": True}, in_axes=(nn.broadcast, 0, 0), length=length,
                  metadata_params={nn.PARTITION_NAME: "layers"})
  return stack(cfg, moe, name=name)


class MTPModule(nn.Module):
  """Multi-token prediction module k (V3 §2.2, eq. 21-22).

  h' = Block(eh_proj([enorm(Emb(t_{i+k})); hnorm(h_i)])); returns (h', norm(h')).
  The embedding and output head are shared with the main model.
  """
  cfg: ModelConfig

  @nn.compact
  def __call__(self, h, emb_next, ctx: Context):
    cfg = self.cfg
    e = RMSNorm(cfg, name="enorm")(emb_next)
    hn = RMSNorm(cfg, name="hnorm")(h)
    w = param(self, "eh_proj", (2 * cfg.dim, cfg.dim), ("mtp_concat", "embed"), cfg)
    x = dense(jnp.concatenate([e, hn], axis=-1), w.astype(cfg.dtype))
    (x, _), aux = Block(cfg, cfg.is_moe, name="block")((x, None), ctx, None)
    return x, RMSNorm(cfg, name="norm")(x), aux


class Transformer(nn.Module):
  """tokens [B, T] -> logits [B, T, V] float32, new cache, aux."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, tokens, positions, segment_ids, cache=None, cache_slot=None,
               last_only=False, hidden_only=False, routing=None, branch_ids=None):
    cfg = self.cfg
    V = cfg.vocab_size
    embed = param(self, "embed", (V, cfg.dim), ("vocab", "embed"), cfg)

    def embed_tokens(ids):
      ok = (ids >= 0) & (ids < V)  # out-of-vocabulary ids give NaN, never a wrong row
      x = jnp.take(embed, jnp.clip(ids, 0, V - 1), axis=0).astype(cfg.dtype)
      return jnp.where(ok[..., None], x, jnp.nan)

    x = embed_tokens(tokens)
    sin, cos = rope_tables(cfg, positions)
    new_cache = None
    ctx = Context(positions, segment_ids, sin, cos, branch_ids=branch_ids)
    if cache is not None:
      new_cache = {k: write_slots(cache[k], v, cache_slot)
                   for k, v in (("segment_ids", segment_ids), ("positions", positions))}
      ctx = ctx._replace(cache_slot=cache_slot, kv_segment_ids=new_cache["segment_ids"],
                         kv_positions=new_cache["positions"])

    aux: dict[str, Any] = {}
    for group, n, moe in (("dense_layers", cfg.n_dense_layers, False),
                          ("moe_layers", cfg.n_moe_layers, True)):
      if n == 0:
        continue
      (x, layer_cache), layer_aux = _block_stack(cfg, moe, n, group)(
          (x, None if cache is None else cache[group]), ctx, jnp.arange(n),
          routing if moe else None)
      if cache is not None:
        new_cache[group] = layer_cache
      aux.update(layer_aux)  # expert_load [L_moe, E], balance_loss [L_moe], routing

    w_head = embed.T if cfg.tie_embeddings else param(self, "lm_head", (cfg.dim, V),
                                                      ("embed", "vocab"), cfg)

    head = functools.partial(head_logits, w_head=w_head, dtype=cfg.dtype)  # [..., V] float32

    h_final = x[:, -1:] if last_only else x
    h_final = RMSNorm(cfg, name="final_norm")(h_final)
    if "balance_loss" in aux:
      aux["balance_loss"] = aux["balance_loss"].sum()
    if hidden_only:  # the caller applies the head (chunked log-probs); no MTP
      return h_final, new_cache, aux
    logits = head(h_final)
    if cfg.n_mtp_modules and cache is None:  # MTP trains the model; decoding skips it
      h, mtp_logits, mtp_load = x, [], []
      for k in range(1, cfg.n_mtp_modules + 1):
        emb_next = embed_tokens(jnp.roll(tokens, -k, axis=1))  # Emb(t_{i+k}); tail masked by the loss
        h, h_normed, mtp_aux = MTPModule(cfg, name=f"mtp_{k}")(h, emb_next, ctx)
        mtp_logits.append(head(h_normed))
        if "expert_load" in mtp_aux:
          mtp_load.append(mtp_aux["expert_load"])
        if "balance_loss" in mtp_aux:
          aux["balance_loss"] = aux.get("balance_loss", 0.0) + mtp_aux["balance_loss"]
      aux["mtp_logits"] = jnp.stack(mtp_logits)  # [n_mtp, B, T, V]; [k-1, :, i] predicts t_{i+k+1}
      if mtp_load:
        aux["mtp_expert_load"] = jnp.stack(mtp_load)  # [n_mtp, E]
    return logits, new_cache, aux


# ------------------------------------------------------------- the functional face


def _dummy_inputs():
  tokens = jnp.zeros((1, 1), jnp.int32)
  return tokens, tokens, jnp.ones((1, 1), jnp.int32)


def _boxed_init(cfg: ModelConfig, rng):
  return Transformer(cfg).init(rng, *_dummy_inputs())


@functools.partial(jax.jit, static_argnums=0)
def _init(cfg: ModelConfig, rng):
  variables = nn.meta.unbox(_boxed_init(cfg, rng))
  return {"params": variables["params"], "buffers": variables.get("buffers", {})}


def init_params(cfg: ModelConfig, rng: jax.Array) -> Params:
  """Random parameters: {"params": trainable tree, "buffers": non-trainable (router bias)}."""
  return _init(cfg, rng)


def param_logical_axes(cfg: ModelConfig) -> Params:
  """The logical axis names of every parameter and buffer, as PartitionSpecs (no allocation)."""
  boxed = jax.eval_shape(functools.partial(_boxed_init, cfg), jax.random.key(0))
  specs = nn.get_partition_spec(boxed)
  return {"params": specs["params"], "buffers": specs.get("buffers", {})}


def init_cache(cfg: ModelConfig, batch: int, max_len: int, dtype=jnp.bfloat16) -> Params:
  """An empty decode cache of S = `max_len` slots.

  MLA layers keep the normalised latent c_kv [L, B, S, C] and the roped key k_pe
  [L, B, S, R]; GQA layers keep k and v [L, B, S, K, H]. segment_ids [B, S] is 0 for
  empty slots; positions [B, S] is the position of the token in each slot.
  """
  def group(n):
    if cfg.attention == "mla":
      return {"c_kv": jnp.zeros((n, batch, max_len, cfg.kv_lora_rank), dtype),
              "k_pe": jnp.zeros((n, batch, max_len, cfg.qk_rope_head_dim), dtype)}
    shape = (n, batch, max_len, cfg.n_kv_heads, cfg.head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}

  cache = {"segment_ids": jnp.zeros((batch, max_len), jnp.int32),
           "positions": jnp.zeros((batch, max_len), jnp.int32)}
  if cfg.n_dense_layers:
    cache["dense_layers"] = group(cfg.n_dense_layers)
  if cfg.n_moe_layers:
    cache["moe_layers"] = group(cfg.n_moe_layers)
  return cache


def _check_tokens(cfg: ModelConfig, tokens):
  if isinstance(tokens, jax.core.Tracer):
    return  # inside jit, out-of-vocabulary ids turn into NaN logits instead
  t = np.asarray(tokens)
  if t.size and (t.min() < 0 or t.max() >= cfg.vocab_size):
    bad = t[(t < 0) | (t >= cfg.vocab_size)]
    raise ValueError(f"token ids must lie in [0, vocab_size={cfg.vocab_size}) for model "
                     f"{cfg.name!r}; got {bad[:5].tolist()} ({bad.size} out of range)")


def forward(cfg: ModelConfig, params: Params, tokens: jax.Array, *,
            positions: jax.Array | None = None, segment_ids: jax.Array | None = None,
            cache: Params | None = None, cache_slot: int | jax.Array | None = None,
            return_aux: bool = False, last_only: bool = False, hidden_only: bool = False,
            routing: jax.Array | None = None, branch_ids: jax.Array | None = None):
  """Runs the decoder.

  tokens [B, T] int; positions [B, T] (default 0..T-1); segment_ids [B, T] (default 1; 0
  marks padding, tokens attend only within their segment, so packed sequences stay apart).

  cache (`init_cache`): the tokens are written to slots cache_slot .. cache_slot + T - 1
  of every row (an int or int32 scalar, required with a cache) and attend to every slot
  of their segment at a position <= theirs. Slots need not be positions: right-padded
  prompts of different lengths can continue at one shared slot, each at its own position.

  routing [L_moe, B, T, K] int (MoE models): the experts each MoE layer uses at each
  valid token instead of its router's choice (routing replay; `MoE`); -1 rows keep the
  router's choice.

  branch_ids [B, T] int (no cache): tree-shaped rows, such as one prompt followed by its G
  completions. Branch 0 is the shared trunk, which every token of the row may see; a
  token of branch b > 0 is seen only by tokens of branch b (and positions still decide
  causality, so branch b's tokens sit at the positions they would have after the trunk).

  Returns logits [B, T, V] float32 ([B, 1, V] for the last position only with
  last_only, as a prefill needs); `(logits, new_cache)` when a cache is given;
  with return_aux, one more element: {"expert_load": [L_moe, E], "balance_loss": (),
  "routing": [L_moe, B, T, K] int32 (each router's own top-k), "mtp_logits":
  [n_mtp, B, T, V], "mtp_expert_load": [n_mtp, E]} as the config enables them. With hidden_only, the final-normed hidden states [B, T, D] (cfg.dtype)
  take the logits' place and MTP is skipped: the caller applies the head itself
  (`apply_head`), to the positions it needs or in chunks
  (`r1jax.losses.grpo.chunked_sequence_logps`), so no [B, T, V] array exists.
  """
  _check_tokens(cfg, tokens)
  chex.assert_rank(tokens, 2)
  B, T = tokens.shape
  if positions is None:
    positions = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
  if segment_ids is None:
    segment_ids = jnp.ones((B, T), jnp.int32)
  chex.assert_shape([positions, segment_ids], (B, T))
  if cache is not None:
    if cache_slot is None:
      raise ValueError("forward with a cache needs cache_slot, the slot its first token goes to")
    S = cache["segment_ids"].shape[1]
    if not isinstance(cache_slot, jax.core.Tracer) and not 0 <= int(cache_slot) <= S - T:
      # (a traced slot cannot be checked: dynamic_update_slice would clamp it)
      raise ValueError(f"cache_slot={int(cache_slot)} with {T} tokens does not fit the cache's "
                       f"{S} slots; allocate a longer cache (init_cache max_len)")
  if branch_ids is not None:
    if cache is not None:
      raise ValueError("branch_ids describe tree-shaped training rows; a decode cache holds "
                       "one sequence per row")
    chex.assert_shape(branch_ids, (B, T))
    branch_ids = branch_ids.astype(jnp.int32)
  if routing is not None:
    if not cfg.is_moe:
      raise ValueError(f"routing replay needs an MoE model; {cfg.name!r} has no routed experts")
    chex.assert_shape(routing, (cfg.n_moe_layers, B, T, cfg.n_activated_experts))
  logits, new_cache, aux = Transformer(cfg).apply(
      params, tokens, positions.astype(jnp.int32), segment_ids.astype(jnp.int32), cache,
      None if cache is None else jnp.asarray(cache_slot, jnp.int32), last_only, hidden_only,
      routing, branch_ids)
  out = (logits,) if cache is None else (logits, new_cache)
  if return_aux:
    out += (aux,)
  return out[0] if len(out) == 1 else out


def head_weight(cfg: ModelConfig, params: Params) -> jax.Array:
  """The output head [D, V] (the embedding's transpose when tied): logits = h @ W."""
  p = params["params"]
  return p["embed"].T if cfg.tie_embeddings else p["lm_head"]


def apply_head(cfg: ModelConfig, params: Params, hidden: jax.Array) -> jax.Array:
  """Logits [..., V] float32 of final-normed hidden states [..., D] (`forward`'s
  hidden_only output), computed as the model's own head computes them."""
  return head_logits(hidden, head_weight(cfg, params), cfg.dtype)


def update_router_biases(cfg: ModelConfig, buffers: Params, aux: dict) -> Params:
  """Moves every MoE router bias by the sign rule, from the loads in `forward`'s aux.
  The MTP modules' biases move only when they ran (not with hidden_only, as in GRPO)."""
  if not cfg.is_moe:
    return buffers
  new = jax.tree.map(lambda b: b, buffers)  # shallow structural copy, leaves shared
  key = "e_score_correction_bias"
  moe = new["moe_layers"]["moe"]
  moe[key] = update_router_bias(moe[key], aux["expert_load"], cfg.bias_update_rate)
  for k in range(1, cfg.n_mtp_modules + 1 if "mtp_expert_load" in aux else 1):
    m = new[f"mtp_{k}"]["block"]["moe"]
    m[key] = update_router_bias(m[key], aux["mtp_expert_load"][k - 1], cfg.bias_update_rate)
  return new


def mtp_loss(mtp_logits: jax.Array, tokens: jax.Array, mask: jax.Array,
             weight: float) -> jax.Array:
  """λ/D · Σ_k CE of module k predicting t_{i+k+1} (V3 eq. 24-25).

  mtp_logits [D, B, T, V], tokens [B, T], mask [B, T] (1 where a token is a target).
  """
  n_mtp, _, T, _ = mtp_logits.shape
  total = 0.0
  for k in range(1, n_mtp + 1):
    logits = mtp_logits[k - 1, :, : T - k - 1]
    targets = tokens[:, k + 1:]
    m = mask[:, k + 1:].astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    total = total + (nll * m).sum() / jnp.maximum(m.sum(), 1.0)
  return weight * total / n_mtp


def count_params(cfg: ModelConfig) -> dict[str, int]:
  """Parameter counts from shapes alone (`jax.eval_shape`, nothing is allocated).

  total: the main model (embedding, blocks, head). activated: what one token touches
  (all but the unselected routed experts). mtp: the MTP modules' own parameters.
  total_with_mtp: as the released DeepSeek-V3 checkpoint counts it, whose MTP layer
  stores its own copy of the embedding and output head (V3: 671B + 14B = 685B).
  """
  with_mtp = cfg.replace(n_mtp_modules=max(cfg.n_mtp_modules, 1))
  shapes = jax.eval_shape(functools.partial(init_params, with_mtp), jax.random.key(0))["params"]
  frac = (cfg.n_activated_experts / cfg.n_routed_experts) if cfg.is_moe else 1.0
  total = activated = mtp = mtp_active = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
    keys = [getattr(p, "key", "") for p in path]
    n = int(np.prod(leaf.shape))
    active = n * frac if keys[-1] in ("w_gate", "w_up", "w_down") else n
    if keys[0].startswith("mtp_"):
      mtp, mtp_active = mtp + n, mtp_active + active
    else:
      total, activated = total + n, activated + active
  head = cfg.vocab_size * cfg.dim * (1 if cfg.tie_embeddings else 2)
  return {"total": total, "activated": int(round(activated)), "mtp": mtp,
          "mtp_activated": int(round(mtp_active)),
          "total_with_mtp": total + (mtp + head) * max(cfg.n_mtp_modules, 1)}
