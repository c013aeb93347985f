"""Hugging Face checkpoints <-> r1jax: config.json mapping, safetensors I/O, load and save.

    cfg, params = load_hf_checkpoint("DeepSeek-R1-Distill-Qwen-1.5B", dtype="bfloat16")
    save_hf_checkpoint(cfg, params, "out/")   # loads in AutoModelForCausalLM.from_pretrained

Supported `model_type`s: deepseek_v3 (MLA + DeepSeekMoE + MTP), qwen2 and llama (GQA). All
three name block tensors alike (`model.layers.{i}.self_attn.*`, `.mlp.*`), so one table keyed
by the r1jax path inside a block maps them all; the r1jax tree (MLA or GQA, MLP or MoE)
decides which entries a model uses.

Layouts: HF linear weights are [out, in]; r1jax kernels are input-first with heads split
out (`q_b_proj [Q, N, H]`, `o_proj [N, Hv, D]`), i.e. `weight.T` reshaped. Routed experts
are one HF tensor per expert (`mlp.experts.{e}.gate_proj.weight`: the released V3 layout,
and what transformers 5 `save_pretrained` writes) and one stacked [E, ...] r1jax leaf; the
fused `mlp.experts.gate_up_proj [E, 2F, D]` / `down_proj [E, D, F]` (`save_pretrained(...,
save_original_format=False)`) is accepted on load. MTP module k is `model.layers.{n_layers
+ k - 1}` (V3 §2.2), whose copies of the embedding and head (`embed_tokens`,
`shared_head.head`) are written on save and skipped on load. FP8 weights (F8_E4M3 `X.weight`
+ float32 `X.weight_scale_inv` per 128x128 block, as DeepSeek-V3/R1 were released) are
dequantised on load. Only NumPy and ml_dtypes are needed here (no torch).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import struct

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from r1jax.models.config import ModelConfig
from r1jax.models.partitioning import param_shardings
from r1jax.models.transformer import init_params

__all__ = ["config_from_hf", "config_to_hf", "load_hf_checkpoint", "save_hf_checkpoint",
           "read_safetensors", "write_safetensors", "dequantize_fp8"]

# ------------------------------------------------------------------- safetensors

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
           "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
           "BOOL": np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of a .safetensors file, as read-only views of a memory map (no copy).

  Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape,
  data_offsets}}, then the raw little-endian bytes.
  """
  with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
  header.pop("__metadata__", None)
  data = np.memmap(path, dtype=np.uint8, mode="r")
  out = {}
  for name, info in header.items():
    if info["dtype"] not in _DTYPES:
      raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which r1jax cannot "
                       f"read; supported: {', '.join(_DTYPES)}")
    dtype, shape = np.dtype(_DTYPES[info["dtype"]]), tuple(info["shape"])
    start, end = (8 + n + o for o in info["data_offsets"])
    if end - start != math.prod(shape) * dtype.itemsize or end > data.size:
      raise ValueError(f"{path}: tensor {name!r} spans bytes [{start}, {end}) which do not hold "
                       f"{shape} {info['dtype']}; the file is truncated or corrupt")
    out[name] = data[start:end].view(dtype).reshape(shape)
  return out


def write_safetensors(path: str, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> None:
  """Writes {name: array} as one .safetensors file (format "pt", as transformers expects)."""
  arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
  header, offset = {}, 0
  for name, a in arrays.items():
    if a.dtype not in _CODES:
      raise ValueError(f"tensor {name!r} has dtype {a.dtype}; safetensors supports {', '.join(_DTYPES)}")
    header[name] = {"dtype": _CODES[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + a.nbytes]}
    offset += a.nbytes
  header["__metadata__"] = {"format": "pt", **(metadata or {})}
  blob = json.dumps(header, separators=(",", ":")).encode()
  blob += b" " * (-len(blob) % 8)  # keeps the data 8-byte aligned
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob)
    for a in arrays.values():
      f.write(a.reshape(-1).view(np.uint8).data)


