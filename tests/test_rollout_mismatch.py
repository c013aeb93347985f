"""Rollouts the trainer agrees with (issue 23): the ratio against the distribution that
sampled, π_old from the sampler or the trainer, truncated importance weights, and the
sampler/trainer mismatch logged every step."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import grpo_zero
from r1jax.losses import grpo
from r1jax.models import init_params, presets
from r1jax.runtime.metrics import read_metrics
from r1jax.sampling import SamplingParams, generate
from r1jax.stages.grpo import pack_rollout
from r1jax.train import train_and_evaluate
from tests.test_grpo import _inputs, _kwargs, np_policy_loss


def _np_is_weights(trainer, sampler, mask, cap, level):
  B, T = trainer.shape
  w = np.zeros((B, T))
  for i in range(B):
    toks = [t for t in range(T) if mask[i, t]]
    total = sum(float(trainer[i, t]) - float(sampler[i, t]) for t in toks)
    for t in toks:
      d = total if level == "sequence" else float(trainer[i, t]) - float(sampler[i, t])
      w[i, t] = min(math.exp(d), cap)
  return w


@pytest.mark.parametrize("level", grpo.IS_LEVELS)
def test_truncated_is_weights_match_numpy(level):
  logps, old, _, _, mask = _inputs(0, "grpo")
  got = grpo.truncated_is_weights(jnp.asarray(logps), jnp.asarray(old), jnp.asarray(mask),
                                  cap=1.2, level=level)
  want = _np_is_weights(logps, old, mask, 1.2, level)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert 0 < (want == 1.2).sum() < mask.sum()  # both sides of the cap are exercised


def test_rollout_mismatch_matches_numpy():
  logps, old, _, _, mask = _inputs(1, "grpo")
  got = grpo.rollout_mismatch(jnp.asarray(logps), jnp.asarray(old), jnp.asarray(mask),
                              epsilon=0.2, epsilon_high=0.28)
  d = [float(logps[i, t]) - float(old[i, t]) for i, t in zip(*np.nonzero(mask))]
  rows = [i for i in range(mask.shape[0]) if mask[i].any()]
  seq = [math.exp(sum(float(logps[i, t] - old[i, t]) for t in np.nonzero(mask[i])[0])
                  / mask[i].sum()) for i in rows]
  want = {"logp_diff_mean": np.mean(np.abs(d)), "logp_diff_max": np.max(np.abs(d)),
          "token_out_of_clip": np.mean([not 0.8 <= math.exp(x) <= 1.28 for x in d]),
          "seq_out_of_clip": np.mean([not 0.8 <= s <= 1.28 for s in seq]),
          "seq_ratio_min": min(seq), "seq_ratio_max": max(seq)}
  assert want["token_out_of_clip"] > 0
  for k, v in want.items():
    np.testing.assert_allclose(float(got[k]), v, rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("preset", ["grpo", "dapo", "gspo"])
def test_importance_weights_scale_each_tokens_policy_gradient_term(preset):
  logps, old, _, adv, mask = _inputs(2, preset)
  w = np.random.default_rng(3).uniform(0.5, 2.0, logps.shape).astype(np.float32)
  kw = dict(_kwargs(preset), beta=0.0)

  def loss(lp, weights):
    return grpo.policy_loss(lp, jnp.asarray(old), None, jnp.asarray(adv), jnp.asarray(mask),
                            is_weights=weights, **kw)[0]

  want, _ = np_policy_loss(logps, old, None, adv, mask, **kw)
  for c in (0.5, 2.0):  # equal weights c: c times the NumPy transcription's loss
    np.testing.assert_allclose(float(loss(jnp.asarray(logps), jnp.full(logps.shape, c))),
                               c * want, rtol=1e-5, atol=1e-7)
  # per token: each token's term depends on its own log-prob only (GSPO's sequence ratio
  # is a constant of the gradient), so the weighted gradient is w times the unweighted
  g = jax.grad(loss)
  g1 = np.asarray(g(jnp.asarray(logps), jnp.ones(logps.shape)))
  gw = np.asarray(g(jnp.asarray(logps), jnp.asarray(w)))
  assert np.abs(g1).max() > 0
  np.testing.assert_allclose(gw, g1 * w, rtol=1e-4, atol=1e-7)


def test_trainer_old_logps_give_ratio_one_and_measure_the_sampler():
  cfg = presets.get("qwen2_tiny", dtype="float32")
  params = init_params(cfg, jax.random.key(0))
  prompts = [[5, 9, 13], [7, 2, 11, 4, 6]]
  res = generate(cfg, params, prompts, SamplingParams(6, n=4, seed=0))
  batch = pack_rollout(prompts, res.tokens, res.mask, 4, 0, res.prompt_len,
                       logps=res.logps_model)
  batch["sampler_logps"] = batch["sampler_logps"] + np.where(  # a sampler off by 0.05 nats
      batch["completion_mask"][:, 1:], 0.05, 0.0).astype(np.float32)
  batch["advantages"] = np.linspace(-1, 1, 8).astype(np.float32)
  batch = jax.tree.map(jnp.asarray, batch)
  sampler_loss = grpo.make_grpo_loss(cfg, beta=0.0)
  trainer_loss = grpo.make_grpo_loss(cfg, beta=0.0, old_logps="trainer")
  tis_loss = grpo.make_grpo_loss(cfg, beta=0.0, old_logps="trainer", tis_cap=2.0)
  _, (m_s, _) = sampler_loss(params, batch)
  _, (m_t, _) = trainer_loss(params, batch)
  _, (m_w, _) = tis_loss(params, batch)
  np.testing.assert_allclose(float(m_s["ratio_mean"]), math.exp(-0.05), rtol=1e-4)
  assert float(m_t["ratio_mean"]) == 1.0 and float(m_t["clip_fraction"]) == 0.0
  for m in (m_s, m_t, m_w):  # the mismatch is the sampler's, whatever π_old is
    np.testing.assert_allclose(float(m["mismatch/logp_diff_mean"]), 0.05, rtol=1e-3)
    assert 0 < float(m["entropy"]) < math.log(cfg.vocab_size)
  np.testing.assert_allclose(float(m_w["tis/weight_mean"]), math.exp(-0.05), rtol=1e-4)
  assert float(m_w["tis/capped_fraction"]) == 0.0


def test_bad_choices_are_refused():
  cfg = presets.get("qwen2_tiny")
  with pytest.raises(ValueError, match="old_logps='teacher'; choose one of"):
    grpo.make_grpo_loss(cfg, old_logps="teacher")
  with pytest.raises(ValueError, match="set rl.old_logps='trainer' or rl.tis_cap=0"):
    grpo.make_grpo_loss(cfg, tis_cap=2.0)
  with pytest.raises(ValueError, match="tis_level='row'"):
    grpo.make_grpo_loss(cfg, old_logps="trainer", tis_cap=2.0, tis_level="row")
  with pytest.raises(ValueError, match="temperature must be > 0"):
    grpo.make_grpo_loss(cfg, temperature=0.0)


@pytest.mark.parametrize("preset", ["qwen2_tiny", "deepseek_v3_tiny"])
def test_ratio_is_one_at_the_rollout_temperature(preset):
  """T = 0.7, μ = 1, float32: the trainer scores logits / T, as the sampler drew; without
  the temperature the same tokens' ratios are far from 1."""
  cfg = presets.get(preset, dtype="float32")
  params = init_params(cfg, jax.random.key(1))
  prompts = [[5, 9, 13, 2], [7, 2, 11, 4, 6, 8, 3], [4]]
  res = generate(cfg, params, prompts, SamplingParams(10, n=2, seed=3, temperature=0.7))
  batch = jax.tree.map(jnp.asarray, pack_rollout(prompts, res.tokens, res.mask, 2, 0,
                                                 res.prompt_len, logps=res.logps_model))
  valid = np.asarray(batch["completion_mask"][:, 1:]).astype(bool)
  at_t = np.asarray(grpo.token_logps(cfg, params, batch, temperature=0.7)[0])
  ratio = np.exp(at_t - np.asarray(batch["sampler_logps"]))[valid]
  np.testing.assert_allclose(ratio, 1.0, atol=1e-5)
  raw = np.asarray(grpo.token_logps(cfg, params, batch)[0])
  assert np.abs(np.exp(raw - np.asarray(batch["sampler_logps"]))[valid] - 1).max() > 1e-2


