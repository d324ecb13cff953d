"""Ultralytics YOLO training, configured offline in one place (offline.py)."""
