"""The GRPO stage: rollouts, rewards and advantages outside jit; the loss inside.

One step (R1 §2.2.1): take `rl.prompts_per_step` prompts, sample G =
`rl.num_generations` completions each with the current policy, score them with the
configured rule rewards, normalise rewards within each group into advantages, and
update the policy μ = `rl.num_iterations` times on that rollout with the clipped GRPO
loss (the rollout's log-probs are π_old). The reference policy for the KL term is the
initial policy.

The train batch has one of two layouts (`r1jax.stages.grpo_batch`, config.rl.batch_layout):
a row per completion, [prompt | completion | padding], or a row per prompt,
[prompt | c_1 | ... | c_G], where the prompt runs once for its group. Either way each token
keeps the position it had in the sampler, and padding has segment 0.

Several processes: every process draws the same prompts (same iterators, same seeds),
samples them in one program over the global mesh and gets every completion back
(`generate`), scores its share of each source's completions and gathers everyone's scores
(`distributed.my_share`, `allgather_objects`: the processes divide the reward work, code
execution and reward models included, and all hold the same scores), and builds the same
global batch, of which `shard_batch` places each process's rows. Only process 0 logs
metrics and samples (the train loop's writer).

Prompts and rewards: config.data.train / data.eval (`load_prompts` specs) scored with
config.rl.rewards, or, for all-scenario RL (R1 §2.3.4), a mixture of prompt sources, each
scored with its own rewards: rule rewards for reasoning prompts, reward models for general
ones (the helpfulness model reading only the summary after </think>, the harmlessness
model the whole response):

    config.data.sources = {
        "reasoning": {"spec": "arithmetic:train", "eval": "arithmetic:test", "weight": 3.0,
                      "rewards": {"accuracy": 1.0, "format": 1.0}},
        "general": {"spec": "tiny_general:train", "eval": "tiny_general:test", "weight": 1.0,
                    "rewards": {"helpful": 1.0, "harmless": 1.0}}}
    config.rl.reward_models = {
        "helpful": {"path": "workdirs/reward_model", "view": "summary"},
        "harmless": {"path": "workdirs/reward_model", "view": "full"}}

A source has `spec` (prompts; a conversation set such as tiny_general gives general
prompts, see r1jax.data.datasets), `weight` (> 0: its share of each step's prompts),
`rewards` (name -> weight; rule rewards and the names of config.rl.reward_models, scored
as σ(logit), see rewards.load_reward_models) and optionally `eval` (a spec; none by
default), `template`, `instruction` and `num_train` (default: config.data's). Sources
are interleaved by weight (`MixtureIterator`, resumable). A prompt's G completions are
its group, so groups never mix sources and advantages compare completions scored alike.
Metrics: reward/mean and reward/std over the step, reward/<reward> over the completions
that reward scored, reward/<source>/mean and reward/<source>/<reward> per source, and
eval/<reward>, eval/<source>/... likewise. config.rl.reward_models also serves the
single-source form: `rl.rewards = {"accuracy": 1.0, "helpful": 0.5}`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from math import isfinite

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from r1jax import rewards as rewards_lib
from r1jax.rewards import code as code_lib, code_cases
from r1jax.data.datasets import MixtureIterator, PromptIterator, load_prompts
from r1jax.data.templates import PromptFormat, prompt_format
from r1jax.losses import grpo
from r1jax.models import ModelConfig
from r1jax.models.partitioning import check_divisibility
from r1jax.runtime import checkpoint as ckpt_lib
from r1jax.runtime import distributed, sharding
from r1jax.sampling import GenerationResult, SamplingParams, generate, prompt_bucket
from r1jax.stages.base import Stage
from r1jax.stages.grpo_batch import batch_layout, pack_groups, pack_rollout

LONG_PROMPTS = ("skip", "truncate")  # config.rl.long_prompts
SOURCE_KEYS = ("spec", "weight", "rewards", "eval", "template", "instruction", "num_train")


@dataclasses.dataclass(frozen=True)
class Source:
  """A prompt source: its train and eval records and how they are prompted and scored."""
  train: list[dict]
  eval: list[dict]
  rewards: dict[str, float]  # reward name -> weight
  format: PromptFormat  # how its records become prompts (config.data.template)
  instruction: str = ""
  weight: float = 1.0  # share of the step's prompts


def _checked_rewards(key: str, specs, reward_fns, *record_sets: list[dict]) -> dict[str, float]:
  """rewards.check_specs of `specs`, against the fields of each record set's first record
  (the refs are every field but the question), errors prefixed by the config `key`."""
  firsts = [set(records[0]) - {"question"} for records in record_sets if records]
  try:
    checked = rewards_lib.check_specs(dict(specs), reward_fns,
                                      fields=set.intersection(*firsts) if firsts else None)
    if "code" in checked:  # every problem's tests parse (asserts the caller can judge)
      for records in record_sets:
        for i, record in enumerate(records):
          try:
            code_cases.parse_tests(record["tests"])
          except ValueError as e:
            raise ValueError(f"the tests of record {i} ({record['question'][:60]!r}): {e}"
                             ) from None
    return checked
  except ValueError as e:
    raise ValueError(f"{key}: {e}") from None


def _code_reward(rl: ml_collections.ConfigDict):
  """The code reward for this run, after saying which sandbox layers this machine gives;
  refused where programs would not be contained, unless rl.allow_unsandboxed_code."""
  allow = bool(rl.get("allow_unsandboxed_code", False))
  layers = code_lib.sandbox_layers()
  active = ", ".join(k for k, v in layers.items() if v is True) or "none"
  logging.info("code reward sandbox: %s (landlock ABI %d)", active, layers["landlock_abi"])
  if not layers["contained"] and not allow:
    raise ValueError("config.rl.rewards uses 'code', but this machine gives the code sandbox "
                     f"neither namespaces nor Landlock with seccomp ({layers}); set "
                     "config.rl.allow_unsandboxed_code=True to accept running the policy's "
                     "programs nearly unconfined")
  return code_lib.make_code_reward(allow_unsandboxed=allow)


def _format(key: str, template: str, tokenizer, record: dict, instruction: str) -> PromptFormat:
  """The PromptFormat of `template`, checked on a record; errors prefixed by `key`."""
  try:
    fmt = prompt_format(template, tokenizer)
    fmt.record(record, instruction)
    return fmt
  except ValueError as e:
    raise ValueError(f"{key}: {e}") from None


def _source(key: str, src, config: ml_collections.ConfigDict, reward_fns, tokenizer) -> Source:
  """config.data.sources.<name> (`src`, at config key `key`), loaded and checked."""
  d = config.data
  if not isinstance(src, ml_collections.ConfigDict):
    raise ValueError(f"{key} is {src!r}; give a dict with keys 'spec', 'weight', 'rewards'")
  unknown = sorted(set(src.keys()) - set(SOURCE_KEYS))
  missing = [k for k in SOURCE_KEYS[:3] if k not in src]
  if unknown or missing:
    what = f"lacks {missing}" if missing else f"has unknown key(s) {unknown}"
    raise ValueError(f"{key} {what}; a source has {list(SOURCE_KEYS[:3])} and optionally "
                     f"{list(SOURCE_KEYS[3:])}")
  w = src.weight
  if not isinstance(w, (int, float)) or isinstance(w, bool) or not isfinite(w) or w <= 0:
    raise ValueError(f"{key}.weight={w!r}: use a number > 0, the source's share of the prompts")
  train = load_prompts(src.spec, limit=src.get("num_train", d.get("num_train")),
                       seed=config.seed)
  if not train:
    raise ValueError(f"{key}.spec={src.spec!r} holds no prompts")
  evals = load_prompts(src.eval, limit=d.num_eval, seed=config.seed) if src.get("eval") else []
  instruction = src.get("instruction", d.get("instruction", ""))
  fmt = _format(key, src.get("template", d.get("template", "")), tokenizer, train[0], instruction)
  return Source(train=train, eval=evals, format=fmt, instruction=instruction,
                rewards=_checked_rewards(f"{key}.rewards", src.rewards, reward_fns, train, evals),
                weight=float(w))


def load_sources(config: ml_collections.ConfigDict, reward_fns, tokenizer) -> dict[str, Source]:
  """The prompt sources of `config`, by name (see the module docstring): config.data.sources,
  or the single source "" of data.train, data.eval and rl.rewards. Checked here: names,
  weights, templates, and that every reward exists and finds the dataset fields it needs."""
  d, rl, seed = config.data, config.rl, config.seed
  if "sources" not in d:
    train = load_prompts(d.train, limit=d.get("num_train"), seed=seed)
    evals = load_prompts(d.eval, limit=d.num_eval, seed=seed)
    instruction = d.get("instruction", "")
    return {"": Source(train=train, eval=evals,
                       format=_format("config.data", d.template, tokenizer, train[0], instruction),
                       rewards=_checked_rewards("config.rl.rewards", rl.rewards, reward_fns,
                                                train, evals),
                       instruction=instruction)}
  replaced = [k for k, there in (("data.train", "train" in d), ("data.eval", "eval" in d),
                                  ("rl.rewards", "rewards" in rl)) if there]
  if replaced:
    raise ValueError(f"config.data.sources replaces {', '.join(replaced)}: each source has "
                     "its own spec, eval and rewards; remove them from the config")
  if not d.sources:
    raise ValueError("config.data.sources is empty; give name -> {'spec', 'weight', "
                     "'rewards'}, or leave it out and set data.train and rl.rewards")
  sources = {}
  for name in sorted(d.sources):
    key = f"config.data.sources.{name}"
    if not name.isidentifier() or name == "errors":
      raise ValueError(f"{key}: a source's name must be an identifier other than 'errors' "
                       "(it names metrics: reward/<source>/<reward>)")
    sources[name] = _source(key, d.sources[name], config, reward_fns, tokenizer)
  return sources


@dataclasses.dataclass(frozen=True)
class Rollout:
  """Completions of B prompts × n, scored: what `GRPOStage._rollout` returns."""
  prompts: list[list[int]]  # B prompts' token ids
  result: GenerationResult  # the sampler's [B·n, M] arrays
  texts: list[str]  # B·n decoded completions
  rewards: np.ndarray  # [B·n] weighted totals
  scored: dict  # source -> (its rows, their `rewards.score` parts)
  seconds: dict[str, float]  # {"rollout": sampling and decoding, "reward": scoring}


def _concat_parts(parts: list[dict]) -> dict[str, list[float] | float]:
  """The parts of `rewards.score` over several sets of completions, as one call over all
  of them would give: each reward's values concatenated, its failures summed."""
  out: dict[str, list[float] | float] = {}
  for p in parts:
    for k, v in p.items():
      if k.startswith("errors/"):
        out[k] = out.get(k, 0.0) + v
      else:
        out.setdefault(k, []).extend(v)
  return out