def test_grpo_logs_the_mismatch_and_corrects_it(tmp_path):
  """The tiny default in float32, one step with π_old from the trainer, TIS and μ = 2:
  the mismatch, entropy and TIS metrics are logged, and in float32 the sampler agrees
  with the trainer to rounding (mean |Δ| ≤ 1e-5)."""
  c = grpo_zero.get_config()
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.max_new_tokens = 2, 4, 12
  c.rl.temperature = 0.8
  c.rl.old_logps, c.rl.tis_cap, c.rl.num_iterations = "trainer", 2.0, 2
  c.data.num_eval = 0
  c.train.num_steps, c.train.eval_every = 1, 0
  train_and_evaluate(c, str(tmp_path))
  rows = read_metrics(str(tmp_path))
  assert [r["step"] for r in rows] == [1]
  for r in rows:
    for k in ("logp_diff_mean", "logp_diff_max", "token_out_of_clip", "seq_out_of_clip",
              "seq_ratio_min", "seq_ratio_max"):
      assert f"mismatch/{k}" in r, k
    assert r["mismatch/logp_diff_mean"] <= 1e-5 and r["mismatch/token_out_of_clip"] == 0
    assert 0.999 < r["mismatch/seq_ratio_min"] <= r["mismatch/seq_ratio_max"] < 1.001
    assert r["entropy"] > 0 and abs(r["tis/weight_mean"] - 1) < 1e-4


