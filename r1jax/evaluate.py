"""`python -m r1jax.evaluate`: the command of `r1jax.recipe.evaluate`, kept at its short name."""

from r1jax.recipe.evaluate import main

if __name__ == "__main__":
  main()
