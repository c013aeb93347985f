"""Tiny random Hugging Face checkpoints standing in for real ones (there is no hub here).

Each writes what a downloaded model directory holds: config.json, safetensors weights,
and a byte-level BPE tokenizer.json with its tokenizer_config.json; `write_reward_model`
writes an r1jax reward_model run's checkpoint.
"""

import json
from pathlib import Path

TEXTS = ["Natalia sold clips to 48 of her friends.", "What is 12 + 30?",
         "Using the numbers [3, 5], create an equation that equals 8. <think> </think>"]


# ChatML, as Qwen2.5 and SmolLM2 write it, for stand-ins of instruct checkpoints
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def write_bpe_tokenizer(path: Path, vocab_size: int = 300, chat_template: str | None = None) -> None:
  """A byte-level BPE (eos = pad = <|endoftext|>), with a chat template if given."""
  import tokenizers as hf_tok

  tok = hf_tok.Tokenizer(hf_tok.models.BPE())
  tok.pre_tokenizer = hf_tok.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = hf_tok.decoders.ByteLevel()
  trainer = hf_tok.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                       initial_alphabet=hf_tok.pre_tokenizers.ByteLevel.alphabet(),
                                       show_progress=False)
  tok.train_from_iterator(TEXTS * 20, trainer)
  tok.save(str(path / "tokenizer.json"))
  config = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
  if chat_template:
    config["chat_template"] = chat_template
  (path / "tokenizer_config.json").write_text(json.dumps(config))


def deepseek_v3_standin(path: Path) -> Path:
  """A 3-layer DeepSeek-V3 (1 dense + 2 MoE, MLA, YaRN, 8 experts in 4 groups)."""
  import torch
  import transformers

  path.mkdir(parents=True, exist_ok=True)
  write_bpe_tokenizer(path)
  torch.manual_seed(0)
  cfg = transformers.DeepseekV3Config(
      vocab_size=320, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
      num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4,
      num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=16,
      qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=8, n_group=4, topk_group=2,
      num_experts_per_tok=2, n_shared_experts=1, routed_scaling_factor=2.5,
      max_position_embeddings=2048, rope_parameters={
          "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
          "original_max_position_embeddings": 128, "mscale": 1.0, "mscale_all_dim": 1.0})
  transformers.DeepseekV3ForCausalLM(cfg).save_pretrained(str(path))
  return path


def write_reward_model(workdir, stage="reward_model") -> str:
  """A reward_model run's checkpoint: the random tiny decoder with a random head, scaled so
  the logits stay near 0 (where σ does not saturate)."""
  import jax
  import jax.numpy as jnp

  from configs import reward_model as rm_config
  from r1jax.models import init_params, loading, presets
  from r1jax.models import reward_model as rm_model
  from r1jax.runtime import checkpoint as ckpt_lib

  cfg = presets.get("deepseek_v3_tiny")
  weights = init_params(cfg, jax.random.key(0))
  head = rm_model.init_head(cfg)
  weights["params"][rm_model.HEAD] = dict(head, w=0.05 * jax.random.normal(jax.random.key(1), (cfg.dim,)))
  run = rm_config.get_config()
  run.stage = stage
  c = ckpt_lib.Checkpointer(str(workdir), async_save=False)
  c.save(1, dict(weights, step=jnp.ones((), jnp.int32)),
         {"model": loading.model_config_dict(cfg), "config": run.to_json_best_effort()})
  c.close()
  return str(workdir)
