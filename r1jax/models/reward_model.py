"""Reward model: a decoder with a scalar head (R1 §2.3.4's reward models of preferences).

    r(x, y) = w · h_last + b        h_last [D]: the final-norm hidden state of the last
                                    non-pad token of prompt x + response y (an EOS
                                    appended to every sequence)

The head {"w": [D], "b": ()} lives in the trainable tree as params["reward_head"], so it
is optimised, checkpointed and resumed with the decoder. Any decoder the loop can load
(a preset, a Hugging Face checkpoint, an r1jax workdir) becomes one: training is
`r1jax.stages.reward_model` (loss: `r1jax.losses.bradley_terry`), scoring for GRPO
`r1jax.rewards.reward_model`.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from r1jax.models.config import ModelConfig
from r1jax.models.transformer import Transformer

HEAD = "reward_head"


def init_head(cfg: ModelConfig) -> dict[str, jax.Array]:
  """{"w": [D], "b": ()} float32, zero: every response starts at reward 0 (BT loss log 2,
  pairwise accuracy ½); the first update moves w, the next ones the decoder too. b gets
  no gradient from the BT loss (it cancels in r_c − r_r) and stays 0 unless set."""
  return {"w": jnp.zeros((cfg.dim,), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def split_params(params: dict) -> tuple[dict, dict]:
  """({"params", "buffers"} of the decoder alone, the head) of reward-model weights."""
  tree = params["params"]
  decoder = {"params": {k: v for k, v in tree.items() if k != HEAD},
             "buffers": params.get("buffers", {})}
  return decoder, tree[HEAD]


def hidden_states(cfg: ModelConfig, params: dict, tokens: jax.Array, positions: jax.Array,
                  segment_ids: jax.Array) -> tuple[jax.Array, dict]:
  """The decoder's final-norm hidden states h [B, T, D] and its aux (expert loads...).

  `params` is the decoder's {"params", "buffers"}. The output of the module named
  "final_norm" (what the LM head reads) is captured with flax's capture_intermediates,
  so the model code needs no change; under jit the unused logits are dead code.
  """
  chex.assert_rank(tokens, 2)
  chex.assert_equal_shape([tokens, positions, segment_ids])
  (_, _, aux), state = Transformer(cfg).apply(
      params, tokens.astype(jnp.int32), positions.astype(jnp.int32),
      segment_ids.astype(jnp.int32), None, False,
      capture_intermediates=lambda mdl, method: mdl.name == "final_norm",
      mutable=["intermediates"])
  h = state["intermediates"]["final_norm"]["__call__"][0]
  return h, aux


def last_token_index(segment_ids: jax.Array) -> jax.Array:
  """[B, T] -> [B]: the column of each row's last non-pad token (segment_ids != 0)."""
  T = segment_ids.shape[1]
  cols = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), segment_ids.shape)
  return jnp.max(jnp.where(segment_ids != 0, cols, 0), axis=1)


def rewards(cfg: ModelConfig, params: dict, tokens: jax.Array, positions: jax.Array,
            segment_ids: jax.Array) -> tuple[jax.Array, dict]:
  """r [B] float32 = w · h[b, last non-pad] + b for reward-model weights, and the aux.

  tokens, positions, segment_ids [B, T]; every row must hold at least one token. Any
  padding layout works (left, right, both): only the last non-pad column is read, and
  padding (segment 0) is never attended to.
  """
  decoder, head = split_params(params)
  h_btd, aux = hidden_states(cfg, decoder, tokens, positions, segment_ids)
  T = tokens.shape[1]
  # A one-hot contraction rather than a gather: elementwise over the batch, so it stays
  # local to each device's batch shard whatever the partitioner does with gathers.
  last_bt = jnp.arange(T)[None, :] == last_token_index(segment_ids)[:, None]
  h_bd = jnp.einsum("bt,btd->bd", last_bt.astype(h_btd.dtype), h_btd,
                    preferred_element_type=jnp.float32)
  return h_bd @ head["w"] + head["b"], aux
