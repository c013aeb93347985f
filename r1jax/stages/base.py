"""What each `config.stage` feeds the one train loop (`r1jax.train`).

A stage supplies the loss and the batches; the loop owns the optimizer, checkpoints and
logging. Interface (duck-typed; `r1jax.stages.lm.LMStage` is the simplest):

    loss_fn(params, batch) -> (loss, (metrics, model_aux))     pure, jitted by the loop
    begin_step(state) -> state         e.g. refresh the GRPO reference model
    next_batch(state, rng) -> (batch of device arrays, host metrics)
    updates_per_batch                                           μ of GRPO, 1 otherwise
    extra_state(weights) -> dict      more train state (e.g. the GRPO reference model)
    evaluate(state, rng) -> dict      "eval/..." metrics
    samples() -> list[str]            a few texts to log
    data_state() / set_data_state()   the data iterator's position, for exact resumes
    progress_keys                     metrics shown on the progress bar
"""

from __future__ import annotations


class Stage:
  """Defaults: one update per batch, no extra state, a resumable `self.train_iter`."""

  updates_per_batch = 1

  def begin_step(self, state):
    return state

  def extra_state(self, weights) -> dict:
    return {}

  def data_state(self) -> dict:
    return self.train_iter.get_state()

  def set_data_state(self, state: dict | None) -> None:
    if state:
      self.train_iter.set_state(state)
