"""Models: the DeepSeek-V3 decoder and dense students behind one functional face.

    cfg = presets.get("deepseek_v3_tiny")
    params = init_params(cfg, jax.random.key(0))
    logits = forward(cfg, params, tokens)            # [B, T, V] float32

    config, presets             ModelConfig and the named shapes (671B, tiny, Qwen2, Llama)
    layers, attention, moe      RMSNorm, RoPE/YaRN, MLA and GQA, DeepSeekMoE routing
    transformer                 the decoder, its cache, parameter counts and logical axes
    reward_model                a decoder with a scalar head
    partitioning                a model's parameters on a mesh (the runtime's rules)
    hf                          Hugging Face safetensors import and export
    loading                     the model and start weights a config names

Models import only the layers below them: runtime and data.
"""

from r1jax.models import presets
from r1jax.models.config import ModelConfig
from r1jax.models.transformer import (apply_head, count_params, forward, head_weight,
                                      init_cache, init_params, mtp_loss, param_logical_axes,
                                      update_router_biases)

__all__ = ["ModelConfig", "presets", "apply_head", "count_params", "forward", "head_weight",
           "init_cache", "init_params", "mtp_loss", "param_logical_axes",
           "update_router_biases"]
