"""The GRPO stage: rollouts, rewards and advantages outside jit; the loss inside.

One step (R1 §2.2.1): take `rl.prompts_per_step` prompts, sample G =
`rl.num_generations` completions each with the current policy, score them with the
configured rule rewards, normalise rewards within each group into advantages, and
update the policy μ = `rl.num_iterations` times on that rollout with the clipped GRPO
loss (the rollout's log-probs are π_old). The reference policy for the KL term is the
initial policy.

Rows of the train batch are [prompt (left-padded) | completion (right-padded)]; a token's
position is its column and padding has segment 0, as in the sampler.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from r1jax import sharding
from r1jax.data.datasets import PromptIterator, load_prompts
from r1jax.models import ModelConfig, forward
from r1jax.rl import grpo
from r1jax.rl import rewards as rewards_lib
from r1jax.rl.templates import r1_chat_prompt, r1_zero_prompt
from r1jax.sampling import SamplingParams, generate
from r1jax.stages import Stage


def prompt_text(template: str, question: str, instruction: str = "") -> str:
  """The prompt for `question`: the R1-Zero template (R1 Table 1), DeepSeek-R1's chat
  format ending in "<｜Assistant｜><think>\n" (for R1 and its distilled students; without
  the BOS string, which the tokenizer adds as its id, as SFT does), or the bare question.
  `instruction` is appended to the question, e.g. "Please reason step by step, and put
  your final answer within \\boxed{}." as DeepSeek recommends."""
  question = f"{question} {instruction}".strip() if instruction else question
  if template == "r1_zero":
    return r1_zero_prompt(question)
  if template == "r1_chat":  # the tokenizer adds BOS as its id: encode with add_bos=True
    return r1_chat_prompt([{"role": "user", "content": question}], bos="")
  if template == "none":
    return question
  raise ValueError(f"unknown config.data.template={template!r}; one of 'r1_zero', 'r1_chat', "
                   "'none'")