# ------------------------------------------------------------ routing replay (R3)


def _moe_rollout(dtype):
  cfg = presets.get("deepseek_v3_tiny", dtype=dtype)
  params = init_params(cfg, jax.random.key(4))
  prompts = [[5, 9, 13, 2], [7, 2, 11, 4, 6, 8, 3, 9, 1], [4]]
  res = generate(cfg, params, prompts, SamplingParams(12, n=4, seed=5), record_routing=True)
  assert res.routing.shape == (12, res.prompt_len + 12, cfg.n_moe_layers,
                               cfg.n_activated_experts) and res.routing.dtype == np.uint8
  batch = pack_rollout(prompts, res.tokens, res.mask, 4, 0, res.prompt_len,
                       logps=res.logps_model, routing=res.routing)
  batch["advantages"] = np.linspace(-1.5, 1.5, 12).astype(np.float32)
  return cfg, params, jax.tree.map(jnp.asarray, batch)


def test_routing_replay_in_float32_equals_the_plain_forward():
  """Where no decision differs (float32), replaying the sampler's experts changes neither
  the loss nor the gradients; replaying other experts does."""
  cfg, params, batch = _moe_rollout("float32")
  plain = grpo.make_grpo_loss(cfg, beta=0.0)
  replay = grpo.make_grpo_loss(cfg, beta=0.0, routing_replay=True)
  (l0, (m0, _)), g0 = jax.value_and_grad(plain, has_aux=True)(params, batch)
  (l1, (m1, _)), g1 = jax.value_and_grad(replay, has_aux=True)(params, batch)
  assert float(m0["mismatch/routing_diff"]) == 0.0 == float(m1["mismatch/routing_diff"])
  recorded = np.asarray(batch["routing"])[..., 0] >= 0
  assert recorded.sum() > 100  # prompt and completion tokens of every row
  np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6, atol=1e-7)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g0)
  other = dict(batch, routing=jnp.where(batch["routing"] >= 0,
                                        (batch["routing"] + 1) % cfg.n_routed_experts, -1))
  l2, _ = replay(params, other)
  assert abs(float(l2) - float(l0)) > 1e-4


def test_routing_replay_in_bfloat16_uses_the_samplers_experts():
  """bfloat16: the trainer's routers may choose differently from the sampler's; with
  replay the experts it runs are the sampler's at every recorded token (the loads the
  bias update reads count exactly those)."""
  cfg, params, batch = _moe_rollout("bfloat16")
  inputs = dict(positions=batch["positions"][:, :-1], segment_ids=batch["segment_ids"][:, :-1],
                return_aux=True)
  record = np.asarray(batch["routing"])  # [B, T, L, K]
  _, aux = grpo.token_logps(cfg, params, batch, routing_replay=True)
  own = np.asarray(aux["routing"]).transpose(1, 2, 0, 3)
  # used = the record where recorded, the router's own choice at the other valid tokens
  used = np.where(record >= 0, record, own)
  valid = np.asarray(inputs["segment_ids"]) != 0
  want = np.zeros((cfg.n_moe_layers, cfg.n_routed_experts))
  for b, t in zip(*np.nonzero(valid)):
    for layer in range(cfg.n_moe_layers):
      np.add.at(want[layer], used[b, t, layer], 1)
  np.testing.assert_array_equal(np.asarray(aux["expert_load"]), want)
  diff = float(grpo.routing_difference(jnp.asarray(own), jnp.asarray(record)))
  assert 0.0 <= diff < 0.2  # reported by mismatch/routing_diff; 0 is possible by luck


def test_grpo_with_routing_replay_runs_and_reports_routing(tmp_path):
  c = grpo_zero.get_config()
  c.rl.prompts_per_step, c.rl.num_generations, c.rl.max_new_tokens = 2, 4, 12
  c.rl.routing_replay = True
  c.data.num_eval = 0
  c.train.num_steps, c.train.eval_every = 1, 0
  train_and_evaluate(c, str(tmp_path))
  row = read_metrics(str(tmp_path))[-1]
  assert row["mismatch/routing_diff"] == 0.0  # float32 tiny default: no decision differs
  from r1jax.stages.grpo import GRPOStage
  from r1jax.data.tokenizers import load_tokenizer
  from r1jax.runtime import sharding
  c = grpo_zero.get_config()
  c.model, c.init_from = "qwen2_tiny", ""
  c.rl.routing_replay = True
  with pytest.raises(ValueError, match="routing_replay=True needs an MoE model"):
    GRPOStage(c, presets.get("qwen2_tiny"), load_tokenizer(c.tokenizer),
              sharding.make_mesh(dict(c.mesh)))
