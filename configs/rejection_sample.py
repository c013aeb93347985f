"""Rejection sampling for R1's stage-2 SFT (§2.3.3): best-of-N, correct and readable only.

    python -m r1jax.rejection_sample --config=configs/rejection_sample.py \
        --config.init_from=workdirs/grpo_zero --workdir=workdirs/rs
    python -m r1jax.train --config=configs/sft_stage2.py \
        --config.data.source=workdirs/rs/rejection_sampled.jsonl,tiny_general:train
    python -m r1jax.rejection_sample --config=configs/rejection_sample.py:r1 \
        --config.init_from=/path/to/reasoning-rl-checkpoint --workdir=workdirs/rs_r1

Sampling, model loading and answer checking are configs/eval_math.py's (T = 0.6, top-p
0.95), on training prompts instead of test sets. The default samples 8 completions for
256 arithmetic training problems from the shipped tiny base with the R1-Zero template
(point init_from at an RL workdir); the `r1` variant samples 16 of up to 32k tokens for
GSM8K's training set in R1's chat format. config.judge_fn ("package.module:function",
`fn(question, gold, completion) -> True | False | None`) decides answers no rule can
check (records without a gold). Outputs: <workdir>/rejection_sampled.jsonl, stats.json,
samples.jsonl.
"""

import ml_collections

from configs import eval_math


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
  c = eval_math.get_config(variant)
  del c["select_fn"]
  c.data.datasets = ("arithmetic:train@256",)
  c.sampling.num_samples = 8  # N completions per prompt

  c.judge_fn = ""  # "package.module:function" for answers no rule can check
  c.judge_when = "undecided"  # undecided | not_correct (also re-judge the rule's rejects)

  # R1 §2.3.3: "filtered out chain-of-thought with mixed languages, long paragraphs, and
  # code blocks"; then duplicates, and optionally at most max_per_prompt per prompt.
  c.filters = ml_collections.ConfigDict()
  c.filters.language = "en"  # target language of the CoT (en | zh); "": no filter
  c.filters.min_language_share = 0.95  # of the CoT's words (rewards.language.language_share)
  c.filters.max_paragraph_chars = 2000  # longest CoT paragraph; 0: no limit
  c.filters.drop_code_blocks = True
  c.filters.drop_truncated = True  # completions cut by max_new_tokens
  c.filters.dedupe = True
  c.filters.max_per_prompt = 0  # 0: keep every distinct correct completion
  c.filters.min_reasoning_chars = 0  # CoT length bounds; 0: no bound
  c.filters.max_reasoning_chars = 0

  c.output = ml_collections.ConfigDict()
  c.output.filename = "rejection_sampled.jsonl"
  c.output.answer_tags = "keep"  # keep | strip R1-Zero's <answer> tags from the summary
  c.output.with_instruction = False  # append config.data.instruction to the user turn
  c.allow_empty = False  # nothing kept: an error unless True

  if variant == "r1":
    c.data.datasets = ("gsm8k:train",)
  return c
