"""Will a run fit? Per-device memory of a config on a mesh, from shapes alone.

    python -m r1jax.plan --config=configs/grpo_zero.py --config.model=deepseek_v3_671b \\
        --mesh=data:1,fsdp:32,expert:8,tensor:1 --device_memory_gb=95

Nothing is allocated and no device of the mesh's size is needed: parameters, optimizer
state and caches are `jax.ShapeDtypeStruct`s placed by `r1jax.runtime.sharding`'s rules on a
`jax.sharding.AbstractMesh`. Each line of the report says how it was obtained:

  exact     bytes of one device's shard, from global shapes × dtypes × shardings
            (parameters, AdamW moments, gradients, reference model, router buffers,
            the train batch, the rollout's latent / KV cache at its full length)
  estimate  analytic activation memory of the train step (with and without remat),
            the optimizer update's transients, and where a cache or batch lives when
            no sharding pins it
  XLA       what the compiler's buffer assignment says (`--compile`, below)

`--compile` asks XLA for the train step's own numbers (the rollout is not compiled):
  none     (default) shapes and the analytic estimate only; fast at any size
  lower    also traces and lowers the train step for the abstract mesh: checks every
           sharding and shape without compiling (XLA cannot compile for an abstract mesh:
           compilation needs a device assignment)
  devices  compiles on the attached devices, whose number must equal the mesh's (e.g. 8
           CPU devices with XLA_FLAGS=--xla_force_host_platform_device_count=8)
  tpu      compiles for a TPU slice that is not attached, from its topology
           (`--topology=v5p:8x8x4` is 256 v5p chips), with libtpu installed
           (`pip install "jax[tpu]"`); works on a CPU-only host. XLA refuses a program
           that overflows HBM; the report then gives XLA's required temporaries.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import AbstractMesh, NamedSharding, PartitionSpec

from r1jax import train
from r1jax.data.datasets import load_prompts
from r1jax.data.templates import prompt_format
from r1jax.data.tokenizers import load_tokenizer, tokenizer_spec
from r1jax.models import ModelConfig, count_params, init_params
from r1jax.models.loading import model_config
from r1jax.models.partitioning import check_divisibility, param_shardings
from r1jax.runtime import sharding
from r1jax.runtime.optimizer import make_optimizer
from r1jax.sampling import prompt_bucket
from r1jax.stages.grpo_batch import batch_layout

GB = 1e9
EXACT, ESTIMATE, XLA = "exact", "estimate", "XLA"


# ------------------------------------------------------------------ meshes and checks


def parse_mesh(spec: str) -> dict[str, int]:
  """"data:1,fsdp:32,expert:8,tensor:1" -> {"data": 1, "fsdp": 32, ...} (-1: the rest)."""
  axes = {}
  for part in filter(None, (p.strip() for p in spec.split(","))):
    name, sep, size = part.partition(":")
    if not sep or not re.fullmatch(r"-?\d+", size.strip()):
      raise ValueError(f"--mesh={spec!r}: {part!r} is not axis:size, e.g. fsdp:32")
    axes[name.strip()] = int(size)
  return axes


def abstract_mesh(axes: dict[str, int], num_devices: int | None = None) -> AbstractMesh:
  """An AbstractMesh over MESH_AXES; num_devices is needed only when an axis is -1."""
  if num_devices is None:
    if any(v == -1 for v in axes.values()):
      raise ValueError(f"mesh {axes} has an axis of -1: pass --devices=N to size it")
    num_devices = math.prod(axes.values())
  return AbstractMesh(sharding.mesh_shape(axes, num_devices), sharding.MESH_AXES)


def check_plan(cfg: ModelConfig, mesh, batch_size: int, seq_len: int | None = None) -> None:
  """The errors a real run would raise late, raised now and naming the numbers."""
  check_divisibility(cfg, mesh, batch_size=batch_size)
  if seq_len is not None and seq_len > cfg.max_position_embeddings:
    raise ValueError(f"sequence of {seq_len} tokens exceeds the context of {cfg.name!r} "
                     f"(max_position_embeddings={cfg.max_position_embeddings})")


# ------------------------------------------------------------------ exact bytes


def shard_bytes(leaf: jax.ShapeDtypeStruct) -> int:
  """Bytes of one device's shard of `leaf` (rounded up where a dimension does not divide)."""
  s = getattr(leaf, "sharding", None)
  sizes = dict(s.mesh.shape) if isinstance(s, NamedSharding) else {}
  spec = tuple(s.spec) if isinstance(s, NamedSharding) else ()
  n = 1
  for i, dim in enumerate(leaf.shape):
    axes = spec[i] if i < len(spec) else None
    axes = (axes,) if isinstance(axes, str) else (axes or ())
    n *= -(-dim // math.prod(sizes[a] for a in axes))
  return n * jnp.dtype(leaf.dtype).itemsize


def tree_bytes(tree) -> int:
  return sum(shard_bytes(x) for x in jax.tree.leaves(tree))


def _placed(shapes, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      shapes, shardings)


def abstract_state(cfg: ModelConfig, mesh, optimizer, rules=sharding.DEFAULT_RULES, *,
                   with_ref: bool = False) -> dict[str, Any]:
  """The train loop's state as placed ShapeDtypeStructs (`train.train_and_evaluate`)."""
  cfg = cfg.replace(attention_impl="xla")  # same shapes; cuDNN's would need a GPU to trace
  shapes = jax.eval_shape(functools.partial(init_params, cfg), jax.random.key(0))
  placement = param_shardings(cfg, mesh, rules)
  weights = _placed(shapes, placement)
  rep = NamedSharding(mesh, PartitionSpec())
  opt_shapes = jax.eval_shape(optimizer.init, shapes["params"])  # moments shard like params
  opt_shardings = optax.tree_map_params(optimizer, lambda _, s: s, opt_shapes,
                                        placement["params"], transform_non_params=lambda _: rep)
  scalar = jax.ShapeDtypeStruct((), jnp.int32, sharding=rep)
  state = {"params": weights["params"], "buffers": weights["buffers"],
           "opt_state": _placed(opt_shapes, opt_shardings), "step": scalar, "skipped": scalar}
  if with_ref:
    state["ref_params"] = weights
  return state


def largest_leaves(tree, n: int = 3) -> list[tuple[str, int, Any]]:
  """The n leaves with the most bytes per device: (path, bytes, spec)."""
  rows = [(jax.tree_util.keystr(p), shard_bytes(x), x.sharding.spec)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]
  return sorted(rows, key=lambda r: -r[1])[:n]


# ------------------------------------------------------------------ the run's shapes


@dataclasses.dataclass(frozen=True)
class RunShape:
  """What one step processes: train rows × length, and the rollout it samples (GRPO)."""
  rows: int
  length: int
  prompt_len: int = 0  # GRPO: P; the train rows are [P | max_new_tokens]
  new_tokens: int = 0
  group_size: int = 0  # GRPO's batch_layout "groups": each row is [P | G × max_new_tokens]

  @property
  def rollouts(self) -> int:
    """Sequences the sampler decodes (GRPO), each in P + max_new_tokens cache slots."""
    return self.rows * max(self.group_size, 1)

  @property
  def fed(self) -> int:
    """Tokens a train row feeds the model: rows drop their last token, groups feed all."""
    return self.length if self.group_size else self.length - 1


def measure_prompt_len(config: ml_collections.ConfigDict, limit: int = 256) -> int:
  """Longest templated prompt among `limit` training prompts, padded to its bucket as the
  sampler does (`r1jax.sampling.prompt_bucket`)."""
  tok = load_tokenizer(tokenizer_spec(config))
  d = config.data
  records = load_prompts(d.train, limit=limit, seed=config.seed)
  fmt = prompt_format(d.template, tok)
  longest = max(len(fmt.encode(tok, fmt.question(r["question"], d.get("instruction", ""))))
                for r in records)
  return prompt_bucket(longest)


def run_shape(config: ml_collections.ConfigDict, prompt_len: int | None = None,
              layout: str = "rows") -> RunShape:
  """The step's shape; GRPO's train rows as `layout` ("rows" or "groups") lays them out."""
  if config.stage == "grpo":
    P = prompt_len or measure_prompt_len(config)
    B, G, C = config.rl.prompts_per_step, config.rl.num_generations, config.rl.max_new_tokens
    if layout == "groups":
      return RunShape(B, P + G * C, P, C, group_size=G)
    return RunShape(B * G, P + C, P, C)
  return RunShape(config.data.batch_size, config.data.seq_len)


def abstract_batch(config, shape: RunShape, mesh, rules=sharding.DEFAULT_RULES,
                   cfg: ModelConfig | None = None) -> dict:
  """The train batch `stage.next_batch` returns, as placed ShapeDtypeStructs (an MoE
  `cfg`'s GRPO batch carries the sampler's experts)."""
  B, L = shape.rows, shape.length

  def arr(shp, dtype):
    return jax.ShapeDtypeStruct(shp, dtype, sharding=sharding.batch_sharding(mesh, rules, len(shp)))

  if config.stage != "grpo":
    return {k: arr((B, L), jnp.int32) for k in ("tokens", "loss_mask", "segment_ids", "positions")}
  if shape.group_size:  # r1jax.stages.grpo_batch.pack_groups
    G, C = shape.group_size, shape.new_tokens
    batch = {k: arr((B, L), jnp.int32) for k in ("tokens", "positions", "segment_ids",
                                                  "branch_ids")}
    batch["completion_mask"] = arr((B, G, C), jnp.int32)
    batch["sampler_logps"] = arr((B, G, C), jnp.float32)
    batch["advantages"] = arr((B, G), jnp.float32)
    if config.rl.beta:
      batch["ref_logps"] = arr((B, G, C), jnp.float32)
    if cfg is not None and cfg.is_moe:
      batch["routing"] = arr((B, L, cfg.n_moe_layers, cfg.n_activated_experts), jnp.int32)
    return batch
  batch = {k: arr((B, L), jnp.int32) for k in ("tokens", "positions", "segment_ids",
                                                "completion_mask")}
  batch["sampler_logps"] = arr((B, L - 1), jnp.float32)
  batch["advantages"] = arr((B,), jnp.float32)
  if config.rl.beta:
    batch["ref_logps"] = arr((B, L - 1), jnp.float32)
  if cfg is not None and cfg.is_moe:
    batch["routing"] = arr((B, L - 1, cfg.n_moe_layers, cfg.n_activated_experts), jnp.int32)
  return batch


# ------------------------------------------------------------------ estimates


def activation_bytes(cfg: ModelConfig, rows: int, seq: int, tensor: int, *,
                     flash: bool = False, mtp_logits: bool = True,
                     logit_chunk: int = 0, logit_window: int = 0) -> dict[str, float]:
  """Analytic activation memory of one device's train step (forward + backward).

  rows × seq tokens per device; heads, ffn width and vocabulary split `tensor` ways.
  Counts what a block keeps for its backward pass: projections, attention scores and
  probabilities ([N, T, T] per row, float32 / dtype; flash attention keeps none), MoE
  buckets at the capacity factor; and the float32 logits, their log-softmax and their
  gradient (also for MTP when `mtp_logits`: the LM loss runs the MTP modules, GRPO does
  not), for `logit_window` positions per row when it is > 0 (GRPO scores its
  completions only: rl.max_new_tokens), `logit_chunk` of them at a time when it is > 0
  (GRPO's rl.logprob_chunk).
  An estimate (±2×): XLA fuses some of these away and adds copies of its own;
  `--compile` measures. Returns bytes: layer (one block), scores (one block's T² part),
  logits, none (remat="none": every block kept), full (remat="full": block inputs kept,
  one block recomputed with its gradients at a time).
  """
  dt, f32 = jnp.dtype(cfg.dtype).itemsize, 4
  n, D, t = rows * seq, cfg.dim, tensor
  Nl = max(cfg.n_heads // t, 1)
  if cfg.attention == "mla":
    qk, Hv, C, R = cfg.qk_head_dim, cfg.v_head_dim, cfg.kv_lora_rank, cfg.qk_rope_head_dim
    attn = 2 * cfg.q_lora_rank + 4 * Nl * qk + 2 * (C + R) + Nl * (cfg.qk_nope_head_dim + 2 * Hv)
  else:
    attn = 3 * Nl * cfg.head_dim + 3 * max(cfg.n_kv_heads // t, 1) * cfg.head_dim
  scores = Nl * f32 if flash else Nl * seq * (2 * f32 + dt)  # per token
  norms = 2 * D * f32 + 4 * D * dt  # two RMSNorms in float32, residual stream, outputs

  def ffn(moe: bool) -> float:
    if not moe:
      return 4 * (cfg.inter_dim // t) * dt + D * dt
    K, E, Fe = cfg.n_activated_experts, cfg.n_routed_experts, cfg.moe_inter_dim // t
    slots = {"dense": E, "ragged": K, "capacity": K * cfg.capacity_factor,
             "all_to_all": K * cfg.capacity_factor}[cfg.moe_dispatch]
    shared = 4 * (cfg.n_shared_experts * cfg.moe_inter_dim // t)
    return (slots * (2 * D + 3 * Fe) + K * D + shared + D) * dt + 3 * E * f32

  dense_layer = (attn * dt + norms + ffn(False) + scores) * n
  moe_layer = (attn * dt + norms + ffn(cfg.is_moe) + scores) * n
  layer = max(dense_layer if cfg.n_dense_layers else 0, moe_layer if cfg.is_moe else 0)
  stack = cfg.n_dense_layers * dense_layer + cfg.n_moe_layers * moe_layer
  mtp = (cfg.n_mtp_modules * (moe_layer if cfg.is_moe else dense_layer)  # not rematerialised
         if mtp_logits else 0)
  scored = min(logit_window, seq) if logit_window > 0 else seq
  logit_tokens = rows * (min(logit_chunk, scored) if logit_chunk > 0 else scored)
  logits = 3 * logit_tokens * (cfg.vocab_size / t) * f32 * (
      1 + (cfg.n_mtp_modules if mtp_logits else 0))
  return {"layer": layer, "scores": scores * n, "logits": logits,
          "none": stack + mtp + logits,
          "full": cfg.n_layers * n * D * dt + 2 * layer + mtp + logits}


def rollout_cache(cfg: ModelConfig, rows: int, max_len: int, split: int,
                  dtype: str | None = None) -> tuple[int, int]:
  """(global, per-device) bytes of the decode cache for rows × max_len slots.

  MLA caches c_kv and k_pe (kv_lora_rank + qk_rope_head_dim values per token per layer,
  576 at 671B); GQA caches K and V. Per device assumes rows split `split` ways (the
  train batch's split; the sampler does not pin the cache's sharding yet).
  """
  itemsize = jnp.dtype(dtype or cfg.dtype).itemsize
  # per slot: every layer's cached values, and the slot's segment id and position (int32)
  per_row = max_len * (cfg.n_layers * cfg.cache_width_per_token * itemsize + 8)
  return rows * per_row, -(-rows // split) * per_row


# ------------------------------------------------------------------ XLA


def topology_mesh(topology: str, axes: dict[str, int]):
  """A Mesh of a TPU slice that need not be attached (libtpu compiles for it)."""
  from jax.experimental import topologies
  try:
    topo = topologies.get_topology_desc(topology_name=topology, platform="tpu")
  except Exception as e:  # no libtpu, or an unknown topology name
    raise RuntimeError(f"--compile=tpu needs libtpu (pip install 'jax[tpu]') and a topology such "
                       f"as v5p:8x8x4; getting {topology!r} failed: {e}") from None
  shape = sharding.mesh_shape(axes, len(topo.devices))
  return topologies.make_mesh(topo, shape, sharding.MESH_AXES)


_OOM = re.compile(r"temporaries \(([\d.]+)([KMGT]?)\) exceeds available HBM \(([\d.]+)([KMGT]?)\)")


def compiled_memory(lowered) -> dict[str, float]:
  """XLA's per-device bytes for a lowered step; on an HBM overflow, what it needed."""
  try:
    m = lowered.compile().memory_analysis()
  except Exception as e:  # XLA refuses programs that do not fit HBM
    hit = _OOM.search(str(e))
    if not hit:
      raise
    unit = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    return {"oom": 1.0, "temp": float(hit[1]) * unit[hit[2]], "hbm": float(hit[3]) * unit[hit[4]],
            "said": f"{hit[1]}{hit[2]} > {hit[3]}{hit[4]}"}
  args, out, alias, temp = (m.argument_size_in_bytes, m.output_size_in_bytes,
                            m.alias_size_in_bytes, m.temp_size_in_bytes)
  return {"arguments": args, "outputs": out, "aliased": alias, "temp": temp,
          "code": m.generated_code_size_in_bytes, "peak": args + out - alias + temp}


def lower_train_step(config, cfg: ModelConfig, mesh, state, batch, platform: str | None = None,
                     rules=sharding.DEFAULT_RULES):
  """Lowers `train.make_train_step` with the stage's own loss for the given placements,
  traced as the train loop traces it (under `rules`, activations split by batch)."""
  with sharding.use_rules(rules), sharding.activation_sharding(mesh):
    stage = train.make_stage(config, cfg, load_tokenizer(tokenizer_spec(config)), mesh)
    step = train.make_train_step(cfg, stage.loss_fn, make_optimizer(config))
    traced = step.trace(state, batch)
  return traced.lower(lowering_platforms=(platform,)) if platform else traced.lower()


# ------------------------------------------------------------------ the report


def _gb(x: float) -> str:
  """Bytes as GB for notes: 3 significant digits, or whole GB with thousands separators."""
  return f"{x / GB:,.0f}" if x >= 1000 * GB else f"{x / GB:.3g}"


@dataclasses.dataclass
class Line:
  name: str
  bytes: float
  how: str  # EXACT, ESTIMATE or XLA
  note: str = ""


def with_overrides(config: ml_collections.ConfigDict, overrides: str | None):
  """config with "remat:none,attention_impl:cudnn" merged into config.model_overrides."""
  if not overrides:
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  fields = {f.name for f in dataclasses.fields(ModelConfig)}
  for part in overrides.split(","):
    key, _, value = part.partition(":")
    if key not in fields:
      raise ValueError(f"--model_overrides: {key!r} is not a ModelConfig field")
    casts = [{"true": True, "false": False}.__getitem__, int, float, str]
    for cast in casts:
      try:
        config.model_overrides[key] = cast(value.lower() if cast is casts[0] else value)
        break
      except (KeyError, ValueError):
        continue
  return config


def plan(config: ml_collections.ConfigDict, axes: dict[str, int], *, devices: int | None = None,
         device_memory_gb: float | None = None, prompt_len: int | None = None,
         compile: str = "none", topology: str = "", rules: str | None = None) -> dict[str, Any]:
  """Everything the report prints, as data: lines, peaks, verdict, XLA's numbers."""
  cfg = model_config(config)
  what_if = rules is not None and rules != config.get("sharding_rules", "")
  if rules is None:  # the run's own table unless the what-if replaces it
    rules = config.get("sharding_rules", "")
  table = sharding.rules_with(rules)
  if compile == "devices":
    mesh = sharding.make_mesh(axes)  # must use every attached device
  elif compile == "tpu":
    mesh = topology_mesh(topology, axes)
  else:
    mesh = abstract_mesh(axes, devices)
  size = dict(mesh.shape)
  grpo = config.stage == "grpo"
  shape = run_shape(config, prompt_len)
  if grpo:  # the layout the stage would choose for this prompt length
    shape = run_shape(config, shape.prompt_len,
                      batch_layout(config, cfg, mesh, shape.prompt_len))
  check_plan(cfg, mesh, shape.rows, shape.prompt_len + shape.new_tokens if grpo else shape.length)
  split = size["data"] * size["fsdp"] * size["expert"]
  state = abstract_state(cfg, mesh, make_optimizer(config), table,
                         with_ref=grpo and bool(config.rl.beta))
  batch = abstract_batch(config, shape, mesh, table, cfg)

  p_bytes = tree_bytes(state["params"])
  lines = [Line(f"parameters ({cfg.param_dtype})", p_bytes, EXACT, "also AdamW's master copy"),
           Line("optimizer state (AdamW mu, nu)", tree_bytes(state["opt_state"]), EXACT),
           Line("router-bias buffers", tree_bytes(state["buffers"]), EXACT)]
  if "ref_params" in state:
    lines.append(Line("reference model (KL, beta>0)", tree_bytes(state["ref_params"]), EXACT,
                      "a frozen copy of the weights"))
  persistent = sum(x.bytes for x in lines)

  rows_dev = -(-shape.rows // split)
  flash = cfg.attention_impl == "cudnn"
  act = functools.partial(activation_bytes, cfg, rows_dev, shape.fed, size["tensor"],
                          mtp_logits=not grpo,
                          logit_chunk=config.rl.get("logprob_chunk", 0) if grpo else 0,
                          logit_window=shape.new_tokens * max(shape.group_size, 1))
  here = act(flash=flash)
  remat = "none" if cfg.remat == "none" else "full"
  train_lines = [
      Line(f"gradients ({cfg.param_dtype})", p_bytes, EXACT, "size; live during the update"),
      # XLA:CPU's buffer assignment for deepseek_v3_1b on fsdp=8 with a tiny batch: the
      # step's temporaries beyond gradients and activations are 1.3x the parameters (the
      # optimizer's update tree, gathered layer weights); 1.8x while the non-finite skip
      # selected between the old and new state instead of branching.
      Line("update transients", 1.5 * p_bytes, ESTIMATE,
           "1.5x params: the optimizer's updates and gathered weights (XLA measured 1.3x)"),
      Line("train batch", tree_bytes(batch), EXACT,
           f"{shape.rows} rows x {shape.length} tokens, {rows_dev} row(s)/device"),
      Line(f"activations, remat={cfg.remat}", here[remat], ESTIMATE,
           ("as remat=full; " if cfg.remat == "dots" else "")
           + f"of which one block's attention scores {_gb(here['scores'])} GB, "
           f"logits {_gb(here['logits'])} GB"),
  ]
  other = "none" if remat == "full" else "full"
  aside = [Line(f"activations, remat={other}", here[other], ESTIMATE, "instead")]
  if not flash:
    aside.append(Line(f"activations, remat={remat}, flash", act(flash=True)[remat], ESTIMATE,
                      "instead: with attention_impl=cudnn (no T x T scores)"))
  train_peak = persistent + sum(x.bytes for x in train_lines)

  rollout_lines = []
  if grpo:
    slots = shape.prompt_len + shape.new_tokens
    total, per_dev = rollout_cache(cfg, shape.rollouts, slots, split)
    what = (f"MLA latent, {cfg.cache_width_per_token} values/token/layer"
            if cfg.attention == "mla" else "K and V")
    rollout_lines = [Line("rollout cache", per_dev, EXACT,
                          f"{shape.rollouts} rows x {slots} slots, {what}; {_gb(total)} GB "
                          f"in all, rows split {split} ways (assumed)")]
  rollout_peak = persistent + sum(x.bytes for x in rollout_lines)

  xla = None
  if compile != "none":
    platform = jax.default_backend() if compile == "lower" else None  # abstract: name one
    lowered = lower_train_step(config, cfg, mesh, state, batch, platform, table)
    xla = {"lowered": 1.0} if compile == "lower" else compiled_memory(lowered)
    if xla.get("peak"):
      train_peak = xla["peak"]
    elif xla.get("oom"):  # at least the state and batch it is handed, plus the temporaries
      train_peak = max(train_peak, persistent + tree_bytes(batch) + xla["temp"])
  memory = device_memory_gb * GB if device_memory_gb else None
  peak = max(train_peak, rollout_peak)
  if xla and xla.get("oom"):
    verdict = "does not fit"
  else:
    verdict = None if memory is None else ("fits" if peak <= memory else "does not fit")
  return dict(cfg=cfg, mesh=size, shape=shape, lines=lines, persistent=persistent,
              train_lines=train_lines, aside=aside, rollout_lines=rollout_lines,
              train_peak=train_peak, rollout_peak=rollout_peak, peak=peak, memory=memory,
              verdict=verdict, xla=xla, compile=compile, topology=topology, rules=rules,
              rules_what_if=what_if,
              largest=largest_leaves(state["params"]),
              counts=count_params(cfg.replace(attention_impl="xla")))


def format_report(r: dict[str, Any]) -> str:
  """The plan as text: one line per memory term, how it was obtained, and the verdict."""
  cfg, size, shape, c = r["cfg"], r["mesh"], r["shape"], r["counts"]
  unit, scale = ("GB", GB) if r["peak"] >= GB else ("MB", 1e6)
  num = lambda x: f"{x / scale:10.2f}"
  n_dev = math.prod(size.values())
  where = {"tpu": f"compiled for TPU {r['topology']}", "devices": "attached devices"}.get(
      r["compile"], "abstract mesh, no devices")
  out = [f"r1jax.plan: {cfg.name} on mesh " + " ".join(f"{k}={v}" for k, v in size.items())
         + f" = {n_dev} devices ({where})",
         f"  {c['total'] / 1e9:.4g}B parameters ({c['activated'] / 1e9:.4g}B activated, MTP "
         f"+{c['mtp'] / 1e9:.3g}B); params {cfg.param_dtype}, compute {cfg.dtype}, remat "
         f"{cfg.remat}, moe_dispatch {cfg.moe_dispatch}, attention_impl {cfg.attention_impl}"]
  if r["rules"]:
    where = ("a what-if: set config.sharding_rules to train with them" if r["rules_what_if"]
             else "config.sharding_rules")
    out.append(f"  sharding rules: DEFAULT_RULES with {r['rules']} ({where})")
  if shape.new_tokens:
    out.append(f"  GRPO step: {shape.rollouts} rollouts of prompt {shape.prompt_len} + "
               f"{shape.new_tokens} new tokens, trained as "
               + (f"{shape.rows} rows of one prompt and its {shape.group_size} completions"
                  if shape.group_size else f"{shape.rows} [prompt | completion] rows"))
  out.append(f"\n  {'per device':<36}{unit:>10}  {'how':<9} note")

  def put(lines):
    out.extend(f"  {x.name:<36}{num(x.bytes)}  {x.how:<9} {x.note}".rstrip() for x in lines)

  put(r["lines"])
  out.append(f"  {'= persistent state':<36}{num(r['persistent'])}")
  out.append("  train step")
  put(r["train_lines"])
  out.append("  what-ifs (not in the peak)")
  put(r["aside"])
  if r["rollout_lines"]:
    out.append("  rollout (sampling)")
    put(r["rollout_lines"])
  xla = r["xla"]
  if xla and "lowered" in xla:
    out.append("  XLA: the train step lowers for this mesh (every shape and sharding checks "
               "out); compiling needs --compile=devices or --compile=tpu")
  elif xla and xla.get("oom"):
    out.append(f"  XLA: compilation refused, temporaries {xla['temp'] / GB:.1f} GB exceed the "
               f"{xla['hbm'] / GB:.1f} GB of HBM (XLA: {xla['said']}, G = 2^30 bytes)")
  elif xla:
    out.append(f"  XLA train step: arguments {num(xla['arguments']).strip()}, outputs "
               f"{num(xla['outputs']).strip()} ({num(xla['aliased']).strip()} donated), "
               f"temporaries {num(xla['temp']).strip()} {unit}")
  how = XLA if xla and xla.get("peak") else ("XLA, >=" if xla and xla.get("oom") else ESTIMATE)
  out.append(f"  {'= peak, train step':<36}{num(r['train_peak'])}  {how}")
  if r["rollout_lines"]:
    out.append(f"  {'= peak, rollout':<36}{num(r['rollout_peak'])}  {ESTIMATE:<9} "
               "state + cache (decode activations are small)")
  out.append("  largest parameters per device: " + "; ".join(
      f"{p} {b / scale:.2f} {unit} {spec}" for p, b, spec in r["largest"]))
  if r["verdict"]:
    cap = f"{r['memory'] / GB:g} GB" if r["memory"] else "HBM"
    out.append(f"\n  verdict: {r['verdict'].upper()} on {n_dev} x {cap} "
               f"(peak {_gb(r['peak'])} GB per device)")
  else:
    out.append("\n  no verdict: pass --device_memory_gb")
  return "\n".join(out)


# ------------------------------------------------------------------ CLI


def _main(argv):
  del argv
  from absl import flags, logging
  logging.set_verbosity(logging.WARNING)
  F = flags.FLAGS
  try:
    config = with_overrides(F.config, F.model_overrides)
    axes = parse_mesh(F.mesh) if F.mesh else dict(config.mesh)
    result = plan(config, axes, devices=F.devices, device_memory_gb=F.device_memory_gb,
                  prompt_len=F.prompt_len, compile=F.compile, topology=F.topology,
                  rules=F.rules)
  except (ValueError, RuntimeError) as e:
    raise SystemExit(f"r1jax.plan: {e}") from None
  print(format_report(result))


def main() -> None:
  """The command line (`python -m r1jax.plan`), with the flags of `_define_flags`."""
  from absl import app
  _define_flags()
  app.run(_main, flags_parser=train.parse_flags)


def _define_flags():
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file("config", None, "experiment config file", lock_config=True)
  flags.DEFINE_string("mesh", None, "axis:size,... over data,fsdp,expert,tensor "
                      "(default: the config's mesh)")
  flags.DEFINE_integer("devices", None, "device count for a mesh axis of -1")
  flags.DEFINE_float("device_memory_gb", None, "memory of one device in GB (1e9 bytes)")
  flags.DEFINE_integer("prompt_len", None, "GRPO prompt length (default: measured on the data)")
  flags.DEFINE_enum("compile", "none", ["none", "lower", "devices", "tpu"], "see the docstring")
  flags.DEFINE_string("topology", "v5p:8x8x4", "TPU topology for --compile=tpu")
  flags.DEFINE_string("rules", None, "what-if sharding rules, e.g. q_lora:fsdp,kv_lora:fsdp "
                      "(default: the config's sharding_rules)")
  flags.DEFINE_string("model_overrides", None, "ModelConfig fields, e.g. remat:none,"
                      "attention_impl:cudnn")
  flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
  main()
