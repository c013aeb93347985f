"""Sampling: batched generation with per-token log-probs (the GRPO rollout engine).

    sp = SamplingParams(max_new_tokens=256, temperature=1.0, top_p=0.95, n=8,
                        stop_token_ids=(tok.eos_id,), stop_sequences=(tok.encode("</answer>"),))
    res = generate(cfg, params, prompt_ids, sp, pad_id=tok.pad_id)  # NumPy tokens [B·n, M], ...
"""

from r1jax.sampling.processors import (min_p_filter, process_logits, sample_token,
                                       top_k_filter, top_p_filter)
from r1jax.sampling.sampler import (GenerationResult, SamplingParams, generate, generate_text,
                                    prompt_bucket)

__all__ = ["GenerationResult", "SamplingParams", "generate", "generate_text", "min_p_filter",
           "process_logits", "prompt_bucket", "sample_token", "top_k_filter", "top_p_filter"]