def dequantize_fp8(w: np.ndarray, scale_inv: np.ndarray, block=(128, 128), name: str = "weight"):
  """float32 w [R, C] = fp8 w · scale_inv, one scale per block (edge blocks partial)."""
  (rows, cols), (br, bc) = w.shape, block
  want = (-(-rows // br), -(-cols // bc))
  if tuple(scale_inv.shape) != want:
    raise ValueError(f"{name}_scale_inv has shape {tuple(scale_inv.shape)}, expected {want} for a "
                     f"{w.shape} weight in {br}x{bc} blocks")
  scale = np.repeat(np.repeat(scale_inv.astype(np.float32), br, 0), bc, 1)[:rows, :cols]
  return w.astype(np.float32) * scale


# ------------------------------------------------------------------- config.json

# HF key -> ModelConfig field; values absent from config.json take transformers' defaults.
_FIELDS = {
    "common": {"vocab_size": "vocab_size", "hidden_size": "dim", "num_hidden_layers": "n_layers",
               "num_attention_heads": "n_heads", "intermediate_size": "inter_dim",
               "rms_norm_eps": "norm_eps", "tie_word_embeddings": "tie_embeddings",
               "max_position_embeddings": "max_position_embeddings",
               "initializer_range": "init_std"},
    "llama": {"num_key_value_heads": "n_kv_heads", "head_dim": "head_dim"},
    "qwen2": {"num_key_value_heads": "n_kv_heads", "head_dim": "head_dim"},
    "deepseek_v3": {
        "first_k_dense_replace": "n_dense_layers", "q_lora_rank": "q_lora_rank",
        "kv_lora_rank": "kv_lora_rank", "qk_nope_head_dim": "qk_nope_head_dim",
        "qk_rope_head_dim": "qk_rope_head_dim", "v_head_dim": "v_head_dim",
        "n_routed_experts": "n_routed_experts", "n_shared_experts": "n_shared_experts",
        "num_experts_per_tok": "n_activated_experts", "moe_intermediate_size": "moe_inter_dim",
        "n_group": "n_expert_groups", "topk_group": "n_limited_groups",
        "scoring_func": "score_func", "routed_scaling_factor": "route_scale",
        "norm_topk_prob": "norm_topk_prob", "rope_interleave": "rope_interleave",
        "num_nextn_predict_layers": "n_mtp_modules"},
}
_COMMON_DEFAULTS = {"rms_norm_eps": 1e-6, "tie_word_embeddings": False, "initializer_range": 0.02}
_HF_DEFAULTS = {  # transformers 5 config-class defaults for keys a config.json may omit
    "llama": {"max_position_embeddings": 2048, "num_key_value_heads": None, "head_dim": None},
    "qwen2": {"max_position_embeddings": 32768, "num_key_value_heads": None, "head_dim": None},
    "deepseek_v3": {
        "max_position_embeddings": 4096, "q_lora_rank": 1536, "kv_lora_rank": 512,
        "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
        "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
        "moe_intermediate_size": 2048, "n_group": 8, "topk_group": 4, "first_k_dense_replace": 3,
        "scoring_func": "sigmoid", "routed_scaling_factor": 2.5, "norm_topk_prob": True,
        "rope_interleave": True, "num_nextn_predict_layers": 0},
}
_FIXED = {"llama": {"attention": "gqa"}, "qwen2": {"attention": "gqa", "qkv_bias": True},
          "deepseek_v3": {"attention": "mla"}}
_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                  "deepseek_v3": "DeepseekV3ForCausalLM"}
# Settings r1jax does not implement: HF key -> the only value accepted.
_UNSUPPORTED = {"hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
                "use_sliding_window": False, "moe_layer_freq": 1, "topk_method": "noaux_tc"}
# rope_parameters key -> (ModelConfig field, default when absent or null) per rope type.
_ROPE = {"yarn": {"beta_fast": ("yarn_beta_fast", 32.0), "beta_slow": ("yarn_beta_slow", 1.0),
                  "mscale": ("yarn_mscale", 0.0), "mscale_all_dim": ("yarn_mscale_all_dim", 0.0)},
         "llama3": {"low_freq_factor": ("llama3_low_freq_factor", 1.0),
                    "high_freq_factor": ("llama3_high_freq_factor", 4.0)}}


def _rope_from_hf(hf: dict) -> dict:
  """RoPE fields from transformers-5 `rope_parameters` or the older `rope_scaling` + `rope_theta`."""
  rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
  kind = rope.get("rope_type", rope.get("type", "default"))
  out = {"rope_theta": float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))}
  if kind == "default":
    return {**out, "rope_scaling": "none"}
  if kind not in _ROPE:
    raise ValueError(f"rope type {kind!r} is not supported; r1jax implements 'default', "
                     f"{', '.join(map(repr, _ROPE))}")
  for key, ok in (("partial_rotary_factor", 1.0), ("truncate", True), ("attention_factor", None)):
    if rope.get(key, ok) != ok:
      raise ValueError(f"rope_parameters.{key}={rope[key]!r} is not supported (only {ok!r})")
  orig = rope.get("original_max_position_embeddings") or hf["max_position_embeddings"]
  factor = rope.get("factor") or hf["max_position_embeddings"] / orig
  out.update(rope_scaling=kind, rope_factor=float(factor), rope_original_max_position=int(orig))
  for key, (field, default) in _ROPE[kind].items():
    out[field] = float(rope.get(key) or default)
  return out


