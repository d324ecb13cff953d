"""cctvkit on-device half: numpy, OpenCV and inference runtimes only (never torch or ultralytics)."""

__version__ = "0.1.0"
