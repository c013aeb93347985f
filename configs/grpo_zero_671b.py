"""R1-Zero at full scale: GRPO on the 671B DeepSeek-V3 preset from DeepSeek-V3-Base.

    python -m r1jax.train --config=configs/grpo_zero_671b.py \
        --config.init_from=/ckpt/DeepSeek-V3-Base --workdir=gs://bucket/r1_zero_671b

The model (671B total, 37B activated per token) and the tokenizer come from the
checkpoint directory (config.json, tokenizer.json, FP8 weights dequantised on load). The
hyper-parameters are those the R1 paper reports for DeepSeek-R1-Zero (Nature 2025,
supplementary): lr 3e-6, KL 0.001, clip ratio 10, T = 1, 16 outputs of up to 32,768
tokens per question, 32 questions per step, the reference replaced by the policy every
400 steps. The mesh is a starting point for a 256-chip pod; check that a layout fits
before booking it with `python -m r1jax.plan --config=configs/grpo_zero_671b.py ...`
(experiments/launch/ has the pod and SLURM launchers).
"""

import ml_collections

from configs import grpo_zero


def get_config() -> ml_collections.ConfigDict:
  c = grpo_zero.get_config()
  c.model = "from_checkpoint"
  c.tokenizer = "from_checkpoint"
  c.init_from = ""  # required: a DeepSeek-V3-Base checkpoint directory (Hugging Face layout)
  # RL does not train the MTP module (V3 §2.2 uses it in pre-training): leave its 14B out.
  # Experts split 16 ways, tokens exchanged by two all-to-alls per MoE layer (r1jax.models.moe).
  c.model_overrides = ml_collections.ConfigDict(dict(dtype="bfloat16", remat="full",
                                                     moe_dispatch="all_to_all", n_mtp_modules=0))
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, expert=16, tensor=1))
  # Overrides of r1jax.runtime.sharding.DEFAULT_RULES, e.g. "embed:fsdp+expert,q_lora:fsdp"; the
  # plan (`python -m r1jax.plan`) reads them too, so try a layout there first.
  c.sharding_rules = ""

  c.data.train = "gsm8k:train"  # the shipped math prompts; point at the run's own JSONL
  c.data.num_train = 0  # 0: all of it
  c.data.eval = "aime24"
  c.data.num_eval = 0
  c.data.template = "r1_zero"

  c.rl.prompts_per_step = 32
  c.rl.num_generations = 16
  c.rl.max_new_tokens = 32768
  c.rl.max_prompt_len = 2048
  c.rl.temperature = 1.0
  c.rl.epsilon = 10.0
  c.rl.beta = 0.001
  c.rl.ref_update_every = 400
  c.rl.logprob_chunk = 512  # 33k-token rows: [rows, 512, 129280] float32 logits at a time
  c.rl.rewards = ml_collections.ConfigDict(dict(accuracy=1.0, format=1.0))
  c.eval.temperature = 0.6
  c.eval.top_p = 0.95

  c.optim.learning_rate = 3e-6
  c.optim.warmup_steps = 10
  c.optim.weight_decay = 0.0
  c.train.num_steps = 10400
  c.train.log_every = 1
  c.train.eval_every = 200
  c.train.save_every = 100
  return c
