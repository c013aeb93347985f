"""GRPO and variants against a loop-by-loop NumPy transcription of the papers' formulas."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.losses import grpo
from r1jax.losses.grpo import (LOSS_PRESETS, group_advantages, overlong_penalty, policy_loss,
                           sequence_logps, zero_variance_groups)

PRESETS = sorted(LOSS_PRESETS)
MAX_LEN = 9  # Dr. GRPO's generation budget in these tests (>= T)


@pytest.fixture
def x64():
  prev = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", prev)


# ------------------------------------------------------------ NumPy transcription


def np_advantages(rewards, G, scale, eps=1e-6):
  """DeepSeekMath §4.1.2 with population stds; equal groups get 0."""
  r = [float(x) for x in rewards]
  n = len(r)
  batch_mean = sum(r) / n
  batch_std = math.sqrt(sum((x - batch_mean) ** 2 for x in r) / n)
  out = []
  for b in range(n // G):
    group = r[b * G:(b + 1) * G]
    mean = sum(group) / G
    std = math.sqrt(sum((x - mean) ** 2 for x in group) / G)
    for x in group:
      if all(y == group[0] for y in group):
        out.append(0.0)
      elif scale == "group":
        out.append((x - mean) / (std + eps))
      elif scale == "batch":
        out.append((x - mean) / (batch_std + eps))
      else:
        out.append(x - mean)
  return np.array(out)


def np_policy_loss(logps, old, ref, adv, mask, epsilon=0.2, epsilon_high=None, beta=0.001,
                   agg="seq-mean-token-mean", ratio_level="token", max_len=None):
  """-J of GRPO / Dr. GRPO / DAPO / GSPO written token by token in float64."""
  eps_high = epsilon if epsilon_high is None else epsilon_high
  B, T = logps.shape
  pg, kl = np.zeros((B, T)), np.zeros((B, T))
  units, toks_per_row = [], []  # units: (ratio, clipped branch taken)
  for i in range(B):
    toks = [t for t in range(T) if mask[i, t]]
    toks_per_row.append(toks)
    if ratio_level == "sequence" and toks:
      s = math.exp(sum(logps[i, t] - old[i, t] for t in toks) / len(toks))
    for t in toks:
      r = s if ratio_level == "sequence" else math.exp(logps[i, t] - old[i, t])
      unclipped = r * adv[i]
      clipped = min(max(r, 1 - epsilon), 1 + eps_high) * adv[i]
      pg[i, t] = -min(unclipped, clipped)
      if ref is not None:
        d = ref[i, t] - logps[i, t]
        kl[i, t] = math.exp(d) - d - 1
      if ratio_level == "token":
        units.append((r, clipped < unclipped))
    if ratio_level == "sequence" and toks:
      units.append((s, clipped < unclipped))

  def reduce(x):
    if agg == "seq-mean-token-mean":
      rows = [sum(x[i, t] for t in tk) / max(len(tk), 1) for i, tk in enumerate(toks_per_row)]
      return sum(rows) / B
    if agg == "token-mean":
      return sum(x[i, t] for i, tk in enumerate(toks_per_row) for t in tk) / max(mask.sum(), 1)
    return sum(sum(x[i, t] for t in tk) / max_len for i, tk in enumerate(toks_per_row)) / B

  pg_loss = reduce(pg)
  kl_loss = beta * reduce(kl) if beta else 0.0
  n_tok = max(int(mask.sum()), 1)
  metrics = dict(
      pg_loss=pg_loss, kl_loss=kl_loss,
      kl=sum(kl[i, t] for i, tk in enumerate(toks_per_row) for t in tk) / n_tok,
      clip_fraction=sum(c for _, c in units) / max(len(units), 1),
      ratio_mean=sum(r for r, _ in units) / max(len(units), 1),
      ratio_max=max([r for r, _ in units], default=0.0))
  return pg_loss + kl_loss, metrics


# ------------------------------------------------------------ inputs


def _inputs(seed, preset, B=5, T=7, dtype=np.float32):
  rng = np.random.default_rng(seed)
  logps = -rng.uniform(0.1, 3.0, (B, T))
  # GSPO's ε is 3e-4 on a length-normalised ratio: keep drift small so both branches occur.
  drift = 1e-3 if preset == "gspo" else 0.3
  old = logps + rng.normal(0, drift, (B, T))
  ref = logps + rng.normal(0, 0.3, (B, T))
  adv = rng.normal(size=B)
  mask = rng.random((B, T)) < 0.7
  mask[:, 0] = True
  mask[-1] = False  # an all-masked row
  cast = lambda x: x.astype(dtype)
  return cast(logps), cast(old), cast(ref), cast(adv), mask


def _kwargs(preset):
  kw = dict(LOSS_PRESETS[preset]["loss"])
  if kw["agg"] == "seq-mean-token-sum-norm":
    kw["max_len"] = MAX_LEN
  return kw


def _ref_or_none(preset, ref):
  return ref if LOSS_PRESETS[preset]["loss"]["beta"] else None


# ------------------------------------------------------------ advantages


@pytest.mark.parametrize("scale", sorted(grpo.ADVANTAGE_SCALES))
def test_advantages_match_numpy(scale):
  G = 4
  rng = np.random.default_rng(0)
  rewards = rng.normal(size=6 * G).astype(np.float32)
  rewards[:G] = 0.1  # equal groups whose mean does not round back to the value
  rewards[G:2 * G] = 1.0
  rewards[2 * G:3 * G] = np.array([0, 1, 1, 0], np.float32)
  got = np.asarray(group_advantages(jnp.asarray(rewards), G, scale=scale))
  want = np_advantages(rewards, G, scale)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert np.all(got[:2 * G] == 0.0)
  np.testing.assert_array_equal(np.asarray(zero_variance_groups(rewards, G)),
                                [True, True, False, False, False, False])


@pytest.mark.parametrize("scale", sorted(grpo.ADVANTAGE_SCALES))
@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_all_equal_batch_gives_exact_zero(scale, eps):
  rewards = jnp.full((12,), 0.7, jnp.float32)
  adv = group_advantages(rewards, 3, scale=scale, eps=eps)
  assert np.all(np.asarray(adv) == 0.0)


def test_advantages_jit_agrees():
  rewards = jnp.asarray(np.random.default_rng(1).normal(size=8), jnp.float32)
  f = functools.partial(group_advantages, group_size=4, scale="group")
  np.testing.assert_allclose(jax.jit(f)(rewards), f(rewards), rtol=1e-6)


# ------------------------------------------------------------ loss values and metrics


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_metrics_match_numpy(preset, seed):
  logps, old, ref, adv, mask = _inputs(seed, preset)
  kw = _kwargs(preset)
  loss, m = policy_loss(jnp.asarray(logps), jnp.asarray(old), jnp.asarray(ref), jnp.asarray(adv),
                        jnp.asarray(mask), **kw)
  f64 = lambda x: x.astype(np.float64)
  want, want_m = np_policy_loss(f64(logps), f64(old), f64(ref), f64(adv), mask, **kw)
  np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-7)
  for k, v in want_m.items():
    np.testing.assert_allclose(m[k], v, rtol=1e-5, atol=1e-7, err_msg=k)
  if preset == "gspo":  # the inputs must exercise both branches of the sequence clip
    assert 0 < float(m["clip_fraction"]) < 1


@pytest.mark.parametrize("preset", PRESETS)
def test_jit_agrees_with_eager(preset):
  logps, old, ref, adv, mask = map(jnp.asarray, _inputs(3, preset))
  f = functools.partial(policy_loss, **_kwargs(preset))
  eager = f(logps, old, ref, adv, mask)
  jitted = jax.jit(f)(logps, old, ref, adv, mask)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7)
  jax.tree.map(close, jitted, eager)


# ------------------------------------------------------------ gradients


@pytest.mark.parametrize("preset", PRESETS)
def test_grad_matches_finite_differences(preset, x64):
  logps, old, ref, adv, mask = _inputs(4, preset, dtype=np.float64)
  kw = _kwargs(preset)
  g = jax.grad(lambda l: policy_loss(l, jnp.asarray(old), jnp.asarray(ref), jnp.asarray(adv),
                                     jnp.asarray(mask), **kw)[0])(jnp.asarray(logps))
  assert g.dtype == jnp.float64
  h = 1e-6
  fd = np.zeros_like(logps)
  for idx in np.ndindex(*logps.shape):
    up, down = logps.copy(), logps.copy()
    up[idx] += h
    down[idx] -= h
    fd[idx] = (np_policy_loss(up, old, ref, adv, mask, **kw)[0]
               - np_policy_loss(down, old, ref, adv, mask, **kw)[0]) / (2 * h)
  assert np.any(fd != 0)
  np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-6, atol=1e-9)


def test_ratio_one_is_reinforce_with_group_baseline():
  """μ = 1: old = sg(logps), ref = logps -> loss = -mean(A), dL/dlogp_t = -A_i / (B |o_i|)."""
  logps, _, _, adv, mask = _inputs(5, "grpo")
  mask[-1] = True  # every row has tokens so the sequence mean is over all rows
  logps, adv, mask = map(jnp.asarray, (logps, adv, mask))
  kw = _kwargs("grpo")

  def f(l):
    return policy_loss(l, jax.lax.stop_gradient(l), jax.lax.stop_gradient(l), adv, mask, **kw)

  (loss, m), g = jax.value_and_grad(f, has_aux=True)(logps)
  np.testing.assert_allclose(loss, -adv.mean(), rtol=1e-6)
  assert float(m["kl"]) == 0.0 and float(m["clip_fraction"]) == 0.0
  n = mask.sum(1, keepdims=True)
  want = np.where(mask, -adv[:, None] / (logps.shape[0] * n), 0.0)
  np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("epsilon_high, expect_clipped_at_125", [(None, True), (0.28, False)])
def test_gradient_zero_exactly_where_clipped_branch_taken(epsilon_high, expect_clipped_at_125):
  ratios = np.array([0.5, 0.79, 0.9, 1.0, 1.1, 1.25, 1.5], np.float32)
  adv = np.array([1.0, -1.0], np.float32)
  old = np.full((2, ratios.size), -1.0, np.float32)
  logps = old + np.log(ratios)[None, :].repeat(2, 0)
  mask = np.ones_like(old, bool)
  loss_fn = lambda l: policy_loss(l, jnp.asarray(old), None, jnp.asarray(adv), jnp.asarray(mask),
                                  epsilon=0.2, epsilon_high=epsilon_high, beta=0.0)
  (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(jnp.asarray(logps))
  hi = 1.28 if epsilon_high else 1.2
  # min(ρA, clip(ρ)A) takes the clipped branch for A > 0 when ρ > 1+ε_high,
  # for A < 0 when ρ < 1-ε
  clipped = np.stack([ratios > hi, ratios < 0.8])
  assert clipped[0, 5] == expect_clipped_at_125
  g = np.asarray(g)
  assert np.all(g[clipped] == 0.0)
  want = -adv[:, None] * ratios[None, :] / (2 * ratios.size)
  np.testing.assert_allclose(g[~clipped], want[~clipped], rtol=1e-5)
  np.testing.assert_allclose(m["clip_fraction"], clipped.mean(), rtol=1e-6)


def test_gspo_clips_whole_sequences():
  old = np.full((3, 4), -1.0, np.float32)
  shift = np.array([1e-3, -1e-3, 1e-4], np.float32)  # log s_i; ε = 3e-4, ε_high = 4e-4
  logps = old + shift[:, None].repeat(4, 1)
  adv = np.array([1.0, -1.0, 1.0], np.float32)
  mask = np.ones_like(old, bool)
  mask[2, 2:] = False
  kw = _kwargs("gspo")
  loss_fn = lambda l: policy_loss(l, jnp.asarray(old), None, jnp.asarray(adv), jnp.asarray(mask),
                                  **kw)
  (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(jnp.asarray(logps))
  g = np.asarray(g)
  assert np.all(g[:2] == 0.0)  # rows 0 (A>0, s>1+ε_high) and 1 (A<0, s<1-ε) clipped
  s = math.exp(1e-4)
  np.testing.assert_allclose(g[2, :2], -s / (3 * 2), rtol=1e-5)  # s_i · mean ∇logp, / B
  assert np.all(g[2, 2:] == 0.0)
  np.testing.assert_allclose(m["clip_fraction"], 2 / 3, rtol=1e-6)


# ------------------------------------------------------------ masking


@pytest.mark.parametrize("preset", PRESETS)
def test_masked_positions_have_no_influence(preset):
  logps, old, ref, adv, mask = _inputs(6, preset)
  kw = _kwargs(preset)

  def value_and_grad(l, o, r):
    f = lambda l: policy_loss(l, jnp.asarray(o), jnp.asarray(r), jnp.asarray(adv),
                              jnp.asarray(mask), **kw)
    return jax.value_and_grad(f, has_aux=True)(jnp.asarray(l))

  (loss, m), g = value_and_grad(logps, old, ref)
  junk = lambda x, v: np.where(mask, x, np.float32(v))
  (loss2, m2), g2 = value_and_grad(junk(logps, 90.0), junk(old, -90.0), junk(ref, 200.0))
  assert float(loss) == float(loss2)
  np.testing.assert_array_equal(g, g2)
  jax.tree.map(np.testing.assert_array_equal, m, m2)
  assert np.all(np.asarray(g)[~mask] == 0.0)


@pytest.mark.parametrize("preset", PRESETS)
def test_all_masked_inputs_are_finite(preset):
  logps, old, ref, adv, _ = _inputs(7, preset)
  for mask in (np.zeros_like(logps, bool), np.eye(*logps.shape, dtype=bool)):
    f = lambda l: policy_loss(l, jnp.asarray(old), jnp.asarray(ref), jnp.asarray(adv),
                              jnp.asarray(mask), **_kwargs(preset))
    (loss, m), g = jax.value_and_grad(f, has_aux=True)(jnp.asarray(logps))
    assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(g)))
    assert all(np.isfinite(float(v)) for v in m.values())


# ------------------------------------------------------------ helpers


def test_sequence_logps_and_entropy_match_numpy():
  rng = np.random.default_rng(8)
  logits = rng.normal(size=(2, 3, 11)).astype(np.float32) * 3
  logits[0, 0, 4] = -np.inf  # a banned token
  tokens = rng.integers(0, 11, (2, 3))
  tokens[0, 0] = 5
  mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
  x = logits.astype(np.float64)
  lse = np.log(np.exp(x).sum(-1))
  want_lp = np.array([[x[b, t, tokens[b, t]] - lse[b, t] for t in range(3)] for b in range(2)])
  np.testing.assert_allclose(sequence_logps(jnp.asarray(logits), jnp.asarray(tokens)), want_lp,
                             rtol=1e-5, atol=1e-6)
  hs = [-sum(p * math.log(p) for p in np.exp(x[b, t] - lse[b, t]) if p > 0)
        for b in range(2) for t in range(3) if mask[b, t]]
  _, ent = grpo._logps_and_entropy(jnp.asarray(logits), jnp.asarray(tokens))
  np.testing.assert_allclose(np.asarray(ent)[mask].mean(), sum(hs) / len(hs), rtol=1e-5)
  g = jax.grad(lambda x: sequence_logps(x, jnp.asarray(tokens)).sum())(jnp.asarray(logits))
  assert np.all(np.isfinite(np.asarray(g)))  # the banned token's -inf stays out of it
  # at temperature T: the distribution softmax(logits / T), and each position's entropy
  T = 0.7
  lse_t = np.log(np.exp(x / T).sum(-1))
  want_t = np.array([[x[b, t, tokens[b, t]] / T - lse_t[b, t] for t in range(3)]
                     for b in range(2)])
  lp_t, ent_t = grpo._logps_and_entropy(jnp.asarray(logits), jnp.asarray(tokens), T)
  np.testing.assert_allclose(lp_t, want_t, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(sequence_logps(jnp.asarray(logits), jnp.asarray(tokens), T), want_t,
                             rtol=1e-5, atol=1e-6)
  p_t = np.exp(x / T - lse_t[..., None])
  want_h = -np.where(p_t > 0, p_t * np.log(np.where(p_t > 0, p_t, 1)), 0).sum(-1)
  np.testing.assert_allclose(ent_t, want_h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 4, 7, 64])  # 7 does not divide T = 10; 64 > T
def test_chunked_logps_equal_the_full_head_values_and_gradients(chunk):
  rng = np.random.default_rng(3)
  h = jnp.asarray(rng.normal(size=(3, 10, 8)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(8, 13)), jnp.float32)
  tokens = jnp.asarray(rng.integers(0, 13, (3, 10)))
  seed = jnp.asarray(rng.normal(size=(3, 10)), jnp.float32)  # a weighting to differentiate
  full = lambda h, w: sequence_logps(jnp.einsum("btd,dv->btv", h, w), tokens)
  chunked = lambda h, w: grpo.chunked_sequence_logps(h, w, tokens, chunk)[0]
  np.testing.assert_allclose(chunked(h, w), full(h, w), rtol=1e-5, atol=1e-5)
  lp_t, ent_t = grpo.chunked_sequence_logps(h, w, tokens, chunk, 0.7)
  want_lp, want_ent = grpo._logps_and_entropy(jnp.einsum("btd,dv->btv", h, w), tokens, 0.7)
  np.testing.assert_allclose(lp_t, want_lp, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ent_t, want_ent, rtol=1e-5, atol=1e-5)
  g_full = jax.grad(lambda h, w: (full(h, w) * seed).sum(), argnums=(0, 1))(h, w)
  g_chunk = jax.jit(jax.grad(lambda h, w: (chunked(h, w) * seed).sum(), argnums=(0, 1)))(h, w)
  for a, b in zip(g_chunk, g_full):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="chunk must be positive"):
    grpo.chunked_sequence_logps(h, w, tokens, 0)


@pytest.mark.parametrize("preset", ["deepseek_v3_tiny", "qwen2_tiny"])  # qwen2: tied head
def test_token_logps_in_chunks_equal_the_full_head(preset):
  from r1jax.losses.grpo import token_logps
  from r1jax.models import init_params, presets
  cfg = presets.get(preset)
  params = init_params(cfg, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 12), 0, cfg.vocab_size)
  batch = {"tokens": tokens, "positions": jnp.broadcast_to(jnp.arange(12), (2, 12)),
           "segment_ids": jnp.ones((2, 12), jnp.int32).at[0, :3].set(0)}
  total = lambda p, chunk: token_logps(cfg, p, batch, chunk)[0].sum()
  np.testing.assert_allclose(token_logps(cfg, params, batch, 5)[0],
                             token_logps(cfg, params, batch)[0], rtol=1e-5, atol=1e-5)
  g_full = jax.jit(jax.grad(total), static_argnums=1)(params, 0)
  g_chunk = jax.jit(jax.grad(total), static_argnums=1)(params, 5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_chunk,
               g_full)


@pytest.mark.parametrize("preset", ["deepseek_v3_tiny", "qwen2_tiny"])
def test_scoring_only_the_completion_window_changes_no_number(preset):
  """Rows [prompt | completion | padding] with prompts of 3, 5 and 9 tokens and completions
  of at most W = 4: the window's log-probs, entropies, loss and gradients equal the
  whole-row head's at every completion token (with and without chunks)."""
  from r1jax.losses.grpo import make_grpo_loss, token_logps
  from r1jax.models import init_params, presets
  cfg = presets.get(preset)
  params = init_params(cfg, jax.random.key(0))
  B, L, W = 3, 13, 4
  tokens = jax.random.randint(jax.random.key(1), (B, L), 0, cfg.vocab_size)
  mask = np.zeros((B, L), np.int32)
  for row, (start, n) in enumerate([(3, 4), (5, 2), (9, 4)]):  # the last ends at column 12
    mask[row, start:start + n] = 1
  seg = np.ones((B, L), np.int32)
  seg[1, 7:] = 0  # row 1's padding
  batch = {"tokens": tokens, "positions": jnp.broadcast_to(jnp.arange(L), (B, L)),
           "segment_ids": jnp.asarray(seg), "completion_mask": jnp.asarray(mask)}
  valid = mask[:, 1:].astype(bool)
  for chunk in (0, 3):
    lp_w, aux_w = token_logps(cfg, params, batch, chunk, 0.7, window=W)
    lp, aux = token_logps(cfg, params, batch, chunk, 0.7)
    np.testing.assert_allclose(np.asarray(lp_w)[valid], np.asarray(lp)[valid], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(aux_w["token_entropy"])[valid],
                               np.asarray(aux["token_entropy"])[valid], rtol=1e-5, atol=1e-5)
    window = np.zeros_like(valid)
    for row, start in enumerate((3, 5, 9)):
      window[row, start - 1:start - 1 + W] = True  # input column c scores token c + 1
    assert (np.asarray(lp_w)[~window] == 0).all()  # the head never saw the rest
  batch.update(sampler_logps=jnp.where(jnp.asarray(valid), lp - 0.01, 0.0),
               ref_logps=jnp.where(jnp.asarray(valid), lp + 0.02, 0.0),
               advantages=jnp.array([1.0, -0.5, 0.25]))
  losses = {w: make_grpo_loss(cfg, temperature=0.7, window=w, beta=0.04) for w in (0, W)}
  values = {w: jax.jit(f)(params, batch)[0] for w, f in losses.items()}
  np.testing.assert_allclose(values[W], values[0], rtol=1e-5)
  grads = {w: jax.jit(jax.grad(lambda p, b, f=f: f(p, b)[0]))(params, batch)
           for w, f in losses.items()}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads[W],
               grads[0])


