"""Batched generation with per-token log-probs: the rollout engine.

`generate` runs in three steps, none of which returns to Python per token:
  1. host: check the inputs, right-pad the B prompts to a common length P, the
     `prompt_bucket` of the longest (16, 24, 32, 48, 64, 96, ...: at most two lengths per
     octave, so a run compiles each program a few times whatever its prompts' lengths);
     a token's position is its column, so every prompt starts at position 0 whatever the
     padding, as in a forward pass over the prompt alone; pads have segment 0 and sit in
     cache slots no real token attends to;
  2. `_prefill` (jitted): one forward pass over the B prompts into a P-slot cache, and the
     logits at each prompt's last token;
  3. `_decode`: `_decode_start` (jitted) repeats each prompt's cache rows n times (row =
     prompt·n + j, so a group shares one prefill) and widens the cache to P +
     max_new_tokens slots; `_decode_steps` (jitted) samples in a `lax.while_loop`, a chunk
     of tokens at a time. A row's completion continues its prompt: token t sits at position
     len(prompt) + t and, in every row alike, in cache slot P + t, so each step writes the
     cache with one in-place update (the prompt's padding slots stay masked). Stopped
     rows emit `pad_id` with mask 0 and segment 0. Between chunks the host looks at how many rows still
     generate; once at most half do, `_take_rows` keeps only those (in a power-of-two
     batch of at least MIN_ROWS), so the cost follows the tokens generated rather than
     rows x the longest completion. Each batch size compiles once: at most log2(rows /
     MIN_ROWS) + 1 shapes per prompt bucket. With record_routing (MoE models) prefill and
     decode also keep the experts every layer chose for every token they fed, at its
     position, for a trainer to replay.

Processes: in a multi-process run every process calls `generate` with the same prompts and
parameters (global arrays on one mesh); the jitted steps run as one program over every
device and the result is gathered to each process's host (`sharding.to_host`), so every
process returns the same `GenerationResult`.

Randomness: the key of row r at step t is fold_in(fold_in(key(seed), r), t), so a row's
draws depend on the seed and its row index only, not on the other rows of the batch.

Stops: stop_token_ids and stop_sequences become one [Ns, L] array of right-aligned
sequences (left-filled with a wildcard); a row stops when its last L generated tokens
match one of them. Its shape is bucketed, so changing the stop ids does not recompile.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.models import ModelConfig, apply_head, forward, init_cache
from r1jax.runtime import sharding
from r1jax.sampling.processors import sample_token

_WILDCARD, _NEVER = -1, -2  # entries of the stop array: matches anything / nothing


def _round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def prompt_bucket(length: int, limit: int | None = None) -> int:
  """The padded length of prompts whose longest has `length` tokens: the smallest of
  16, 24, 32, 48, 64, 96, 128, ... (2^k and 3·2^(k-1)) that holds it, or `limit` when that
  is smaller (never less than `length`). Padding costs at most half a prompt's tokens
  and the number of shapes grows with the log of the longest prompt."""
  bucket = 16
  while bucket < length:
    bucket = bucket * 3 // 2 if bucket & (bucket - 1) == 0 else bucket * 4 // 3
  return max(length, min(bucket, limit)) if limit is not None else bucket


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """How to sample. See `processors` for the order of temperature / top-k / top-p / min-p.

  temperature 0 is greedy. stop_token_ids must include the tokenizer's eos if generation
  should stop there; stop_sequences are token sequences such as the ids of "</answer>".
  The stop token or sequence is part of the completion (mask 1).
  """
  max_new_tokens: int
  temperature: float = 1.0
  top_k: int = 0  # 0: off
  top_p: float = 1.0
  min_p: float = 0.0
  vocab_limit: int = 0  # ids >= vocab_limit are never drawn, e.g. a tokenizer's size; 0: all
  n: int = 1  # completions per prompt
  seed: int = 0
  stop_token_ids: tuple[int, ...] = ()
  stop_sequences: tuple[tuple[int, ...], ...] = ()

  def __post_init__(self):
    def bad(field, msg):
      raise ValueError(f"SamplingParams.{field}: {msg}, got {getattr(self, field)!r}")

    if not isinstance(self.max_new_tokens, (int, np.integer)) or self.max_new_tokens < 1:
      bad("max_new_tokens", "must be an integer >= 1")
    if not isinstance(self.n, (int, np.integer)) or self.n < 1:
      bad("n", "must be an integer >= 1 (completions per prompt)")
    if not math.isfinite(self.temperature) or self.temperature < 0:
      bad("temperature", "must be >= 0 (0 is greedy)")
    if not isinstance(self.top_k, (int, np.integer)) or self.top_k < 0:
      bad("top_k", "must be an integer >= 0 (0 turns top-k off)")
    if not 0.0 < self.top_p <= 1.0:
      bad("top_p", "must lie in (0, 1] (1 turns top-p off)")
    if not 0.0 <= self.min_p < 1.0:
      bad("min_p", "must lie in [0, 1) (0 turns min-p off)")
    if not isinstance(self.vocab_limit, (int, np.integer)) or self.vocab_limit < 0:
      bad("vocab_limit", "must be an integer >= 0 (0: every id may be drawn)")
    if not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**64:
      bad("seed", "must be an integer in [0, 2**64)")
    try:  # lists (e.g. from tokenizer.encode) become tuples, so the params stay hashable
      ids = tuple(int(i) for i in self.stop_token_ids)
      seqs = tuple(tuple(int(i) for i in s) for s in self.stop_sequences)
    except (TypeError, ValueError):
      raise ValueError("SamplingParams: stop_token_ids must be ints and stop_sequences "
                       f"sequences of ints, got {self.stop_token_ids!r}, "
                       f"{self.stop_sequences!r}") from None
    object.__setattr__(self, "stop_token_ids", ids)
    object.__setattr__(self, "stop_sequences", seqs)
    if any(i < 0 for i in ids):
      bad("stop_token_ids", "must be non-negative token ids")
    if any(not s or min(s) < 0 for s in seqs):
      bad("stop_sequences", "must be non-empty sequences of non-negative token ids")


@dataclasses.dataclass(frozen=True)
class GenerationResult:
  """R = B·n rows, row = prompt·n + j; M = max_new_tokens. NumPy arrays on the host.

  tokens [R, M] int32 (pad_id where mask is 0); mask [R, M] int32 (1 for generated tokens,
  up to and including the stop); logps_sampling, logps_model [R, M] float32 (0 where
  masked): log-probs under the processed distribution and under the model at the
  sampling temperature (log_softmax(logits / T), before top-k/top-p; T = 1 when greedy);
  lengths [R];
  finish_reason: "stop" or "length" per row; prompt_index [R]; prompt_len P, the length
  prompts were padded to (completion token t of a prompt of L tokens sat at position L + t).
  """
  tokens: np.ndarray
  mask: np.ndarray
  logps_sampling: np.ndarray
  logps_model: np.ndarray
  lengths: np.ndarray
  finish_reason: tuple[str, ...]
  prompt_index: np.ndarray
  prompt_len: int
  # generate(record_routing=True), MoE models: [R, P + M, L_moe, K] the experts each MoE
  # layer chose for the token at each position (prompt and generated; the slots of padding
  # and of the last token, which is never fed back, hold arbitrary ids). A GRPO trainer
  # replays them (rl.routing_replay). uint8 ids for E <= 256 experts, else int16.
  routing: np.ndarray | None = None


# ----------------------------------------------------------------- compiled parts


def _routing_dtype(cfg: ModelConfig):
  return jnp.uint8 if cfg.n_routed_experts <= 256 else jnp.int16


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _prefill(cfg: ModelConfig, params, tokens, segment_ids, lengths, cache_dtype: str,
             record_routing: bool = False):
  """tokens, segment_ids [B, P] (right-padded), lengths [B] -> (logits at each row's last
  prompt token [B, V] float32, cache of P slots, and with record_routing the experts
  chosen at each prompt token [B, P, L_moe, K], else None)."""
  B, P = tokens.shape
  positions = jnp.broadcast_to(jnp.arange(P, dtype=jnp.int32), (B, P))
  cache = init_cache(cfg, B, P, jnp.dtype(cache_dtype))
  hidden, cache, aux = forward(cfg, params, tokens, positions=positions,
                               segment_ids=segment_ids, cache=cache, cache_slot=0,
                               hidden_only=True, return_aux=True)
  h_last = jnp.take_along_axis(hidden, (lengths - 1)[:, None, None], axis=1)[:, 0]  # [B, D]
  logits = apply_head(cfg, params, h_last)
  routing = (aux["routing"].transpose(1, 2, 0, 3).astype(_routing_dtype(cfg))
             if record_routing else None)
  return logits, cache, routing


def _cache_axes(cfg: ModelConfig):
  """(batch axis, slot axis) of every leaf of `init_cache`'s tree, read from its shapes."""
  def shapes(b, s):
    return jax.eval_shape(functools.partial(init_cache, cfg, b, s, jnp.float32))

  def axes(one, wide, long):
    diff = lambda other: [i for i, (x, y) in enumerate(zip(one.shape, other.shape)) if x != y]
    return diff(wide)[0], diff(long)[0]

  return jax.tree.map(axes, shapes(1, 1), shapes(2, 1), shapes(1, 2))


