"""Stages: what each `config.stage` feeds the one train loop (`r1jax.train`).

    base            the Stage interface and its defaults
    lm              pretrain, and sft on conversations (R1 §2.3.1, §2.3.3)
    grpo            rollouts, rewards, advantages and the GRPO loss (R1 §2.2, §2.3.2, §2.3.4)
    reward_model    a Bradley-Terry reward model on preference pairs (R1 §2.3.4)
    distill         SFT of a dense student on teacher traces, optional logit KD (R1 §2.4)

A stage imports the layers below it (rewards, losses, sampling, data, models, runtime),
never the loop or another stage's siblings above it; a new stage is a new file here and
an entry in `r1jax.train.STAGES`.
"""
