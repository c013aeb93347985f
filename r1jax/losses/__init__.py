"""Losses: pure functions of parameters and arrays, jitted by the train loop.

    lm             masked next-token NLL for pretraining and SFT (packed rows, MTP terms)
    grpo           group advantages, the clipped GRPO policy loss and its variants
                   (Dr. GRPO, DAPO, GSPO), the policy's token log-probs
    distill        top-k logit distillation against a frozen teacher (R1 §2.4, optional)
    bradley_terry  the pairwise preference loss of reward models

Each stage hands the loop `loss_fn(params, batch) -> (loss, (metrics, model_aux))`;
losses import the models and nothing above them. A loss that averages over its batch's
tokens reports how many in metrics[LOSS_WEIGHT], so that the loop's gradient accumulation
(config.train.micro_batches) weighs each micro-batch by it and equals the whole batch's
gradient; a loss without it averages over rows, and micro-batches weigh the same.

    p = grpo.LOSS_PRESETS["dapo"]
    adv = grpo.group_advantages(rewards, group_size, **p["advantages"])     # [B*G]
    loss, metrics = grpo.policy_loss(logps, old_logps, ref_logps, adv, mask, **p["loss"])
"""

LOSS_WEIGHT = "loss_weight"  # metrics key: the number of units the loss averages over
