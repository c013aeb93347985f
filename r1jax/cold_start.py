"""`python -m r1jax.cold_start`: the command of `r1jax.recipe.cold_start`, kept at its short name."""

from r1jax.recipe.cold_start import main

if __name__ == "__main__":
  main()