def config_from_hf(hf_config: dict, *, name: str | None = None) -> ModelConfig:
  """A ModelConfig from a transformers config.json dict (deepseek_v3, qwen2 or llama).

  Null values (`q_lora_rank: null`, `n_group: null`, `head_dim: null`) take ModelConfig's
  meaning of "absent" (direct query projection, one group, dim // n_heads).
  """
  model_type = hf_config.get("model_type")
  if model_type not in _FIXED:
    raise ValueError(f"model_type {model_type!r} is not supported; r1jax loads "
                     f"{', '.join(sorted(_FIXED))}")
  hf = {**_COMMON_DEFAULTS, **_HF_DEFAULTS[model_type], **hf_config}
  for key, ok in _UNSUPPORTED.items():
    if hf.get(key, ok) != ok:
      raise ValueError(f"{model_type} config has {key}={hf[key]!r}; r1jax only supports {key}={ok!r}")
  fields = dict(_FIXED[model_type], name=name or hf.get("_name_or_path") or f"hf_{model_type}")
  for key, field in {**_FIELDS["common"], **_FIELDS[model_type]}.items():
    if key not in hf:
      raise ValueError(f"{model_type} config.json has no {key!r}; it sets ModelConfig.{field}")
    if hf[key] is not None:
      fields[field] = hf[key]
  return ModelConfig(**fields, **_rope_from_hf(hf))


def _model_type(cfg: ModelConfig) -> str:
  if cfg.attention == "mla":
    if cfg.is_moe and cfg.score_func != "sigmoid":
      raise ValueError(f"transformers' DeepseekV3 routes with sigmoid scores only; config "
                       f"{cfg.name!r} has score_func={cfg.score_func!r}")
    return "deepseek_v3"
  if cfg.is_moe:
    raise ValueError(f"config {cfg.name!r} pairs GQA with MoE layers, which no supported HF "
                     f"model_type has; set n_dense_layers=n_layers or attention='mla'")
  if cfg.rope_interleave:
    raise ValueError(f"Qwen2/Llama rotate halves; config {cfg.name!r} needs rope_interleave=False")
  return "qwen2" if cfg.qkv_bias else "llama"


def config_to_hf(cfg: ModelConfig, *, dtype: str = "float32") -> dict:
  """The config.json dict transformers 5 builds this model from (`dtype` of the weights)."""
  model_type = _model_type(cfg)
  hf = {"architectures": [_ARCHITECTURES[model_type]], "model_type": model_type,
        "dtype": dtype, "hidden_act": "silu"}
  for key, field in {**_FIELDS["common"], **_FIELDS[model_type]}.items():
    hf[key] = getattr(cfg, field)
  if model_type == "deepseek_v3":
    hf.update(q_lora_rank=cfg.q_lora_rank or None, num_key_value_heads=cfg.n_heads,
              topk_method="noaux_tc", attention_bias=False)
  if model_type == "llama":
    hf.update(attention_bias=False, mlp_bias=False)
  rope = {"rope_type": "default" if cfg.rope_scaling == "none" else cfg.rope_scaling,
          "rope_theta": cfg.rope_theta}
  if cfg.rope_scaling != "none":
    rope.update(factor=cfg.rope_factor, original_max_position_embeddings=cfg.rope_original_max_position)
    rope.update({key: getattr(cfg, field) for key, (field, _) in _ROPE[cfg.rope_scaling].items()})
  hf["rope_parameters"] = rope
  return hf


