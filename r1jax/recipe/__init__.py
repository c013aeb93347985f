"""The R1 recipe's programs around the train loop.

    evaluate          pass@1 over k samples, cons@k, pass@k (R1 §3)
    rejection_sample  best-of-N from an RL checkpoint -> verified SFT data (R1 §2.3.3)
    cold_start        R1-Zero outputs -> readable cold-start SFT data (R1 §2.3.1)
    plan              per-device memory of a config on a mesh, from shapes

Each is a command (`python -m r1jax.evaluate --config=configs/eval_math.py`, the short
names are aliases of these modules) and may import the loop and everything below it.
"""
