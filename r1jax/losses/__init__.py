"""Losses: pure functions of parameters and arrays, jitted by the train loop.

    lm             masked next-token NLL for pretraining and SFT (packed rows, MTP terms)
    grpo           group advantages, the clipped GRPO policy loss and its variants
                   (Dr. GRPO, DAPO, GSPO), the policy's token log-probs
    distill        top-k logit distillation against a frozen teacher (R1 §2.4, optional)
    bradley_terry  the pairwise preference loss of reward models

Each stage hands the loop `loss_fn(params, batch) -> (loss, (metrics, model_aux))`;
losses import the models and nothing above them.

    p = grpo.LOSS_PRESETS["dapo"]
    adv = grpo.group_advantages(rewards, group_size, **p["advantages"])     # [B*G]
    loss, metrics = grpo.policy_loss(logps, old_logps, ref_logps, adv, mask, **p["loss"])
"""
