"""The inference daemon behind `edge run --config edge.yaml`.

Start-up does everything that can fail for a user-fixable reason first (config, model file and its sha256,
warm-up, source checks, record files, the HTTP port) and only then tells systemd READY=1, so a broken
install fails its start instead of flapping. The loop then runs: newest frame -> motion gate ->
detect/classify -> records -> metrics, and pings the systemd watchdog from that same loop, so a loop that
hangs (a wedged runtime, a stuck driver call) stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import yaml

from edge.atomic import sha256_file
from edge.backends import spec_from_onnx, spec_from_tflite
from edge.config import DaemonConfig, ModelConfig
from edge.detector import Classifier, Detector
from edge.errors import CctvkitError
from edge.httpd import MetricsServer
from edge.manifest import Manifest
from edge.metrics.prometheus import DaemonMetrics
from edge.metrics.system import SystemMonitor
from edge.motion import MotionGate
from edge.records import Event, PresenceTracker, RecordSink, RotationPolicy, open_records
from edge.sdnotify import Notifier, WatchdogPinger, watchdog_interval
from edge.sources import Capture, Source, make_source
from edge.types import ModelSpec

log = logging.getLogger("edge.daemon")


def _spec_for_file(cfg: ModelConfig, path: Path) -> ModelSpec:
    """ModelSpec of a bare model file: a ModelSpec YAML when given, else what the file says about itself."""
    if cfg.spec is not None:
        try:
            doc = yaml.safe_load(cfg.spec.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise CctvkitError(f"cannot read the model spec ({e})".replace("\n", " "), cfg.spec,
                               "fix model.spec: a YAML ModelSpec or the metadata.yaml of an export") from e
        if not isinstance(doc, dict):
            raise CctvkitError("model spec is not a mapping", cfg.spec, "write ModelSpec fields as YAML keys")
        if "class_names" not in doc and "names" in doc:  # Ultralytics' metadata.yaml of an export
            if path.suffix == ".tflite":
                return spec_from_tflite(path, metadata_yaml=cfg.spec)
            raise CctvkitError("an Ultralytics metadata.yaml only describes .tflite files here", cfg.spec,
                               "drop model.spec (.onnx files carry their metadata) or write a ModelSpec YAML")
        try:
            return ModelSpec.from_json({**doc, "path": str(path)})
        except (TypeError, KeyError, ValueError) as e:
            raise CctvkitError(f"not a valid ModelSpec ({e})", cfg.spec,
                               "give task, format, precision, imgsz, class_names (see edge/types.py)") from e
    if path.suffix == ".onnx":
        return spec_from_onnx(path)
    if path.suffix == ".tflite":
        return spec_from_tflite(path)
    raise CctvkitError(f"a {path.suffix or 'suffix-less'} file does not describe itself", path,
                       "add model.spec: a YAML ModelSpec for it, or use a run's manifest")


def load_model(cfg: ModelConfig) -> Detector | Classifier:
    """The configured model, its file checked (sha256 against the manifest or model.sha256) and loaded;
    CctvkitError for a missing, corrupt or mismatching file."""
    if cfg.manifest is not None and cfg.name is not None:
        manifest = Manifest.load(cfg.manifest)
        path = manifest.model_path(cfg.name)  # missing file or sha256 mismatch -> CctvkitError
        spec = manifest.models()[cfg.name]
    else:
        assert cfg.file is not None
        path = cfg.file
        if not path.is_file():
            raise CctvkitError("model file not found", path, "check model.file")
        expected = (cfg.sha256 or "").lower()
        if expected and sha256_file(path) != expected:
            raise CctvkitError("sha256 does not match model.sha256 (changed or corrupt)", path,
                               "copy the model again or update model.sha256")
        spec = _spec_for_file(cfg, path)
    if spec.task == "detect":
        return Detector(spec, path, backend=cfg.backend, threads=cfg.threads, conf=cfg.conf, iou=cfg.iou,
                        classes=[spec.person_class])
    if spec.task == "classify":
        return Classifier(spec, path, backend=cfg.backend, threads=cfg.threads, threshold=cfg.threshold)
    raise CctvkitError(f"unknown model task '{spec.task}'", path, "use a detect or classify model")


class RateMeter:
    """Events per second over the last `window` seconds (bounded: one timestamp per event in the window)."""

    def __init__(self, window: float = 5.0, maxlen: int = 4096):
        self.window = window
        self._t: deque[float] = deque(maxlen=maxlen)

    def tick(self, now: float) -> None:
        self._t.append(now)

    def rate(self, now: float) -> float:
        while self._t and now - self._t[0] > self.window:
            self._t.popleft()
        if len(self._t) < 2:
            return 0.0
        span = max(now - self._t[0], 1e-6)
        return (len(self._t) - 1) / span


@dataclass
class LoopState:
    """What /healthz and the exit summary read; written by the loop only."""

    started: float = field(default_factory=time.monotonic)
    last_loop: float = field(default_factory=time.monotonic)
    last_frame: float = field(default_factory=time.monotonic)
    processed: int = 0
    skipped: int = 0
    latency_ema_s: float = 0.0
    persons: int = 0


class Daemon:
    def __init__(
        self,
        cfg: DaemonConfig,
        *,
        notifier: Notifier | None = None,
        sink: RecordSink | None = None,
    ):
        self.cfg = cfg
        self.notifier = notifier if notifier is not None else Notifier.from_env()
        self.stop_event = threading.Event()
        self.state = LoopState()
        self._sink_override = sink
        self.model: Detector | Classifier | None = None
        self.capture: Capture | None = None
        self.sink: RecordSink | None = None
        self.http: MetricsServer | None = None
        self.metrics: DaemonMetrics | None = None
        self.gate: MotionGate | None = None
        self._source_text = ""

    # ---- start-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Everything before READY=1; raises CctvkitError on any user-fixable problem (and releases what
        it had opened)."""
        try:
            self._setup()
        except BaseException:
            if self.http is not None:
                self.http.stop()
            if self.sink is not None:
                self.sink.close()
            self.notifier.close()
            raise

    def _setup(self) -> None:
        cfg = self.cfg
        self.notifier.status("loading model")
        t0 = time.perf_counter()
        self.model = load_model(cfg.model)
        h, w = self.model.spec.imgsz
        self._infer(np.full((h, w, 3), 114, np.uint8), -1)  # warm the whole pipeline, not just the runtime
        log.info("model %s (%s, %s, %s) loaded and warmed up in %.2f s", self.model.backend.model_path.name,
                 self.model.spec.task, self.model.spec.precision, self.model.backend.name,
                 time.perf_counter() - t0)
        source: Source = make_source(cfg.source, model_imgsz=self.model.spec.imgsz)
        policy = RotationPolicy(int(cfg.records.rotate_mb * 2**20), int(cfg.records.max_total_mb * 2**20),
                                cfg.records.keep)
        self.sink = self._sink_override or open_records(
            {"jsonl": cfg.records.jsonl, "sqlite": cfg.records.sqlite}, policy)
        if cfg.motion.enabled:
            m = cfg.motion
            self.gate = MotionGate(m.threshold, m.min_area, m.every, m.max_skip_s, m.width)
        monitor = SystemMonitor.from_paths(cfg.system.thermal_zone, cfg.system.cpufreq, cfg.system.vcgencmd,
                                           cfg.system.sample_interval_s)
        self.capture = Capture(source, backoff_initial=cfg.capture.backoff_initial_s,
                               backoff_max=cfg.capture.backoff_max_s, lossless=cfg.capture.lossless,
                               on_event=self._on_capture_event)
        self.metrics = DaemonMetrics(monitor, counters=self._external_counters, gauges=self._external_gauges)
        if cfg.http.enabled:
            self.http = MetricsServer(cfg.http.host, cfg.http.port, self.metrics.exposition, self.health)
            self.http.start()
            log.info("metrics on http://%s:%d/metrics, health on /healthz", cfg.http.host, self.http.port)
        self._source_text = source.describe()

    def _on_capture_event(self, event: str, detail: str) -> None:
        level = logging.INFO if event in ("connected", "reconnected", "finished") else logging.WARNING
        log.log(level, "camera %s: %s", event, detail)

    def _external_counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.capture is not None:
            s = self.capture.stats
            out |= {"frames_captured": s.captured, "frames_dropped": s.dropped, "frames_corrupt": s.corrupt,
                    "camera_reconnects": s.reconnects}
        if self.sink is not None:
            out |= {"records_written": self.sink.written, "record_errors": self.sink.errors}
        return out

    def _external_gauges(self) -> dict[str, float]:
        return {"camera_connected": 1.0 if self.capture is not None and self.capture.connected else 0.0}

    # ---- health -----------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        max_age = self.cfg.http.healthz_max_age_s
        loop_age, frame_age = now - self.state.last_loop, now - self.state.last_frame
        details: dict[str, Any] = {
            "loop_age_s": round(loop_age, 3),
            "frame_age_s": round(frame_age, 3),
            "camera_connected": bool(self.capture is not None and self.capture.connected),
            "frames_processed": self.state.processed,
            "frames_motion_skipped": self.state.skipped,
        }
        if loop_age > max_age:
            details["reason"] = f"inference loop has not run for {loop_age:.1f} s (limit {max_age:g} s)"
        elif frame_age > max_age:
            last = self.capture.last_error if self.capture is not None else None
            details["reason"] = (f"no frame from the camera for {frame_age:.1f} s (limit {max_age:g} s)"
                                 + (f": {last}" if last else ""))
        return "reason" not in details, details

    # ---- the loop ---------------------------------------------------------------------------------
    def _infer(self, image: np.ndarray, index: int) -> tuple[int, Event | None]:
        """Persons in one frame and the detection event to record (None when there is nobody)."""
        assert self.model is not None
        if isinstance(self.model, Detector):
            d = self.model.detect(image)
            count = len(d)
            ms = round(self.model.timing.total_ms, 2)
            event = Event("detection", time.time(), index, count, ms,
                          boxes=np.round(d.xyxy.astype(np.float64), 1).tolist(),
                          scores=np.round(d.scores.astype(np.float64), 3).tolist())
        else:
            c = self.model.classify(image)
            count = int(c.is_person)
            ms = round(self.model.timing.total_ms, 2)
            event = Event("detection", time.time(), index, count, ms, person_prob=round(c.person_prob, 4))
        return count, (event if count else None)

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None and not self.stop_event.is_set():
            log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop_event.set()

    def run(self) -> int:
        """Set up, tell systemd READY=1, loop until a signal (or a finite source ends); 0 on a clean stop."""
        self.setup()
        assert self.capture is not None and self.metrics is not None and self.sink is not None
        assert self.model is not None
        if self.stop_event.is_set():  # SIGTERM while the model loaded: stop without ever saying READY
            self._shutdown()
            return 0
        interval = watchdog_interval() if self.cfg.watchdog.enabled else None
        pinger = WatchdogPinger(self.notifier, interval)
        self.capture.start()
        self.state = LoopState()
        self.metrics.ready.set(1)
        port = f", http port {self.http.port}" if self.http is not None else ""
        log.info("ready: %s%s%s", self._source_text, port,
                 f", watchdog every {interval / 3:.1f} s" if interval else "")
        self.notifier.ready(f"running on {self._source_text}{port}")
        try:
            self._loop(pinger)
        finally:
            self._shutdown()
        return 0

    def _loop(self, pinger: WatchdogPinger) -> None:
        assert self.capture is not None and self.metrics is not None and self.sink is not None
        cfg, m, st = self.cfg, self.metrics, self.state
        presence = PresenceTracker(cfg.records.leave_after_s)
        frames, inferred = RateMeter(), RateMeter()
        last_flush = last_status = time.monotonic()
        last_det_event = float("-inf")
        while not self.stop_event.is_set():
            now = time.monotonic()
            st.last_loop = now
            m.last_loop.set(time.time())
            pinger(now)
            if now - last_flush >= cfg.records.flush_every_s:
                self.sink.flush()
                last_flush = now
            if now - last_status >= 10.0:
                self._status(frames.rate(now))
                last_status = now
            frame = self.capture.latest(timeout=0.25)
            if frame is None:
                if self.capture.finished:
                    log.info("source finished: stopping")
                    break
                continue
            st.last_frame = time.monotonic()
            frames.tick(st.last_frame)
            if self.gate is not None:
                checked = self.gate.stats.check_seconds
                go = self.gate.should_infer(frame.image, st.last_frame)
                m.stage_seconds.labels("motion").inc(self.gate.stats.check_seconds - checked)
                if not go:
                    st.skipped += 1
                    m.frames_motion_skipped.inc()
                    m.inference_seconds_saved.inc(st.latency_ema_s)
                    self._presence(presence, st.persons, frame.index, st.last_frame)
                    m.fps.set(frames.rate(st.last_frame))
                    continue
            count, event = self._infer(frame.image, frame.index)
            assert self.model is not None
            t = self.model.timing
            seconds = t.total_ms / 1e3
            m.latency.observe(seconds)
            for stage, ms in (("pre", t.pre_ms), ("infer", t.infer_ms), ("post", t.post_ms)):
                m.stage_seconds.labels(stage).inc(ms / 1e3)
            st.latency_ema_s = seconds if st.processed == 0 else 0.9 * st.latency_ema_s + 0.1 * seconds
            st.processed += 1
            st.persons = count
            m.frames_processed.inc()
            m.persons.set(count)
            done = time.monotonic()
            inferred.tick(done)
            m.fps.set(frames.rate(done))
            m.inference_fps.set(inferred.rate(done))
            t0 = time.perf_counter()
            if event is not None and done - last_det_event >= cfg.records.detection_interval_s:
                self.sink.write(event)
                last_det_event = done
            self._presence(presence, count, frame.index, done)
            m.stage_seconds.labels("record").inc(time.perf_counter() - t0)

    def _presence(self, presence: PresenceTracker, count: int, index: int, now: float) -> None:
        change = presence.update(count, now)
        if change is not None and self.sink is not None:
            log.info("person %s (frame %d, %d in view)", change, index, count)
            self.sink.write(Event("presence", time.time(), index, count, state=change))

    def _status(self, fps: float) -> None:
        text = f"{fps:.1f} fps, {self.state.processed} frames processed, {self.state.persons} in view"
        if self.state.skipped:
            text += f", {self.state.skipped} skipped (motion)"
        self.notifier.status(text)

    def _shutdown(self) -> None:
        self.notifier.stopping("stopping")
        t0 = time.monotonic()
        if self.capture is not None and not self.capture.stop(timeout=1.0):
            log.warning("capture thread did not stop within 1 s; leaving it behind")
        if self.sink is not None:
            self.sink.flush()
            self.sink.close()
        if self.http is not None:
            self.http.stop()
        st = self.state
        total = st.processed + st.skipped
        msg = f"stopped in {time.monotonic() - t0:.2f} s: {st.processed} frames processed"
        if self.gate is not None and total:
            saved = st.skipped * st.latency_ema_s - self.gate.stats.check_seconds
            msg += (f", {st.skipped}/{total} skipped by the motion gate ({100 * st.skipped / total:.0f} %,"
                    f" ~{saved:.1f} s of inference saved net of {self.gate.stats.check_seconds:.2f} s gating)")
        if self.sink is not None:
            msg += f", {self.sink.written} records written, {self.sink.errors} record errors"
        log.info(msg)
        self.notifier.close()


def run_daemon(cfg: DaemonConfig) -> int:
    """Install the signal handlers and run until SIGTERM/SIGINT; CctvkitError escapes before READY."""
    daemon = Daemon(cfg)
    previous = {s: signal.signal(s, daemon.request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return daemon.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def setup_logging(level: str) -> None:
    # systemd's journal adds its own time stamps; keep the line short and greppable.
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s", force=True)


__all__ = ["Daemon", "RateMeter", "load_model", "run_daemon", "setup_logging"]