# ------------------------------------------------------------------ tensor names

# Layout of the HF tensor relative to the r1jax leaf: "same"; "flat" (r1jax [N, H] is HF
# [N*H]); "inK" (a linear layer whose first K r1jax axes are its input: HF `weight [out, in]`
# = leaf.reshape(in, out).T).
_BLOCK = {  # r1jax path inside a block -> name inside `model.layers.{i}.`
    "attn_norm/scale": ("input_layernorm.weight", "same"),
    "ffn_norm/scale": ("post_attention_layernorm.weight", "same"),
    # GQA (q_proj also MLA's when q_lora_rank == 0); the biases are Qwen2's
    **{f"attn/{x}_proj": (f"self_attn.{x}_proj.weight", "in1") for x in "qkv"},
    **{f"attn/{x}_bias": (f"self_attn.{x}_proj.bias", "flat") for x in "qkv"},
    "attn/o_proj": ("self_attn.o_proj.weight", "in2"),
    "attn/q_a_proj": ("self_attn.q_a_proj.weight", "in1"),
    "attn/q_a_norm/scale": ("self_attn.q_a_layernorm.weight", "same"),
    "attn/q_b_proj": ("self_attn.q_b_proj.weight", "in1"),
    "attn/kv_a_proj": ("self_attn.kv_a_proj_with_mqa.weight", "in1"),
    "attn/kv_a_norm/scale": ("self_attn.kv_a_layernorm.weight", "same"),
    "attn/kv_b_proj": ("self_attn.kv_b_proj.weight", "in1"),
    "moe/gate": ("mlp.gate.weight", "in1"),
    "moe/e_score_correction_bias": ("mlp.gate.e_score_correction_bias", "same"),
    **{f"mlp/{x}_proj": (f"mlp.{x}_proj.weight", "in1") for x in ("gate", "up", "down")},
    **{f"moe/shared_experts/{x}_proj": (f"mlp.shared_experts.{x}_proj.weight", "in1")
       for x in ("gate", "up", "down")},
    # routed experts: one r1jax leaf [E, ...], one HF tensor per expert
    **{f"moe/w_{x}": (f"mlp.experts.{{e}}.{x}_proj.weight", "in1") for x in ("gate", "up", "down")},
}
_TOP = {"embed": ("model.embed_tokens.weight", "same"),
        "final_norm/scale": ("model.norm.weight", "same"),
        "lm_head": ("lm_head.weight", "in1")}
_MTP = {"enorm/scale": ("enorm.weight", "same"), "hnorm/scale": ("hnorm.weight", "same"),
        "eh_proj": ("eh_proj.weight", "in1"), "norm/scale": ("shared_head.norm.weight", "same")}
_MTP_COPIES = ("embed_tokens.weight", "shared_head.head.weight")  # of embed and lm_head
_IGNORED = re.compile(r"rotary_emb\.inv_freq$")


def _hf_shape(layout: str, shape: tuple) -> tuple:
  if layout == "same":
    return tuple(shape)
  if layout == "flat":
    return (math.prod(shape),)
  k = int(layout[2:])
  return (math.prod(shape[k:]), math.prod(shape[:k]))


def _to_r1jax(a: np.ndarray, layout: str, shape: tuple) -> np.ndarray:
  return a.reshape(shape) if layout in ("same", "flat") else a.T.reshape(shape)


def _to_hf(a: np.ndarray, layout: str) -> np.ndarray:
  if layout in ("same", "flat"):
    return a.reshape(_hf_shape(layout, a.shape))
  return a.reshape(math.prod(a.shape[:int(layout[2:])]), -1).T


