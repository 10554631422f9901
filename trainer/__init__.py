"""Lean PyTorch GPT trainer over the token shards that `corpus tokenize` writes."""
