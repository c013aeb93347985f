"""Command-line tools: export_hf (a run's weights as a Hugging Face checkpoint),
train_tokenizer (rebuilds the shipped tokenizer), report (a run's curves as PNG/markdown).
"""
