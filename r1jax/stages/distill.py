"""Distillation (R1 §2.4): a small dense student fine-tuned on the teacher's traces.

DeepSeek-R1 distils its reasoning into Qwen2.5 and Llama models by SFT alone, on the
~800k samples curated in §2.3.3 (reasoning traces rejection-sampled from the RL
checkpoint plus non-reasoning data); the students get no RL. `config.stage = "distill"`
is that SFT (`r1jax.stages.SFTStage`: packed conversations, loss on the assistant turns
only) of a student given as `config.model` (a preset, from scratch) or `config.init_from`
(a Hugging Face checkpoint or an r1jax workdir), plus, beyond the paper, optional logit
distillation against a teacher model:

    L = (1 − α) · CE + α · τ² · KL(p̃ ‖ q)               α = config.distill.kd_weight

averaged over the assistant tokens t the SFT loss trains on, where for each t

    p̃_i = exp(z_i / τ) / Σ_{j ∈ K} exp(z_j / τ),   i ∈ K   the teacher's softmax at
                                                           temperature τ, renormalised
                                                           over its top-k ids K
    log q_i = log_softmax(s / τ)_i                          the student's tempered
                                                           log-probs over its whole
                                                           vocabulary, gathered at K
                                                           (not renormalised)
    KL(p̃ ‖ q) = Σ_{i ∈ K} p̃_i (log p̃_i − log q_i)      forward KL, ≥ 0 since Σ_K q_i ≤ 1

with z the teacher's and s the student's logits. The KL is 0 only when the student puts
all its mass on K, in the teacher's proportions; τ² keeps the gradient's scale
independent of τ (Hinton et al., 2015). α = 0 is the paper's pure SFT, and no teacher is
loaded.

The teacher (`config.distill.teacher`: an r1jax workdir or a Hugging Face checkpoint,
e.g. the DeepSeek-V3-tiny MoE of the RL stages) is frozen and held by the stage, not the
train state: it is never checkpointed (a resumed run loads it again) and the optimizer
never sees it. Each batch's top-k targets are computed outside the train step by one
jitted teacher forward pass, so only [B, T, k] ids and log-probs reach the step, never the
teacher's [B, T, V] logits; the teacher's ids are those below the tokenizer's vocab_size.

Logit distillation compares distributions id by id, so the student and the teacher must
share a tokenizer: `check_same_tokenizer` compares the text every id decodes to and the
special ids, and names the fix. Pure SFT trains on text and works across tokenizers.

Dimension letters: B batch, T tokens per row, V vocabulary, k the teacher's top-k.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from r1jax import checkpoint as ckpt_lib
from r1jax import sft, sharding
from r1jax.models import ModelConfig, forward
from r1jax.stages import SFTStage
from r1jax.tokenizers import load_tokenizer
from r1jax.train import init_weights, model_config, tokenizer_spec

# --------------------------------------------------------------------- the loss (pure)


def teacher_topk(logits_btv: jax.Array, top_k: int,
                 temperature: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The teacher's targets from its logits [B, T, V]: (ids [B, T, k] int32, log p̃ [B, T, k],
  mass [B, T]).

  p̃ is softmax(logits / τ) renormalised over the k largest logits; mass is the share of
  the full tempered softmax those k ids held (how much the truncation dropped).
  """
  z = logits_btv.astype(jnp.float32) / temperature
  top, ids = jax.lax.top_k(z, top_k)
  log_norm = jax.nn.logsumexp(top, axis=-1)
  logp = top - log_norm[..., None]
  mass = jnp.exp(log_norm - jax.nn.logsumexp(z, axis=-1))
  return ids.astype(jnp.int32), logp, mass