def pack_rollout(prompts: list[list[int]], completions: np.ndarray, completion_mask: np.ndarray,
                 group_size: int, pad_id: int) -> dict[str, np.ndarray]:
  """[prompt | completion] rows for B prompts × G completions.

  prompts: B token lists; completions, completion_mask: [B·G, C] -> tokens, positions,
  segment_ids, completion_mask: [B·G, P + C] with P the longest prompt.
  """
  P = max(len(p) for p in prompts)
  BG, C = completions.shape
  tokens = np.full((BG, P + C), pad_id, np.int32)
  segment_ids = np.zeros((BG, P + C), np.int32)
  mask = np.zeros((BG, P + C), np.int32)
  for row in range(BG):
    p = prompts[row // group_size]
    tokens[row, P - len(p):P] = p
    segment_ids[row, P - len(p):P] = 1
    tokens[row, P:] = np.where(completion_mask[row], completions[row], pad_id)
    segment_ids[row, P:] = completion_mask[row]
    mask[row, P:] = completion_mask[row]
  positions = np.broadcast_to(np.arange(P + C, dtype=np.int32), (BG, P + C)).copy()
  return {"tokens": tokens, "positions": positions, "segment_ids": segment_ids,
          "completion_mask": mask}


def token_logps(cfg: ModelConfig, params, batch) -> tuple[jax.Array, dict]:
  """log π(token_t | tokens_<t) for t ≥ 1: [B, L-1] float32 (column t-1 holds token t),
  and the model's aux (expert loads for the router-bias update, balance loss)."""
  logits, aux = forward(cfg, params, batch["tokens"][:, :-1], positions=batch["positions"][:, :-1],
                        segment_ids=batch["segment_ids"][:, :-1], return_aux=True)
  return grpo.sequence_logps(logits, batch["tokens"][:, 1:]), aux


class GRPOStage(Stage):
  """Batches from rollouts; `loss_fn` is the GRPO objective over them."""

  progress_keys = ("reward/mean", "reward/accuracy", "eval/accuracy")

  def __init__(self, config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
    self.config, self.cfg, self.tokenizer, self.mesh = config, cfg, tokenizer, mesh
    rl, d = config.rl, config.data
    if rl.num_generations < 2:
      raise ValueError(f"config.rl.num_generations={rl.num_generations}: GRPO needs at least 2 "
                       "completions per prompt for a group baseline")
    self.G = rl.num_generations
    sharding.check_divisibility(cfg, mesh, batch_size=rl.prompts_per_step * self.G)
    self.train_iter = PromptIterator(load_prompts(d.train, limit=d.get("num_train"), seed=config.seed),
                                     rl.prompts_per_step, seed=config.seed)
    self.eval_records = load_prompts(d.eval, limit=d.num_eval, seed=config.seed)
    self.reward_weights = dict(rl.rewards)
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
                         stop_token_ids=(tokenizer.eos_id,),
                         stop_sequences=stop_ids)
    self._ref_logps = jax.jit(lambda p, b: token_logps(cfg, p, b)[0])
    self._samples: list[str] = []

  # ---------------------------------------------------------------- the loss (jitted)

  def loss_fn(self, params, batch):
    logps, aux = token_logps(self.cfg, params, batch)
    mask = batch["completion_mask"][:, 1:]
    ref = batch.get("ref_logps")
    loss, metrics = grpo.policy_loss(logps, batch["old_logps"], ref, batch["advantages"], mask,
                                     **self.loss_kwargs)
    if "balance_loss" in aux:
      loss = loss + aux["balance_loss"]
    return loss, (metrics, aux)

  # ---------------------------------------------------------------- host side

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

  def _rollout(self, params, records, n: int, seed: int, **overrides):
    d = self.config.data
    texts_in = [prompt_text(d.template, r["question"], d.get("instruction", "")) for r in records]
    prompts = [self.tokenizer.encode(t, add_bos=True) for t in texts_in]
    sp = SamplingParams(**dict(self.sampling, n=n, seed=seed, **overrides))
    result = generate(self.cfg, params, prompts, sp, pad_id=self.tokenizer.pad_id)
    tokens, mask = np.asarray(result.tokens), np.asarray(result.mask)
    texts = [self.tokenizer.decode(t[m.astype(bool)].tolist(), skip_special=False)
             for t, m in zip(tokens, mask)]
    refs = {k: [r.get(k) for r in records for _ in range(n)] for k in records[0] if k != "question"}
    prompt_texts = [t for t in texts_in for _ in range(n)]  # rewards may read the template
    total, parts = rewards_lib.score(self.reward_weights, prompt_texts, texts, **refs)
    return prompts, result, texts, np.asarray(total, np.float32), parts

  def next_batch(self, state, rng):
    del rng
    records = next(self.train_iter)
    params = {"params": state["params"], "buffers": state["buffers"]}
    seed = self.config.seed * 1_000_003 + int(state["step"])
    prompts, result, texts, rewards, parts = self._rollout(params, records, self.G, seed)
    adv = grpo.group_advantages(jnp.asarray(rewards), self.G, scale=self.adv_scale)
    mask = np.asarray(result.mask)
    batch = pack_rollout(prompts, np.asarray(result.tokens), mask, self.G, self.tokenizer.pad_id)
    P = batch["tokens"].shape[1] - mask.shape[1]
    old = np.zeros(batch["tokens"].shape, np.float32)
    old[:, P:] = np.asarray(result.logps_model) * mask
    batch["old_logps"] = old[:, 1:]
    batch["advantages"] = np.asarray(adv, np.float32)
    batch = sharding.shard_batch(batch, self.mesh)
    if self.config.rl.beta:
      batch["ref_logps"] = self._ref_logps(state["ref_params"], batch)

    lengths = mask.sum(1)
    metrics = {"reward/mean": float(rewards.mean()), "reward/std": float(rewards.std()),
               "completion/mean_length": float(lengths.mean()),
               "completion/truncated_fraction": float(np.mean(
                   [r == "length" for r in result.finish_reason])),
               "groups/zero_variance_fraction": float(np.mean(
                   np.asarray(grpo.zero_variance_groups(jnp.asarray(rewards), self.G))))}
    metrics.update({f"reward/{k}": float(np.mean(v)) for k, v in parts.items()})
    self._samples = [f"{records[0]['question']} (gold {records[0]['answer']}; reward "
                     f"{rewards[i]:.2f})\n{texts[i]}" for i in range(min(2, len(texts)))]
    return batch, metrics

  def evaluate(self, state, rng) -> dict[str, float]:
    del rng
    e = self.config.eval
    params = {"params": state["params"], "buffers": state["buffers"]}
    _, _, _, _, parts = self._rollout(params, self.eval_records, 1, self.config.seed,
                                      temperature=e.temperature, top_p=e.top_p)
    return {f"eval/{k}": float(np.mean(v)) for k, v in parts.items()}

  def samples(self) -> list[str]:
    return self._samples
