"""HF checkpoints: logits equal transformers', save/load round trips, shards, FP8, errors.

The reference is transformers itself (eager attention, float32): a random HF model saved
with `save_pretrained` must give the same logits in r1jax, and an r1jax model saved with
`save_hf_checkpoint` must give the same logits in `AutoModelForCausalLM.from_pretrained`.
Weights are drawn at unit scale (norm weights, biases and the router bias included) so
that a misplaced tensor changes the logits by far more than the tolerance.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
import transformers

from r1jax.models import ModelConfig, forward, init_params, presets
from r1jax.models.hf import (config_from_hf, config_to_hf, dequantize_fp8, load_hf_checkpoint,
                             read_safetensors, save_hf_checkpoint, write_safetensors)

ATOL = 1e-4
_forward = jax.jit(forward, static_argnums=0)

YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
        "original_max_position_embeddings": 64, "mscale": 1.0, "mscale_all_dim": 1.0}
V3 = dict(model_type="deepseek_v3", vocab_size=256, hidden_size=64, intermediate_size=96,
          moe_intermediate_size=32, num_hidden_layers=3, first_k_dense_replace=1,
          num_attention_heads=4, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16,
          qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=8, n_group=4,
          topk_group=2, num_experts_per_tok=2, n_shared_experts=1, routed_scaling_factor=2.5,
          rope_parameters=YARN, max_position_embeddings=256, rms_norm_eps=1e-6)
QWEN2 = dict(model_type="qwen2", vocab_size=256, hidden_size=64, intermediate_size=96,
             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             tie_word_embeddings=True, rms_norm_eps=1e-6, max_position_embeddings=256,
             rope_parameters={"rope_type": "default", "rope_theta": 1e6})
LLAMA = dict(model_type="llama", vocab_size=256, hidden_size=64, intermediate_size=96,
             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
             tie_word_embeddings=False, rms_norm_eps=1e-5, max_position_embeddings=256,
             rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 64})
HF_CASES = {"deepseek_v3": V3, "deepseek_v3_no_q_lora": dict(V3, q_lora_rank=None),
            "deepseek_v3_eps": dict(V3, rms_norm_eps=1e-2),  # latent norms keep eps 1e-6
            "qwen2": QWEN2, "llama3": LLAMA,
            "llama_yarn": dict(LLAMA, rope_parameters=dict(YARN))}  # no MLA mscale² here


def _tokens(vocab, length, seed=0):
  return np.random.default_rng(seed).integers(0, vocab, (2, length))


def _hf_model(hf_dict, seed=0):
  """A float32 transformers model with every weight random at unit scale."""
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(
      transformers.AutoConfig.for_model(**hf_dict), attn_implementation="eager").eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name:
        p.copy_(1 + 0.2 * torch.randn_like(p))
      elif p.ndim == 1:  # q/k/v biases
        p.copy_(0.2 * torch.randn_like(p))
      elif "embed" in name:
        p.copy_(torch.randn_like(p))
      else:
        p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    for name, b in model.named_buffers():
      if name.endswith("e_score_correction_bias"):
        b.copy_(0.1 * torch.randn_like(b))
  return model


def _hf_logits(model, tokens):
  with torch.no_grad():
    return model(torch.as_tensor(tokens)).logits.numpy()


def _random_params(cfg: ModelConfig, seed=0):
  """r1jax params with init_params' tree, drawn at unit scale like `_hf_model`."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))

  def draw(path, s):
    name = path[-1].key
    z = rng.standard_normal(s.shape).astype(np.float32)
    if name == "scale":
      z = 1 + 0.2 * z
    elif name.endswith("bias"):
      z = (0.1 if name.startswith("e_score") else 0.2) * z
    elif name != "embed":
      z = z / np.sqrt(cfg.dim)
    return jnp.asarray(z, s.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _leaves(tree):
  return {jax.tree_util.keystr(p): np.asarray(a)
          for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _assert_identical(a, b):
  la, lb = _leaves(a), _leaves(b)
  assert la.keys() == lb.keys()
  for k in la:
    assert la[k].dtype == lb[k].dtype and la[k].shape == lb[k].shape, k
    np.testing.assert_array_equal(la[k], lb[k], err_msg=k)


_NOT_IN_HF = ("name", "bias_update_rate", "seq_aux_loss_alpha", "moe_dispatch", "capacity_factor",
              "mtp_loss_weight", "dtype", "param_dtype", "remat", "attention_impl", "scan_layers")


def _same_model(got: ModelConfig, want: ModelConfig):
  """Equal in every field a config.json carries."""
  assert got.replace(**{f: getattr(want, f) for f in _NOT_IN_HF}) == want


# ------------------------------------------------------------ vs transformers


@pytest.mark.parametrize("case", HF_CASES)
def test_logits_match_transformers(case, tmp_path):
  hf_dict = HF_CASES[case]
  model = _hf_model(hf_dict)
  model.save_pretrained(tmp_path)
  cfg, params = load_hf_checkpoint(str(tmp_path))
  assert cfg.n_mtp_modules == 0  # transformers writes num_nextn_predict_layers but no MTP weights
  scaled = hf_dict["rope_parameters"]["rope_type"] != "default"
  for length in (16, 96) if scaled else (16,):  # 96 runs past original_max_position 64
    tokens = _tokens(hf_dict["vocab_size"], length)
    want = _hf_logits(model, tokens)
    got = np.asarray(_forward(cfg, params, jnp.asarray(tokens)))
    print(f"{case} T={length}: max |logit diff| = {np.abs(got - want).max():.2e}")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
  if cfg.is_moe:  # the router bias must matter, or the test above could not see it
    moe = params["buffers"]["moe_layers"]["moe"]
    unbiased = {**params, "buffers": {"moe_layers": {"moe": {
        "e_score_correction_bias": jnp.zeros_like(moe["e_score_correction_bias"])}}}}
    assert np.abs(np.asarray(_forward(cfg, unbiased, jnp.asarray(tokens))) - want).max() > 1e-2


def test_fused_expert_layout_loads_the_same(tmp_path):
  model = _hf_model(V3)
  model.save_pretrained(tmp_path / "released")
  model.save_pretrained(tmp_path / "fused", save_original_format=False)
  names = read_safetensors(str(tmp_path / "fused" / "model.safetensors"))
  assert names["model.layers.1.mlp.experts.gate_up_proj"].shape == (8, 64, 64)  # [E, 2F, D]
  cfg, released = load_hf_checkpoint(str(tmp_path / "released"))
  cfg_fused, fused = load_hf_checkpoint(str(tmp_path / "fused"), name=cfg.name)
  assert cfg_fused == cfg
  _assert_identical(fused, released)


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("cfg", [presets.get("deepseek_v3_tiny", n_mtp_modules=1),
                                 presets.get("qwen2_tiny"), presets.get("llama3_tiny")],
                         ids=lambda c: c.name)
def test_round_trip_and_transformers_logits(cfg, tmp_path):
  params = _random_params(cfg)
  save_hf_checkpoint(cfg, params, str(tmp_path))
  loaded_cfg, loaded = load_hf_checkpoint(str(tmp_path), name=cfg.name)
  _same_model(loaded_cfg, cfg)
  _assert_identical(loaded, params)

  model = transformers.AutoModelForCausalLM.from_pretrained(
      tmp_path, attn_implementation="eager", dtype=torch.float32).eval()
  tokens = _tokens(cfg.vocab_size, 16)
  want = _hf_logits(model, tokens)
  got = np.asarray(_forward(cfg, params, jnp.asarray(tokens)))
  print(f"{cfg.name}: max |logit diff| vs transformers = {np.abs(got - want).max():.2e}")
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_released_layout_names(tmp_path):
  """Spot checks of the HF names against the r1jax leaves, MTP layer included."""
  cfg = presets.get("deepseek_v3_tiny", n_mtp_modules=1)
  params = _random_params(cfg)
  save_hf_checkpoint(cfg, params, str(tmp_path))
  t = read_safetensors(str(tmp_path / "model.safetensors"))
  p, b = jax.tree.map(np.asarray, params["params"]), params["buffers"]
  mtp = "model.layers.4."  # n_layers = 4: the MTP module is the 5th layer, as layer 61 in V3
  checks = {
      "model.layers.2.mlp.experts.5.up_proj.weight": p["moe_layers"]["moe"]["w_up"][1, 5].T,
      "model.layers.3.mlp.gate.e_score_correction_bias": b["moe_layers"]["moe"]["e_score_correction_bias"][2],
      "model.layers.0.self_attn.q_b_proj.weight": p["dense_layers"]["attn"]["q_b_proj"][0].reshape(64, -1).T,
      "model.layers.1.self_attn.o_proj.weight": p["moe_layers"]["attn"]["o_proj"][0].reshape(-1, 128).T,
      mtp + "eh_proj.weight": p["mtp_1"]["eh_proj"].T,
      mtp + "enorm.weight": p["mtp_1"]["enorm"]["scale"],
      mtp + "shared_head.norm.weight": p["mtp_1"]["norm"]["scale"],
      mtp + "shared_head.head.weight": p["lm_head"].T,
      mtp + "embed_tokens.weight": p["embed"],
      mtp + "mlp.experts.3.down_proj.weight": p["mtp_1"]["block"]["moe"]["w_down"][3].T,
      mtp + "self_attn.kv_a_layernorm.weight": p["mtp_1"]["block"]["attn"]["kv_a_norm"]["scale"],
  }
  for name, want in checks.items():
    np.testing.assert_array_equal(t[name], np.asarray(want), err_msg=name)
  assert not any(n.startswith("model.layers.5.") for n in t)


def test_sharded_checkpoint(tmp_path):
  cfg = presets.get("qwen2_tiny")
  params = _random_params(cfg, seed=3)
  save_hf_checkpoint(cfg, params, str(tmp_path), max_shard_bytes=200_000)
  with open(tmp_path / "model.safetensors.index.json") as f:
    index = json.load(f)
  shards = sorted(set(index["weight_map"].values()))
  assert len(shards) >= 3 and not (tmp_path / "model.safetensors").exists()
  tensors = {}
  for s in shards:
    tensors.update(read_safetensors(str(tmp_path / s)))
  assert tensors.keys() == index["weight_map"].keys()
  assert index["metadata"]["total_size"] == sum(t.nbytes for t in tensors.values())
  _, loaded = load_hf_checkpoint(str(tmp_path))
  _assert_identical(loaded, params)
  model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
  tokens = _tokens(cfg.vocab_size, 16)
  np.testing.assert_allclose(np.asarray(_forward(cfg, params, jnp.asarray(tokens))),
                             _hf_logits(model.eval(), tokens), atol=ATOL, rtol=0)
  # A later single-file save replaces the shards rather than mixing with them.
  save_hf_checkpoint(cfg, params, str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]


def test_bfloat16_save_and_load(tmp_path):
  cfg = presets.get("llama3_tiny")
  params = _random_params(cfg)
  save_hf_checkpoint(cfg, params, str(tmp_path), dtype="bfloat16")
  assert read_safetensors(str(tmp_path / "model.safetensors"))["lm_head.weight"].dtype == ml_dtypes.bfloat16
  loaded_cfg, loaded = load_hf_checkpoint(str(tmp_path), dtype="bfloat16")
  assert loaded_cfg.param_dtype == "bfloat16"
  _assert_identical(loaded, jax.tree.map(lambda a: a.astype(jnp.bfloat16), params))


# ----------------------------------------------------------------- safetensors


def test_safetensors_io_agrees_with_the_library(tmp_path):
  """bf16 / fp8 / f16 bytes as the safetensors library (via torch) writes and reads them."""
  import safetensors.torch
  ref = {"bf16": torch.randn(3, 5, dtype=torch.bfloat16),
         "fp8": torch.randn(4, 7).to(torch.float8_e4m3fn),
         "f16": torch.randn(6, dtype=torch.float16), "i64": torch.arange(5)}
  safetensors.torch.save_file(ref, str(tmp_path / "lib.safetensors"))
  ours = read_safetensors(str(tmp_path / "lib.safetensors"))
  for k, t in ref.items():
    np.testing.assert_array_equal(ours[k].astype(np.float64), t.double().numpy(), err_msg=k)
  write_safetensors(str(tmp_path / "ours.safetensors"), ours)
  back = safetensors.torch.load_file(str(tmp_path / "ours.safetensors"))
  for k, t in ref.items():
    assert back[k].dtype == t.dtype and torch.equal(back[k].view(torch.uint8), t.view(torch.uint8)), k


# ------------------------------------------------------------------------ FP8


def _dequantize_reference(w, scale_inv, block=128):
  """Block by block, as the DeepSeek-V3 release describes its weight_scale_inv."""
  out = np.zeros(w.shape, np.float32)
  for i in range(scale_inv.shape[0]):
    for j in range(scale_inv.shape[1]):
      rows, cols = slice(i * block, (i + 1) * block), slice(j * block, (j + 1) * block)
      out[rows, cols] = w[rows, cols].astype(np.float32) * scale_inv[i, j]
  return out


def _fp8(shape, rng):
  return rng.standard_normal(shape).astype(np.float32).astype(ml_dtypes.float8_e4m3fn)


def test_dequantize_fp8_partial_blocks():
  rng = np.random.default_rng(0)
  w = _fp8((200, 136), rng)
  scale_inv = rng.uniform(0.5, 2.0, (2, 2)).astype(np.float32)
  np.testing.assert_array_equal(dequantize_fp8(w, scale_inv), _dequantize_reference(w, scale_inv))
  with pytest.raises(ValueError, match=r"\(2, 1\).*expected \(2, 2\)"):
    dequantize_fp8(w, scale_inv[:, :1])


def test_fp8_checkpoint_is_dequantised_on_load(tmp_path):
  """V3 layout with every projection in FP8, shapes not divisible by 128 (D=136, F=200)."""
  cfg = ModelConfig(name="fp8", vocab_size=64, dim=136, n_layers=2, n_dense_layers=1, n_heads=2,
                    inter_dim=200, attention="mla", kv_lora_rank=16, qk_nope_head_dim=8,
                    qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=4, n_shared_experts=1,
                    n_activated_experts=2, moe_inter_dim=200, rope_interleave=True)
  save_hf_checkpoint(cfg, _random_params(cfg), str(tmp_path / "fp8"))
  rng = np.random.default_rng(1)
  quantised, dequantised = {}, {}
  for name, t in read_safetensors(str(tmp_path / "fp8" / "model.safetensors")).items():
    if name.endswith("proj.weight"):
      w = _fp8(t.shape, rng)
      scale_inv = rng.uniform(0.01, 0.1, (-(-t.shape[0] // 128), -(-t.shape[1] // 128)))
      quantised[name], quantised[name + "_scale_inv"] = w, scale_inv.astype(np.float32)
      dequantised[name] = _dequantize_reference(w, scale_inv.astype(np.float32))
    else:
      quantised[name] = dequantised[name] = np.array(t)
  assert quantised["model.layers.1.mlp.experts.0.down_proj.weight_scale_inv"].shape == (2, 2)
  write_safetensors(str(tmp_path / "fp8" / "model.safetensors"), quantised)
  os.makedirs(tmp_path / "f32")
  write_safetensors(str(tmp_path / "f32" / "model.safetensors"), dequantised)
  for d in ("fp8", "f32"):
    with open(tmp_path / d / "config.json", "w") as f:
      json.dump(dict(config_to_hf(cfg), quantization_config={
          "quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}), f)
  _, from_fp8 = load_hf_checkpoint(str(tmp_path / "fp8"))
  _, from_f32 = load_hf_checkpoint(str(tmp_path / "f32"))
  _assert_identical(from_fp8, from_f32)


# --------------------------------------------------------------------- configs


def test_released_deepseek_v3_config():
  """The released DeepSeek-V3/R1 config.json (old-style rope_scaling) maps to the 671B preset."""
  released = {
      "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
      "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
      "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_nextn_predict_layers": 1,
      "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1,
      "n_routed_experts": 256, "routed_scaling_factor": 2.5, "kv_lora_rank": 512,
      "q_lora_rank": 1536, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128,
      "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4, "num_experts_per_tok": 8,
      "moe_layer_freq": 1, "first_k_dense_replace": 3, "norm_topk_prob": True,
      "scoring_func": "sigmoid", "hidden_act": "silu", "max_position_embeddings": 163840,
      "initializer_range": 0.02, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
      "rope_theta": 10000, "attention_bias": False, "torch_dtype": "bfloat16",
      "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                       "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                       "type": "yarn"},
      "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                              "quant_method": "fp8", "weight_block_size": [128, 128]},
  }
  want = presets.get("deepseek_v3_671b")
  _same_model(config_from_hf(released).replace(init_std=want.init_std), want)


@pytest.mark.parametrize("name", ["deepseek_v3_671b", "deepseek_v3_1b", "qwen2_5_1_5b",
                                  "llama3_1_8b", "llama3_2_1b"])
def test_config_round_trip(name):
  cfg = presets.get(name)
  hf = config_to_hf(cfg)
  _same_model(config_from_hf(json.loads(json.dumps(hf))), cfg)
  hf_cfg = transformers.AutoConfig.for_model(**hf)
  assert hf_cfg.num_hidden_layers == cfg.n_layers and hf_cfg.rope_parameters == hf["rope_parameters"]


# ---------------------------------------------------------------- bad inputs


def test_unknown_model_type():
  with pytest.raises(ValueError, match="'mistral'.*deepseek_v3, llama, qwen2"):
    config_from_hf({"model_type": "mistral"})
  with pytest.raises(ValueError, match="rope type 'dynamic'"):
    config_from_hf(dict(LLAMA, rope_parameters={"rope_type": "dynamic", "factor": 2.0}))


@pytest.fixture
def llama_dir(tmp_path):
  cfg = presets.get("llama3_tiny")
  save_hf_checkpoint(cfg, _random_params(cfg), str(tmp_path))
  return tmp_path


def _edit_weights(path, edit):
  file = str(path / "model.safetensors")
  tensors = {k: np.array(v) for k, v in read_safetensors(file).items()}
  edit(tensors)
  write_safetensors(file, tensors)


def test_missing_tensor_is_named(llama_dir):
  _edit_weights(llama_dir, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
  with pytest.raises(ValueError, match=r"'model\.layers\.1\.self_attn\.k_proj\.weight' is missing"):
    load_hf_checkpoint(str(llama_dir))


def test_wrong_shape_names_both_shapes(llama_dir):
  def edit(t):
    t["model.layers.0.mlp.up_proj.weight"] = t["model.layers.0.mlp.up_proj.weight"][:100]
  _edit_weights(llama_dir, edit)
  with pytest.raises(ValueError, match=r"'model\.layers\.0\.mlp\.up_proj\.weight' has shape "
                                       r"\[100, 128\], expected \[256, 128\]"):
    load_hf_checkpoint(str(llama_dir))


def test_leftover_tensor_is_listed(llama_dir):
  _edit_weights(llama_dir, lambda t: t.update({"model.layers.7.mlp.up_proj.weight": np.ones(3)}))
  with pytest.raises(ValueError, match=r"1 tensors have no place.*model\.layers\.7\.mlp\.up_proj"):
    load_hf_checkpoint(str(llama_dir))


def test_directory_without_config(llama_dir):
  os.remove(llama_dir / "config.json")
  with pytest.raises(FileNotFoundError, match="has no config.json"):
    load_hf_checkpoint(str(llama_dir))