def topk_forward_kl(student_logits_btv: jax.Array, teacher_ids: jax.Array,
                    teacher_logp: jax.Array, mask: jax.Array,
                    temperature: float) -> jax.Array:
  """Mean over mask of Σ_{i ∈ K} p̃_i (log p̃_i − log q_i) (see the module docstring).

  student_logits [B, T, V]; teacher_ids, teacher_logp [B, T, k] (from `teacher_topk`);
  mask [B, T] (1 on the tokens that count). Returns a scalar, without the τ² factor.
  The teacher's side is a constant: no gradient reaches the teacher through it.
  """
  logq = jax.nn.log_softmax(student_logits_btv.astype(jnp.float32) / temperature, axis=-1)
  logq_k = jnp.take_along_axis(logq, teacher_ids, axis=-1)
  teacher_logp = jax.lax.stop_gradient(teacher_logp)
  kl_bt = (jnp.exp(teacher_logp) * (teacher_logp - logq_k)).sum(-1)
  mask = mask.astype(jnp.float32)
  return (kl_bt * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def make_teacher_fn(teacher_cfg: ModelConfig, *, top_k: int, temperature: float,
                    vocab_limit: int) -> Callable:
  """teacher_fn(weights, batch) -> {"teacher_ids", "teacher_logp" [B, T−1, k],
  "teacher_topk_mass" [B, T−1]}: the targets for tokens[:, 1:] of a token batch (see
  `r1jax.sft`), from the teacher's logits at ids below `vocab_limit`."""
  if not 1 <= top_k <= vocab_limit:
    raise ValueError(f"config.distill.top_k={top_k} must lie in [1, {vocab_limit}] (the "
                     "tokenizer's vocab_size)")

  def teacher_fn(weights: dict[str, Any], batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    tokens = batch["tokens"]
    logits = forward(teacher_cfg, weights, tokens[:, :-1], positions=batch["positions"][:, :-1],
                     segment_ids=batch["segment_ids"][:, :-1])
    ids, logp, mass = teacher_topk(logits[..., :vocab_limit], top_k, temperature)
    return {"teacher_ids": ids, "teacher_logp": logp, "teacher_topk_mass": mass}

  return teacher_fn


def make_distill_loss(cfg: ModelConfig, *, kd_weight: float, temperature: float) -> Callable:
  """loss_fn(params, batch) -> ((1 − α)·CE + α·τ²·KL, (metrics, model aux)).

  batch: a token batch (see `r1jax.sft`) with the `make_teacher_fn` targets added. CE is
  `r1jax.sft.make_lm_loss`'s masked NLL, and a MoE or MTP student adds its balance and
  MTP losses as there. metrics: nll, token_accuracy, kd_kl (without τ²), kd_agreement
  (student argmax = the teacher's top-1), kd_topk_mass, all over the target tokens.
  """
  if not 0.0 <= kd_weight <= 1.0:
    raise ValueError(f"config.distill.kd_weight={kd_weight} must lie in [0, 1] (0: pure SFT "
                     "on the traces, as in R1)")
  if temperature <= 0:
    raise ValueError(f"config.distill.temperature={temperature} must be > 0")

  def loss_fn(params: dict[str, Any], batch: dict[str, jax.Array]):
    tokens = batch["tokens"]
    logits, aux = forward(cfg, params, tokens[:, :-1], positions=batch["positions"][:, :-1],
                          segment_ids=batch["segment_ids"][:, :-1], return_aux=True)
    mask = batch["loss_mask"][:, 1:].astype(jnp.float32)
    n = jnp.maximum(mask.sum(), 1.0)
    ce, metrics = sft.masked_nll(logits, tokens[:, 1:], mask)
    kl = topk_forward_kl(logits, batch["teacher_ids"], batch["teacher_logp"], mask, temperature)
    agree = (jnp.argmax(logits, -1) == batch["teacher_ids"][..., 0]).astype(jnp.float32)
    metrics.update(kd_kl=kl, kd_agreement=(agree * mask).sum() / n,
                   kd_topk_mass=(batch["teacher_topk_mass"] * mask).sum() / n)
    loss = (1.0 - kd_weight) * ce + kd_weight * temperature**2 * kl
    loss = sft.add_model_losses(cfg, loss, aux, batch, metrics)
    return loss, (metrics, aux)

  return loss_fn


# ------------------------------------------------------------------ tokenizers (host)


def check_same_tokenizer(student, teacher, *, student_name: str, teacher_name: str) -> None:
  """A ValueError, with counts and the fix, unless both tokenizers have the same ids.

  Same ids: equal vocab_size, every id decoding to the same text, and equal bos/eos/pad
  ids (a student trained on the student tokenizer's EOS learns the teacher's only if
  they are one id).
  """
  pieces = [tok.decode_batch([[i] for i in range(tok.vocab_size)], skip_special=False)
            for tok in (student, teacher)]
  shared = min(student.vocab_size, teacher.vocab_size)
  differ = [i for i in range(shared) if pieces[0][i] != pieces[1][i]]
  ids = {k: (getattr(student, f"{k}_id"), getattr(teacher, f"{k}_id"))
         for k in ("bos", "eos", "pad")}
  special = [f"{k} {a} vs {b}" for k, (a, b) in ids.items() if a != b]
  if student.vocab_size == teacher.vocab_size and not differ and not special:
    return
  problems = []
  if student.vocab_size != teacher.vocab_size:
    problems.append(f"the student's tokenizer has {student.vocab_size} ids, the teacher's "
                    f"{teacher.vocab_size}")
  if differ:
    i = differ[0]
    problems.append(f"{len(differ)} of the {shared} ids both have decode to different text "
                    f"(e.g. id {i}: {pieces[0][i]!r} vs {pieces[1][i]!r})")
  if special:
    problems.append("special ids differ (student vs teacher): " + ", ".join(special))
  raise ValueError(
      f"logit distillation compares the student's and the teacher's distributions id by id, "
      f"but student tokenizer {student_name!r} and teacher tokenizer {teacher_name!r} differ: "
      f"{'; '.join(problems)}. Give the student the teacher's tokenizer "
      f"(--config.tokenizer={teacher_name}, with a student whose vocab_size is at least "
      f"{teacher.vocab_size}), or distill by SFT on the text traces alone "
      "(--config.distill.kd_weight=0), which works across tokenizers.")


def _run_config(workdir: str) -> dict[str, Any]:
  """The config an r1jax run in `workdir` was started with, from its latest checkpoint."""
  checkpointer = ckpt_lib.Checkpointer(workdir, async_save=False, create=False)
  try:
    return json.loads(checkpointer.restore_meta().get("config") or "{}")
  finally:
    checkpointer.close()


def teacher_tokenizer_spec(teacher: str, override: str = "") -> str:
  """The tokenizer of `teacher`: `override` if given, else the tokenizer.json next to a
  Hugging Face checkpoint, else the tokenizer the r1jax run in that workdir used."""
  if override:
    return override
  if os.path.isfile(os.path.join(teacher, "tokenizer.json")):
    return teacher
  if os.path.isdir(os.path.join(teacher, "checkpoints")):
    run = _run_config(teacher)
    spec = run.get("tokenizer", "")
    spec = run.get("init_from", "") if spec == "from_checkpoint" else spec
    if spec:
      return spec
  raise ValueError(f"config.distill.teacher={teacher!r} names no tokenizer (no tokenizer.json, "
                   "no r1jax run config that names one); set --config.distill.teacher_tokenizer="
                   "<'r1jax_tiny', a SentencePiece .model file or a tokenizer.json directory>")


# ------------------------------------------------------------------------------ stage


class DistillStage(SFTStage):
  """SFT of a student on teacher traces (R1 §2.4), with optional top-k logit distillation.

  config.data: as `SFTStage` (the traces: e.g. rejection_sample's output JSONL).
  config.distill:
    teacher            an r1jax workdir or a Hugging Face checkpoint dir; needed when
                       kd_weight > 0, unused otherwise
    teacher_tokenizer  "" (the teacher's own: its tokenizer.json, or its run's tokenizer)
                       or a tokenizer spec (`r1jax.tokenizers.load_tokenizer`)
    teacher_overrides  ModelConfig fields for the teacher (e.g. dtype="bfloat16")
    kd_weight          α in [0, 1]: 0 is pure SFT, as in the paper
    top_k              k of the teacher's renormalised top-k targets
    temperature        τ > 0 of both softmaxes
  """

  progress_keys = ("loss", "token_accuracy", "kd_kl")

  def __init__(self, config: ml_collections.ConfigDict, cfg: ModelConfig, tokenizer, mesh):
    dc = config.get("distill")
    if dc is None:
      raise ValueError("config.stage='distill' needs a config.distill block (teacher, kd_weight, "
                       "top_k, temperature); start from configs/distill.py")
    self.kd_weight = float(dc.kd_weight)
    distill_loss = make_distill_loss(cfg, kd_weight=self.kd_weight, temperature=dc.temperature)
    self.teacher = None
    if self.kd_weight:
      teacher_config, teacher_cfg = self._check_teacher(config, tokenizer)
      teacher_fn = make_teacher_fn(teacher_cfg, top_k=dc.top_k, temperature=dc.temperature,
                                   vocab_limit=tokenizer.vocab_size)
    elif dc.get("teacher", ""):
      logging.warning("distill: config.distill.kd_weight=0, so teacher %s is not loaded (pure "
                      "SFT on the traces)", dc.teacher)
    super().__init__(config, cfg, tokenizer, mesh)  # the SFT data, loss and evaluation
    if self.kd_weight:
      self.teacher = init_weights(teacher_config, teacher_cfg, jax.random.key(0), mesh)
      self.loss_fn = distill_loss
      self._eval_distill = jax.jit(distill_loss)
      self._teacher_fn = jax.jit(teacher_fn)

  def _check_teacher(self, config, tokenizer) -> tuple[ml_collections.ConfigDict, ModelConfig]:
    """(the teacher as a config `train.init_weights` reads, its ModelConfig), once its path
    and tokenizer are checked; loads no weights."""
    teacher = config.distill.get("teacher", "")
    if not (teacher and (os.path.isfile(os.path.join(teacher, "config.json"))
                         or os.path.isdir(os.path.join(teacher, "checkpoints")))):
      raise FileNotFoundError(
          f"config.distill.kd_weight={self.kd_weight} needs a teacher, and "
          f"config.distill.teacher={teacher!r} is neither a Hugging Face checkpoint "
          "(config.json) nor an r1jax workdir (checkpoints/); train one first, e.g. `python -m "
          "r1jax.train --config=configs/sft_stage2.py --workdir=workdirs/sft_stage2`, or set "
          "--config.distill.kd_weight=0 for pure SFT")
    teacher_config = ml_collections.ConfigDict(dict(
        model="from_checkpoint", init_from=teacher,
        model_overrides=dict(config.distill.get("teacher_overrides", {}))))
    teacher_cfg = model_config(teacher_config)
    spec = teacher_tokenizer_spec(teacher, config.distill.get("teacher_tokenizer", ""))
    check_same_tokenizer(tokenizer, load_tokenizer(spec), student_name=tokenizer_spec(config),
                         teacher_name=spec)
    if teacher_cfg.vocab_size < tokenizer.vocab_size:
      raise ValueError(f"teacher {teacher!r} has vocab_size {teacher_cfg.vocab_size}, fewer than "
                       f"the tokenizer's {tokenizer.vocab_size} ids")
    return teacher_config, teacher_cfg

  def _with_teacher(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """`batch` (on the mesh) with the teacher's top-k targets added."""
    return dict(batch, **self._teacher_fn(self.teacher, batch))

  def next_batch(self, state, rng):
    batch, host = super().next_batch(state, rng)
    return (self._with_teacher(batch) if self.kd_weight else batch), host

  def evaluate(self, state, rng) -> dict[str, float]:
    """The SFT stage's held-out NLL and token accuracy; with a teacher, also the held-out
    KL to it (`eval/kd_kl`) and how often the student's argmax is its top-1."""
    metrics = super().evaluate(state, rng)
    if not (self.kd_weight and self.eval_batches):
      return metrics
    weights = {"params": state["params"], "buffers": state["buffers"]}
    totals = {"kd_kl": 0.0, "kd_agreement": 0.0}
    count = 0.0
    for batch in self.eval_batches:
      _, (m, _) = self._eval_distill(weights, self._with_teacher(
          sharding.shard_batch(batch, self.mesh)))
      n = float(batch["loss_mask"][:, 1:].sum())
      for k in totals:
        totals[k] += float(m[k]) * n
      count += n
    metrics.update({f"eval/{k}": v / count for k, v in totals.items()})
    return metrics
