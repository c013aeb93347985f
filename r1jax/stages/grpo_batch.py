"""The two layouts of a GRPO train batch, and which one a run trains on.

A rollout of B prompts × G completions of C = rl.max_new_tokens slots (the sampler's
`GenerationResult`, prompts right-padded to their bucket P) becomes either

  rows     one row per completion, [prompt | completion | padding] (`pack_rollout`):
           tokens, positions, segment_ids, completion_mask [B·G, P + C]; sampler_logps
           [B·G, P + C - 1] (column t-1 holds token t's); advantages [B·G]; MoE routing
           [B·G, P + C - 1, L_moe, K] for the input columns.
  groups   one row per prompt, [prompt | c_1 | ... | c_G] (`pack_groups`): tokens,
           positions, segment_ids, branch_ids [B, P + G·C]; completion_mask and
           sampler_logps [B, G, C]; advantages [B, G]; routing [B, P + G·C, L_moe, K].
           Branch ids (0: the prompt, j: completion j) let each completion see only the
           prompt and itself, and completion token t sits at position len(prompt) + t as
           it did in the sampler, so every log-prob equals the rows layout's, while the
           prompt runs once per group instead of G times.

Both keep every token at the position it was sampled at, and both have the sampler's few
prompt-bucket shapes. What MoE models count per token or per row differs: in groups the
router-bias update counts each prompt token once (not G times), and the sequence-wise
balance loss (seq_aux_loss_alpha > 0) takes a group for one sequence. The groups layout trades tokens for attention: its rows are longer,
and dense attention costs (P + G·C)² per prompt against G·(P + C)², in FLOPs and, unless
attention is flash (cuDNN), in the scores kept for the backward pass. `batch_layout`
estimates both (config.rl.batch_layout = "auto"): GSM8K-length prompts with short
completions train as groups (56 % fewer tokens on the GRPO benchmark), R1's 32k-token
completions as rows, and so does any run where groups would hold much more memory.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from r1jax.models import ModelConfig, count_params

LAYOUTS = ("auto", "rows", "groups")  # config.rl.batch_layout


def pack_rollout(prompts: list[list[int]], completions: np.ndarray, completion_mask: np.ndarray,
                 group_size: int, pad_id: int, prompt_len: int = 0,
                 logps: np.ndarray | None = None,
                 routing: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """The rows layout: [prompt | completion | padding] rows for B prompts × G completions.

  prompts: B token lists; completions, completion_mask (and the sampler's logps): [B·G, C]
  -> tokens, positions, segment_ids, completion_mask [B·G, P + C] and sampler_logps
  [B·G, P + C - 1] (column t-1 holds token t's), with P = prompt_len (default: the
  longest prompt). A row is laid out as the sampler saw it: the prompt from position 0,
  its completion right after, so every token has the position it was sampled at, and the
  shapes are the sampler's few prompt buckets.

  routing (the sampler's `GenerationResult.routing`, [B·G, P + C, L, K]) becomes
  routing [B·G, P + C - 1, L, K] int32 for the input columns: the experts the sampler
  used for each fed token, -1 where it fed none (padding, and a row's last token).
  """
  P = prompt_len or max(len(p) for p in prompts)
  BG, C = completions.shape
  tokens = np.full((BG, P + C), pad_id, np.int32)
  segment_ids = np.zeros((BG, P + C), np.int32)
  mask = np.zeros((BG, P + C), np.int32)
  old = np.zeros((BG, P + C), np.float32)
  for row in range(BG):
    p = prompts[row // group_size]
    L = len(p)
    tokens[row, :L] = p
    segment_ids[row, :L] = 1
    tokens[row, L:L + C] = np.where(completion_mask[row], completions[row], pad_id)
    segment_ids[row, L:L + C] = completion_mask[row]
    mask[row, L:L + C] = completion_mask[row]
    if logps is not None:
      old[row, L:L + C] = logps[row] * completion_mask[row]
  positions = np.broadcast_to(np.arange(P + C, dtype=np.int32), (BG, P + C)).copy()
  batch = {"tokens": tokens, "positions": positions, "segment_ids": segment_ids,
           "completion_mask": mask}
  if logps is not None:
    batch["sampler_logps"] = old[:, 1:]
  if routing is not None:
    fed = (segment_ids[:, :-1] != 0) & (segment_ids[:, 1:] != 0)  # token j+1 followed j
    batch["routing"] = np.where(fed[:, :, None, None], routing[:, :-1].astype(np.int32), -1)
  return batch


def pack_groups(prompts: list[list[int]], completions: np.ndarray, completion_mask: np.ndarray,
                pad_id: int, prompt_len: int = 0, logps: np.ndarray | None = None,
                routing: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """The groups layout: one [prompt | c_1 | ... | c_G] row per prompt.

  prompts: B token lists; completions, completion_mask (and the sampler's logps): [B·G, C]
  with prompt b's group in rows b·G .. b·G + G - 1 -> tokens, positions, segment_ids,
  branch_ids [B, P + G·C] (P = prompt_len, default the longest prompt; the prompt in
  columns 0 .. len - 1, padding to P, completion j in columns P + j·C ..), and
  completion_mask, sampler_logps [B, G, C] (0 where masked). Completion token t has
  position len(prompt) + t, branch j + 1, and segment 1 where generated (0: padding).

  routing ([B·G, P + C, L, K], indexed by position) becomes [B, P + G·C, L, K] int32:
  the prompt's experts from its prefill, each completion token's from the decode step
  that fed it, -1 where the sampler fed none (padding, a completion's last token).
  """
  B = len(prompts)
  BG, C = completions.shape
  if BG % B:
    raise ValueError(f"{BG} completions do not form groups of equal size for {B} prompts")
  G = BG // B
  P = prompt_len or max(len(p) for p in prompts)
  lengths = np.array([len(p) for p in prompts])
  if lengths.max() > P:
    raise ValueError(f"a prompt of {lengths.max()} tokens does not fit prompt_len={P}")
  S = P + G * C
  mask = np.asarray(completion_mask, np.int32).reshape(B, G, C)
  tokens = np.full((B, S), pad_id, np.int32)
  positions = np.zeros((B, S), np.int32)
  segment_ids = np.zeros((B, S), np.int32)
  for b, p in enumerate(prompts):
    tokens[b, :len(p)] = p
    positions[b, :len(p)] = np.arange(len(p))
    segment_ids[b, :len(p)] = 1
  tokens[:, P:] = np.where(mask, completions.reshape(B, G, C), pad_id).reshape(B, G * C)
  positions[:, P:] = (lengths[:, None, None] + np.arange(C)).repeat(G, 1).reshape(B, G * C)
  segment_ids[:, P:] = mask.reshape(B, G * C)
  branch_ids = np.zeros((B, S), np.int32)
  branch_ids[:, P:] = np.repeat(np.arange(1, G + 1), C)
  batch = {"tokens": tokens, "positions": positions, "segment_ids": segment_ids,
           "branch_ids": branch_ids, "completion_mask": mask}
  if logps is not None:
    batch["sampler_logps"] = (np.asarray(logps, np.float32) * completion_mask).reshape(B, G, C)
  if routing is not None:
    L, K = routing.shape[2:]
    out = np.full((B, S, L, K), -1, np.int32)
    for b, n in enumerate(lengths):
      out[b, :n] = routing[b * G, :n]  # the prefill routed the prompt once for its G rows
    rows = np.arange(BG)[:, None]
    at = np.repeat(lengths, G)[:, None] + np.arange(C)  # completion token t's position
    done = routing[rows, np.minimum(at, routing.shape[1] - 1)].astype(np.int32)  # [B·G, C, L, K]
    fed = mask.reshape(BG, C).astype(bool)
    fed[:, :-1] &= fed[:, 1:]  # token t was fed back when token t + 1 was generated
    fed[:, -1] = False
    out[:, P:] = np.where(fed[..., None, None], done, -1).reshape(B, G * C, L, K)
    batch["routing"] = out
  return batch


def attention_flops(cfg: ModelConfig) -> int:
  """FLOPs of one (query, key) pair over the whole model, as dense attention computes
  it: q·k and p·v in every layer and head."""
  if cfg.attention == "mla":
    per_head = cfg.qk_head_dim + cfg.v_head_dim
  else:
    per_head = 2 * cfg.head_dim
  return 2 * cfg.n_layers * cfg.n_heads * per_head


def layout_costs(cfg: ModelConfig, prompt_len: int, group_size: int, new_tokens: int,
                 activated_params: int) -> dict[str, float]:
  """Forward FLOPs per prompt of each layout: 2 · `activated_params` (those a token
  multiplies by: no embedding, no output head, which scores the same completions in both)
  per token, plus dense attention over every (query, key) pair of a row."""
  P, G, C = prompt_len, group_size, new_tokens
  pair = attention_flops(cfg)
  return {"rows": G * (2 * activated_params * (P + C) + pair * (P + C) ** 2),
          "groups": 2 * activated_params * (P + G * C) + pair * (P + G * C) ** 2}


def extra_score_bytes(cfg: ModelConfig, prompt_len: int, group_size: int, new_tokens: int,
                      groups_per_device: float) -> float:
  """How many more bytes of attention scores a device holds for `groups_per_device`
  groups (those of one micro-batch) as group rows than as completion rows, where dense
  attention keeps every layer's [heads, S, S] float32 scores and their probabilities for
  the backward pass (negative: fewer). Flash attention (attention_impl="cudnn") keeps
  none: 0."""
  if cfg.attention_impl == "cudnn":
    return 0.0
  P, G, C = prompt_len, group_size, new_tokens
  pairs = (P + G * C) ** 2 - G * (P + C) ** 2
  per_pair = cfg.n_layers * cfg.n_heads * (4 + jnp.dtype(cfg.dtype).itemsize)
  return groups_per_device * pairs * per_pair


# "auto" takes the groups layout only for a real saving, and only where its longer rows'
# attention scores stay small: a layout that is 5 % cheaper but needs twice the memory
# would turn a run that fits into one that does not.
MIN_SAVING = 0.2  # groups must cost at most 80 % of the rows' FLOPs
MAX_EXTRA_SCORE_BYTES = 2**30  # per device


def batch_layout(config: ml_collections.ConfigDict, cfg: ModelConfig, mesh: Mesh,
                 prompt_len: int) -> str:
  """"rows" or "groups" for a GRPO run: config.rl.batch_layout, or with "auto" groups
  where `layout_costs` saves at least MIN_SAVING of the FLOPs for prompts padded to
  `prompt_len` (the run's prompt bucket, which the caller estimates) and the longer rows'
  attention scores take at most MAX_EXTRA_SCORE_BYTES more per device
  (`extra_score_bytes`), else rows. Each device, and each of its train.micro_batches,
  must hold whole groups: rl.prompts_per_step must divide by data × fsdp × expert ×
  micro_batches ("auto" falls back to rows where it does not)."""
  rl = config.rl
  choice = rl.get("batch_layout", "auto")
  if choice not in LAYOUTS:
    raise ValueError(f"config.rl.batch_layout={choice!r}; choose one of {LAYOUTS}")
  size = dict(mesh.shape)
  split = size["data"] * size["fsdp"] * size["expert"]
  micro = config.get("train", {}).get("micro_batches", 1)
  whole_groups = rl.prompts_per_step % (split * micro) == 0
  if choice == "groups" and not whole_groups:
    raise ValueError(f"config.rl.batch_layout='groups' trains one row per prompt: "
                     f"rl.prompts_per_step={rl.prompts_per_step} must be divisible by "
                     f"data×fsdp×expert×train.micro_batches = {split}×{micro}; use "
                     "batch_layout='rows' or 'auto'")
  if choice != "auto":
    return choice
  if not whole_groups:
    return "rows"
  G, C = rl.num_generations, rl.max_new_tokens
  shapes_only = cfg.replace(attention_impl="xla")  # counting needs no cuDNN
  matmul = count_params(shapes_only)["activated"] - cfg.vocab_size * cfg.dim * (
      1 if cfg.tie_embeddings else 2)
  cost = layout_costs(cfg, prompt_len, G, C, matmul)
  # the groups one micro-batch holds on a device at a time
  extra = extra_score_bytes(cfg, prompt_len, G, C, rl.prompts_per_step / (split * micro))
  cheaper = cost["groups"] <= (1 - MIN_SAVING) * cost["rows"]
  return "groups" if cheaper and extra <= MAX_EXTRA_SCORE_BYTES else "rows"
