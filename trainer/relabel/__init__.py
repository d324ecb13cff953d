"""Pseudo-labels from a detector over time (teacher mode, self-training)."""
