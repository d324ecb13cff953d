"""Model export for the device: ONNX FP32 via Ultralytics, INT8 via ONNX Runtime static quantisation."""
