"""R1-Zero (R1 §2.2): GRPO straight from the base model with rule-based rewards.

    python -m r1jax.train --config=configs/grpo_zero.py

The embedded default runs `deepseek_v3_tiny` from the base made by
`configs/pretrain_tiny.py` on held-out-split 2-digit addition, with the R1-Zero
template, accuracy + format rewards, G = 8 completions for 16 prompts per step, KL 0.001
and T = 1.0 as in the paper. Override anything: `--config.rl.beta=0.0`.
"""

import os

import ml_collections

import r1jax

from configs import pretrain_tiny


def get_config() -> ml_collections.ConfigDict:
  c = pretrain_tiny.get_config()
  c.stage = "grpo"
  # An r1jax workdir or a Hugging Face checkpoint dir; by default the shipped tiny base
  # (configs/pretrain_tiny.py, exported; see its README).
  c.init_from = os.path.join(os.path.dirname(r1jax.__file__), "assets", "tiny_base")

  c.data = ml_collections.ConfigDict()
  c.data.train = "arithmetic:train"
  c.data.num_train = 7000
  c.data.eval = "arithmetic:test"
  c.data.num_eval = 128
  c.data.template = "r1_zero"

  c.rl = ml_collections.ConfigDict()
  c.rl.prompts_per_step = 16
  c.rl.num_generations = 8  # G
  c.rl.max_new_tokens = 48
  # Prompts are right-padded to a few lengths (16, 24, 32, 48, 64, 96, ...), so each
  # program compiles a few times whatever the data; longer prompts than this are skipped
  # at load (counted) or, with long_prompts="truncate", cut from the left.
  c.rl.max_prompt_len = 512
  c.rl.long_prompts = "skip"  # skip | truncate
  # The trainer scores logits / temperature, so the ratio is against the distribution that
  # sampled; top_p / top_k truncate that distribution further and the ratio ignores them.
  c.rl.temperature = 1.0
  c.rl.top_p = 1.0
  c.rl.top_k = 0
  c.rl.stop_strings = ("</answer>",)
  # True: the tokenizer's eos does not stop a completion, so every one runs to
  # max_new_tokens (benchmarks/grpo_step.py: each framework generates the same tokens).
  c.rl.ignore_eos = False
  c.rl.loss = "grpo"  # grpo | dr_grpo | dapo | gspo (r1jax.losses.grpo.LOSS_PRESETS)
  # π_old of the ratio: "sampler" (the rollout's log-probs) or "trainer" (the training
  # forward's own before the update, as TRL and Tunix; at μ = 1 the ratio is then exactly
  # 1). They agree to rounding in float32; in bfloat16 they differ by ~0.03 nats/token on
  # SmolLM2 (issue 23), so "sampler" clips rounding noise and "trainer" ignores the
  # sampler. Measured over 30 bfloat16 steps each (experiments/bf16_mismatch): for GRPO's
  # ε = 0.2 the choices train alike ("sampler" clipped 0.14 % of tokens), hence this
  # default; GSPO's ε = 3e-4 is below the rounding (40 % of sequences out of range, the
  # least reward): with GSPO in bfloat16 use "trainer". tis_cap > 0 (with "trainer")
  # reweighs each token's gradient by
  # min(π_trainer / π_sampler, tis_cap), per token or per sequence (tis_level). Every step
  # logs mismatch/* (trainer vs sampler log-probs before the update) and entropy.
  c.rl.old_logps = "sampler"
  c.rl.tis_cap = 0.0  # 0: off; 2.0 is TRL's and verl's usual cap
  c.rl.tis_level = "token"  # token | sequence
  # MoE models: the trainer (policy and reference) runs the experts the sampler chose for
  # each token instead of re-routing (R3), so rounding cannot send a token to other
  # experts than those that produced it. Rollouts of MoE models always record their
  # experts (L_moe · K bytes per token: 12 on the tiny default, 464 at 671B) and log
  # mismatch/routing_diff, the fraction of decisions the trainer's routers make otherwise.
  c.rl.routing_replay = False
  c.rl.beta = 0.001  # KL coefficient (R1-Zero)
  c.rl.epsilon = 0.2
  c.rl.epsilon_high = ml_collections.FieldReference(None, field_type=float)
  c.rl.num_iterations = 1  # μ: updates per rollout
  c.rl.ref_update_every = 0  # refresh the KL reference to the policy every N steps (0: never)
  c.rl.logprob_chunk = 0  # > 0: the output head over this many positions at a time (memory)
  # The train batch: "groups" runs each prompt once for its G completions, in one
  # [prompt | c_1 | ... | c_G] row (fewer tokens, longer rows); "rows" gives every
  # completion its own [prompt | completion] row; "auto" takes groups where they save
  # FLOPs without much more attention memory (r1jax.stages.grpo_batch). The same
  # log-probs, loss and gradients either way (MoE: router loads, the balance loss and
  # capacity drops count a group's prompt once).
  c.rl.batch_layout = "auto"
  c.rl.rewards = ml_collections.ConfigDict(dict(accuracy=1.0, format=1.0))
  # The code reward refuses to run where its sandbox would not contain the policy's
  # programs (no namespaces, no Landlock with seccomp); True accepts that risk.
  c.rl.allow_unsandboxed_code = False

  c.eval = ml_collections.ConfigDict()
  c.eval.temperature = 1.0  # pass@1 of the distribution RL optimises
  c.eval.top_p = 1.0

  # Adam moves every weight by ~lr per step whatever the gradient's size; with noisy
  # 128-sample policy gradients 1e-3 or 1e-4 erased the base's arithmetic within 20 steps
  # (format up, accuracy to 0, KL > 0.5/token), 2e-5 sharpens it (experiments/r1_zero_tiny).
  c.optim.learning_rate = 2e-5
  c.optim.warmup_steps = 5
  c.train.num_steps = 100
  c.train.log_every = 1
  c.train.eval_every = 25
  c.train.save_every = 25
  return c
