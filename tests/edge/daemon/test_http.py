from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.errors import CctvkitError
from edge.httpd import MetricsServer
from edge.metrics.prometheus import DaemonMetrics


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_metrics_and_health_endpoints():
    metrics = DaemonMetrics(counters=lambda: {"frames_captured": 7, "record_errors": 2},
                            gauges=lambda: {"camera_connected": 1.0})
    metrics.frames_processed.inc(5)
    metrics.latency.observe(0.012)
    state = {"ok": True}

    def health():
        return (True, {"loop_age_s": 0.1}) if state["ok"] else (False, {"reason": "loop stuck for 12 s"})

    server = MetricsServer("127.0.0.1", 0, metrics.exposition, health)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        code, body = get(base + "/metrics")
        assert code == 200
        fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert fams["cctvkit_frames_processed"].samples[0].value == 5
        assert fams["cctvkit_frames_captured"].samples[0].value == 7
        assert fams["cctvkit_record_errors"].samples[0].value == 2
        assert fams["cctvkit_camera_connected"].samples[0].value == 1
        buckets = {s.labels["le"]: s.value for s in fams["cctvkit_inference_latency_seconds"].samples
                   if s.name.endswith("_bucket")}
        assert buckets["0.01"] == 0 and buckets["0.02"] == 1 and buckets["+Inf"] == 1
        code, body = get(base + "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        state["ok"] = False
        code, body = get(base + "/healthz")
        assert code == 503 and json.loads(body)["reason"] == "loop stuck for 12 s"
        assert get(base + "/nope")[0] == 404
    finally:
        server.stop()


def test_port_in_use_is_a_one_line_error():
    first = MetricsServer("127.0.0.1", 0, lambda: b"", lambda: (True, {}))
    first.start()
    try:
        second = MetricsServer("127.0.0.1", first.port, lambda: b"", lambda: (True, {}))
        with pytest.raises(CctvkitError, match=f"cannot listen on 127.0.0.1:{first.port}.*http.port"):
            second.start()
    finally:
        first.stop()
