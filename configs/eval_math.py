"""Evaluates a model as R1 does (§3.1): n samples per problem at T = 0.6, top-p 0.95.

    python -m r1jax.evaluate --config=configs/eval_math.py --workdir=workdirs/eval_tiny_base
    python -m r1jax.evaluate --config=configs/eval_math.py --config.init_from=workdirs/grpo_zero \
        --workdir=workdirs/eval_grpo_zero
    python -m r1jax.evaluate --config=configs/eval_math.py:r1 \
        --config.init_from=/path/to/DeepSeek-R1-Distill-Qwen-1.5B --workdir=workdirs/eval_distill

The default evaluates the shipped tiny base (or, with --config.init_from, any r1jax
workdir) on 128 held-out arithmetic problems with the R1-Zero template, 4 samples each.
The `r1` variant is the paper's setting for a Hugging Face checkpoint: AIME 2024, AMC 2023
and MATH-500 in DeepSeek-R1's chat format with its recommended instruction, 16 samples
of up to 32,768 tokens (R1 uses 4 to 64 samples depending on the test set's size).

Datasets are `r1jax.data.datasets.load_prompts` specs, each optionally with "@<limit>":
`--config.data.datasets="('gsm8k:test@500', 'math500')"`.
"""

import os

import ml_collections

import r1jax
from r1jax.runtime.compilation import default_cache_dir


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
  if variant not in ("tiny", "r1"):
    raise ValueError(f"unknown variant {variant!r} of configs/eval_math.py; use 'tiny' or 'r1'")
  c = ml_collections.ConfigDict()
  # An r1jax workdir (its latest checkpoint) or a Hugging Face checkpoint directory.
  c.init_from = os.path.join(os.path.dirname(r1jax.__file__), "assets", "tiny_base")
  c.step = 0  # which checkpoint of an r1jax workdir; 0: the latest
  c.model = "from_checkpoint"  # or a preset name of r1jax.models.presets
  c.model_overrides = ml_collections.ConfigDict()
  c.tokenizer = "r1jax_tiny"  # or "from_checkpoint": the tokenizer.json of init_from
  c.seed = 0
  # Generation replicates the batch on every device of the mesh; sizes without a -1 use
  # the first that many devices. Split a big model with tensor=N (or fsdp=N).
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=1, expert=1, tensor=1))
  c.compilation_cache = default_cache_dir()  # JAX's persistent compilation cache; "" off

  c.data = ml_collections.ConfigDict()
  c.data.datasets = ("arithmetic:test@128",)
  c.data.limit = 0  # problems per dataset without an "@<limit>"; 0: all
  c.data.template = "r1_zero"  # r1_zero | r1_chat | chat (the checkpoint's own) | plain
  c.data.instruction = ""
  c.data.checker = "auto"  # auto | accuracy | arithmetic | countdown (r1jax.rewards)
  # accuracy's answers: standard (in <answer>/\boxed{}, else the final answer math-verify
  # finds) | strict (only <answer>/\boxed{}, as GRPO's reward); r1jax.rewards.math
  c.data.answer_mode = "standard"

  c.sampling = ml_collections.ConfigDict()
  c.sampling.num_samples = 4  # n completions per problem (the paper's k)
  c.sampling.temperature = 0.6
  c.sampling.top_p = 0.95
  c.sampling.top_k = 0
  c.sampling.max_new_tokens = 48
  c.sampling.stop_strings = ("</answer>",)
  c.sampling.prompts_per_batch = 16  # a batch holds prompts_per_batch · num_samples rows

  c.metrics = ml_collections.ConfigDict()
  c.metrics.pass_at_k = ()  # k of pass@k, each <= num_samples; (): 1, 2, 4, ..., n

  c.select_fn = ""  # "package.module:function" scoring completions for best-of-n
  c.write_samples = True  # every completion to <workdir>/samples.jsonl

  if variant == "r1":
    c.init_from = ""  # required: a Hugging Face checkpoint directory
    c.tokenizer = "from_checkpoint"
    c.model_overrides = ml_collections.ConfigDict(dict(dtype="bfloat16"))
    c.data.datasets = ("aime24", "amc23", "math500")
    c.data.template = "chat"  # the checkpoint's own chat template
    c.data.instruction = ("Please reason step by step, and put your final answer within "
                          "\\boxed{}.")
    c.sampling.num_samples = 16
    c.sampling.max_new_tokens = 32768
    c.sampling.stop_strings = ()
    # The decode cache holds prompts_per_batch · num_samples rows of up to 32k tokens.
    c.sampling.prompts_per_batch = 2
  return c
