"""A trained reward model as a GRPO reward: `load_reward_model(workdir)` -> fn(prompts,
completions) -> scores (R1 §2.3.4: helpfulness on the summary, harmlessness on the whole
response).

The weights are those of a `config.stage = "reward_model"` run (`r1jax.stages.reward_model`);
each (prompt, completion) is encoded as in training (`r1jax.data.preferences.encode`) and
scored by `r1jax.models.reward_model.rewards`. GRPO loads them by name through
config.rl.reward_models (`r1jax.rewards.load_reward_models`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Sequence

import jax
import numpy as np

from r1jax.data.preferences import encode, fit, sequence_batch, summary
from r1jax.data.tokenizers import load_tokenizer
from r1jax.models import ModelConfig, init_params
from r1jax.models.loading import model_config_from_dict
from r1jax.models.reward_model import HEAD, init_head, rewards
from r1jax.runtime import checkpoint as ckpt_lib


def _resolve_workdir(path: str) -> tuple[str, int | None]:
  """(workdir, step) for a workdir, its checkpoints/ folder, or checkpoints/<step>."""
  path = os.path.abspath(path)
  base, parent = os.path.basename(path), os.path.dirname(path)
  if base.isdigit() and os.path.basename(parent) == "checkpoints":
    return os.path.dirname(parent), int(base)
  if base == "checkpoints":
    return parent, None
  return path, None


def restore_reward_weights(workdir: str, *, step: int | None = None
                           ) -> tuple[ModelConfig, dict, dict]:
  """(model config, reward-model weights {"params" (with "reward_head"), "buffers"}, the
  run's config as a dict) of a reward_model run's checkpoint (default: the latest)."""
  c = ckpt_lib.Checkpointer(workdir, async_save=False, create=False)
  try:
    try:
      meta = c.restore_meta(step)
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{workdir} holds no r1jax checkpoints; pass the workdir of a "
                              "config.stage='reward_model' run") from e
    cfg = model_config_from_dict(meta["model"])
    run_config = json.loads(meta.get("config") or "{}")
    if run_config.get("stage", "reward_model") != "reward_model":
      raise ValueError(f"{workdir} is a {run_config['stage']!r} run, not a reward model; "
                       "pass the workdir of a config.stage='reward_model' run")
    target = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    target["params"][HEAD] = jax.eval_shape(lambda: init_head(cfg))
    return cfg, c.restore_weights(ckpt_lib.on_local_device(target), step), run_config
  finally:
    c.close()


@dataclasses.dataclass(frozen=True)
class RewardModelFn:
  """`fn(prompts, completions, **_) -> list[float]`: a trained reward model's scores.

  Made by `load_reward_model`. `dataclasses.replace(fn, score_only_summary=...)` gives the
  other view of the same weights (R1 §2.3.4 scores helpfulness on the summary and
  harmlessness on the whole response) without loading them again.
  """
  cfg: ModelConfig
  weights: dict
  tokenizer: Any
  score_only_summary: bool
  max_len: int
  batch_size: int
  score: Callable = dataclasses.field(repr=False)  # jitted (weights, batch) -> [batch] logits

  def __call__(self, prompts: Sequence[str], completions: Sequence[str], **_) -> list[float]:
    if len(prompts) != len(completions):
      raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    texts = [summary(c) for c in completions] if self.score_only_summary else list(completions)
    seqs = [fit(encode(self.tokenizer, p, c), self.max_len) for p, c in zip(prompts, texts)]
    out: list[float] = []
    # Outside any caller's mesh (the train loop makes rollouts under the policy's): the
    # weights sit on one device, and a multi-device mesh would reject them.
    with jax.set_mesh(None):
      for i in range(0, len(seqs), self.batch_size):
        chunk = seqs[i:i + self.batch_size]
        length = min(-(-max(map(len, chunk)) // 64) * 64, max(self.max_len, 1))
        length = max(length, max(map(len, chunk)))
        r = self.score(self.weights, sequence_batch(chunk, length, self.tokenizer.pad_id,
                                                    self.batch_size))
        out += [float(v) for v in np.asarray(r)[:len(chunk)]]
    return out


def load_reward_model(path: str, *, step: int | None = None,
                      score_only_summary: bool | None = None,
                      tokenizer=None, batch_size: int = 32,
                      max_len: int | None = None) -> RewardModelFn:
  """A reward function `fn(prompts, completions, **_) -> list[float]` from a reward_model run.

  path: its workdir (or checkpoints/ or checkpoints/<step> in it). Each (prompt, completion)
  is encoded as in training (`encode`), cut to max_len (default: the run's data.seq_len)
  from the left, and scored in jitted batches of `batch_size` rows, padded to a multiple
  of 64 tokens so few shapes compile. score_only_summary: score only the completion's
  text after its last "</think>" (R1 §2.3.4's helpfulness reward; "" if it has none);
  default: as the run was trained (config.data.score_only_summary).
  The weights sit on the default device and scoring runs outside any mesh. GRPO uses it
  through config.rl.reward_models (`r1jax.rewards.load_reward_models`).
  """
  workdir, path_step = _resolve_workdir(path)
  cfg, weights, run_config = restore_reward_weights(workdir, step=path_step if step is None
                                                    else step)
  if tokenizer is None:
    spec = run_config.get("tokenizer", "")
    spec = run_config.get("init_from", "") if spec == "from_checkpoint" else spec
    if not spec:
      raise ValueError(f"{workdir}'s config names no tokenizer; pass tokenizer=")
    tokenizer = load_tokenizer(spec)
  if score_only_summary is None:
    score_only_summary = bool(run_config.get("data", {}).get("score_only_summary", False))
  max_len = max_len or run_config.get("data", {}).get("seq_len") or cfg.max_position_embeddings
  score = jax.jit(lambda p, b: rewards(cfg, p, b["tokens"], b["positions"],
                                       b["segment_ids"])[0])
  return RewardModelFn(cfg, weights, tokenizer, score_only_summary, max_len, batch_size, score)
