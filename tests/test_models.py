"""The decoder: shapes, causality, caches, MLA's two paths, MoE routing and dispatch."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import (count_params, forward, init_cache, init_params, mtp_loss, presets,
                          update_router_biases)
from r1jax.models.moe import balance_loss, capacity, route, update_router_bias

DS = presets.get("deepseek_v3_tiny")
QWEN = presets.get("qwen2_tiny")
LLAMA = presets.get("llama3_tiny")


@pytest.fixture(scope="module")
def ds_params():
  return init_params(DS, jax.random.key(0))


def _tokens(shape, seed=1, vocab=1024):
  return jax.random.randint(jax.random.key(seed), shape, 0, vocab)


# --------------------------------------------------------------------- configs


def test_671b_counts_from_shapes():
  c = count_params(presets.get("deepseek_v3_671b"))
  assert abs(c["total"] - 671e9) < 0.5e9, c  # V3 Table 1: 671B total
  assert abs(c["activated"] - 37e9) < 1e9, c  # 37B activated per token
  # The released checkpoint: 671B main model + 14B MTP (its own block plus copies of
  # the embedding and head) = "685B" (684.5B before fp8 scale tensors).
  assert abs(c["total_with_mtp"] - 685e9) < 1e9, c
  assert 1e6 < count_params(DS)["total"] < 1e7  # "a few million"


def test_671b_forward_shapes_without_allocating():
  cfg = presets.get("deepseek_v3_671b")
  params = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  out = jax.eval_shape(lambda p, t: forward(cfg, p, t, return_aux=True), params,
                       jax.ShapeDtypeStruct((2, 16), jnp.int32))
  logits, aux = out
  assert logits.shape == (2, 16, 129280) and logits.dtype == jnp.float32
  assert aux["expert_load"].shape == (58, 256)
  assert aux["mtp_logits"].shape == (1, 2, 16, 129280)
  assert params["params"]["moe_layers"]["moe"]["w_gate"].shape == (58, 256, 7168, 2048)
  assert cfg.cache_width_per_token == 576  # latent 512 + rope key 64
  assert math.isclose(cfg.softmax_scale, 192**-0.5 * (0.1 * math.log(40) + 1) ** 2)


@pytest.mark.parametrize("overrides, match", [
    (dict(n_kv_heads=3), "n_kv_heads"),
    (dict(n_heads=5), "n_kv_heads|head_dim"),
])
def test_bad_dense_configs(overrides, match):
  with pytest.raises(ValueError, match=match):
    presets.get("qwen2_tiny", **overrides)


@pytest.mark.parametrize("overrides, match", [
    (dict(n_routed_experts=18), "divisible by n_expert_groups"),
    (dict(n_limited_groups=5), "n_limited_groups"),
    (dict(n_activated_experts=9), r"n_activated_experts.*\[1, 8\]"),
    (dict(moe_dispatch="magic"), "moe_dispatch"),
    (dict(n_dense_layers=9), "n_dense_layers"),
])
def test_bad_moe_configs(overrides, match):
  with pytest.raises(ValueError, match=match):
    presets.get("deepseek_v3_tiny", **overrides)


def test_unknown_preset_suggests():
  with pytest.raises(ValueError, match="Did you mean 'deepseek_v3_tiny'"):
    presets.get("deepseek_v3_tiyn")


def test_out_of_vocab_tokens(ds_params):
  with pytest.raises(ValueError, match=r"\[0, vocab_size=1024\).*\[1024\]"):
    forward(DS, ds_params, jnp.array([[1, 2, 1024]]))
  logits = jax.jit(forward, static_argnums=0)(DS, ds_params, jnp.array([[1, 2, 1024]]))
  assert np.isnan(np.asarray(logits[0, 2])).all()  # never a silently wrong row


# ----------------------------------------------------------- forward semantics


@pytest.mark.parametrize("cfg", [DS, QWEN, LLAMA], ids=lambda c: c.name)
def test_causal_and_jit_equals_eager(cfg):
  params = init_params(cfg, jax.random.key(0))
  tokens = _tokens((2, 12))
  logits = forward(cfg, params, tokens)
  chex.assert_shape(logits, (2, 12, 1024))
  chex.assert_type(logits, jnp.float32)
  chex.assert_tree_all_finite(logits)
  changed = tokens.at[:, 7:].set((tokens[:, 7:] + 1) % 1024)
  logits2 = jax.jit(forward, static_argnums=0)(cfg, params, changed)
  np.testing.assert_allclose(logits[:, :7], logits2[:, :7], atol=1e-5)
  assert not np.allclose(logits[:, 7:], logits2[:, 7:], atol=1e-3)


def _decode_stepwise(cfg, params, tokens, prompt_len, positions=None, segment_ids=None):
  """Prefill tokens[:, :prompt_len], then feed the rest one token at a time."""
  B, T = tokens.shape
  if positions is None:
    positions = jnp.broadcast_to(jnp.arange(T), (B, T))
  if segment_ids is None:
    segment_ids = jnp.ones((B, T), jnp.int32)
  cache = init_cache(cfg, B, T, dtype=jnp.float32)
  step = jax.jit(lambda p, t, pos, seg, c, slot: forward(cfg, p, t, positions=pos,
                                                         segment_ids=seg, cache=c,
                                                         cache_slot=slot))
  logits, cache = step(params, tokens[:, :prompt_len], positions[:, :prompt_len],
                       segment_ids[:, :prompt_len], cache, 0)
  out = [logits]
  for t in range(prompt_len, T):
    logits, cache = step(params, tokens[:, t:t + 1], positions[:, t:t + 1],
                         segment_ids[:, t:t + 1], cache, t)
    out.append(logits)
  return jnp.concatenate(out, axis=1)


@pytest.mark.parametrize("cfg", [DS, QWEN, LLAMA], ids=lambda c: c.name)
def test_cache_decode_equals_full_forward(cfg):
  """For MLA this compares the absorbed latent-cache path with the expanded one."""
  params = init_params(cfg, jax.random.key(0))
  tokens = _tokens((2, 10))
  full = forward(cfg, params, tokens)
  stepwise = _decode_stepwise(cfg, params, tokens, prompt_len=4)
  np.testing.assert_allclose(stepwise, full, atol=1e-5, rtol=0)


def test_cache_writes_must_fit():
  params = init_params(QWEN, jax.random.key(0))
  cache = init_cache(QWEN, 1, 8, jnp.float32)
  tokens = _tokens((1, 3))
  with pytest.raises(ValueError, match="needs cache_slot"):
    forward(QWEN, params, tokens, cache=cache)
  for slot in (6, -1):
    with pytest.raises(ValueError, match=f"cache_slot={slot} with 3 tokens does not fit"):
      forward(QWEN, params, tokens, cache=cache, cache_slot=slot)
  forward(QWEN, params, tokens, cache=cache, cache_slot=5)  # slots 5, 6, 7: the last three


def test_mla_absorbed_equals_expanded_in_one_call(ds_params):
  tokens = _tokens((2, 9))
  full = forward(DS, ds_params, tokens)
  absorbed, cache = forward(DS, ds_params, tokens, cache=init_cache(DS, 2, 16, jnp.float32),
                           cache_slot=0)
  np.testing.assert_allclose(absorbed, full, atol=1e-5, rtol=0)
  # only the latent and the rope key are cached: C + R values per token per layer
  assert cache["moe_layers"]["c_kv"].shape == (3, 2, 16, DS.kv_lora_rank)
  assert cache["moe_layers"]["k_pe"].shape == (3, 2, 16, DS.qk_rope_head_dim)
  assert DS.cache_width_per_token == 48


@pytest.mark.parametrize("cfg", [DS, QWEN], ids=lambda c: c.name)
def test_left_padded_batch_matches_unpadded(cfg):
  """Row 1 is left-padded by 3 (segment 0); its logits equal the unpadded run's."""
  params = init_params(cfg, jax.random.key(0))
  seq = _tokens((1, 7), seed=5)
  pad = 3
  tokens = jnp.concatenate([jnp.zeros((1, pad), jnp.int32), seq], axis=1)
  tokens = jnp.concatenate([_tokens((1, 10), seed=6), tokens], axis=0)
  segment_ids = jnp.ones((2, 10), jnp.int32).at[1, :pad].set(0)
  # Each token's position is its column (its cache slot), so row 1's real tokens sit at
  # 3..9 rather than 0..6: RoPE only sees position differences, so logits are equal.
  slots = jnp.broadcast_to(jnp.arange(10), (2, 10))
  ref = forward(cfg, params, seq)
  out = forward(cfg, params, tokens, positions=slots, segment_ids=segment_ids)
  np.testing.assert_allclose(out[1, pad:], ref[0], atol=1e-5, rtol=0)
  dec = _decode_stepwise(cfg, params, tokens, prompt_len=pad + 2, positions=slots,
                         segment_ids=segment_ids)
  np.testing.assert_allclose(dec[1, pad:], ref[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", [DS, LLAMA], ids=lambda c: c.name)
def test_packed_segments_equal_separate_runs(cfg):
  params = init_params(cfg, jax.random.key(0))
  a, b = _tokens((1, 5), seed=2), _tokens((1, 7), seed=3)
  packed = jnp.concatenate([a, b], axis=1)
  seg = jnp.array([[1] * 5 + [2] * 7])
  pos = jnp.array([list(range(5)) + list(range(7))])
  out = forward(cfg, params, packed, positions=pos, segment_ids=seg)
  np.testing.assert_allclose(out[:, :5], forward(cfg, params, a), atol=1e-5, rtol=0)
  np.testing.assert_allclose(out[:, 5:], forward(cfg, params, b), atol=1e-5, rtol=0)


def _loss(cfg, params, tokens):
  logits = forward(cfg, params, tokens)
  logp = jax.nn.log_softmax(logits[:, :-1])
  return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_equals_no_remat(remat):
  tokens = _tokens((2, 8))
  params = init_params(DS, jax.random.key(0))
  ref_loss, ref_grads = jax.value_and_grad(lambda p: _loss(DS, p, tokens))(params)
  cfg = DS.replace(remat=remat)
  loss, grads = jax.jit(jax.value_and_grad(lambda p: _loss(cfg, p, tokens)))(params)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
  chex.assert_trees_all_close(grads, ref_grads, atol=1e-6)


def test_router_bias_gets_no_gradient(ds_params):
  grads = jax.grad(lambda p: _loss(DS, p, _tokens((2, 8))))(ds_params)
  assert not np.any(grads["buffers"]["moe_layers"]["moe"]["e_score_correction_bias"])
  assert np.any(grads["params"]["moe_layers"]["moe"]["gate"])  # the router itself learns


# ------------------------------------------------------------------------ MoE


def _route_numpy(logits, bias, cfg):
  """A loop-by-loop transcription of V3 eqs. 13-16 with group-limited selection."""
  T, E = logits.shape
  G, per = cfg.n_expert_groups, cfg.n_routed_experts // cfg.n_expert_groups
  s = 1 / (1 + np.exp(-logits.astype(np.float64)))
  gates, chosen = np.zeros((T, cfg.n_activated_experts)), []
  for t in range(T):
    b = s[t] + bias
    group_score = [sorted(b[g * per:(g + 1) * per])[-2:] for g in range(G)]
    group_score = np.array([sum(x) for x in group_score])
    keep = np.argsort(-group_score, kind="stable")[:cfg.n_limited_groups]
    allowed = [e for e in range(E) if e // per in keep]
    top = sorted(allowed, key=lambda e: -b[e])[:cfg.n_activated_experts]
    g = s[t, top] / s[t, top].sum() * cfg.route_scale
    order = np.argsort(top)
    chosen.append(np.array(top)[order])
    gates[t] = g[order]
  return gates, np.stack(chosen)


def test_route_matches_numpy_transcription():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(64, 16)).astype(np.float32)
  bias = rng.normal(scale=0.3, size=16).astype(np.float32)
  gates, experts, _ = route(jnp.asarray(logits), jnp.asarray(bias), DS)
  ref_gates, ref_experts = _route_numpy(logits, bias, DS)
  order = np.argsort(np.asarray(experts), axis=1)
  np.testing.assert_array_equal(np.take_along_axis(np.asarray(experts), order, 1), ref_experts)
  np.testing.assert_allclose(np.take_along_axis(np.asarray(gates), order, 1), ref_gates, rtol=1e-5)
  # group limit: every token's experts come from at most n_limited_groups groups
  groups = np.asarray(experts) // (16 // DS.n_expert_groups)
  assert max(len(set(g)) for g in groups) <= DS.n_limited_groups
  # the bias steers selection but not the gate values
  assert not np.array_equal(ref_experts, _route_numpy(logits, 0 * bias, DS)[1])


def test_bias_update_sign_rule():
  bias = jnp.zeros((2, 4))
  load = jnp.array([[10.0, 0.0, 5.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
  new = update_router_bias(bias, load, 0.01)
  np.testing.assert_allclose(new, [[-0.01, 0.01, 0, 0], [0, 0, 0, 0]])


def test_update_router_biases_uses_forward_load(ds_params):
  cfg = DS.replace(n_mtp_modules=1)
  params = init_params(cfg, jax.random.key(0))
  _, aux = forward(cfg, params, _tokens((2, 8)), return_aux=True)
  assert aux["expert_load"].shape == (3, 16)
  np.testing.assert_allclose(aux["expert_load"].sum(-1), 2 * 8 * DS.n_activated_experts)
  new = update_router_biases(cfg, params["buffers"], aux)
  b = new["moe_layers"]["moe"]["e_score_correction_bias"]
  expected = cfg.bias_update_rate * np.sign(aux["expert_load"].mean(-1, keepdims=True)
                                            - aux["expert_load"])
  np.testing.assert_allclose(b, expected, atol=1e-7)
  assert np.any(new["mtp_1"]["block"]["moe"]["e_score_correction_bias"])
  assert not np.any(params["buffers"]["moe_layers"]["moe"]["e_score_correction_bias"])


def test_balance_loss_matches_numpy():
  rng = np.random.default_rng(1)
  B, S, E, K = 2, 6, 16, 4
  scores = rng.uniform(size=(B, S, E)).astype(np.float32)
  experts = np.stack([[rng.choice(E, K, replace=False) for _ in range(S)] for _ in range(B)])
  valid = np.ones((B, S), bool)
  valid[1, 4:] = False
  ref = []
  for b in range(B):
    n = valid[b].sum()
    f = np.zeros(E)
    P = np.zeros(E)
    for t in range(S):
      if valid[b, t]:
        f[experts[b, t]] += E / (K * n)
        P += scores[b, t] / scores[b, t].sum() / n
    ref.append((f * P).sum())
  got = balance_loss(jnp.asarray(scores), jnp.asarray(experts), jnp.asarray(valid), DS)
  np.testing.assert_allclose(got, np.mean(ref), rtol=1e-5)
  cfg = DS.replace(seq_aux_loss_alpha=1e-3)
  params = init_params(cfg, jax.random.key(0))
  _, aux = forward(cfg, params, _tokens((2, 8)), return_aux=True)
  assert aux["balance_loss"].shape == () and 0 < float(aux["balance_loss"]) < 1


@pytest.mark.parametrize("dispatch", ["ragged", "capacity", "all_to_all"])  # no mesh: no exchange
def test_fast_dispatch_equals_dense_reference(ds_params, dispatch):
  tokens = _tokens((2, 16))
  ref = forward(DS, ds_params, tokens)
  cfg = DS.replace(moe_dispatch=dispatch, capacity_factor=DS.n_routed_experts / DS.n_activated_experts)
  out = jax.jit(forward, static_argnums=0)(cfg, ds_params, tokens)
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
  g_ref = jax.jit(jax.grad(lambda p: _loss(DS, p, tokens)))(ds_params)
  g = jax.jit(jax.grad(lambda p: _loss(cfg, p, tokens)))(ds_params)
  chex.assert_trees_all_close(g, g_ref, atol=1e-6)


def test_capacity_drops_overflow_tokens():
  cfg = DS.replace(moe_dispatch="capacity", capacity_factor=0.25, n_dense_layers=0, n_layers=1)
  params = init_params(cfg, jax.random.key(0))
  assert capacity(64, cfg) == 8  # ceil(64·4/16·0.25) = 4, rounded up to 8
  tokens = _tokens((1, 64))
  dropped = forward(cfg, params, tokens)
  exact = forward(cfg.replace(moe_dispatch="dense"), params, tokens)
  chex.assert_tree_all_finite(dropped)
  assert not np.allclose(dropped, exact, atol=1e-4)


# ------------------------------------------------------------------------ MTP


def test_mtp_logits_and_loss():
  cfg = DS.replace(n_mtp_modules=1)
  params = init_params(cfg, jax.random.key(0))
  tokens = _tokens((2, 8))
  logits, aux = forward(cfg, params, tokens, return_aux=True)
  np.testing.assert_allclose(logits, forward(DS, {"params": {k: v for k, v in params["params"].items()
                                                             if k != "mtp_1"},
                                                  "buffers": {"moe_layers": params["buffers"]["moe_layers"]}},
                                             tokens), atol=1e-6)  # MTP never changes the main logits
  mtp_logits = aux["mtp_logits"]
  chex.assert_shape(mtp_logits, (1, 2, 8, 1024))
  mask = jnp.ones((2, 8)).at[0, 7].set(0)
  got = mtp_loss(mtp_logits, tokens, mask, weight=0.3)
  lp = np.asarray(jax.nn.log_softmax(mtp_logits[0]))
  nll = [-lp[b, i, int(tokens[b, i + 2])] for b in range(2) for i in range(6) if mask[b, i + 2]]
  np.testing.assert_allclose(got, 0.3 * np.mean(nll), rtol=1e-5)


def test_last_only_and_no_mtp_when_decoding():
  cfg = DS.replace(n_mtp_modules=1)
  params = init_params(cfg, jax.random.key(0))
  tokens = _tokens((2, 6))
  full = forward(cfg, params, tokens)
  last, _, aux = forward(cfg, params, tokens, cache=init_cache(cfg, 2, 8, jnp.float32),
                         cache_slot=0, last_only=True, return_aux=True)
  chex.assert_shape(last, (2, 1, 1024))
  np.testing.assert_allclose(last[:, 0], full[:, -1], atol=1e-5, rtol=0)
  assert "mtp_logits" not in aux  # decoding never pays for the MTP module
