"""Trained Ultralytics .pt -> device models: one plug-in per format (export/formats: ONNX, ncnn, LiteRT;
FP32 and INT8 each, quantised on calibration images through the device's own preprocessing), the export
stage that runs them and verifies every model through the edge runtime (export/stage.py, export/verify.py),
and the one place Ultralytics is configured offline (export/offline.py). Imports only edge (the layers in
pyproject.toml [tool.importlinter])."""
