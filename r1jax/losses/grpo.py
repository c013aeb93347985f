"""GRPO: group-relative advantages and the clipped policy loss, with its common variants.

Letters: B prompts (or sequences), G completions per prompt, T completion length, V vocab.

One RL step (DeepSeekMath §4.1, R1 §2.2.1) samples G completions o_1..o_G per prompt,
scores them, and maximises

  J(θ) = E[1/G Σ_i 1/|o_i| Σ_t min(ρ_{i,t} Â_i, clip(ρ_{i,t}, 1-ε, 1+ε_high) Â_i) - β D_KL]

with ρ_{i,t} = π_θ(o_{i,t}) / π_old(o_{i,t}) and Â_i = (r_i - mean(r)) / std(r) over the
group (DeepSeekMath eq. 3, R1 eq. 1-3). `policy_loss` returns -J. The variants differ in a
few config values, collected in `LOSS_PRESETS`:

  grpo     group std, per-sequence token mean, β = 0.001 (R1's KL coefficient;
           DeepSeekMath used 0.04)
  dr_grpo  no std division, token sum / constant max_len, β = 0 (Liu et al. 2025)
  dapo     clip-higher ε_high = 0.28, token mean over the batch, β = 0 (Yu et al. 2025)
  gspo     sequence-level ratio, ε = 3e-4, ε_high = 4e-4, β = 0 (Zheng et al. 2025)

`num_iterations` μ (the loop's business, not this module's): the loop samples one rollout,
records its log-probs, and takes μ gradient steps on it, passing the rollout's log-probs as
`old_logps` each time. With μ = 1 the loop may pass `old_logps = stop_gradient(logps)`:
then ρ = 1 and nothing is clipped, but the gradient is still Â ∇log π (the ratio's
derivative), i.e. plain REINFORCE with a group baseline.

π_old and the sampler (`make_grpo_loss`): the policy scores logits / T, the rollout's
temperature, so its log-probs are those of the distribution that sampled; π_old is the
sampler's log-probs ("sampler") or the trainer's own before the update ("trainer"), with an
optional truncated importance weight min(π_trainer / π_sampler, C) on the policy-gradient
term; the two sides' disagreement is measured every step (`rollout_mismatch`, and for MoE
models `routing_difference`; `token_logps(routing_replay=True)` runs the sampler's experts).

`old_logps` and `ref_logps` are constants of the loss: the gradient flows through `logps`
only. The loss is a pure, jit-able function; string and length options are static.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from r1jax.losses import LOSS_WEIGHT
from r1jax.models import ModelConfig, apply_head, forward, head_weight

sg = jax.lax.stop_gradient

# ------------------------------------------------------------------------ advantages

# (centered [B, G], rewards [B, G], eps) -> advantages [B, G]. Stds are population stds
# (ddof = 0): the group is the whole population the baseline is taken over.
ADVANTAGE_SCALES = {
    "group": lambda c, r, eps: c / (r.std(axis=1, keepdims=True) + eps),  # DeepSeekMath eq. 3
    "batch": lambda c, r, eps: c / (r.std() + eps),  # REINFORCE++ / Lite PPO: batch std
    "none": lambda c, r, eps: c,  # Dr. GRPO: the std division biases towards easy/hard prompts
}


def _check_groups(rewards, group_size: int):
  chex.assert_rank(rewards, 1)
  if group_size < 2:
    raise ValueError(f"group_size must be >= 2 (a group-relative baseline needs at least two "
                     f"completions per prompt), got group_size={group_size}")
  if rewards.shape[0] % group_size:
    raise ValueError(f"rewards has {rewards.shape[0]} entries, not divisible by "
                     f"group_size={group_size}; expected B * group_size entries")
  return rewards.reshape(-1, group_size)


def zero_variance_groups(rewards: jax.Array, group_size: int) -> jax.Array:
  """rewards [B*G] (row b*G + g is completion g of prompt b) -> bool [B].

  True where every completion of the prompt got the same reward: such a group has zero
  advantage and no policy gradient, so DAPO's dynamic sampling (§3.2) drops it.
  """
  r_bg = _check_groups(jnp.asarray(rewards), group_size)
  return jnp.all(r_bg == r_bg[:, :1], axis=1)


def group_advantages(rewards: jax.Array, group_size: int, scale: str = "group",
                     eps: float = 1e-6) -> jax.Array:
  """Outcome-supervision advantages (DeepSeekMath §4.1.2, R1 eq. 3): rewards [B*G] -> [B*G].

  Â = (r - mean_group(r)) / (std + eps), with std from `ADVANTAGE_SCALES[scale]`: "group"
  (population std of the prompt's G rewards), "batch" (population std of all B*G rewards)
  or "none" (Dr. GRPO, no division). A group whose rewards are all equal gets exactly 0.
  Rows of one prompt are contiguous: index = prompt * G + g.
  """
  if scale not in ADVANTAGE_SCALES:
    raise ValueError(f"unknown advantage scale={scale!r}; choose one of {sorted(ADVANTAGE_SCALES)}")
  rewards = jnp.asarray(rewards)
  chex.assert_type(rewards, float)
  r_bg = _check_groups(rewards, group_size)
  centered = r_bg - r_bg.mean(axis=1, keepdims=True)
  adv = ADVANTAGE_SCALES[scale](centered, r_bg, eps)
  # The mean of equal floats need not round back to the value: force the exact 0.
  adv = jnp.where(zero_variance_groups(rewards, group_size)[:, None], 0.0, adv)
  return adv.reshape(-1)


def overlong_penalty(lengths: jax.Array, max_len: int, cache_len: int) -> jax.Array:
  """DAPO's soft overlong punishment (eq. 13): lengths [B] int -> reward term [B] float32.

  0 for L <= L_max - L_cache; (L_max - L_cache - L) / L_cache in the soft window
  (L_max - L_cache, L_max]; -1 beyond L_max. Added to the task reward.
  """
  if not 0 < cache_len <= max_len:
    raise ValueError(f"need 0 < cache_len <= max_len, got cache_len={cache_len}, max_len={max_len}")
  L = jnp.asarray(lengths).astype(jnp.float32)
  soft_start = max_len - cache_len
  window = (soft_start - L) / cache_len
  return jnp.where(L <= soft_start, 0.0, jnp.where(L <= max_len, window, -1.0))


# ------------------------------------------------------------------------ log-probs


def sequence_logps(logits: jax.Array, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
  """log π(tokens) under softmax(logits / T): logits [B, T, V], tokens [B, T] int -> [B, T]
  float32.

  logits[:, t] must be the distribution over tokens[:, t] (shift before calling).
  Computed as logit - logsumexp so no [B, T, V] log-softmax is materialised.
  """
  return _logps_and_entropy(logits, tokens, temperature)[0]


def _logps_and_entropy(logits: jax.Array, tokens: jax.Array, temperature: float = 1.0
                       ) -> tuple[jax.Array, jax.Array]:
  """`sequence_logps` and the entropy of each position's distribution (a metric: no
  gradient), both [B, T] float32."""
  chex.assert_rank(logits, 3)
  chex.assert_shape(tokens, logits.shape[:2])
  x = logits.astype(jnp.float32)
  if temperature != 1.0:
    x = x / jnp.float32(temperature)
  picked = jnp.take_along_axis(x, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]
  lse = jax.nn.logsumexp(x, axis=-1)
  xs, lses = sg(x), sg(lse)
  logp = xs - lses[..., None]
  p = jnp.exp(logp)
  entropy = -jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)
  return picked - lse, entropy


def chunked_sequence_logps(hidden: jax.Array, w_head: jax.Array, tokens: jax.Array,
                           chunk: int, temperature: float = 1.0
                           ) -> tuple[jax.Array, jax.Array]:
  """`sequence_logps(hidden @ w_head, tokens, T)` and the positions' entropies without a
  [B, T, V] array: two [B, T] float32.

  hidden [B, T, D] (the model's final-normed states, `forward(..., hidden_only=True)`),
  w_head [D, V] (`models.head_weight`), tokens [B, T] int. The sequence is cut into
  pieces of `chunk` positions (the last one padded); a scan computes each piece's logits
  (in hidden's dtype, accumulated in float32, as the model's head does) and keeps only
  log π of the chosen tokens, and the backward pass recomputes them piece by piece, so
  logits never take more than [B, chunk, V] floats at a time.
  """
  chex.assert_rank([hidden, w_head, tokens], [3, 2, 2])
  chex.assert_shape(tokens, hidden.shape[:2])
  B, T, D = hidden.shape
  if chunk <= 0:
    raise ValueError(f"chunk must be positive, got {chunk}")
  n = -(-T // chunk)
  pad = n * chunk - T
  h = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0))).reshape(B, n, chunk, D).swapaxes(0, 1)
  t = jnp.pad(tokens, ((0, 0), (0, pad))).reshape(B, n, chunk).swapaxes(0, 1)
  w = w_head.astype(hidden.dtype)

  @jax.checkpoint
  def piece(h_c, t_c):  # [B, chunk, D], [B, chunk] -> 2 × [B, chunk]
    logits = jnp.dot(h_c.reshape(-1, D), w, preferred_element_type=jnp.float32)
    return _logps_and_entropy(logits.reshape(B, chunk, -1), t_c, temperature)

  _, (logps, entropy) = jax.lax.scan(lambda carry, x: (carry, piece(*x)), None, (h, t))
  unpiece = lambda x: x.swapaxes(0, 1).reshape(B, n * chunk)[:, :T]  # noqa: E731
  return unpiece(logps), unpiece(entropy)


# ------------------------------------------------------------------------ policy loss

# (per-token values x [B, T], valid [B, T] bool, max_len) -> scalar. Rows with no valid
# token count as zero in the sequence means (their denominator is clamped to 1).
AGGREGATIONS = {
    # GRPO, DeepSeekMath eq. 3: 1/G Σ_i 1/|o_i| Σ_t
    "seq-mean-token-mean": lambda x, v, max_len: (
        jnp.where(v, x, 0).sum(1) / jnp.maximum(v.sum(1), 1)).mean(),
    # DAPO §3.3: 1/Σ_i|o_i| Σ_i Σ_t
    "token-mean": lambda x, v, max_len: jnp.where(v, x, 0).sum() / jnp.maximum(v.sum(), 1),
    # Dr. GRPO: 1/G Σ_i 1/max_len Σ_t (a constant normaliser, no length bias)
    "seq-mean-token-sum-norm": lambda x, v, max_len: (jnp.where(v, x, 0).sum(1) / max_len).mean(),
}


def _token_ratio(logps, old_logps, valid):
  """ρ_{i,t} = exp(logp - old) (PPO / GRPO)."""
  return jnp.exp(jnp.where(valid, logps - old_logps, 0.0))


def _sequence_ratio(logps, old_logps, valid):
  """GSPO-token ratio (Zheng et al. 2025, §4.3): s_{i,t} = sg[s_i] · π(o_t) / sg[π(o_t)].

  s_i = exp(1/|o_i| Σ_t (logp - old)) is the length-normalised sequence ratio (§4.1).
  Every s_{i,t} has the value s_i, so clipping is decided per sequence and the loss value
  equals GSPO's sequence objective; its gradient is s_i ∇logp_t per token, which the
  1/|o_i| Σ_t aggregation turns into s_i · mean_t ∇logp_t = ∇s_i, the
  gradient of GSPO's sequence objective (§4.2).
  """
  n = jnp.maximum(valid.sum(1), 1)
  log_s = jnp.where(valid, logps - old_logps, 0.0).sum(1) / n
  return sg(jnp.exp(log_s))[:, None] * jnp.exp(jnp.where(valid, logps - sg(logps), 0.0))


RATIO_LEVELS = {"token": _token_ratio, "sequence": _sequence_ratio}


def k3_kl(logps: jax.Array, ref_logps: jax.Array) -> jax.Array:
  """Schulman's unbiased, positive KL estimator (DeepSeekMath eq. 4), elementwise.

  D = π_ref/π_θ - log(π_ref/π_θ) - 1 = exp(ref - logp) - (ref - logp) - 1.
  """
  delta = ref_logps - logps
  return jnp.exp(delta) - delta - 1.0


def policy_loss(logps, old_logps, ref_logps, advantages, mask, *, epsilon: float = 0.2,
                epsilon_high: float | None = None, beta: float = 0.001,
                agg: str = "seq-mean-token-mean", ratio_level: str = "token",
                max_len: int | None = None, is_weights=None):
  """-J(θ) of the module docstring, and metrics.

  logps, old_logps, ref_logps [B, T] float (ref_logps may be None when beta == 0);
  advantages [B]; mask [B, T] (nonzero on completion tokens). Per token:
    ρ from `RATIO_LEVELS[ratio_level]`; pg = -min(ρ Â, clip(ρ, 1-ε, 1+ε_high) Â);
    loss_t = pg + β k3(ref, logp); aggregated by `AGGREGATIONS[agg]`.
  Masked tokens contribute nothing to the value or the gradient, whatever their log-probs.
  is_weights [B, T] (optional, constants): each token's pg term times its weight, e.g.
  `truncated_is_weights` correcting a sampler that differs from π_old.

  Returns (loss (), metrics): clip_fraction (fraction of valid tokens, or of non-empty
  sequences for ratio_level="sequence", where min() takes the clipped branch), kl (mean
  k3 over valid tokens; 0 without ref_logps), ratio_mean / ratio_max (over the same units
  as clip_fraction), pg_loss and kl_loss (β · aggregated k3), with loss = pg_loss + kl_loss,
  and LOSS_WEIGHT: the valid tokens for agg="token-mean", else the rows B.
  """
  if agg not in AGGREGATIONS:
    raise ValueError(f"unknown agg={agg!r}; choose one of {sorted(AGGREGATIONS)}")
  if ratio_level not in RATIO_LEVELS:
    raise ValueError(f"unknown ratio_level={ratio_level!r}; choose one of {sorted(RATIO_LEVELS)}")
  if agg == "seq-mean-token-sum-norm" and (max_len is None or max_len <= 0):
    raise ValueError(f"agg='seq-mean-token-sum-norm' (Dr. GRPO) divides by the generation "
                     f"budget: pass max_len (a positive int), got max_len={max_len}")
  skip_kl = isinstance(beta, (int, float)) and beta == 0
  if ref_logps is None and not skip_kl:
    raise ValueError(f"ref_logps is None but beta={beta}: pass reference log-probs or set beta=0")
  chex.assert_rank(logps, 2)
  B, T = logps.shape
  chex.assert_shape([old_logps, mask] + ([] if ref_logps is None else [ref_logps]), (B, T))
  chex.assert_shape(advantages, (B,))
  chex.assert_type([logps, old_logps, advantages], float)
  if agg == "seq-mean-token-sum-norm" and not isinstance(mask, jax.core.Tracer):
    # (T may include a prompt's columns: rows of the rows layout; the mask counts tokens)
    longest = int(jnp.max(jnp.sum(mask != 0, axis=1), initial=0))
    if longest > max_len:
      raise ValueError(f"max_len={max_len} is shorter than a completion ({longest} tokens)")

  dtype = jnp.promote_types(logps.dtype, jnp.float32)
  logps = logps.astype(dtype)
  old_logps = sg(old_logps.astype(dtype))
  adv = sg(advantages.astype(dtype))[:, None]  # [B, 1]
  valid = mask.astype(bool)
  eps_high = epsilon if epsilon_high is None else epsilon_high

  ratio = RATIO_LEVELS[ratio_level](logps, old_logps, valid)  # [B, T]
  clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + eps_high)
  # min(ρÂ, clip(ρ)Â) written as a select, so the clipped branch (zero gradient) is taken
  # exactly where it is strictly smaller and ties keep the unclipped gradient.
  clip_active = clipped * adv < ratio * adv
  pg_bt = -jnp.where(clip_active, clipped * adv, ratio * adv)
  if is_weights is not None:
    chex.assert_shape(is_weights, (B, T))
    pg_bt = pg_bt * sg(is_weights.astype(dtype))
  reduce = AGGREGATIONS[agg]
  pg_loss = reduce(pg_bt, valid, max_len)

  if ref_logps is None:
    kl_bt = jnp.zeros_like(logps)
  else:
    kl_bt = k3_kl(jnp.where(valid, logps, 0.0), jnp.where(valid, sg(ref_logps.astype(dtype)), 0.0))
  kl_loss = jnp.zeros((), dtype) if skip_kl else beta * reduce(kl_bt, valid, max_len)

  if ratio_level == "sequence":  # ρ and clip_active are constant along each row
    unit_ratio, unit_active, unit_valid = ratio[:, 0], clip_active[:, 0], valid.any(1)
  else:
    unit_ratio, unit_active, unit_valid = ratio, clip_active, valid
  n_units = jnp.maximum(unit_valid.sum(), 1)
  metrics = dict(
      clip_fraction=(unit_active & unit_valid).sum() / n_units,
      kl=jnp.where(valid, kl_bt, 0.0).sum() / jnp.maximum(valid.sum(), 1),
      ratio_mean=jnp.where(unit_valid, unit_ratio, 0.0).sum() / n_units,
      ratio_max=jnp.where(unit_valid, unit_ratio, 0.0).max(),
      pg_loss=pg_loss,
      kl_loss=kl_loss,
      # what the aggregation averages over: micro-batches of the loop weigh by it
      **{LOSS_WEIGHT: (valid.sum() if agg == "token-mean" else B) * jnp.ones((), dtype)},
  )
  return pg_loss + kl_loss, jax.tree.map(sg, metrics)


# ------------------------------------------------------------- sampler vs trainer

# Where π_old comes from (config.rl.old_logps): the sampler's log-probs of the tokens it
# drew, or the training forward's own at the parameters that sampled.
OLD_LOGPS = ("sampler", "trainer")
IS_LEVELS = ("token", "sequence")  # config.rl.tis_level


def _trainer_minus_sampler(trainer_logps, sampler_logps, valid) -> jax.Array:
  """Δ = trainer − sampler log-prob at valid tokens, 0 elsewhere: [B, T] float32 constants."""
  return jnp.where(valid, sg(trainer_logps) - sg(sampler_logps), 0.0).astype(jnp.float32)


def truncated_is_weights(trainer_logps, sampler_logps, mask, *, cap: float,
                         level: str = "token") -> jax.Array:
  """Truncated importance weights π_trainer / π_sampler, capped at `cap`: [B, T] float32.

  trainer_logps, sampler_logps, mask [B, T]. "token": min(exp(Δ_t), C) per token (TIS,
  Yao et al. 2025); "sequence": min(exp(Σ_t Δ_t), C) for every token of the row (the
  sequence-level weight of verl's rollout correction). Δ = trainer − sampler over valid
  tokens. Masked tokens get weight 0. Constants of the loss (no gradient).
  """
  if level not in IS_LEVELS:
    raise ValueError(f"unknown importance-weight level {level!r}; choose one of {IS_LEVELS}")
  if not cap > 0:
    raise ValueError(f"the importance-weight cap must be > 0, got {cap}")
  valid = mask.astype(bool)
  delta = _trainer_minus_sampler(trainer_logps, sampler_logps, valid)
  if level == "sequence":
    delta = jnp.broadcast_to(delta.sum(1, keepdims=True), delta.shape)
  return jnp.where(valid, jnp.exp(jnp.minimum(delta, jnp.log(cap))), 0.0)


def rollout_mismatch(trainer_logps, sampler_logps, mask, *, epsilon: float = 0.2,
                     epsilon_high: float | None = None) -> dict[str, jax.Array]:
  """How far the sampler's log-probs are from the trainer's at the same parameters.

  trainer_logps, sampler_logps, mask [B, T] -> scalars over valid tokens (Δ = trainer −
  sampler): logp_diff_mean / logp_diff_max (mean and max |Δ|), token_out_of_clip (the
  fraction of tokens whose ratio exp(Δ) is outside [1 − ε, 1 + ε_high] before any update)
  and over non-empty rows seq_out_of_clip (the same for the length-normalised sequence
  ratio exp(mean_t Δ), GSPO's unit) and seq_ratio_min / seq_ratio_max. 0 everywhere when
  the two agree; in float32 they agree to rounding, in bfloat16 they do not.
  """
  eps_high = epsilon if epsilon_high is None else epsilon_high
  valid = mask.astype(bool)
  delta = _trainer_minus_sampler(trainer_logps, sampler_logps, valid)
  n_tok = jnp.maximum(valid.sum(), 1)
  outside = lambda r: (r < 1.0 - epsilon) | (r > 1.0 + eps_high)  # noqa: E731
  rows = valid.any(1)
  seq = jnp.exp(delta.sum(1) / jnp.maximum(valid.sum(1), 1))
  n_rows = jnp.maximum(rows.sum(), 1)
  return {"logp_diff_mean": jnp.abs(delta).sum() / n_tok,
          "logp_diff_max": jnp.abs(delta).max(),
          "token_out_of_clip": (outside(jnp.exp(delta)) & valid).sum() / n_tok,
          "seq_out_of_clip": (outside(seq) & rows).sum() / n_rows,
          "seq_ratio_min": jnp.where(rows, seq, jnp.inf).min(),
          "seq_ratio_max": jnp.where(rows, seq, -jnp.inf).max()}


def routing_difference(chosen, recorded) -> jax.Array:
  """The fraction of recorded (token, layer) expert sets that `chosen` does not equal.

  chosen, recorded [B, T, L, K] int (recorded -1 where nothing was recorded) -> ()
  float32; sets are compared, not the order of their top-k.
  """
  chex.assert_equal_shape([chosen, recorded])
  seen = recorded[..., 0] >= 0  # [B, T, L]
  same = jnp.all(jnp.sort(chosen.astype(jnp.int32), -1) == jnp.sort(recorded, -1), -1)
  return (seen & ~same).sum() / jnp.maximum(seen.sum(), 1)


# Each preset: kwargs for `group_advantages` ("advantages") and `policy_loss` ("loss").
# Dr. GRPO also needs `max_len` (the generation budget), supplied by the loop.
LOSS_PRESETS = {
    "grpo": dict(advantages=dict(scale="group"),
                 loss=dict(epsilon=0.2, beta=0.001, agg="seq-mean-token-mean")),
    "dr_grpo": dict(advantages=dict(scale="none"),
                    loss=dict(epsilon=0.2, beta=0.0, agg="seq-mean-token-sum-norm")),
    "dapo": dict(advantages=dict(scale="group"),
                 loss=dict(epsilon=0.2, epsilon_high=0.28, beta=0.0, agg="token-mean")),
    "gspo": dict(advantages=dict(scale="group"),
                 loss=dict(epsilon=3e-4, epsilon_high=4e-4, beta=0.0, agg="seq-mean-token-mean",
                           ratio_level="sequence")),
}


# ------------------------------------------------------------- the loss of a GRPO batch


def token_logps(cfg: ModelConfig, params, batch, chunk: int = 0, temperature: float = 1.0,
                routing_replay: bool = False, window: int = 0) -> tuple[jax.Array, dict]:
  """log π(token | its predecessors) under softmax(logits / T) of a GRPO batch's tokens,
  and the model's aux (expert loads for the router-bias update, balance loss, each
  router's own choice "routing") with "token_entropy" (each position's entropy, no
  gradient), laid out as the batch is (`r1jax.stages.grpo_batch`):

    rows    (no batch["branch_ids"]): [B, L-1] float32, column t-1 holding token t of
            rows [prompt | completion | padding];
    groups  (batch["branch_ids"] given): [B, G, C], token t of completion j of the row
            [prompt | c_1 | ... | c_G] of each prompt (the prompt runs once for its G
            completions; the completions' values equal those of the rows layout).

  With `chunk` > 0 the head runs `chunk` positions at a time (config.rl.logprob_chunk):
  the same numbers without [B, ·, V] logits. Rows only: with `window` > 0 the head scores
  only the `window` columns from each row's first completion token (the first 1 of
  batch["completion_mask"]) on, as rows whose completions have at most `window` tokens
  need; the other columns hold 0 (the prompt's logits are never needed: on the GRPO
  benchmark this skips 60 % of the head). The groups layout scores its completions only.
  With routing_replay, the MoE layers use batch["routing"] (the sampler's experts for
  each input column, -1 where it recorded none) instead of their routers' choice."""
  if "branch_ids" in batch:
    return _group_token_logps(cfg, params, batch, chunk, temperature, routing_replay)
  inputs = dict(positions=batch["positions"][:, :-1], segment_ids=batch["segment_ids"][:, :-1],
                return_aux=True)
  if routing_replay:
    inputs["routing"] = batch["routing"].transpose(2, 0, 1, 3)
  targets = batch["tokens"][:, 1:]
  B, T = targets.shape
  if not (chunk or window):  # the whole head (and the MTP modules, if any, as LM training)
    logits, aux = forward(cfg, params, batch["tokens"][:, :-1], **inputs)
    logps, entropy = _logps_and_entropy(logits, targets, temperature)
    return logps, dict(aux, token_entropy=entropy)
  hidden, aux = forward(cfg, params, batch["tokens"][:, :-1], hidden_only=True, **inputs)
  if 0 < window < T:
    # input column c predicts token c + 1: the first completion token's predecessor on
    first = jnp.argmax(batch["completion_mask"][:, 1:], axis=1)  # [B]
    cols = first[:, None] + jnp.arange(window)[None, :]  # [B, W]
    inside = cols < T
    cols = jnp.minimum(cols, T - 1)
    hidden = jnp.take_along_axis(hidden, cols[..., None], axis=1)
    targets = jnp.take_along_axis(targets, cols, axis=1)
  logps, entropy = _head_logps(cfg, params, hidden, targets, chunk, temperature)
  if 0 < window < T:  # back to [B, L-1]; columns past the end (clipped) add nothing
    rows = jnp.arange(B)[:, None]
    place = lambda x: jnp.zeros((B, T), x.dtype).at[rows, cols].add(  # noqa: E731
        jnp.where(inside, x, 0.0))
    logps, entropy = place(logps), place(entropy)
  return logps, dict(aux, token_entropy=entropy)


def _head_logps(cfg: ModelConfig, params, hidden, targets, chunk: int, temperature: float):
  """log π and entropy [B, T] of targets [B, T] from final-normed hidden [B, T, D]."""
  if chunk:
    return chunked_sequence_logps(hidden, head_weight(cfg, params), targets, chunk, temperature)
  return _logps_and_entropy(apply_head(cfg, params, hidden), targets, temperature)


def _group_token_logps(cfg: ModelConfig, params, batch, chunk: int, temperature: float,
                       routing_replay: bool) -> tuple[jax.Array, dict]:
  """`token_logps` of the groups layout: one forward over [prompt | c_1 | ... | c_G] rows
  [B, S], S = P + G·C, whose branch ids keep each completion to the prompt and itself.
  Token t of completion j (column P + j·C + t) is predicted by the hidden state of its
  predecessor: column P + j·C + t - 1, or for t = 0 the prompt's last token."""
  tokens = batch["tokens"]
  B, S = tokens.shape
  _, G, C = batch["completion_mask"].shape
  P = S - G * C
  inputs = {"routing": batch["routing"].transpose(2, 0, 1, 3)} if routing_replay else {}
  hidden, aux = forward(cfg, params, tokens, positions=batch["positions"],
                        segment_ids=batch["segment_ids"], branch_ids=batch["branch_ids"],
                        hidden_only=True, return_aux=True, **inputs)
  prompt_len = jnp.maximum((batch["segment_ids"][:, :P] != 0).sum(1), 1)  # [B]
  cols = P - 1 + jnp.arange(G * C)  # [G·C]: each completion token's predecessor in its branch
  cols = jnp.where(jnp.arange(G * C) % C == 0, prompt_len[:, None] - 1, cols[None, :])
  hidden = jnp.take_along_axis(hidden, cols[..., None], axis=1)  # [B, G·C, D]
  logps, entropy = _head_logps(cfg, params, hidden, tokens[:, P:], chunk, temperature)
  return logps.reshape(B, G, C), dict(aux, token_entropy=entropy.reshape(B, G, C))


def completion_view(batch) -> dict:
  """The per-token arrays of a GRPO batch, either layout, as `policy_loss` takes them:
  mask and the optional sampler_logps / old_logps / ref_logps [N, T], advantages [N]
  (rows: N = B, T = L - 1; groups: N = B·G completions, T = C)."""
  if "branch_ids" not in batch:
    view = {"mask": batch["completion_mask"][:, 1:], "advantages": batch["advantages"]}
    view.update({k: batch[k] for k in ("sampler_logps", "old_logps", "ref_logps") if k in batch})
    return view
  flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731  [B, G, C] -> [B·G, C]
  view = {"mask": flat(batch["completion_mask"]), "advantages": batch["advantages"].reshape(-1)}
  view.update({k: flat(batch[k]) for k in ("sampler_logps", "old_logps", "ref_logps")
               if k in batch})
  return view


def make_grpo_loss(cfg: ModelConfig, *, logprob_chunk: int = 0, temperature: float = 1.0,
                   old_logps: str = "sampler", tis_cap: float = 0.0, tis_level: str = "token",
                   routing_replay: bool = False, window: int = 0, **loss_kwargs) -> Callable:
  """loss_fn(params, batch) -> (`policy_loss` [+ the MoE balance loss], (metrics, model aux)).

  batch: either layout of `r1jax.stages.grpo_batch` (`token_logps`): the model inputs
  with completion_mask, sampler_logps (the sampler's log-probs of its tokens at the
  rollout temperature), advantages, when β > 0 ref_logps, and optionally old_logps (the
  trainer's own log-probs before the update: the loop computes them when μ > 1 and π_old
  comes from the trainer), per token as `completion_view` reads them. The policy scores logits /
  `temperature`, the rollout's T, so that its ratio is against the distribution that
  sampled (top-k / top-p truncate that distribution further; the ratio ignores them, as
  TRL and verl do).

  `old_logps` picks π_old (OLD_LOGPS): "sampler" (the rollout's log-probs) or "trainer"
  (the training forward's own before the update: sg(logps) at μ = 1, ratio 1 exactly).
  `tis_cap` > 0 (only with "trainer") multiplies each token's policy-gradient term by the
  truncated importance weight min(π_trainer / π_sampler, C) at `tis_level`, correcting
  for sampling from a slightly different distribution (`truncated_is_weights`).
  `routing_replay` (MoE): the forward uses the sampler's experts, batch["routing"] (R3).
  `window` > 0: completions have at most this many tokens; only they are scored
  (`token_logps`), which changes no number.
  Metrics add entropy (mean over completion tokens), mismatch/* (`rollout_mismatch` of
  the trainer's log-probs against the sampler's; at μ > 1 the loop keeps the first
  update's; with batch["routing"] also mismatch/routing_diff, the fraction of recorded
  (token, layer) top-k sets the trainer's routers choose differently, replayed or not)
  and, with TIS, tis/weight_mean and tis/capped_fraction.
  loss_kwargs go to `policy_loss` (a LOSS_PRESETS entry's "loss" with the config's values).
  """
  if old_logps not in OLD_LOGPS:
    raise ValueError(f"config.rl.old_logps={old_logps!r}; choose one of {OLD_LOGPS}")
  if tis_cap and old_logps != "trainer":
    raise ValueError(f"config.rl.tis_cap={tis_cap} corrects π_old = the trainer's log-probs "
                     "towards the sampler's; with rl.old_logps='sampler' the ratio already "
                     "divides by the sampler: set rl.old_logps='trainer' or rl.tis_cap=0")
  if tis_cap < 0:
    raise ValueError(f"config.rl.tis_cap={tis_cap} must be >= 0 (0: off)")
  if tis_level not in IS_LEVELS:
    raise ValueError(f"config.rl.tis_level={tis_level!r}; choose one of {IS_LEVELS}")
  if temperature <= 0:
    raise ValueError(f"the trainer's temperature must be > 0 (the rollout's), got {temperature}")
  clip = {k: loss_kwargs[k] for k in ("epsilon", "epsilon_high") if k in loss_kwargs}

  def loss_fn(params, batch):
    logps, aux = token_logps(cfg, params, batch, logprob_chunk, temperature, routing_replay,
                             window)
    view = completion_view(batch)
    mask, sampler = view["mask"], view["sampler_logps"]
    logps = logps.reshape(mask.shape)
    trainer_old = view["old_logps"] if "old_logps" in view else sg(logps)
    old = sampler if old_logps == "sampler" else trainer_old
    weights = (truncated_is_weights(trainer_old, sampler, mask, cap=tis_cap, level=tis_level)
               if tis_cap else None)
    loss, metrics = policy_loss(logps, old, view.get("ref_logps"), view["advantages"], mask,
                                is_weights=weights, **loss_kwargs)
    valid = mask.astype(bool)
    n = jnp.maximum(valid.sum(), 1)
    entropy = aux.pop("token_entropy").reshape(mask.shape)
    metrics["entropy"] = jnp.where(valid, entropy, 0.0).sum() / n
    metrics.update({f"mismatch/{k}": v for k, v in
                    rollout_mismatch(trainer_old, sampler, mask, **clip).items()})
    if "routing" in batch:
      metrics["mismatch/routing_diff"] = routing_difference(
          aux.pop("routing").transpose(1, 2, 0, 3), batch["routing"])
    if weights is not None:
      metrics["tis/weight_mean"] = jnp.where(valid, weights, 0.0).sum() / n
      metrics["tis/capped_fraction"] = (valid & (weights >= tis_cap * (1 - 1e-6))).sum() / n
    if "balance_loss" in aux:
      loss = loss + aux["balance_loss"]
    return loss, (metrics, aux)

  return loss_fn
