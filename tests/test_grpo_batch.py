"""The GRPO batch layouts (r1jax.stages.grpo_batch): a row per prompt and its G
completions scores every completion exactly as a row per completion does."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import AbstractMesh

from r1jax.losses import grpo
from r1jax.models import forward, init_params, presets
from r1jax.sampling import SamplingParams, generate
from r1jax.stages.grpo_batch import batch_layout, pack_groups, pack_rollout

AXES = ("data", "fsdp", "expert", "tensor")


def test_pack_groups_lays_out_the_prompt_once_and_each_completion_after_it():
  prompts = [[5, 6, 7], [8]]
  completions = np.array([[11, 12, 13], [21, 22, 23], [31, 32, 33], [41, 42, 43]], np.int32)
  mask = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]], np.int32)
  logps = -np.arange(1, 13, dtype=np.float32).reshape(4, 3)
  # routing by position: prompt i's token at position q routed to q, completion token t of
  # row r to 10 r + t; one layer, one expert
  routing = np.zeros((4, 4 + 3, 1, 1), np.uint8)
  for r in range(4):
    n = len(prompts[r // 2])
    routing[r, :n, 0, 0] = np.arange(n)
    routing[r, n:n + 3, 0, 0] = 10 * r + np.arange(3)
  b = pack_groups(prompts, completions, mask, pad_id=0, prompt_len=4, logps=logps,
                  routing=routing)
  np.testing.assert_array_equal(b["tokens"], [[5, 6, 7, 0, 11, 12, 13, 21, 0, 0],
                                              [8, 0, 0, 0, 31, 32, 0, 0, 0, 0]])
  np.testing.assert_array_equal(b["positions"], [[0, 1, 2, 0, 3, 4, 5, 3, 4, 5],
                                                 [0, 0, 0, 0, 1, 2, 3, 1, 2, 3]])
  np.testing.assert_array_equal(b["segment_ids"], [[1, 1, 1, 0, 1, 1, 1, 1, 0, 0],
                                                   [1, 0, 0, 0, 1, 1, 0, 0, 0, 0]])
  np.testing.assert_array_equal(b["branch_ids"], [[0, 0, 0, 0, 1, 1, 1, 2, 2, 2]] * 2)
  np.testing.assert_array_equal(b["completion_mask"], mask.reshape(2, 2, 3))
  np.testing.assert_array_equal(b["sampler_logps"], (logps * mask).reshape(2, 2, 3))
  # fed tokens keep the sampler's experts; a completion's last token and padding get -1
  np.testing.assert_array_equal(b["routing"][..., 0, 0], [[0, 1, 2, -1, 0, 1, -1, -1, -1, -1],
                                                          [0, -1, -1, -1, 20, -1, -1, -1, -1, -1]])
  with pytest.raises(ValueError, match="does not fit prompt_len=2"):
    pack_groups(prompts, completions, mask, 0, prompt_len=2)
  with pytest.raises(ValueError, match="groups of equal size"):
    pack_groups(prompts, completions[:3], mask[:3], 0)


def test_a_branch_sees_the_trunk_and_itself_only():
  """Logits of [trunk | branch 1 | branch 2] equal those of [trunk | branch] rows."""
  cfg = presets.get("qwen2_tiny", dtype="float32")
  params = init_params(cfg, jax.random.key(0))
  trunk, b1, b2 = [3, 4, 5], [6, 7], [8, 9]
  packed = forward(cfg, params, jnp.array([trunk + b1 + b2]),
                   positions=jnp.array([[0, 1, 2, 3, 4, 3, 4]]),
                   branch_ids=jnp.array([[0, 0, 0, 1, 1, 2, 2]]))
  apart = forward(cfg, params, jnp.array([trunk + b1, trunk + b2]))
  np.testing.assert_allclose(packed[0, :5], apart[0], atol=1e-5)
  np.testing.assert_allclose(packed[0, 5:], apart[1, 3:], atol=1e-5)
  with pytest.raises(ValueError, match="branch_ids describe tree-shaped training rows"):
    from r1jax.models import init_cache
    forward(cfg, params, jnp.array([[1]]), cache=init_cache(cfg, 1, 4), cache_slot=0,
            branch_ids=jnp.zeros((1, 1), jnp.int32))


def _rollout(cfg, params, G=3, C=7, record_routing=False):
  """Sampled completions of unequal lengths (a stop token ends some) for prompts of 2-9 tokens."""
  prompts = [[5, 9], [7, 2, 11, 4, 6, 8, 3, 12, 10], [4, 3, 8, 9]]
  stops = tuple(range(1, cfg.vocab_size, 6))  # a sixth of the vocabulary ends a completion
  sp = SamplingParams(C, n=G, seed=4, temperature=0.8, stop_token_ids=stops)
  res = generate(cfg, params, prompts, sp, record_routing=record_routing)
  assert 0 < res.mask.sum() < res.mask.size and len(set(res.mask.sum(1))) > 2
  return prompts, res


@pytest.mark.parametrize("preset", ["qwen2_tiny", "deepseek_v3_tiny"])
def test_groups_give_the_rows_layouts_numbers(preset):
  """Sampled rollouts (MoE: with the sampler's experts replayed) packed both ways: equal
  log-probs and entropies (whole head and chunked), loss, metrics and gradients, with a
  KL reference, the trainer's π_old and truncated importance weights."""
  cfg = presets.get(preset, dtype="float32")
  params = init_params(cfg, jax.random.key(1))
  moe = cfg.is_moe
  prompts, res = _rollout(cfg, params, record_routing=moe)
  G, C = 3, res.tokens.shape[1]
  kw = dict(logps=res.logps_model, routing=res.routing)
  rows = jax.tree.map(jnp.asarray, pack_rollout(prompts, res.tokens, res.mask, G, 0,
                                                res.prompt_len, **kw))
  groups = jax.tree.map(jnp.asarray, pack_groups(prompts, res.tokens, res.mask, 0,
                                                 res.prompt_len, **kw))
  lengths = [len(p) for p in prompts for _ in range(G)]

  def at_completions(x):  # rows layout [B·G, L-1] -> [B·G, C]: column len - 1 + t is token t
    return np.stack([np.asarray(x)[r, n - 1:n - 1 + C] for r, n in enumerate(lengths)])

  valid = res.mask.astype(bool)
  for chunk in (0, 4):
    lp_r, aux_r = grpo.token_logps(cfg, params, rows, chunk, 0.8, routing_replay=moe, window=C)
    lp_g, aux_g = grpo.token_logps(cfg, params, groups, chunk, 0.8, routing_replay=moe)
    assert lp_g.shape == (3, G, C)
    got, want = np.asarray(lp_g).reshape(-1, C)[valid], at_completions(lp_r)[valid]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(aux_g["token_entropy"]).reshape(-1, C)[valid],
                               at_completions(aux_r["token_entropy"])[valid], rtol=1e-5,
                               atol=1e-5)
  # the sampler drew these tokens from these log-probs: the trainer agrees in float32
  np.testing.assert_allclose(got, res.logps_model[valid], atol=2e-4)

  ref_params = init_params(cfg, jax.random.key(2))
  for batch in (rows, groups):
    batch["ref_logps"] = grpo.token_logps(cfg, ref_params, batch, 0, 0.8, moe, C)[0]
  rewards = jnp.asarray(np.random.default_rng(0).normal(size=len(lengths)), jnp.float32)
  adv = grpo.group_advantages(rewards, G)
  rows["advantages"], groups["advantages"] = adv, adv.reshape(-1, G)
  loss = grpo.make_grpo_loss(cfg, temperature=0.8, beta=0.04, old_logps="trainer", tis_cap=1.5,
                             routing_replay=moe, window=C)
  (l_r, (m_r, _)), g_r = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, rows)
  (l_g, (m_g, _)), g_g = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, groups)
  np.testing.assert_allclose(l_g, l_r, rtol=1e-5, atol=1e-7)
  assert set(m_g) == set(m_r) and (not moe or "mismatch/routing_diff" in m_g)
  for k in m_r:
    np.testing.assert_allclose(m_g[k], m_r[k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert float(m_g["kl"]) > 1e-3  # the reference differs: the KL term is exercised
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6), g_g, g_r)
  # Dr. GRPO divides by the generation budget C, whatever a row's prompt columns
  dr = grpo.make_grpo_loss(cfg, temperature=0.8, routing_replay=moe, window=C, max_len=C,
                           **grpo.LOSS_PRESETS["dr_grpo"]["loss"])
  np.testing.assert_allclose(jax.jit(dr)(params, groups)[0], jax.jit(dr)(params, rows)[0],
                             rtol=1e-5, atol=1e-7)