def _expand_cache(cfg: ModelConfig, cache, n: int, extra: int):
  """Repeats every batch row n times and appends `extra` empty slots (segment 0)."""
  def expand(leaf, ax):
    b, s = ax
    leaf = jnp.repeat(leaf, n, axis=b) if n > 1 else leaf
    pad = [(0, extra if i == s else 0) for i in range(leaf.ndim)]
    return jnp.pad(leaf, pad)

  return jax.tree.map(expand, cache, _cache_axes(cfg))


def _stop_hit(recent: jax.Array, stops: jax.Array) -> jax.Array:
  """recent [R, L] last generated tokens, stops [Ns, L] right-aligned -> bool [R]."""
  eq = (recent[:, None, :] == stops[None]) | (stops[None] == _WILDCARD)
  return jnp.any(jnp.all(eq, axis=-1), axis=-1)


def _row_keys(seed, rows):
  """The key of each row: fold_in(fold_in(key(seed), row)), rows [R] int32."""
  base = jax.random.fold_in(jax.random.key(seed[0]), seed[1])
  return jax.vmap(jax.random.fold_in, (None, 0))(base, rows)


def _emit(sp: SamplingParams, s, t, logits_rv, stops, pad_id):
  """Samples token t for every live row of state `s` and records it."""
  keys = jax.vmap(jax.random.fold_in, (0, None))(_row_keys(s["seed"], s["row"]), t)
  token, lp_s, lp_m = sample_token(keys, logits_rv, sp)
  live = ~s["done"]
  token = jnp.where(live, token, pad_id)
  recent = jnp.concatenate([s["recent"][:, 1:], token[:, None]], axis=1)
  hit = _stop_hit(recent, stops) & live
  col = lambda buf, v: jax.lax.dynamic_update_index_in_dim(buf, v.astype(buf.dtype), t, 1)
  return dict(s, t=t + 1, recent=recent, done=s["done"] | hit, stopped=s["stopped"] | hit,
              tokens=col(s["tokens"], token), mask=col(s["mask"], live),
              lp_s=col(s["lp_s"], jnp.where(live, lp_s, 0.0)),
              lp_m=col(s["lp_m"], jnp.where(live, lp_m, 0.0)))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _decode_start(cfg: ModelConfig, sp: SamplingParams, cache, logits, lengths, seed, stops,
                  pad_id, routing=None):
  """The decoding state of R = B·n rows, with token 0 sampled.

  cache: the prefill cache (B rows, P slots), widened here to P + M slots (M =
  sp.max_new_tokens) with each prompt's rows repeated n times; logits [B, V] at each
  prompt's last token; lengths [B] the prompts' lengths; seed uint32 [2]; stops [Ns, L]
  int32; pad_id int32 scalar; routing (to record the experts of every fed token) the
  prefill's [B, P, L, K] or None. sp is static (its seed and stops are ignored here).
  The state: t, seed, row [R] (each row's index in the result: its key and its place),
  start [R] (the position of its first generated token), cache, recent [R, L], done, stopped
  [R], tokens, mask, lp_s, lp_m [R, M] and routing [R, P + M, L, K] when recorded.
  """
  n, M = sp.n, sp.max_new_tokens
  R = logits.shape[0] * n
  zeros = jnp.zeros((R, M), jnp.float32)
  state = dict(t=jnp.int32(0), seed=seed, row=jnp.arange(R, dtype=jnp.int32),
               start=jnp.repeat(lengths, n), cache=_expand_cache(cfg, cache, n, M),
               recent=jnp.full((R, stops.shape[1]), _WILDCARD, jnp.int32),
               done=jnp.zeros((R,), bool), stopped=jnp.zeros((R,), bool),
               tokens=jnp.full((R, M), pad_id, jnp.int32), mask=jnp.zeros((R, M), jnp.int32),
               lp_s=zeros, lp_m=zeros)
  if routing is not None:  # rows like the cache's, M more slots
    state["routing"] = jnp.pad(jnp.repeat(routing, n, axis=0), ((0, 0), (0, M), (0, 0), (0, 0)))
  return _emit(sp, state, jnp.int32(0), jnp.repeat(logits, n, axis=0), stops, pad_id)


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(3,))
def _decode_steps(cfg: ModelConfig, sp: SamplingParams, params, state, stops, pad_id, until):
  """Samples tokens t, t+1, ... until `until` (int32 scalar), sp.max_new_tokens or every
  row stopped, whichever comes first, in one `lax.while_loop`."""
  M = sp.max_new_tokens

  def step(s):
    """Feeds token t-1 (position start + t-1, slot P + t-1) and samples token t."""
    t = s["t"]
    prev = jax.lax.dynamic_index_in_dim(s["tokens"], t - 1, axis=1)  # [R, 1]
    positions = (s["start"] + t - 1)[:, None]
    segment_ids = (~s["done"]).astype(jnp.int32)[:, None]
    slot = s["cache"]["segment_ids"].shape[1] - M + t - 1  # the cache holds P + M slots
    logits_r1v, new_cache, aux = forward(cfg, params, prev, positions=positions,
                                         segment_ids=segment_ids, cache=s["cache"],
                                         cache_slot=slot, return_aux=True)
    s = dict(s, cache=new_cache)
    if "routing" in s:  # the experts of token t-1, at its position
      chosen = aux["routing"][:, :, 0].transpose(1, 0, 2).astype(s["routing"].dtype)  # [R, L, K]
      s["routing"] = s["routing"].at[jnp.arange(s["row"].shape[0]), s["start"] + t - 1].set(chosen)
    return _emit(sp, s, t, logits_r1v[:, 0], stops, pad_id)

  limit = jnp.minimum(until, M)
  return jax.lax.while_loop(lambda s: (s["t"] < limit) & ~jnp.all(s["done"]), step, state)