def test_overlong_penalty_boundaries():
  L_max, L_cache = 20, 4
  lengths = np.array([0, 15, 16, 17, 18, 19, 20, 21, 100])

  def dapo_eq13(L):
    if L <= L_max - L_cache:
      return 0.0
    if L <= L_max:
      return ((L_max - L_cache) - L) / L_cache
    return -1.0

  got = np.asarray(overlong_penalty(jnp.asarray(lengths), L_max, L_cache))
  np.testing.assert_allclose(got, [dapo_eq13(L) for L in lengths], rtol=1e-6)
  np.testing.assert_allclose(got[[1, 6, 7]], [0.0, -1.0, -1.0])  # continuous at L_max, -1 past it


# ------------------------------------------------------------ errors


def test_bad_arguments_raise():
  r = jnp.zeros((10,), jnp.float32)
  with pytest.raises(ValueError, match=r"10 entries, not divisible by group_size=4"):
    group_advantages(r, 4)
  with pytest.raises(ValueError, match=r"group_size must be >= 2.*group_size=1"):
    group_advantages(r, 1)
  with pytest.raises(ValueError, match=r"unknown advantage scale='std'.*'batch', 'group', 'none'"):
    group_advantages(r, 5, scale="std")
  with pytest.raises(ValueError, match=r"not divisible"):
    zero_variance_groups(r, 3)
  x, a, m = jnp.zeros((2, 3)), jnp.zeros((2,)), jnp.ones((2, 3))
  with pytest.raises(ValueError, match=r"unknown agg='mean'.*'seq-mean-token-mean'"):
    policy_loss(x, x, x, a, m, agg="mean")
  with pytest.raises(ValueError, match=r"unknown ratio_level='tok'.*'sequence', 'token'"):
    policy_loss(x, x, x, a, m, ratio_level="tok")
  with pytest.raises(ValueError, match=r"Dr. GRPO.*pass max_len.*max_len=None"):
    policy_loss(x, x, None, a, m, **LOSS_PRESETS["dr_grpo"]["loss"])
  with pytest.raises(ValueError, match=r"max_len=2 is shorter than a completion \(3 tokens\)"):
    policy_loss(x, x, None, a, m, max_len=2, **LOSS_PRESETS["dr_grpo"]["loss"])
  # rows whose completion (mask) fits max_len may be longer: a prompt's columns come first
  policy_loss(x, x, None, a, m.at[:, 0].set(0), max_len=2, **LOSS_PRESETS["dr_grpo"]["loss"])
  with pytest.raises(ValueError, match=r"ref_logps is None but beta=0.001"):
    policy_loss(x, x, None, a, m, beta=0.001)
  with pytest.raises(ValueError, match=r"cache_len=30, max_len=20"):
    overlong_penalty(jnp.zeros((2,), jnp.int32), 20, 30)