def _config(prompts_per_step=8, G=4, C=64, layout="auto", micro_batches=1):
  c = ml_collections.ConfigDict()
  c.rl = ml_collections.ConfigDict(dict(prompts_per_step=prompts_per_step, num_generations=G,
                                        max_new_tokens=C, batch_layout=layout))
  c.train = ml_collections.ConfigDict(dict(micro_batches=micro_batches))
  return c


def _mesh(data=1, fsdp=1):
  return AbstractMesh((data, fsdp, 1, 1), AXES)


def test_auto_layout_follows_the_cost_and_the_memory():
  qwen = presets.get("qwen2_5_0_5b")
  # GSM8K-like prompts, short completions: the prompt once per group saves most
  assert batch_layout(_config(C=64), qwen, _mesh(), prompt_len=192) == "groups"
  # R1-like: 16 completions of 32k tokens make one row quadratically dearer
  assert batch_layout(_config(G=16, C=32768), qwen, _mesh(), prompt_len=512) == "rows"
  # 8 × 256 new tokens: fewer FLOPs as groups, but dense attention would keep ~51 GB
  # more scores per device; flash attention keeps none
  assert batch_layout(_config(G=8, C=256), qwen, _mesh(), prompt_len=192) == "rows"
  flash = presets.get("qwen2_5_0_5b", attention_impl="cudnn")
  assert batch_layout(_config(G=8, C=256), flash, _mesh(), prompt_len=192) == "groups"
  # each device, and each micro-batch, must hold whole groups: 8 prompts cannot split 16
  # ways, nor 2 devices × 8 micro-batches
  assert batch_layout(_config(C=64), qwen, _mesh(fsdp=16), prompt_len=192) == "rows"
  assert batch_layout(_config(C=64, micro_batches=8), qwen, _mesh(fsdp=2),
                      prompt_len=192) == "rows"
  assert batch_layout(_config(layout="rows"), qwen, _mesh(), prompt_len=192) == "rows"
  with pytest.raises(ValueError, match=r"prompts_per_step=8 must be divisible by .* = 16×1"):
    batch_layout(_config(layout="groups"), qwen, _mesh(fsdp=16), prompt_len=192)
  with pytest.raises(ValueError, match=r"= 2×8"):
    batch_layout(_config(layout="groups", micro_batches=8), qwen, _mesh(fsdp=2), prompt_len=192)
  with pytest.raises(ValueError, match="batch_layout='packed'; choose one of"):
    batch_layout(_config(layout="packed"), qwen, _mesh(), prompt_len=192)


