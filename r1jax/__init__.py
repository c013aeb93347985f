"""r1jax: the DeepSeek-R1 recipe (DeepSeek-V3 MoE, GRPO, distillation) in JAX/Flax.

The package is layered; every import points down this list, never up or sideways into a
circle (tests/test_layers.py checks it):

    recipe/     programs around the loop: evaluate, rejection_sample, cold_start, plan
    tools/      maintenance commands: export_hf, train_tokenizer, report
    train       the one loop (`python -m r1jax.train`) and the stage registry
    stages/     one file per config.stage: lm (pretrain, sft), grpo, reward_model, distill
    rewards/    rule rewards, the code sandbox, trained reward models as rewards
    losses/     pure losses: lm, grpo, distill, bradley_terry
    sampling/   the rollout engine: prefill, decode loop, logit processors
    models/     decoders, presets, HF checkpoints, parameter placement, run set-up
    data/       tokenizers, datasets, conversations, tasks, prompt templates
    runtime/    meshes and rules, checkpoints, processes, metrics, the optimizer

`python -m r1jax.evaluate` (and rejection_sample, cold_start, plan) run the programs of
recipe/ under their short names.
"""

__version__ = "0.1.0"
