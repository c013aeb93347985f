"""Meshes, the rules table, and sharded training math equal to one device."""

import contextlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from r1jax.models import forward, init_params, partitioning, presets
from r1jax.runtime import sharding

CFG = presets.get("deepseek_v3_tiny")


def _loss(cfg, params, tokens):
  logits = forward(cfg, params, tokens[:, :-1])
  logp = jax.nn.log_softmax(logits)
  return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()


@pytest.fixture(scope="module")
def reference():
  params = init_params(CFG, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (8, 12), 0, CFG.vocab_size)
  loss, grads = jax.jit(jax.value_and_grad(lambda p: _loss(CFG, p, tokens)))(params)
  return params, tokens, loss, grads


def test_eight_host_devices():
  assert jax.device_count() == 8  # tests/conftest.py forces 8 CPU devices


@pytest.mark.parametrize("axes", [
    dict(data=8), dict(data=2, fsdp=2, expert=2), dict(fsdp=2, expert=2, tensor=2)],
    ids=["8x1x1x1", "2x2x2x1", "1x2x2x2"])
def test_sharded_loss_and_grads_equal_one_device(reference, axes):
  params, tokens, ref_loss, ref_grads = reference
  mesh = sharding.make_mesh(axes)
  partitioning.check_divisibility(CFG, mesh, batch_size=tokens.shape[0])
  sharded = partitioning.shard_params(CFG, params, mesh)
  tokens_s = jax.device_put(tokens, sharding.batch_sharding(mesh))
  step = jax.jit(jax.value_and_grad(lambda p, t: _loss(CFG, p, t)),
                 out_shardings=(sharding.replicated(mesh), partitioning.param_shardings(CFG, mesh)))
  loss, grads = step(sharded, tokens_s)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  chex.assert_trees_all_close(grads, ref_grads, atol=1e-5)
  # gradients come back sharded like the parameters
  w = grads["params"]["moe_layers"]["moe"]["w_gate"]
  assert w.sharding.spec == P(None, "expert", "fsdp", "tensor")


@pytest.mark.parametrize("dispatch", ["ragged", "capacity"])
def test_expert_parallel_dispatches_equal_one_device(dispatch):
  """The sorted (ragged_dot) and capacity dispatches with experts split over the expert
  axis compute what one device does (capacity's drops included: 1.0 drops some tokens)."""
  cfg = CFG.replace(moe_dispatch=dispatch, capacity_factor=1.0)
  params = init_params(cfg, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (8, 12), 0, cfg.vocab_size)
  grad = jax.value_and_grad(lambda p, t: _loss(cfg, p, t))
  ref_loss, ref_grads = jax.jit(grad)(params, tokens)
  mesh = sharding.make_mesh(dict(data=2, fsdp=2, expert=2))
  loss, grads = jax.jit(grad)(partitioning.shard_params(cfg, params, mesh),
                              jax.device_put(tokens, sharding.batch_sharding(mesh)))
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  chex.assert_trees_all_close(grads, ref_grads, atol=1e-5)


@pytest.mark.parametrize("axes", [dict(data=2, fsdp=2, expert=2), dict(fsdp=2, expert=2, tensor=2)],
                         ids=["2x2x2x1", "1x2x2x2"])
def test_all_to_all_expert_parallelism(axes):
  """The hand-written exchange: dropless (capacity_factor = E/K) it gives the one-device
  loss and gradients; with drops (1.0) each device's capacity counts its own tokens, so
  it equals one device running every device's batch shard on its own."""
  base = CFG.replace(moe_dispatch="all_to_all")
  tokens = jax.random.randint(jax.random.key(1), (8, 12), 0, CFG.vocab_size)
  params = init_params(base, jax.random.key(0))
  # Steer every token to experts 0-3, so that 1.0 overflows them (11 tokens for 8 slots
  # per device; 88 for 24 on one device).
  moe = params["buffers"]["moe_layers"]["moe"]
  moe["e_score_correction_bias"] = moe["e_score_correction_bias"].at[:, :4].set(10.0)
  mesh = sharding.make_mesh(axes)
  shards = mesh.shape["data"] * mesh.shape["fsdp"] * mesh.shape["expert"]
  dropless = CFG.n_routed_experts / CFG.n_activated_experts
  # drops once, on the mesh without a tensor axis (the psum path is the same either way)
  for factor in (dropless, 1.0) if mesh.shape["tensor"] == 1 else (dropless,):
    cfg = base.replace(capacity_factor=factor)
    grad = jax.jit(jax.value_and_grad(lambda p, t: _loss(cfg, p, t)))
    with sharding.activation_sharding(mesh):
      args = (partitioning.shard_params(cfg, params, mesh),
              jax.device_put(tokens, sharding.batch_sharding(mesh)))
      assert "stablehlo.all_to_all" in grad.lower(*args).as_text()  # the exchange, as written
      loss, grads = grad(*args)
    alone = [grad(params, t) for t in np.split(np.asarray(tokens), shards)]  # no mesh
    ref_loss = np.mean([x[0] for x in alone])
    ref_grads = jax.tree.map(lambda *g: np.mean(g, axis=0), *[x[1] for x in alone])
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    chex.assert_trees_all_close(grads, ref_grads, atol=1e-5)
    whole = jax.jit(lambda p: _loss(cfg, p, tokens))(params)  # the batch on one device
    if factor > 1:
      np.testing.assert_allclose(loss, whole, rtol=1e-5)
      dropless_loss = loss
    else:  # the drops differ from one device's and from no drops (tolerance above: 7e-5)
      assert abs(loss - whole) > 3e-4 and abs(loss - dropless_loss) > 3e-4