@pytest.mark.parametrize("layout", ["rows", "groups"])
def test_the_plan_describes_the_batch_the_stage_builds(layout):
  """r1jax.plan's abstract batch has the keys, shapes and dtypes of a real GRPO step's
  (an MoE model: with the sampler's experts)."""
  from configs import grpo_zero
  from r1jax.data.tokenizers import load_tokenizer, tokenizer_spec
  from r1jax.models.loading import model_config
  from r1jax.recipe.plan import abstract_batch, run_shape
  from r1jax.runtime import sharding
  from r1jax.train import make_stage
  config = grpo_zero.get_config()
  config.rl.update(prompts_per_step=2, num_generations=2, max_new_tokens=8, batch_layout=layout)
  cfg = model_config(config)
  mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "expert": 1, "tensor": 1}, jax.devices()[:1])
  stage = make_stage(config, cfg, load_tokenizer(tokenizer_spec(config)), mesh)
  assert stage.layout == layout
  weights = init_params(cfg, jax.random.key(0))
  state = dict(weights, step=jnp.zeros((), jnp.int32), **stage.extra_state(weights))
  batch, metrics = stage.next_batch(state, None)
  shape = run_shape(config, int(metrics["rollout/prompt_len"]), layout)
  want = abstract_batch(config, shape, mesh, cfg=cfg)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      k: (v.shape, v.dtype) for k, v in want.items()}
