"""`python -m r1jax.rejection_sample`: the command of `r1jax.recipe.rejection_sample`, kept at its short name."""

from r1jax.recipe.rejection_sample import main

if __name__ == "__main__":
  main()
