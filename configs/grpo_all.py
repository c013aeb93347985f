"""All-scenario RL (R1 §2.3.4): one GRPO run on reasoning and general prompts, rule rewards
for the first, reward models for the second.

    python -m r1jax.train --config=configs/sft_stage2.py --workdir=workdirs/sft_stage2
    python -m r1jax.train --config=configs/reward_model.py --workdir=workdirs/reward_model
    python -m r1jax.train --config=configs/grpo_all.py --workdir=workdirs/grpo_all

R1's last stage trains the stage-2 SFT model with a mixture of prompt distributions and
reward signals, to make it more helpful and harmless while refining its reasoning:
reasoning prompts get R1-Zero's rule-based rewards, general prompts reward models of human
preferences. The helpfulness reward reads only the final summary (the text after
</think>), so that the reasoning is left alone; the harmlessness reward reads the whole
response, reasoning included, to catch risks anywhere in it.

The embedded default starts from `configs/sft_stage2.py`'s model and draws 3 of every 4
prompts from the training additions (accuracy + format + language consistency, as in
`grpo_zero.py` and `grpo_reasoning.py`) and 1 from the generated general conversations
(`tiny_general`: greetings, self-cognition, comparisons, two-turn additions, each prompted
up to its last assistant turn), rewarded by `configs/reward_model.py`'s model read both ways:
"helpful" on the summary, "harmless" on the whole response. R1 trains separate models on
separate preference data; the tiny default has one, standing in for both. Reward-model
scores enter as σ(logit) ∈ (0, 1), on the rule rewards' scale
(`r1jax.rewards.load_reward_models`). Metrics are logged overall (reward/mean,
reward/accuracy, eval/helpful, ...) and per source (reward/general/mean,
eval/reasoning/accuracy, ...). Change the mixture from the command line:

    --config.data.sources.general.weight=3.0 --config.rl.reward_models.harmless.path=<dir>

or add a source in a config of your own (keys: spec, weight, rewards, and optionally eval,
template, instruction, num_train; see `r1jax.stages.grpo`).
"""

import ml_collections

from configs import grpo_zero


def get_config() -> ml_collections.ConfigDict:
  c = grpo_zero.get_config()
  c.init_from = "workdirs/sft_stage2"  # configs/sft_stage2.py's default workdir

  c.data = ml_collections.ConfigDict()
  c.data.template = "r1_chat"  # the format SFT taught; general prompts need it
  c.data.num_eval = 64  # held-out prompts per source
  c.data.sources = ml_collections.ConfigDict({
      "reasoning": {"spec": "arithmetic:train", "eval": "arithmetic:test", "weight": 3.0,
                    "rewards": {"accuracy": 1.0, "format": 1.0, "language": 1.0}},
      "general": {"spec": "tiny_general:train", "eval": "tiny_general:test", "weight": 1.0,
                  "rewards": {"helpful": 1.0, "harmless": 1.0}},
  })

  del c.rl.rewards  # each source has its own
  c.rl.reward_models = ml_collections.ConfigDict({
      "helpful": {"path": "workdirs/reward_model", "view": "summary"},
      "harmless": {"path": "workdirs/reward_model", "view": "full"},
  })
  c.rl.max_new_tokens = 64  # the chat rendering is longer than R1-Zero's

  c.train.num_steps = 50
  c.train.eval_every = 25
  c.train.save_every = 25
  return c