def test_all_to_all_exchanges_only_batches_with_an_assignment_per_expert():
  """A device with fewer assignments (T_l·K) than experts (E = 16) would send mostly
  empty buckets: decode-sized batches are left to XLA, with the same result."""
  cfg = CFG.replace(moe_dispatch="all_to_all", capacity_factor=4.0)
  params = init_params(cfg, jax.random.key(0))
  mesh = sharding.make_mesh(dict(data=2, fsdp=2, expert=2))  # 8 batch shards
  f = jax.jit(lambda p, t: forward(cfg, p, t))
  for length, exchanged in ((3, False), (4, True)):  # T_l·K = 12 or 16 assignments
    tokens = jax.random.randint(jax.random.key(1), (8, length), 0, cfg.vocab_size)
    with sharding.activation_sharding(mesh):
      args = (partitioning.shard_params(cfg, params, mesh),
              jax.device_put(tokens, sharding.batch_sharding(mesh)))
      # (the program as written, before XLA's partitioner adds collectives of its own)
      assert ("stablehlo.all_to_all" in f.lower(*args).as_text()) == exchanged
      out = f(*args)
    np.testing.assert_allclose(out, f(params, tokens), atol=1e-5)


def test_every_parameter_follows_the_rules():
  mesh = sharding.make_mesh(dict(fsdp=2, expert=2, tensor=2))
  params = partitioning.init_sharded_params(CFG, jax.random.key(0), mesh)
  p = params["params"]
  expect = {
      ("embed",): P("tensor", "fsdp"),
      ("lm_head",): P("fsdp", "tensor"),
      ("moe_layers", "moe", "w_down"): P(None, "expert", "tensor", "fsdp"),
      ("moe_layers", "moe", "gate"): P(None, "fsdp", None),
      ("moe_layers", "attn", "q_b_proj"): P(None, "fsdp", "tensor", None),  # split on q_lora
      ("moe_layers", "attn", "q_a_proj"): P(None, "fsdp", None),  # fsdp taken by embed
      ("moe_layers", "attn", "o_proj"): P(None, "tensor", None, "fsdp"),
      ("dense_layers", "mlp", "gate_proj"): P(None, "fsdp", "tensor"),
      ("final_norm", "scale"): P(None),
  }
  for path, spec in expect.items():
    leaf = p
    for k in path:
      leaf = leaf[k]
    assert leaf.sharding.spec == spec, path
  # a shard really holds a fraction of the array
  w = p["moe_layers"]["moe"]["w_gate"]
  assert w.addressable_shards[0].data.shape == (3, 8, 64, 32)
  bias = params["buffers"]["moe_layers"]["moe"]["e_score_correction_bias"]
  assert bias.sharding.spec == P(None, "expert")


def test_hugging_face_weights_load_straight_onto_their_shards():
  import os

  import r1jax
  from r1jax.models.hf import load_hf_checkpoint
  base = os.path.join(os.path.dirname(r1jax.__file__), "assets", "tiny_base")
  mesh = sharding.make_mesh(dict(fsdp=2, expert=2, tensor=2))
  cfg, whole = load_hf_checkpoint(base)
  _, sharded = load_hf_checkpoint(base, mesh=mesh)
  want = partitioning.param_shardings(cfg, mesh)
  chex.assert_trees_all_equal(sharded, whole)
  for a, s in zip(jax.tree.leaves(sharded), jax.tree.leaves(want)):
    assert a.sharding == s
  chex.assert_trees_all_equal(partitioning.shard_params(cfg, whole, mesh), whole)


def test_a_shard_of_hugging_face_weights_reads_only_its_tensors(monkeypatch):
  """What a device's shard costs a host: its own piece, read from the HF tensors it
  overlaps and no others (a 671B host cannot hold the stacked [58, 256, 7168, 2048])."""
  import os

  import r1jax
  from r1jax.models import hf
  base = os.path.join(os.path.dirname(r1jax.__file__), "assets", "tiny_base")
  cfg, whole = hf.load_hf_checkpoint(base)
  read = []
  get = hf._Checkpoint.get
  monkeypatch.setattr(hf._Checkpoint, "get", lambda self, name: read.append(name) or get(self, name))
  slots, layout = hf._slots(cfg, ("moe_layers", "moe", "w_gate"))
  leaf = whole["params"]["moe_layers"]["moe"]["w_gate"]  # [3 layers, 16 experts, 128, 64]
  index = (slice(1, 2), slice(8, 16), slice(64, 128))  # layer 1, experts 8-15, half of D
  piece = hf._read_piece(hf._Checkpoint.open(base, (128, 128)), slots, layout, leaf, index)
  np.testing.assert_array_equal(piece, np.asarray(leaf)[index])
  layer = cfg.n_dense_layers + 1
  assert read == [f"model.layers.{layer}.mlp.experts.{e}.gate_proj.weight" for e in range(8, 16)]


