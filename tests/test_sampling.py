"""Sampling: processors vs NumPy, generate vs re-running the full forward, stops, groups."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import forward, init_params, presets
from r1jax.sampling import (SamplingParams, generate, generate_text, process_logits,
                            prompt_bucket, sample_token, top_k_filter, top_p_filter)
from r1jax.sampling import sampler
from r1jax.sampling.processors import draw as sampler_draw

DS = presets.get("deepseek_v3_tiny")
QWEN = presets.get("qwen2_tiny")
PROMPTS = [[5, 17, 300, 42, 9], [7, 8], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                                          24, 25, 26, 27, 28]]  # P = 24: rows 0, 1 right-padded
M = 6


@functools.cache
def _params(cfg):
  return init_params(cfg, jax.random.key(0))


# ------------------------------------------------------------------ NumPy reference


def np_softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


def np_process(x, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
  """One row, float64, written from the definitions (ties at a threshold are kept)."""
  x = np.asarray(x, np.float64) / temperature
  if 0 < top_k < len(x):
    x = np.where(x >= np.sort(x)[::-1][top_k - 1], x, -np.inf)
  if top_p < 1.0:
    probs = np_softmax(x)
    kept, mass = [], 0.0
    for i in np.argsort(-probs, kind="stable"):
      kept.append(i)
      mass += probs[i]
      if mass >= top_p:
        break
    x = np.where(probs >= probs[kept].min(), x, -np.inf)
  if min_p > 0.0:
    probs = np_softmax(x)
    x = np.where(probs >= min_p * probs.max(), x, -np.inf)
  return x


def _kept(x):
  return np.flatnonzero(np.isfinite(np.asarray(x))).tolist()


# ------------------------------------------------------------------ processors

PROBS = np.log(np.array([[0.15, 0.5, 0.05, 0.2, 0.1]], np.float32))


@pytest.mark.parametrize("top_p, kept", [(0.3, [1]), (0.6, [1, 3]), (0.8, [0, 1, 3]),
                                         (0.9, [0, 1, 3, 4]), (1.0, [0, 1, 2, 3, 4])])
def test_top_p_fixed(top_p, kept):
  assert _kept(top_p_filter(jnp.asarray(PROBS), top_p)[0]) == kept
  assert _kept(np_process(PROBS[0], top_p=top_p)) == kept


def test_top_p_and_top_k_ties():
  ties = jnp.log(jnp.array([[0.2, 0.4, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25]]))
  # The nucleus at p=0.5 needs one 0.2; its ties come along, so nothing is removed.
  assert np.isfinite(np.asarray(top_p_filter(ties, 0.5))).all()
  assert _kept(top_p_filter(ties, 0.3)[0]) == [1]
  assert _kept(top_p_filter(ties, 0.01)[1]) == [0, 1, 2, 3]  # the top token and its ties
  x = jnp.array([[1.0, 3.0, 3.0, 2.0]])
  assert _kept(top_k_filter(x, 1)[0]) == [1, 2]
  assert _kept(top_k_filter(x, 3)[0]) == [1, 2, 3]
  assert _kept(top_k_filter(x, 4)[0]) == [0, 1, 2, 3]


@pytest.mark.parametrize("kw", [dict(temperature=0.5), dict(top_k=3), dict(top_p=0.9),
                                dict(min_p=0.15), dict(min_p=0.25),
                                dict(temperature=1.5, top_k=20, top_p=0.7, min_p=0.05)])
def test_process_logits_matches_numpy(kw):
  logits = np.array(jax.random.normal(jax.random.key(3), (5, 10))) * np.float32(3.0)
  logits[0, :5] = PROBS[0]
  out = np.asarray(process_logits(jnp.asarray(logits), **kw))
  for row, x in zip(out, logits):
    ref = np_process(x, **kw)
    assert _kept(row) == _kept(ref), kw
    np.testing.assert_allclose(row[np.isfinite(row)], ref[np.isfinite(ref)], rtol=1e-6)


def test_sample_token_logps_and_greedy():
  logits = jax.random.normal(jax.random.key(1), (6, 50)) * 2.0
  sp = SamplingParams(max_new_tokens=1, temperature=0.8, top_k=10, top_p=0.9)
  token, lp_s, lp_m = sample_token(jax.random.key(2), logits, sp)
  for b in range(6):
    ref = np_process(np.asarray(logits[b]), 0.8, 10, 0.9)
    ref_logp = ref - ref.max() - np.log(np.exp(ref - ref.max()).sum())
    assert np.isfinite(ref[token[b]])
    np.testing.assert_allclose(lp_s[b], ref_logp[token[b]], atol=1e-5)
  # the model's log-prob at the sampling temperature, before top-k / top-p (what the
  # trainer computes from logits / T)
  np.testing.assert_allclose(lp_m, jax.nn.log_softmax(logits / 0.8)[jnp.arange(6), token],
                             atol=1e-6)
  token, lp_s, lp_m = sample_token(jax.random.key(2), logits, SamplingParams(1, temperature=0))
  np.testing.assert_array_equal(token, jnp.argmax(logits, -1))
  np.testing.assert_array_equal(lp_s, 0.0)
  np.testing.assert_allclose(lp_m, jax.nn.log_softmax(logits)[jnp.arange(6), token], atol=1e-6)


def test_sampled_frequencies_match_target():
  # After T=0.7 the probabilities are .50 .26 .12 .07 .03 .02: top-p 0.85 keeps 3 tokens.
  # top-p before the temperature would keep 4, so a wrong order fails by ~0.07.
  logits = jnp.log(jnp.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]))
  sp = SamplingParams(max_new_tokens=1, temperature=0.7, top_p=0.85)
  token, _, _ = sample_token(jax.random.key(0), jnp.tile(logits[None], (20_000, 1)), sp)
  freq = np.bincount(np.asarray(token), minlength=6) / 20_000
  target = np_softmax(np_process(np.asarray(logits), temperature=0.7, top_p=0.85))
  assert (freq[3:] == 0).all() and (target[3:] == 0).all()
  assert np.abs(freq - target).max() < 0.02, (freq, target)


def test_draw_follows_the_distribution_and_never_draws_a_removed_token():
  """Inverse-CDF draws over a Zipf-like vocabulary of 1,000 with holes at -inf."""
  V, n = 1000, 50_000
  rng = np.random.default_rng(0)
  logits = -1.1 * np.log(np.arange(1, V + 1)) + rng.normal(0, 0.3, V)
  logits[rng.choice(V, 300, replace=False)] = -np.inf
  logits[-5:] = -np.inf  # the last ids can never be drawn, even when u rounds to the total
  token = np.asarray(sampler_draw(jax.random.split(jax.random.key(3), n),
                                  jnp.tile(jnp.asarray(logits, jnp.float32)[None], (n, 1))))
  assert np.isfinite(logits[token]).all()
  freq = np.bincount(token, minlength=V) / n
  target = np_softmax(logits)
  assert np.abs(freq - target).max() < 0.006, np.abs(freq - target).max()
  # one key for the whole batch draws independent rows too
  one = np.asarray(sampler_draw(jax.random.key(4), jnp.tile(jnp.zeros((1, 4)), (4000, 1))))
  assert np.abs(np.bincount(one, minlength=4) / 4000 - 0.25).max() < 0.03


def test_inverting_a_non_monotone_cdf_never_picks_a_removed_token():
  """XLA's float32 cumsum can step down by an ulp across a token of probability 0; a
  threshold inside such a dip must still land on a token that can be drawn."""
  from r1jax.sampling.processors import invert_cdf
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 3, (64, 4096)).astype(np.float32)
  logits[rng.random(logits.shape) < 0.5] = -np.inf
  probs = jax.nn.softmax(jnp.asarray(logits), axis=-1)
  cdf = np.asarray(jnp.cumsum(probs, axis=-1))
  rows, cols = np.nonzero(cdf[:, 1:] < cdf[:, :-1])  # dips: cdf[r, c + 1] < cdf[r, c]
  assert len(rows) > 100  # the sums do dip (else this test shows nothing)
  u = (cdf[rows, cols] + cdf[rows, cols + 1]) / 2 / cdf[rows, -1]
  token = np.asarray(invert_cdf(probs[rows], jnp.asarray(u, jnp.float32)))
  assert np.isfinite(logits[rows, token]).all()
  # u at 0 and at the largest float below 1 (u · total may round to the total)
  for edge in (0.0, np.nextafter(np.float32(1), np.float32(0))):
    token = np.asarray(invert_cdf(probs, jnp.full((64,), edge, jnp.float32)))
    assert np.isfinite(logits[np.arange(64), token]).all()


# ------------------------------------------------------------------ generate vs forward


@functools.cache
def _full_logp_fn(cfg):
  return jax.jit(lambda p, t, seg: jax.nn.log_softmax(forward(cfg, p, t, segment_ids=seg)))


def _full_logps(cfg, rows, width):
  """log_softmax(forward) of unpadded rows, right-filled to `width` with segment 0."""
  tokens = np.zeros((len(rows), width), np.int32)
  seg = np.zeros((len(rows), width), np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)], seg[i, :len(r)] = r, 1
  return np.asarray(_full_logp_fn(cfg)(_params(cfg), tokens, seg))


def _greedy_reference(cfg, prompts, steps):
  """Greedy decoding by re-running the full forward on the growing sequences."""
  rows = [list(p) for p in prompts]
  width = max(map(len, prompts)) + steps
  logps = np.zeros((len(rows), steps), np.float32)
  for t in range(steps):
    lp = _full_logps(cfg, rows, width)
    for b, r in enumerate(rows):
      nxt = int(np.argmax(lp[b, len(r) - 1]))
      logps[b, t] = lp[b, len(r) - 1, nxt]
      r.append(nxt)
  return np.array([r[-steps:] for r in rows]), logps


@pytest.mark.parametrize("cfg", [DS, QWEN], ids=lambda c: c.name)
def test_greedy_matches_full_forward(cfg):
  res = generate(cfg, _params(cfg), PROMPTS, SamplingParams(M, temperature=0))
  tokens, logps = _greedy_reference(cfg, PROMPTS, M)
  np.testing.assert_array_equal(res.tokens, tokens)
  np.testing.assert_allclose(res.logps_model, logps, atol=1e-4, rtol=0)
  np.testing.assert_array_equal(res.mask, 1)
  np.testing.assert_array_equal(res.lengths, M)
  np.testing.assert_array_equal(res.logps_sampling, 0.0)
  assert res.finish_reason == ("length",) * 3 and res.prompt_index.tolist() == [0, 1, 2]


@pytest.mark.parametrize("cfg", [DS, QWEN], ids=lambda c: c.name)
def test_sampled_logps_match_full_forward(cfg):
  res = generate(cfg, _params(cfg), PROMPTS, SamplingParams(M, n=2, seed=1))
  tokens = np.asarray(res.tokens)
  rows = [PROMPTS[i] + tokens[r].tolist() for r, i in enumerate(res.prompt_index)]
  lp = _full_logps(cfg, rows, max(map(len, PROMPTS)) + M)
  for r, i in enumerate(res.prompt_index):
    L = len(PROMPTS[i])
    ref = lp[r, np.arange(L - 1, L - 1 + M), tokens[r]]
    np.testing.assert_allclose(res.logps_model[r], ref, atol=1e-4, rtol=0)
  np.testing.assert_allclose(res.logps_sampling, res.logps_model, atol=1e-6, rtol=0)


def test_sharded_sampling_equals_one_device():
  """The same sampler on parameters split over a mesh (batch over fsdp/expert, experts
  over expert, heads over tensor) samples what one device does."""
  from r1jax.models import partitioning
  from r1jax.runtime import sharding
  mesh = sharding.make_mesh(dict(fsdp=2, expert=2, tensor=2))
  prompts = PROMPTS * 3 + [[3, 4]] * 2  # 11 prompts: the batch need not divide the mesh
  sp = SamplingParams(M, n=2, seed=3, temperature=0.8)
  want = generate(DS, _params(DS), prompts, sp)
  with sharding.activation_sharding(mesh):
    got = generate(DS, partitioning.shard_params(DS, _params(DS), mesh), prompts, sp)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  np.testing.assert_allclose(got.logps_model, want.logps_model, atol=1e-5, rtol=0)


def test_groups_share_one_prefill(monkeypatch):
  calls = []
  prefill = sampler._prefill

  def counting(cfg, params, tokens, *args):
    calls.append(tokens.shape)
    return prefill(cfg, params, tokens, *args)

  monkeypatch.setattr(sampler, "_prefill", counting)
  params = _params(QWEN)
  sampled = generate(QWEN, params, PROMPTS, SamplingParams(M, n=3, seed=4))
  # once, for the 3 prompts (not the 9 rows), padded to the longest one's bucket
  assert calls == [(3, prompt_bucket(max(map(len, PROMPTS))))] and calls[0][1] < 32
  tokens = np.asarray(sampled.tokens).reshape(3, 3, M)
  for group in tokens:
    assert len({tuple(row) for row in group}) == 3  # rows of a group differ
  assert sampled.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
  greedy = generate(QWEN, params, PROMPTS, SamplingParams(M, n=3, temperature=0))
  single = generate(QWEN, params, PROMPTS, SamplingParams(M, temperature=0))
  np.testing.assert_array_equal(greedy.tokens, np.repeat(np.asarray(single.tokens), 3, axis=0))
  np.testing.assert_allclose(greedy.logps_model,
                             np.repeat(np.asarray(single.logps_model), 3, axis=0), atol=1e-5)


def test_reproducible_and_independent_of_the_batch():
  params = _params(QWEN)
  a = generate(QWEN, params, PROMPTS, SamplingParams(M, seed=7))
  b = generate(QWEN, params, PROMPTS, SamplingParams(M, seed=7))
  c = generate(QWEN, params, PROMPTS, SamplingParams(M, seed=8))
  np.testing.assert_array_equal(a.tokens, b.tokens)
  assert (np.asarray(a.tokens) != np.asarray(c.tokens)).any()
  alone = generate(QWEN, params, PROMPTS[:1], SamplingParams(M, seed=7))
  np.testing.assert_array_equal(alone.tokens[0], a.tokens[0])
  # each prompt starts at position 0 however far it is padded (16 vs 24 columns here)
  assert alone.prompt_len < a.prompt_len
  np.testing.assert_allclose(alone.logps_model[0], a.logps_model[0], atol=1e-6, rtol=0)
  big = generate(QWEN, params, PROMPTS, SamplingParams(M, seed=7 + 2**40))  # 64-bit seeds
  assert (np.asarray(big.tokens) != np.asarray(a.tokens)).any()


# ------------------------------------------------------------------ stopping


def _first_end(row, seq):
  """Index of the last token of the first occurrence of seq in row, or None."""
  for end in range(len(seq) - 1, len(row)):
    if tuple(row[end - len(seq) + 1:end + 1]) == tuple(seq):
      return end
  return None


def _check_stops(res, base, seqs, pad_id):
  for r in range(base.shape[0]):
    ends = [e for e in (_first_end(base[r].tolist(), s) for s in seqs) if e is not None]
    n = min(ends) + 1 if ends else M
    assert res.finish_reason[r] == ("stop" if ends else "length")
    assert int(res.lengths[r]) == n
    np.testing.assert_array_equal(res.mask[r], np.arange(M) < n)
    np.testing.assert_array_equal(res.tokens[r, :n], base[r, :n])
    np.testing.assert_array_equal(res.tokens[r, n:], pad_id)
    np.testing.assert_array_equal(res.logps_model[r, n:], 0.0)
    assert (np.asarray(res.logps_model[r, :n]) < 0).all()


def test_stop_tokens_and_sequences():
  params = _params(QWEN)
  base = np.asarray(generate(QWEN, params, PROMPTS, SamplingParams(M, seed=2)).tokens)
  stop_id, seq = int(base[0, 3]), tuple(base[1, 2:4].tolist())
  for kw, seqs in [(dict(stop_token_ids=(stop_id,)), [(stop_id,)]),
                   (dict(stop_sequences=(seq,)), [seq]),
                   (dict(stop_token_ids=[stop_id, 5], stop_sequences=[list(seq)]),
                    [(stop_id,), (5,), seq])]:
    res = generate(QWEN, params, PROMPTS, SamplingParams(M, seed=2, **kw), pad_id=3)
    _check_stops(res, base, seqs, pad_id=3)
  res = generate(QWEN, params, PROMPTS, SamplingParams(M, seed=2, stop_token_ids=base[:, 0]))
  np.testing.assert_array_equal(res.lengths, 1)  # every row stops at once
  assert res.finish_reason == ("stop",) * 3


def test_stop_array_matches_only_generated_tokens():
  stops = jnp.asarray(sampler._stop_array(SamplingParams(4, stop_token_ids=(9,),
                                                         stop_sequences=((4, 5, 6),))))
  assert stops.shape == (4, 4)
  recent = jnp.array([[-1, -1, -1, 9], [-1, -1, 5, 6], [-1, 4, 5, 6], [4, 5, 6, 7]])
  assert sampler._stop_hit(recent, stops).tolist() == [True, False, True, False]


def test_vocab_limit_keeps_padded_ids_out():
  """A model whose embedding is padded past its tokenizer never samples the padding."""
  free = generate(QWEN, _params(QWEN), PROMPTS, SamplingParams(M, n=4, seed=1))
  assert (free.tokens >= 100).any()  # a random model does draw high ids
  for temperature in (1.0, 0.0):
    res = generate(QWEN, _params(QWEN), PROMPTS,
                   SamplingParams(M, n=4, seed=1, temperature=temperature, vocab_limit=100))
    assert (res.tokens < 100).all()


# ------------------------------------------------------------------ inputs and text API


@pytest.mark.parametrize("kw, match", [
    (dict(max_new_tokens=0), "max_new_tokens"), (dict(n=0), r"\.n: must be"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(temperature=-0.1), "temperature"), (dict(min_p=1.0), "min_p"),
    (dict(min_p=-0.1), "min_p"), (dict(top_k=-1), "top_k"), (dict(seed=-1), "seed"),
    (dict(stop_sequences=((),)), "stop_sequences"), (dict(vocab_limit=-1), "vocab_limit")])
def test_bad_sampling_params(kw, match):
  with pytest.raises(ValueError, match=match):
    SamplingParams(**dict(dict(max_new_tokens=4), **kw))


@pytest.mark.parametrize("prompts, kw, match", [
    ([], {}, "no prompts"), ([[1, 2], []], {}, "prompt 1 is empty"),
    ([[1] * 2045], {}, "prompt of 2045 tokens \\+ max_new_tokens 4 exceeds the model's "
     "context 2048"),
    ([[1, 1024]], {}, r"outside \[0, vocab_size=1024\)"), ([[-1, 3]], {}, "outside"),
    ([[1, 2]], dict(pad_id=1024), "pad_id"),
    ([[1, 2]], dict(sp=SamplingParams(4, stop_token_ids=(2000,))), "stop ids")])
def test_bad_inputs_fail_before_compiling(monkeypatch, prompts, kw, match):
  def never(*args, **kwargs):
    raise AssertionError("compiled code ran before the inputs were checked")

  monkeypatch.setattr(sampler, "_prefill", never)
  monkeypatch.setattr(sampler, "_decode_start", never)
  sp = kw.pop("sp", SamplingParams(4))
  with pytest.raises(ValueError, match=match):
    generate(QWEN, None, prompts, sp, **kw)


class _WordTokenizer:
  """Token ids written as words: "5 17 300" <-> [5, 17, 300]."""
  pad_id = 0

  def __init__(self, eos_id):
    self.eos_id = eos_id

  def encode(self, text, add_bos=False):
    return [1] * add_bos + [int(w) for w in text.split()]

  def decode(self, ids):
    return " ".join(map(str, ids))


def test_generate_text_drops_the_stop_token():
  params = _params(QWEN)
  sp = SamplingParams(M, n=2, seed=5)
  prompts = [[1] + p for p in PROMPTS[:2]]
  base = np.asarray(generate(QWEN, params, prompts, sp).tokens)
  eos = int(base[0, 2])
  texts = generate_text(QWEN, params, _WordTokenizer(eos), ["5 17 300 42 9", "7 8"], sp)
  assert [len(t) for t in texts] == [2, 2]
  for r, text in enumerate(texts[0] + texts[1]):
    row = base[r].tolist()
    end = row.index(eos) if eos in row else M
    assert text == " ".join(map(str, row[:end]))


def test_bf16_cache_runs():
  res = generate(QWEN, _params(QWEN), PROMPTS[:2], SamplingParams(3, temperature=0),
                 cache_dtype=jnp.bfloat16)
  ref = generate(QWEN, _params(QWEN), PROMPTS[:2], SamplingParams(3, temperature=0))
  assert res.tokens.shape == (2, 3) and np.isfinite(np.asarray(res.logps_model)).all()
  np.testing.assert_allclose(res.logps_model, ref.logps_model, atol=0.05)


@pytest.mark.parametrize("cfg", [QWEN, DS], ids=["qwen2", "deepseek_v3"])
def test_finished_rows_leave_the_batch_without_changing_a_token(monkeypatch, cfg):
  """Rows that stopped are dropped between chunks (the batch halves to 32, 16, 8 rows);
  every row draws the same tokens, with the same log-probs (and, for MoE, the same
  recorded experts), as in one loop over all rows."""
  params = _params(cfg)
  moe = cfg.is_moe
  shrinks = []
  take = sampler._take_rows
  monkeypatch.setattr(sampler, "_take_rows",
                      lambda cfg, state, idx: shrinks.append(len(idx)) or take(cfg, state, idx))
  prompts = [[1, 5, 9, 2][: 1 + i % 4] + [7] * (i % 3) for i in range(8)]
  # frequent stop ids: most rows stop within a few tokens, a few run to the end
  sp = SamplingParams(48, n=8, seed=3, stop_token_ids=tuple(range(10, 1000, 9)))
  whole = generate(cfg, params, prompts, sp, chunk=0, record_routing=moe)
  chunked = generate(cfg, params, prompts, sp, chunk=4, record_routing=moe)
  lengths = whole.lengths
  assert lengths.min() <= 4 and lengths.max() >= 24, lengths  # the lengths do vary
  assert shrinks and shrinks == sorted(shrinks, reverse=True) and shrinks[-1] >= 8, shrinks
  np.testing.assert_array_equal(chunked.tokens, whole.tokens)
  np.testing.assert_array_equal(chunked.mask, whole.mask)
  assert chunked.finish_reason == whole.finish_reason
  np.testing.assert_allclose(chunked.logps_model, whole.logps_model, atol=1e-5)
  np.testing.assert_allclose(chunked.logps_sampling, whole.logps_sampling, atol=1e-5)
  if moe:  # every fed slot: the prompt's, and each generated token but the last
    for r in range(len(prompts) * 8):  # generated token t sat at slot len(prompt) + t
      fed = np.r_[np.arange(len(prompts[r // 8])),
                  len(prompts[r // 8]) + np.arange(max(lengths[r] - 1, 0))]
      np.testing.assert_array_equal(chunked.routing[r, fed], whole.routing[r, fed])