@functools.partial(jax.jit, static_argnums=(0,))
def _take_rows(cfg: ModelConfig, state, idx):
  """The state of rows `idx` [R'] only (the cache gathered along its batch axes)."""
  cache = jax.tree.map(lambda leaf, ax: jnp.take(leaf, idx, axis=ax[0]), state["cache"],
                       _cache_axes(cfg))
  rows = {k: v if k in ("t", "seed") else jnp.take(v, idx, axis=0)
          for k, v in state.items() if k != "cache"}
  return dict(rows, cache=cache)


_OUTPUTS = ("tokens", "mask", "lp_s", "lp_m", "stopped", "routing")
MIN_ROWS = 8  # decoding never shrinks the batch below this many rows


def _row_bucket(live: int) -> int:
  """The batch size that holds `live` rows: a power of two, at least MIN_ROWS."""
  return max(MIN_ROWS, 1 << max(live - 1, 0).bit_length())


def _decode(cfg: ModelConfig, sp: SamplingParams, params, cache, logits, lengths, seed,
            stops, pad_id, routing, chunk: int):
  """Samples M = sp.max_new_tokens tokens for R = B·n rows (see `_decode_start`).

  chunk > 0: decode `chunk` tokens at a time and, when at most half the rows are still
  generating, go on with those rows only, in the next smaller power-of-two batch (a row's
  key is its index, so it draws the same tokens in any batch). chunk = 0: one loop over
  every row until all have stopped. Returns NumPy tokens, mask, logps_sampling,
  logps_model [R, M], stopped [R] and routing [R, P + M, L, K] (or None).
  """
  state = _decode_start(cfg, sp, cache, logits, lengths, seed, stops, pad_id, routing)
  M, R = sp.max_new_tokens, logits.shape[0] * sp.n
  out = None  # the host's copy of rows that left the batch, filled at each shrink
  t = 1
  while True:
    until = min(M, t + chunk) if chunk else M
    state = _decode_steps(cfg, sp, params, state, stops, pad_id, np.int32(until))
    if not chunk:
      break
    t, done = sharding.to_host((state["t"], state["done"]))
    t = int(t)
    live = np.flatnonzero(~done)
    size = _row_bucket(len(live))
    if t >= M or not len(live) or size > len(done) // 2:
      if t >= M or not len(live):
        break
      continue
    out = _keep_rows(state, out, R)
    dead = np.flatnonzero(done)
    idx = np.concatenate([live, np.resize(dead, size - len(live))]).astype(np.int32)
    state = _take_rows(cfg, state, idx)
  out = _keep_rows(state, out, R)
  return tuple(out.get(k) for k in _OUTPUTS)


