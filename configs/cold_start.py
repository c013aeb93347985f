"""Cold-start data (R1 §2.3.1): R1-Zero's correct, readable outputs in R1's format.

    python -m r1jax.train --config=configs/grpo_zero.py               # R1-Zero
    python -m r1jax.cold_start --config=configs/cold_start.py --workdir=workdirs/cold_start
    python -m r1jax.train --config=configs/sft_cold_start.py \\
        --config.data.source=workdirs/cold_start/cold_start.jsonl \\
        --config.data.eval_source= --config.data.eval_fraction=0.05
    python -m r1jax.cold_start --config=configs/cold_start.py \\
        --config.data.completions=workdirs/eval_grpo_zero/samples.jsonl --workdir=workdirs/cs

The default samples 4 completions for 2,048 arithmetic training problems from the R1-Zero
workdir workdirs/grpo_zero with the R1-Zero template (T = 0.6, top-p 0.95, as
configs/rejection_sample.py and configs/eval_math.py; about 6 minutes on 2 CPU cores),
keeps one verified-correct, readable completion per problem, at most 3,000 in all, and
writes them in the rendering of tiny_cold_start that configs/sft_cold_start.py trains on,
"<think>\\n{reasoning}\\n</think>\\n\\n<answer> {answer} </answer>". Outputs:
<workdir>/cold_start.jsonl, stats.json, samples.jsonl. config.data.completions reads
completions made earlier instead of sampling (their fields: r1jax/cold_start.py).

The filters are rejection sampling's (R1 §2.3.3) made stricter, since these few thousand
samples set the format RL starts from: 99 % of the CoT's words in the target language
(not 95 %), paragraphs up to 1,000 characters (not 2,000), one response per question.
"""

import ml_collections

from configs import rejection_sample


def get_config() -> ml_collections.ConfigDict:
  c = rejection_sample.get_config()
  c.init_from = "workdirs/grpo_zero"  # configs/grpo_zero.py's default workdir
  c.data.completions = ""  # a JSONL of R1-Zero completions: read it instead of sampling
  c.data.datasets = ("arithmetic:train@2048",)
  c.data.template = "r1_zero"  # the template R1-Zero was trained (and its outputs sampled) with
  # The SFT data must mark its answers as the RL after it expects: <answer>/\boxed{} only.
  c.data.answer_mode = "strict"
  c.sampling.num_samples = 4

  c.filters.min_language_share = 0.99
  c.filters.max_paragraph_chars = 1000
  c.filters.min_reasoning_chars = 0  # 0: any non-empty CoT
  c.filters.max_reasoning_chars = 0  # 0: no upper bound
  c.filters.max_per_prompt = 1

  c.output = ml_collections.ConfigDict()
  c.output.filename = "cold_start.jsonl"
  c.output.summary = "answer_tags"  # answer_tags | sentence | a template with "{answer}"
  c.output.max_samples = 3000  # 0: no cap; chosen round robin over prompts with c.seed
  return c
