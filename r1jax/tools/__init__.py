"""Command-line tools run once by maintainers (e.g. building the shipped tokenizer)."""