def _slots(cfg: ModelConfig, path: tuple[str, ...]) -> tuple[list[tuple[tuple, str]], str]:
  """Where an r1jax leaf lives in HF: [(index into the leaf, HF name)], layout.

  path excludes the collection ("params"/"buffers"); stacked layers and experts give
  one slot per (layer, expert).
  """
  head = path[0]
  if head in ("dense_layers", "moe_layers"):
    first, n = (0, cfg.n_dense_layers) if head == "dense_layers" else (cfg.n_dense_layers, cfg.n_moe_layers)
    table, rel = _BLOCK, path[1:]
    prefixes = [((l,), f"model.layers.{first + l}.") for l in range(n)]
  elif head.startswith("mtp_"):
    prefixes = [((), f"model.layers.{cfg.n_layers + int(head[4:]) - 1}.")]
    table, rel = (_BLOCK, path[2:]) if path[1] == "block" else (_MTP, path[1:])
  else:
    table, rel, prefixes = _TOP, path, [((), "")]
  name, layout = table["/".join(rel)]
  if "{e}" in name:
    return [(idx + (e,), p + name.format(e=e)) for idx, p in prefixes
            for e in range(cfg.n_routed_experts)], layout
  return [(idx, p + name) for idx, p in prefixes], layout


def _shapes(cfg: ModelConfig):
  """init_params(cfg)'s tree of ShapeDtypeStructs (nothing is allocated)."""
  return jax.eval_shape(functools.partial(init_params, cfg), jax.random.key(0))