def _merge_parts(parts: list[dict]) -> dict[str, float]:
  """One reward's mean over every completion it scored, its failures summed, from the
  parts of `rewards.score` for several sources."""
  return {k: v if k.startswith("errors/") else float(np.mean(v))
          for k, v in _concat_parts(parts).items()}


class GRPOStage(Stage):
  """Batches from rollouts; `loss_fn` is the GRPO objective over them."""

  progress_keys = ("reward/mean", "reward/accuracy", "eval/accuracy", "mismatch/logp_diff_mean")

  def __init__(self, config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
    self.config, self.cfg, self.tokenizer, self.mesh = config, cfg, tokenizer, mesh
    rl, d = config.rl, config.data
    if rl.num_generations < 2:
      raise ValueError(f"config.rl.num_generations={rl.num_generations}: GRPO needs at least 2 "
                       "completions per prompt for a group baseline")
    self.G = rl.num_generations
    check_divisibility(cfg, mesh)
    ckpt_lib.check_init_from(config.get("init_from", ""))  # before loading rewards
    self.reward_fns = rewards_lib.load_reward_models(rl.get("reward_models", {}))
    self.sources = load_sources(config, self.reward_fns, tokenizer)
    if any("code" in src.rewards for src in self.sources.values()):
      self.reward_fns = {**self.reward_fns, "code": _code_reward(rl)}
    self.max_prompt_len = rl.get("max_prompt_len", 0)
    self.long_prompts = rl.get("long_prompts", "skip")
    if self.long_prompts not in LONG_PROMPTS:
      raise ValueError(f"config.rl.long_prompts={self.long_prompts!r}; use one of {LONG_PROMPTS}")
    if self.max_prompt_len and self.long_prompts == "skip":
      self.sources = {name: self._without_long_prompts(name, src)
                      for name, src in self.sources.items()}
    self.layout = batch_layout(config, cfg, mesh, self._typical_prompt_len())
    check_divisibility(cfg, mesh, batch_size=rl.prompts_per_step * (
        1 if self.layout == "groups" else self.G))
    logging.info("grpo: training on %s (config.rl.batch_layout=%r)", {
        "groups": "one [prompt | G completions] row per prompt",
        "rows": "one [prompt | completion] row per completion"}[self.layout],
        rl.get("batch_layout", "auto"))
    self.mixture = "sources" in d
    if self.mixture:
      self.train_iter = MixtureIterator({k: s.train for k, s in self.sources.items()},
                                        {k: s.weight for k, s in self.sources.items()},
                                        rl.prompts_per_step, seed=config.seed)
    else:
      self.train_iter = PromptIterator(self.sources[""].train, rl.prompts_per_step,
                                       seed=config.seed)
    self.updates_per_batch = rl.num_iterations
    preset = grpo.LOSS_PRESETS[rl.loss]
    self.adv_scale = preset["advantages"]["scale"]
    self.loss_kwargs = dict(preset["loss"], beta=rl.beta)
    for k in ("epsilon", "epsilon_high"):
      if rl.get(k) is not None:
        self.loss_kwargs[k] = rl[k]
    if self.loss_kwargs.get("agg") == "seq-mean-token-sum-norm":
      self.loss_kwargs["max_len"] = rl.max_new_tokens
    stop_ids = tuple(tokenizer.encode(s) for s in rl.stop_strings)
    self.sampling = dict(max_new_tokens=rl.max_new_tokens, temperature=rl.temperature,
                         top_p=rl.top_p, top_k=rl.top_k, vocab_limit=tokenizer.vocab_size,
                         stop_token_ids=() if rl.get("ignore_eos") else tuple(dict.fromkeys(
                             i for src in self.sources.values()  # eos, chat end-of-turn ids
                             for i in src.format.stop_ids(tokenizer))),
                         stop_sequences=stop_ids)
    chunk = rl.get("logprob_chunk", 0)
    # The trainer scores logits / T, the sampler's distribution (greedy rollouts: T = 1).
    T = rl.temperature or 1.0
    self.old_source = rl.get("old_logps", "sampler")
    replay = rl.get("routing_replay", False)
    if replay and not cfg.is_moe:
      raise ValueError(f"config.rl.routing_replay=True needs an MoE model; {cfg.name!r} has "
                       "no routed experts")
    # MoE rollouts record their experts (L_moe · K bytes per token): for mismatch/
    # routing_diff, and for the replay
    self.record_routing = cfg.is_moe
    self.loss_fn = grpo.make_grpo_loss(
        cfg, logprob_chunk=chunk, temperature=T, old_logps=self.old_source,
        tis_cap=rl.get("tis_cap", 0.0), tis_level=rl.get("tis_level", "token"),
        routing_replay=replay, window=rl.max_new_tokens, **self.loss_kwargs)

    def logps(weights, batch):  # the reference's, or π_old from the trainer when μ > 1
      return grpo.token_logps(cfg, weights, batch, chunk, T, routing_replay=replay,
                              window=rl.max_new_tokens)[0]

    self._logps = jax.jit(logps)
    self._samples: list[str] = []

  def extra_state(self, weights) -> dict:
    # The reference policy is the initial one: frozen weights, no optimizer state.
    # A copy: the train step donates the policy's buffers, which must not alias these.
    return {"ref_params": jax.tree.map(jnp.copy, weights)} if self.config.rl.beta else {}

  def begin_step(self, state):
    """Every `rl.ref_update_every` steps (0: never) the reference becomes the policy."""
    every, step = self.config.rl.get("ref_update_every", 0), int(state["step"])
    if self.config.rl.beta and every and step and step % every == 0:
      weights = {"params": state["params"], "buffers": state["buffers"]}
      state = dict(state, ref_params=jax.tree.map(jnp.copy, weights))
    return state

  def _encode(self, fmt: PromptFormat, text: str) -> list[int]:
    """A prompt's ids; with rl.long_prompts="truncate", cut to rl.max_prompt_len from the
    left after the BOS (the question's end, where the generation prompt is, stays)."""
    ids = fmt.encode(self.tokenizer, text)
    if self.max_prompt_len and len(ids) > self.max_prompt_len:
      ids = ids[:1] + ids[len(ids) - self.max_prompt_len + 1:]
    return ids

  def _typical_prompt_len(self, sample: int = 256) -> int:
    """The prompt bucket of the longest of the first `sample` training prompts of every
    source: an upper estimate of what a step pads its prompts to (`batch_layout`'s P;
    r1jax.plan measures its P the same way, from the prompt set of config.data)."""
    longest = max((len(self._encode(src.format, src.format.record(r, src.instruction)))
                   for src in self.sources.values() for r in src.train[:sample]), default=1)
    return prompt_bucket(longest, self.cfg.max_position_embeddings - self.config.rl.max_new_tokens)

  def _without_long_prompts(self, name: str, src: Source) -> Source:
    """`src` without the records whose prompts exceed rl.max_prompt_len (counted, logged)."""
    def short(records):
      fmt = src.format
      return [r for r in records if len(fmt.encode(
          self.tokenizer, fmt.record(r, src.instruction))) <= self.max_prompt_len]

    train, evals = short(src.train), short(src.eval)
    dropped = len(src.train) - len(train), len(src.eval) - len(evals)
    key = f"config.data.sources.{name}" if name else "config.data"
    for what, kept, records in (("training", train, src.train), ("held-out", evals, src.eval)):
      if records and not kept:
        raise ValueError(f"{key}: every one of the {len(records)} {what} prompts is longer than "
                         f"config.rl.max_prompt_len={self.max_prompt_len} tokens; raise it or "
                         "set config.rl.long_prompts='truncate'")
    if any(dropped):
      logging.warning("grpo%s: skipped %d of %d training and %d of %d held-out prompts longer "
                      "than rl.max_prompt_len=%d tokens (rl.long_prompts='skip')",
                      f" source {name}" if name else "", dropped[0], len(src.train), dropped[1],
                      len(src.eval), self.max_prompt_len)
    return dataclasses.replace(src, train=train, eval=evals)

  def _rollout(self, params, items: list[tuple[str, dict]], n: int, seed: int,
               record_routing: bool = False, **overrides) -> Rollout:
    """`n` completions for each (source, record) of `items`, scored with the source's
    rewards (with record_routing, the MoE experts of every token too)."""
    t0 = time.perf_counter()
    texts_in = [self.sources[src].format.record(r, self.sources[src].instruction)
                for src, r in items]
    prompts = [self._encode(self.sources[src].format, t) for (src, _), t in zip(items, texts_in)]
    sp = SamplingParams(**dict(self.sampling, n=n, seed=seed, **overrides))
    result = generate(self.cfg, params, prompts, sp, pad_id=self.tokenizer.pad_id,
                      record_routing=record_routing)
    texts = [self.tokenizer.decode(t[m.astype(bool)].tolist(), skip_special=False)
             for t, m in zip(result.tokens, result.mask)]
    t1 = time.perf_counter()
    rows_of, mine = {}, {}
    for name in dict.fromkeys(src for src, _ in items):  # in order of appearance
      rows_of[name] = [i * n + j for i, (src, _) in enumerate(items) if src == name
                       for j in range(n)]
      rows = rows_of[name][distributed.my_share(len(rows_of[name]))]
      if rows:
        # rewards may read the template: each completion comes with its prompt's text
        records = [items[i // n][1] for i in rows]
        refs = {k: [r.get(k) for r in records] for k in records[0] if k != "question"}
        mine[name] = rewards_lib.score(
            self.sources[name].rewards, [texts_in[i // n] for i in rows],
            [texts[i] for i in rows], reward_fns=self.reward_fns, **refs)
    shares = distributed.allgather_objects(mine)  # in process order: each source's rows
    total = np.zeros(len(texts), np.float32)
    scored = {}
    for name, rows in rows_of.items():
      done = [share[name] for share in shares if name in share]
      total[rows] = [v for values, _ in done for v in values]
      scored[name] = (rows, _concat_parts([parts for _, parts in done]))
    return Rollout(prompts, result, texts, total, scored,
                   {"rollout": t1 - t0, "reward": time.perf_counter() - t1})

  def _metrics(self, prefix: str, scored: dict, rewards: np.ndarray) -> dict[str, float]:
    """{prefix}/<reward> over every completion it scored (failures summed), and for a
    mixture {prefix}/<source>/mean and {prefix}/<source>/<reward> per source."""
    metrics = {f"{prefix}/{k}": v for k, v in _merge_parts([p for _, p in scored.values()]).items()}
    if self.mixture:
      for name, (rows, parts) in scored.items():
        metrics[f"{prefix}/{name}/mean"] = float(rewards[rows].mean())
        metrics.update({f"{prefix}/{name}/{k}": float(np.mean(v)) for k, v in parts.items()
                        if not k.startswith("errors/")})
    return metrics

  def next_batch(self, state, rng):
    del rng
    drawn = next(self.train_iter)
    items = drawn if self.mixture else [("", r) for r in drawn]
    params = {"params": state["params"], "buffers": state["buffers"]}
    seed = self.config.seed * 1_000_003 + int(state["step"])
    rollout = self._rollout(params, items, self.G, seed, record_routing=self.record_routing)
    result, rewards, texts = rollout.result, rollout.rewards, rollout.texts
    adv = grpo.group_advantages(jnp.asarray(rewards), self.G, scale=self.adv_scale)
    mask = result.mask
    P = result.prompt_len
    if self.layout == "groups":
      batch = pack_groups(rollout.prompts, result.tokens, mask, self.tokenizer.pad_id, P,
                          logps=result.logps_model, routing=result.routing)
      adv = np.asarray(adv).reshape(-1, self.G)
    else:
      batch = pack_rollout(rollout.prompts, result.tokens, mask, self.G, self.tokenizer.pad_id,
                           P, logps=result.logps_model, routing=result.routing)
    batch["advantages"] = np.asarray(adv, np.float32)
    batch = sharding.shard_batch(batch, self.mesh)
    t0 = time.perf_counter()
    if self.config.rl.beta:
      batch["ref_logps"] = jax.block_until_ready(self._logps(state["ref_params"], batch))
    if self.old_source == "trainer" and self.updates_per_batch > 1:
      # π_old for μ updates: the trainer's log-probs before the first (at μ = 1 the loss
      # takes its own, stop-gradient, with no extra pass)
      batch["old_logps"] = jax.block_until_ready(self._logps(params, batch))
    logprob_s = time.perf_counter() - t0

    lengths = mask.sum(1)
    generated = float(lengths.sum())
    metrics = {"reward/mean": float(rewards.mean()), "reward/std": float(rewards.std()),
               "completion/mean_length": float(lengths.mean()),
               "completion/truncated_fraction": float(np.mean(
                   [r == "length" for r in result.finish_reason])),
               "groups/zero_variance_fraction": float(np.mean(
                   np.asarray(grpo.zero_variance_groups(jnp.asarray(rewards), self.G)))),
               "time/rollout_s": rollout.seconds["rollout"],
               "time/reward_s": rollout.seconds["reward"], "time/logprob_s": logprob_s,
               "time/tokens_per_s": generated / rollout.seconds["rollout"],
               # decode steps run until the longest row stops: the rest of each row is waste
               "rollout/padding_fraction": 1.0 - generated / (lengths.size * max(lengths.max(), 1)),
               "rollout/prompt_len": float(P),
               # what the update and the reference feed the model, padding included
               "batch/tokens": float(np.size(batch["tokens"])),
               "rollout/longest_prompt": float(max(map(len, rollout.prompts)))}
    metrics.update(self._metrics("reward", rollout.scored, rewards))
    src, first = items[0]
    about = (f"[{src}] " if self.mixture else "") + first["question"] + " ("
    about += f"gold {first['answer']}; " if "answer" in first else ""
    self._samples = [f"{about}reward {rewards[i]:.2f})\n{texts[i]}"
                     for i in range(min(2, len(texts)))]
    return batch, metrics

  def evaluate(self, state, rng) -> dict[str, float]:
    """One completion per held-out prompt of every source (config.eval's sampling)."""
    del rng
    e = self.config.eval
    items = [(name, r) for name, s in self.sources.items() for r in s.eval]
    if not items:
      return {}
    params = {"params": state["params"], "buffers": state["buffers"]}
    rollout = self._rollout(params, items, 1, self.config.seed, temperature=e.temperature,
                            top_p=e.top_p)
    return self._metrics("eval", rollout.scored, rollout.rewards)

  def samples(self) -> list[str]:
    return self._samples
