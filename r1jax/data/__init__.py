"""Data: prompt datasets, synthetic tasks, and token batches."""
