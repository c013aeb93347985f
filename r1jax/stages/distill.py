"""Distillation (R1 §2.4): a small dense student fine-tuned on the teacher's traces.

DeepSeek-R1 distils its reasoning into Qwen2.5 and Llama models by SFT alone, on the
~800k samples curated in §2.3.3 (reasoning traces rejection-sampled from the RL
checkpoint plus non-reasoning data); the students get no RL. `config.stage = "distill"`
is that SFT (`r1jax.stages.lm.SFTStage`: packed conversations, loss on the assistant
turns only) of a student given as `config.model` (a preset, from scratch) or
`config.init_from` (a Hugging Face checkpoint or an r1jax workdir), plus, beyond the
paper, optional logit distillation against a teacher model (the loss:
`r1jax.losses.distill`, L = (1 − α) · CE + α · τ² · KL(p̃ ‖ q), α =
config.distill.kd_weight). α = 0 is the paper's pure SFT, and no teacher is loaded.

The teacher (`config.distill.teacher`: an r1jax workdir or a Hugging Face checkpoint,
e.g. the DeepSeek-V3-tiny MoE of the RL stages) is frozen and held by the stage, not the
train state: it is never checkpointed (a resumed run loads it again) and the optimizer
never sees it. Each batch's top-k targets are computed outside the train step by one
jitted teacher forward pass, so only [B, T, k] ids and log-probs reach the step, never the
teacher's [B, T, V] logits; the teacher's ids are those below the tokenizer's vocab_size.

Logit distillation compares distributions id by id, so the student and the teacher must
share a tokenizer: `check_same_tokenizer` compares the text every id decodes to and the
special ids, and names the fix. Pure SFT trains on text and works across tokenizers.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import ml_collections

from r1jax.data.tokenizers import load_tokenizer, tokenizer_spec
from r1jax.losses.distill import make_distill_loss, make_teacher_fn
from r1jax.models import ModelConfig
from r1jax.models.loading import init_weights, model_config
from r1jax.runtime import checkpoint as ckpt_lib
from r1jax.runtime import sharding
from r1jax.stages.lm import SFTStage

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
                       or a tokenizer spec (`r1jax.data.tokenizers.load_tokenizer`)
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
    """(the teacher as a config `init_weights` reads, its ModelConfig), once its path
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
