"""Device metrics: system readings (CPU, temperature, throttling) and the Prometheus exporter.

Accuracy metrics live in edge/eval, the one evaluation core.
"""