def _keep_rows(state, out: dict | None, R: int) -> dict:
  """Copies the state's rows to the host result `out` (by their row index)."""
  fetched = sharding.to_host({k: state[k] for k in ("row",) + _OUTPUTS if k in state})
  rows = fetched.pop("row")
  if out is None:
    out = {k: np.zeros((R,) + v.shape[1:], v.dtype) for k, v in fetched.items()}
  for k, v in fetched.items():
    out[k][rows] = v
  return out


# ----------------------------------------------------------------- host side


def _stop_array(sp: SamplingParams) -> np.ndarray:
  """Stop ids and sequences as [Ns, L] int32, right-aligned; shapes bucketed to 4."""
  seqs = [(i,) for i in sp.stop_token_ids] + list(sp.stop_sequences)
  L = _round_up(max([len(s) for s in seqs], default=1), 4)
  out = np.full((_round_up(max(len(seqs), 1), 4), L), _NEVER, np.int32)
  for row, s in enumerate(seqs):
    out[row] = _WILDCARD
    out[row, L - len(s):] = s
  return out


def _check_inputs(cfg: ModelConfig, prompts, sp: SamplingParams, pad_id: int) -> None:
  if not isinstance(sp, SamplingParams):
    raise TypeError(f"generate needs a SamplingParams, got {type(sp).__name__}")
  if len(prompts) == 0:
    raise ValueError("generate got no prompts; pass a non-empty list of token-id lists")
  V, ctx, M = cfg.vocab_size, cfg.max_position_embeddings, sp.max_new_tokens
  for i, p in enumerate(prompts):
    if len(p) == 0:
      raise ValueError(f"prompt {i} is empty; every prompt needs at least one token "
                       "(e.g. the tokenizer's bos)")
    if len(p) + M > ctx:
      raise ValueError(f"prompt {i}: prompt of {len(p)} tokens + max_new_tokens {M} exceeds "
                       f"the model's context {ctx} (cfg.max_position_embeddings of "
                       f"{cfg.name!r}); shorten the prompt or lower max_new_tokens")
    ids = np.asarray(p)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(f"prompt {i} must be a flat list of token ids, got {p!r:.80}")
    if ids.min() < 0 or ids.max() >= V:
      raise ValueError(f"prompt {i} has token ids outside [0, vocab_size={V}) of model "
                       f"{cfg.name!r}: {ids[(ids < 0) | (ids >= V)][:5].tolist()}")
  if not 0 <= pad_id < V:
    raise ValueError(f"pad_id={pad_id} must lie in [0, vocab_size={V})")
  stop_ids = set(sp.stop_token_ids).union(*map(set, sp.stop_sequences))
  if stop_ids and max(stop_ids) >= V:
    raise ValueError(f"stop ids {sorted(i for i in stop_ids if i >= V)} lie outside "
                     f"[0, vocab_size={V}) of model {cfg.name!r}")


