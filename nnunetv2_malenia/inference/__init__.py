"""Inference: zero-shot prediction with a swapped knowledge table."""
