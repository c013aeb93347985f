"""Runtime: what a run needs besides its model and data, knowing neither.

    sharding      the mesh axes, the one logical-axis rules table, batch placement
    checkpoint    orbax checkpoints of a run's state and meta
    distributed   multi-process set-up (SLURM, TPU pods) and host-side collectives
    metrics       metrics.jsonl, TensorBoard and text samples
    optimizer     AdamW with warm-up and cosine decay, from config.optim

The bottom layer: it imports nothing else of r1jax.
"""