@pytest.mark.parametrize("axes, match", [
    (dict(data=3), r"3 devices, but 8 are available"),
    (dict(data=-1, fsdp=-1), "at most one mesh axis may be -1"),
    (dict(data=3, fsdp=-1), "not divisible by the product of the fixed axes"),
    (dict(pipeline=2), "unknown mesh axes"),
])
def test_bad_meshes(axes, match):
  with pytest.raises(ValueError, match=match):
    sharding.make_mesh(axes)


def test_minus_one_takes_the_rest():
  assert dict(sharding.make_mesh(dict(data=-1, tensor=2)).shape) == dict(
      data=4, fsdp=1, expert=1, tensor=2)


@pytest.mark.parametrize("cfg, axes, batch, match", [
    (CFG.replace(n_routed_experts=12, n_expert_groups=4), dict(expert=8),
     None, r"n_routed_experts=12 is not divisible by the expert mesh axis \(8\)"),
    (CFG, dict(tensor=8), None, r"n_heads=4 is not divisible by the tensor mesh axis \(8\)"),
    (CFG, dict(data=2, fsdp=4), 6, r"batch size 6 is not divisible by data×fsdp×expert = 2×4×1 = 8"),
])
def test_indivisible_shapes(cfg, axes, batch, match):
  with pytest.raises(ValueError, match=match):
    partitioning.check_divisibility(cfg, sharding.make_mesh(axes), batch_size=batch)


def test_activations_follow_the_batch_split_under_fsdp():
  """Inside activation_sharding the residual stream is split over the batch: an fsdp=8
  step then needs no more temporary memory than a data=8 one (XLA replicated it: ~5x)."""
  cfg = presets.get("deepseek_v3_tiny", moe_dispatch="dense")
  tokens = jnp.zeros((16, 128), jnp.int32)

  def temp_bytes(axes, pinned):
    mesh = sharding.make_mesh(axes)
    params = partitioning.init_sharded_params(cfg, jax.random.key(0), mesh)
    t = jax.device_put(tokens, sharding.batch_sharding(mesh))
    step = jax.jit(jax.value_and_grad(lambda p, x: forward(cfg, p, x).mean()))
    ctx = sharding.activation_sharding(mesh) if pinned else contextlib.nullcontext()
    with ctx:
      compiled = step.lower(params, t).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  data = temp_bytes(dict(data=8), pinned=True)
  assert temp_bytes(dict(fsdp=8), pinned=True) < 1.2 * data
  assert temp_bytes(dict(fsdp=8), pinned=False) > 2 * data  # what the context fixes


def test_rules_with_overrides_and_the_rules_context():
  rules = sharding.rules_with("embed:none,vocab:fsdp+tensor")
  assert dict(rules)["norm"] is None and len(rules) == len(sharding.DEFAULT_RULES) + 2
  mesh = sharding.make_mesh(dict(fsdp=4, tensor=2))
  assert partitioning.param_shardings(CFG, mesh)["params"]["embed"].spec == P("tensor", "fsdp")
  with sharding.use_rules(rules):  # every rules=None reads the context's table
    assert sharding.current_rules() == rules
    assert partitioning.param_shardings(CFG, mesh)["params"]["embed"].spec == P(("fsdp", "tensor"), None)
  assert sharding.current_rules() == sharding.DEFAULT_RULES
  for bad, match in [("embed", "is not logical_axis:mesh_axes"),
                     ("embd:fsdp", "unknown logical axis 'embd'"),
                     ("embed:fsdp+gpu", r"\['gpu'\] are not mesh axes")]:
    with pytest.raises(ValueError, match=match):
      sharding.rules_with(bad)


@pytest.mark.parametrize("axes", [dict(data=2, fsdp=2, expert=2), dict(data=2, tensor=4)])
def test_shard_rows_builds_the_rows_of_shard_batch(axes):
  mesh = sharding.make_mesh(axes)
  whole = {"tokens": np.arange(24, dtype=np.int32).reshape(8, 3), "mask": np.ones((8,), bool)}
  calls = []
  built = sharding.shard_rows(lambda rows: calls.append(rows) or {k: v[rows] for k, v in
                                                                  whole.items()}, 8, mesh)
  assert len(calls) == 1 and calls[0].tolist() == list(range(8))  # one process: every row
  placed = sharding.shard_batch(whole, mesh)
  for k in whole:
    assert built[k].sharding == placed[k].sharding
    np.testing.assert_array_equal(built[k], whole[k])