def _flat(tree) -> dict[tuple[str, ...], object]:
  """{("params"|"buffers", ...): leaf}."""
  return {tuple(k.key for k in p): a for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _check_tree(cfg: ModelConfig, params, *, dtypes: bool) -> None:
  """Raises, naming the leaf, unless params has init_params(cfg)'s tree and shapes (and dtypes)."""
  want, got = _flat(_shapes(cfg)), _flat(params)
  if want.keys() != got.keys():
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    raise ValueError(f"params do not have the tree of config {cfg.name!r}: missing "
                     f"{['/'.join(p) for p in missing[:5]]}, unexpected {['/'.join(p) for p in extra[:5]]}")
  for p, s in want.items():
    a = got[p]
    if tuple(a.shape) != s.shape or (dtypes and a.dtype != s.dtype):
      raise ValueError(f"params {'/'.join(p)} is {a.dtype}{list(a.shape)}, but config {cfg.name!r} "
                       f"expects {s.dtype}{list(s.shape)}")


# ------------------------------------------------------------------------- load


class _Checkpoint:
  """HF-named tensors (memory-mapped from a directory's safetensors, or given), tracking
  which were used."""

  def __init__(self, path: str, fp8_block, tensors: dict[str, np.ndarray]):
    self.path, self.fp8_block, self.used, self.tensors = path, fp8_block, set(), dict(tensors)
    for name in [n for n in self.tensors if n.endswith(".mlp.experts.gate_up_proj")]:
      self._unfuse(name[:-len("gate_up_proj")])

  @classmethod
  def open(cls, path: str, fp8_block) -> "_Checkpoint":
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
      with open(index) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.exists(os.path.join(path, "model.safetensors")):
      files = ["model.safetensors"]
    else:
      raise FileNotFoundError(f"{path} has neither model.safetensors nor model.safetensors.index.json")
    tensors = {}
    for f in files:
      tensors.update(read_safetensors(os.path.join(path, f)))
    return cls(path, fp8_block, tensors)

  def _unfuse(self, prefix: str):
    """Fused experts (gate_up_proj [E, 2F, D], down_proj [E, D, F]) -> per-expert names."""
    gate_up, down = self.tensors.pop(prefix + "gate_up_proj"), self.tensors.pop(prefix + "down_proj")
    F = gate_up.shape[1] // 2
    for e in range(gate_up.shape[0]):
      self.tensors[f"{prefix}{e}.gate_proj.weight"] = gate_up[e, :F]
      self.tensors[f"{prefix}{e}.up_proj.weight"] = gate_up[e, F:]
      self.tensors[f"{prefix}{e}.down_proj.weight"] = down[e]

  def check(self, name: str, shape: tuple, what: str) -> None:
    """Raises unless `name` exists with `shape` (read from the header, not the data);
    marks it (and its FP8 scale) as used."""
    if name not in self.tensors:
      raise ValueError(f"{self.path}: tensor {name!r} is missing (it holds r1jax {what})")
    a = self.tensors[name]
    if tuple(a.shape) != shape:
      raise ValueError(f"{self.path}: tensor {name!r} has shape {list(a.shape)}, expected "
                       f"{list(shape)} (for r1jax {what})")
    self.used.add(name)
    if name + "_scale_inv" in self.tensors:
      self.used.add(name + "_scale_inv")

  def get(self, name: str) -> np.ndarray:
    """The (checked) tensor's values, FP8 dequantized."""
    a, scale = self.tensors[name], self.tensors.get(name + "_scale_inv")
    return a if scale is None else dequantize_fp8(a, scale, self.fp8_block, name)


def _read_piece(ckpt: _Checkpoint, slots, layout: str, spec, index: tuple) -> np.ndarray:
  """The part `index` (slices, one per leading axis at most) of an r1jax leaf of shape
  spec.shape, read from the HF tensors of the slots it overlaps and nothing else: a
  device's shard of a stacked [layers, experts, D, F] leaf costs its own bytes of host
  memory, plus one HF tensor at a time."""
  index = tuple(index) + (slice(None),) * (len(spec.shape) - len(index))
  ranges = [range(*sl.indices(n)) for sl, n in zip(index, spec.shape)]
  out = np.empty([len(r) for r in ranges], spec.dtype)
  for idx, hf_name in slots:
    lead = ranges[:len(idx)]
    if all(i in r for i, r in zip(idx, lead)):
      shape = spec.shape[len(idx):]
      tensor = _to_r1jax(ckpt.get(hf_name), layout, shape)
      out[tuple(i - r.start for i, r in zip(idx, lead))] = tensor[index[len(idx):]]
  return out


def load_hf_checkpoint(path: str, *, dtype: str | None = None, name: str | None = None,
                       mesh=None):
  """(cfg, params) from a HF checkpoint directory (config.json + safetensors).

  params has exactly the tree, shapes and dtypes of `init_params(cfg, ...)`; parameters are
  cast to `dtype` (default float32, which becomes cfg.param_dtype), the router bias stays
  float32. cfg.n_mtp_modules counts the MTP layers present in the weights (0 if none).
  Tensors are read one at a time into host memory; with a `mesh`, each device's shard is
  assembled from the HF tensors it overlaps (`partitioning.param_shardings`): no process holds
  more than its devices' shards plus one HF tensor, so 671B loads on hosts that cannot
  hold the model. Without a mesh, each leaf is built whole on the default device.
  """
  config_file = os.path.join(path, "config.json")
  if not os.path.exists(config_file):
    raise FileNotFoundError(f"{path} has no config.json; is it a Hugging Face checkpoint directory?")
  with open(config_file) as f:
    hf_config = json.load(f)
  cfg = config_from_hf(hf_config, name=name or os.path.basename(os.path.normpath(path)))
  block = tuple((hf_config.get("quantization_config") or {}).get("weight_block_size", (128, 128)))
  return _load(cfg, _Checkpoint.open(path, block), dtype=dtype, mesh=mesh)


def load_hf_tensors(hf_config: dict, tensors: dict[str, np.ndarray], *, name: str,
                    dtype: str | None = None, mesh=None):
  """(cfg, params) from a config.json dict and HF-named tensors in memory (e.g. converted
  from another format), checked and placed as `load_hf_checkpoint` does."""
  return _load(config_from_hf(hf_config, name=name), _Checkpoint(name, (128, 128), tensors),
               dtype=dtype, mesh=mesh)


def _load(cfg: ModelConfig, ckpt: _Checkpoint, *, dtype: str | None, mesh):
  path = ckpt.path
  layers = {int(m.group(1)) for m in map(re.compile(r"model\.layers\.(\d+)\.").match, ckpt.tensors) if m}
  n_mtp = 0
  while cfg.n_layers + n_mtp in layers:
    n_mtp += 1
  cfg = cfg.replace(n_mtp_modules=n_mtp, param_dtype=dtype or "float32")

  if mesh is not None:
    shardings = param_shardings(cfg, mesh)
  else:
    shardings = jax.tree.map(lambda _: None, _shapes(cfg))

  def load(keys, spec, sharding):
    path_ = tuple(k.key for k in keys)
    slots, layout = _slots(cfg, path_[1:])
    for idx, hf_name in slots:  # every process checks every tensor, and reads only its own
      ckpt.check(hf_name, _hf_shape(layout, spec.shape[len(idx):]), "/".join(path_))
    piece = functools.partial(_read_piece, ckpt, slots, layout, spec)
    if sharding is None:
      return jnp.asarray(piece(()))
    return jax.make_array_from_callback(spec.shape, sharding, piece)

  params = jax.tree_util.tree_map_with_path(load, _shapes(cfg), shardings)
  ignorable = {f"model.layers.{cfg.n_layers + k}.{c}" for k in range(n_mtp) for c in _MTP_COPIES}
  if cfg.tie_embeddings:
    ignorable.add("lm_head.weight")
  left = sorted(n for n in ckpt.tensors.keys() - ckpt.used - ignorable if not _IGNORED.search(n))
  if left:
    raise ValueError(f"{path}: {len(left)} tensors have no place in r1jax config {cfg.name!r}, "
                     f"e.g. {left[:5]}; is config.json the one these weights were saved with?")
  _check_tree(cfg, params, dtypes=True)
  return cfg, params


# ------------------------------------------------------------------------- save


def _layer_order(name: str):
  m = re.match(r"model\.layers\.(\d+)\.", name)
  return (int(m.group(1)) if m else -1 if name.startswith("model.embed") else 1 << 30, name)


def save_hf_checkpoint(cfg: ModelConfig, params, path: str, *, dtype: str = "float32",
                       max_shard_bytes: int = 5 * 2**30) -> None:
  """Writes config.json and the weights as HF names in the released layout (per-expert
  tensors, MTP layers with their embedding/head copies), sharded with an index when
  the weights exceed `max_shard_bytes`. The router bias is always written in float32.
  """
  hf_config = config_to_hf(cfg, dtype=dtype)
  _check_tree(cfg, params, dtypes=False)
  host = {p: np.asarray(a) for p, a in _flat(params).items()}
  target = np.dtype(jnp.dtype(dtype))
  tensors = {}
  for p, a in host.items():
    slots, layout = _slots(cfg, p[1:])
    for idx, hf_name in slots:
      tensors[hf_name] = _to_hf(a[idx], layout).astype(np.float32 if p[0] == "buffers" else target)
  embed = host[("params", "embed")]
  head = embed if cfg.tie_embeddings else host[("params", "lm_head")].T
  for k in range(cfg.n_mtp_modules):
    prefix = f"model.layers.{cfg.n_layers + k}."
    tensors[prefix + "embed_tokens.weight"] = embed.astype(target)
    tensors[prefix + "shared_head.head.weight"] = head.astype(target)

  os.makedirs(path, exist_ok=True)
  for f in os.listdir(path):  # stale shards of an earlier save would mix with these
    if re.fullmatch(r"model(-\d+-of-\d+)?\.safetensors(\.index\.json)?", f):
      os.remove(os.path.join(path, f))
  _write_shards(path, tensors, max_shard_bytes)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(hf_config, f, indent=2)


def _write_shards(path: str, tensors: dict[str, np.ndarray], max_shard_bytes: int) -> None:
  """model.safetensors, or model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
  shards, size = [{}], 0
  for n in sorted(tensors, key=_layer_order):
    if shards[-1] and size + tensors[n].nbytes > max_shard_bytes:
      shards.append({})
      size = 0
    shards[-1][n] = tensors[n]
    size += tensors[n].nbytes
  if len(shards) == 1:
    write_safetensors(os.path.join(path, "model.safetensors"), shards[0])
    return
  weight_map = {}
  for i, shard in enumerate(shards):
    fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    write_safetensors(os.path.join(path, fname), shard)
    weight_map.update(dict.fromkeys(shard, fname))
  index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
           "weight_map": weight_map}
  with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
    json.dump(index, f, indent=2)
