"""`python -m r1jax.plan`: the command of `r1jax.recipe.plan`, kept at its short name."""

from r1jax.recipe.plan import main

if __name__ == "__main__":
  main()
