"""cctvkit on-device benchmark: models x backends x precisions on the user's own footage (no torch)."""
