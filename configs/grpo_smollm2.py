"""GRPO from SmolLM2-135M-Instruct on 2-digit addition, sized for 2 CPU cores and 8 GB.

    python -m r1jax.tools.export_hf --from_gguf=SmolLM2-135M-Instruct.Q4_1.gguf --out=smollm2
    python -m r1jax.train --config=configs/grpo_smollm2.py --config.init_from=smollm2 \
        --workdir=workdirs/grpo_smollm2

(`bash experiments/smollm2_grpo/run.sh` does all of it, with evaluations before and after.)
Why addition: the model is weak but not hopeless at it. Greedily it answers about 6 % of
held-out sums, and at T = 1 more than half of its completions ramble past 64 tokens
without an answer; the ones that answer are often off by one digit. So G = 8 samples
often hold a correct one to learn from, which GSM8K (0 of 40 greedily) does not give.
The held-out split is 810 sums never trained on (`r1jax.data.tasks`, hashed by operands).

Prompts are the question in the model's own chat template with DeepSeek's instruction;
the reward is math-verify's verdict on the final answer (`accuracy_standard`: a \\boxed{}
answer, else the last one it finds), so the model is paid for the right sum however it
states it, but not for restating the question: with math-verify alone, "37 + 94 = ?"
counted as 131 and the policy learned exactly that (experiments/smollm2_grpo); the checker
now refuses undone arithmetic. Full fine-tuning in float32: 4 prompts × 8 completions of up to 64 tokens per
step, the update in 4 micro-batches (one prompt's group each; 8 rows each before
rl.batch_layout, when the peak was measured under 8 GB) and the output head 32 positions
at a time, AdamW lr 1e-5, KL β = 0.001 to the initial model.
"""

import ml_collections

from configs import grpo_gsm8k


def get_config() -> ml_collections.ConfigDict:
  c = grpo_gsm8k.get_config()
  c.model_overrides = ml_collections.ConfigDict(dict(dtype="float32", remat="none"))
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, expert=1, tensor=1))

  c.data.train = "arithmetic:train"
  c.data.num_train = 0  # every training pair
  c.data.eval = "arithmetic:test"
  c.data.num_eval = 128  # the curve's held-out sums; run.sh evaluates all 810

  c.rl.prompts_per_step = 4
  c.rl.num_generations = 8
  c.rl.max_new_tokens = 64
  c.rl.temperature = 1.0
  c.rl.rewards = ml_collections.ConfigDict(dict(accuracy_standard=1.0))
  c.rl.beta = 0.001
  c.rl.logprob_chunk = 32
  c.eval.temperature = 0.0  # greedy: the number run.sh reports
  c.eval.top_p = 1.0

  c.optim.learning_rate = 1e-5
  c.optim.warmup_steps = 3
  c.train.micro_batches = 4
  c.train.num_steps = 45
  c.train.eval_every = 15
  c.train.save_every = 15
  return c