def generate(cfg: ModelConfig, params, prompts: list[list[int]], sp: SamplingParams, *,
             pad_id: int = 0, cache_dtype=None, bucket: bool = True,
             record_routing: bool = False, chunk: int | None = None) -> GenerationResult:
  """Samples sp.n completions of sp.max_new_tokens tokens for each prompt.

  prompts: B lists of token ids (any lengths). cache_dtype: that of the decode cache
  (default cfg.dtype, which loses nothing: the cached values are computed in cfg.dtype).
  Returns a `GenerationResult` with R = B·n rows, prompt p's group in rows p·n .. p·n+n-1.
  Prompts are right-padded to their `prompt_bucket` (`bucket=False`: to the longest);
  each row's positions start at 0, so the padding changes no token's position.
  record_routing (MoE models): also return the experts chosen at every position
  (`GenerationResult.routing`, L_moe · K bytes per token for E <= 256).
  chunk: decode this many tokens between checks of how many rows still generate; once at
  most half do, only those go on, in a smaller batch (`_decode`). Default max(16, M/8);
  0 decodes every row to the end in one loop. Either way the tokens are the same.
  With params spanning several processes, every process must call this with the same
  arguments (the host inputs enter the jitted steps as global values).
  """
  _check_inputs(cfg, prompts, sp, pad_id)
  if record_routing and not cfg.is_moe:
    raise ValueError(f"record_routing needs an MoE model; {cfg.name!r} has no routed experts")
  B, longest = len(prompts), max(len(p) for p in prompts)
  P = (prompt_bucket(longest, cfg.max_position_embeddings - sp.max_new_tokens) if bucket
       else longest)
  tokens = np.full((B, P), pad_id, np.int32)
  segment_ids = np.zeros((B, P), np.int32)
  lengths = np.array([len(p) for p in prompts], np.int32)
  for i, p in enumerate(prompts):
    tokens[i, :len(p)] = p
    segment_ids[i, :len(p)] = 1
  dtype = jnp.dtype(cache_dtype or cfg.dtype).name
  # NumPy inputs: jit treats them as the same global value on every process.
  logits, cache, routing = _prefill(cfg, params, tokens, segment_ids, lengths, dtype,
                                    record_routing)
  seed = np.array([sp.seed & 0xFFFFFFFF, sp.seed >> 32], np.uint32)
  static = dataclasses.replace(sp, seed=0, stop_token_ids=(), stop_sequences=())
  chunk = max(16, sp.max_new_tokens // 8) if chunk is None else chunk
  out, mask, lp_s, lp_m, stopped, routing = _decode(
      cfg, static, params, cache, logits, lengths, seed, _stop_array(sp), np.int32(pad_id),
      routing, chunk)
  return GenerationResult(
      tokens=out, mask=mask, logps_sampling=lp_s, logps_model=lp_m, lengths=mask.sum(axis=1),
      finish_reason=tuple("stop" if s else "length" for s in stopped),
      prompt_index=np.repeat(np.arange(B), sp.n), prompt_len=P, routing=routing)


def generate_text(cfg: ModelConfig, params, tokenizer, prompts: list[str],
                  sp: SamplingParams) -> list[list[str]]:
  """sp.n decoded completions per prompt string.

  Prompts are encoded with a bos; the tokenizer's eos is added to the stop ids. A
  completion is decoded without padding and without the stop token that ended it
  (a matched stop sequence, e.g. "</answer>", is kept: it is part of the text).
  """
  if tokenizer.eos_id not in sp.stop_token_ids:
    sp = dataclasses.replace(sp, stop_token_ids=sp.stop_token_ids + (tokenizer.eos_id,))
  ids = [tokenizer.encode(text, add_bos=True) for text in prompts]
  res = generate(cfg, params, ids, sp, pad_id=tokenizer.pad_id)
  tokens, mask = res.tokens, res.mask.astype(bool)
  texts = []
  for row, reason in enumerate(res.finish_reason):
    kept = tokens[row][mask[row]].tolist()
    if reason == "stop" and kept[-1] in sp.stop_token_ids:
      kept = kept[:-1]
    texts.append(tokenizer.decode(kept))
  return [texts[i * sp.n:(i + 1) * sp.n] for i in range(len(prompts))]
