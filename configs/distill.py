"""Distillation (R1 §2.4): SFT of a small dense student on the teacher's traces.

    python -m r1jax.train --config=configs/distill.py --workdir=workdirs/distill
    python -m r1jax.train --config=configs/distill.py:kd --workdir=workdirs/distill_kd

R1 fine-tunes Qwen2.5-Math-1.5B/7B, Qwen2.5-14B/32B, Llama-3.1-8B and Llama-3.3-70B-Instruct
on the ~800k samples of §2.3.3 (reasoning traces rejection-sampled from the RL checkpoint
plus non-reasoning data), by SFT only: no RL for the students. The embedded default trains
`qwen2_tiny` (the Qwen2 layout, from scratch: there is no shipped dense base) on the
embedded stand-in for those samples, sft_stage2's mix of 6,000 correct additions
(`tiny_reasoning`) and 2,000 non-reasoning conversations (`tiny_general`), evaluated on the
held-out ones. Train on real traces, e.g. configs/rejection_sample.py's output:

    python -m r1jax.rejection_sample --config=configs/rejection_sample.py \\
        --config.init_from=workdirs/grpo_zero --workdir=workdirs/rs
    python -m r1jax.train --config=configs/distill.py \\
        --config.data.source=workdirs/rs/rejection_sampled.jsonl,tiny_general:train

A student from a Hugging Face checkpoint, with its own tokenizer (pure SFT works across
tokenizers): `--config.model=from_checkpoint --config.init_from=/path/to/Qwen2.5-Math-1.5B
--config.tokenizer=from_checkpoint`. Greedy answers of the result on held-out additions:

    python -m r1jax.evaluate --config=configs/eval_math.py --config.init_from=workdirs/distill \\
        --config.data.template=r1_chat --config.sampling.temperature=0 \\
        --config.sampling.num_samples=1 --config.sampling.max_new_tokens=64

The `kd` variant adds logit distillation beyond the paper (`r1jax.distill`): loss
(1 − α)·CE + α·τ²·KL(teacher's top-k ‖ student), α = 0.5, k = 20, from the stage-2 SFT
model of configs/sft_stage2.py (workdirs/sft_stage2, the DeepSeek-V3-tiny MoE; train it
first, or point --config.distill.teacher at another r1jax workdir or HF checkpoint). The
student must use the teacher's tokenizer; the stage says how many ids differ if not.
Measured with that teacher (greedy accuracy 34 % on the 128 held-out additions): the KD
student follows it, 33 % (eval/kd_kl 0.10, top-1 agreement 93 %), where pure SFT reaches
53 %: logit distillation copies the teacher's mistakes too, so it is worth its cost only
with a teacher stronger than what SFT on the traces alone makes of the student.
"""

import ml_collections

from configs import sft_stage2


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
  if variant not in ("tiny", "kd"):
    raise ValueError(f"unknown variant {variant!r} of configs/distill.py; use 'tiny' or 'kd'")
  c = sft_stage2.get_config()  # the traces, their held-out split, packing and schedule
  c.stage = "distill"
  c.model = "qwen2_tiny"  # a preset, or "from_checkpoint" with init_from
  c.init_from = ""  # "": from scratch; or a Hugging Face checkpoint dir / an r1jax workdir
  c.tokenizer = "r1jax_tiny"  # the teacher's; "from_checkpoint": init_from's tokenizer.json

  c.distill = ml_collections.ConfigDict()
  c.distill.teacher = ""  # an r1jax workdir or HF checkpoint; needed when kd_weight > 0
  c.distill.teacher_tokenizer = ""  # "": the teacher's own (tokenizer.json / its run's)
  c.distill.teacher_overrides = ml_collections.ConfigDict()  # e.g. dtype="bfloat16"
  c.distill.kd_weight = 0.0  # α: 0 is pure SFT on the traces, as in R1
  c.distill.top_k = 20  # the teacher's distribution, renormalised over its top k ids
  c.distill.temperature = 1.0  # τ of both softmaxes; the KL term is scaled by τ²

  # 81 batches of 32 rows an epoch: 400 steps are ~5 epochs (from scratch, the student needs
  # more than R1's two). Measured: held-out eval/nll 0.10, token accuracy 97 %; greedy on
  # 128 held-out additions (the command above): format 100 %, accuracy 53 % (100 steps:
  # token accuracy 77 %); ~10 min on 2 busy CPU cores.
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 20
  c.train.num_steps = 400
  c.train.log_every = 10
  c.train.eval_every = 100
  c.train.save_every = 100

  if variant == "kd":
    c.distill.teacher = "workdirs/sft_stage2"
    c.distill.kd_weight = 0.5
  return c
