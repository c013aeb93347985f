"""r1jax: the DeepSeek-R1 recipe (DeepSeek-V3 MoE, GRPO, distillation) in JAX/Flax."""

__version__ = "0.1.0"
