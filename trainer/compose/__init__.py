"""Compose stage: scene cutouts pasted on the plate at perspective-correct sizes -> YOLO + classifier sets."""

from trainer.compose.compositor import compose_dataset
from trainer.compose.params import ComposeParams, JitterParams

__all__ = ["ComposeParams", "JitterParams", "compose_dataset"]
