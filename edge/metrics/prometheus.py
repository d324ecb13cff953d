"""The daemon's Prometheus metrics, in a registry of its own (never prometheus_client's global one, so
tests and several daemons in one process do not collide).

Counters the loop owns (processed frames, motion skips, latency) are prometheus_client objects it
updates; what other parts own (capture counters, record errors, machine health) is read at scrape time
by collectors, so there is one source of truth for each number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.metrics.system import SystemMonitor, throttle_flags

PREFIX = "cctvkit"
# One inference on a Pi 5 takes ~5 ms (a tiny classifier) to ~500 ms (a 640 px detector): buckets dense there.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)

# name -> help of the counters read from the capture thread and the record sink at scrape time
EXTERNAL_COUNTERS: dict[str, str] = {
    "frames_captured": "Frames read from the camera or file",
    "frames_dropped": "Frames overwritten before the loop took them (latest-frame semantics)",
    "frames_corrupt": "Frames rejected as undecodable or malformed",
    "camera_reconnects": "Successful re-opens of the source after a failure",
    "records_written": "Events handed to the record writers that at least one of them stored",
    "record_errors": "Record writes that failed (disk full, I/O error); inference went on",
}


class _SnapshotCollector(Collector):
    """Counters and gauges from a callable evaluated at scrape time."""

    def __init__(self, counters: Callable[[], Mapping[str, float]], gauges: Callable[[], Mapping[str, float]]):
        self._counters = counters
        self._gauges = gauges

    def collect(self) -> Iterator[Any]:
        values = self._counters()
        for name, doc in EXTERNAL_COUNTERS.items():
            if name in values:
                yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(values[name]))
        gauges = self._gauges()
        if "camera_connected" in gauges:
            yield GaugeMetricFamily(f"{PREFIX}_camera_connected", "1 while the source delivers frames",
                                    value=gauges["camera_connected"])


class _SystemCollector(Collector):
    """Machine health from the SystemMonitor; a metric whose probe is unavailable is left out."""

    def __init__(self, monitor: SystemMonitor):
        self.monitor = monitor

    def collect(self) -> Iterator[Any]:
        s = self.monitor.sample()
        simple = {
            "cpu_percent": ("cpu_percent", "CPU use of this process, % of one core"),
            "rss_bytes": ("resident_memory_bytes", "Resident memory of this process"),
            "temperature_c": ("cpu_temperature_celsius", "SoC temperature from the thermal zone"),
            "arm_freq_hz": ("arm_frequency_hertz", "ARM core clock (vcgencmd measure_clock arm or cpufreq)"),
        }
        for key, (name, doc) in simple.items():
            if key in s:
                yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=s[key])
        if "throttled" in s:
            raw = int(s["throttled"])
            yield GaugeMetricFamily(f"{PREFIX}_throttled_raw", "vcgencmd get_throttled bit field", value=raw)
            g = GaugeMetricFamily(f"{PREFIX}_throttle", "Firmware throttle flags (1 = set)",
                                  labels=["flag", "when"])
            for (flag, when), on in throttle_flags(raw).items():
                g.add_metric([flag, when], 1.0 if on else 0.0)
            yield g


class DaemonMetrics:
    def __init__(
        self,
        monitor: SystemMonitor | None = None,
        counters: Callable[[], Mapping[str, float]] | None = None,
        gauges: Callable[[], Mapping[str, float]] | None = None,
    ):
        r = self.registry = CollectorRegistry()
        self.frames_processed = Counter(f"{PREFIX}_frames_processed", "Frames that went through the model",
                                        registry=r)
        self.frames_motion_skipped = Counter(f"{PREFIX}_frames_motion_skipped",
                                             "Frames the motion gate kept from the model", registry=r)
        self.inference_seconds_saved = Counter(
            f"{PREFIX}_motion_saved_seconds",
            "Inference time the motion gate avoided (skips x mean latency); its own cost is"
            " cctvkit_stage_seconds{stage=\"motion\"}",
            registry=r)
        self.latency = Histogram(f"{PREFIX}_inference_latency_seconds",
                                 "Pre-processing + inference + post-processing of one frame",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.stage_seconds = Counter(f"{PREFIX}_stage_seconds", "Time spent per step of the loop",
                                     ["stage"], registry=r)
        self.fps = Gauge(f"{PREFIX}_fps", "End-to-end frames per second through the loop (5 s window)",
                         registry=r)
        self.inference_fps = Gauge(f"{PREFIX}_inference_fps", "Frames per second run through the model",
                                   registry=r)
        self.persons = Gauge(f"{PREFIX}_persons_in_view", "Persons in the last processed frame", registry=r)
        self.ready = Gauge(f"{PREFIX}_ready", "1 once the model is loaded and warmed up", registry=r)
        self.last_loop = Gauge(f"{PREFIX}_loop_last_run_timestamp_seconds",
                               "Wall-clock time of the last inference-loop turn", registry=r)
        if counters is not None or gauges is not None:
            r.register(_SnapshotCollector(counters or dict, gauges or dict))
        if monitor is not None:
            r.register(_SystemCollector(monitor))

    def exposition(self) -> bytes:
        """The Prometheus text format of everything registered."""
        return generate_latest(self.registry)
