"""The inference daemon behind `edge run --config edge.yaml`.

Start-up does everything that can fail for a user-fixable reason first (config, model file and its sha256,
warm-up, source checks, record files, the HTTP port) and only then tells systemd READY=1, so a broken
install fails its start instead of flapping. The loop then runs: newest frame -> motion gate ->
detect/classify -> records -> metrics, and pings the systemd watchdog from that same loop, so a loop that
hangs (a wedged runtime, a stuck driver call) stops the pings and systemd restarts the service.

With model.workers > 1 the frames go through a WorkerPool (edge/workers.py): N model instances on N
threads take the newest frames themselves, and this loop only books their results (metrics, records,
presence stay on one thread). The watchdog is then fed only while every worker shows life.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from edge.config import DaemonConfig
from edge.daemon_model import Model, ModelRef, infer_frame, load_model, load_models, verified_model
from edge.httpd import MetricsServer, make_metrics_server
from edge.metrics.prometheus import DaemonMetrics
from edge.metrics.system import SystemMonitor
from edge.motion import MotionGate
from edge.presence import EndReason, Presence
from edge.records import Event, RecordSink, RotationPolicy, open_records
from edge.redact import RedactingFormatter, mask_text
from edge.sdnotify import Notifier, WatchdogPinger, watchdog_interval
from edge.sources import Capture, Source, make_source
from edge.workers import POLL_S, Result, WorkerError, WorkerPool

log = logging.getLogger("edge.daemon")


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
        self.model: Model | None = None  # the first (with one worker: the only) model instance
        self.models: list[Model] = []
        self.model_ref: ModelRef | None = None  # which file was loaded and the sha256 it was checked against
        self.pool: WorkerPool[Model] | None = None  # model.workers > 1
        self.capture: Capture | None = None
        self.sink: RecordSink | None = None
        self.http: MetricsServer | None = None
        self.metrics: DaemonMetrics | None = None
        self.gate: MotionGate | None = None
        self._source_text = ""
        self._books = _Books(Presence(cfg.records.leave_after_s, self._record))

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
        if (warning := cfg.model.oversubscription()) is not None:
            log.warning("%s", warning)
        self.notifier.status("loading model")
        t0 = time.perf_counter()
        self.model_ref = verified_model(cfg.model)
        self.models = load_models(cfg.model, self.model_ref)
        self.model = self.models[0]
        h, w = self.model.spec.imgsz
        for model in self.models:  # warm the whole pipeline of every worker, not just the runtime
            self._infer(model, np.full((h, w, 3), 114, np.uint8), -1)
        n = len(self.models)
        log.info("model %s (%s, %s, %s%s) loaded and warmed up in %.2f s", self.model.backend.model_path.name,
                 self.model.spec.task, self.model.spec.precision, self.model.backend.name,
                 f", {n} workers x {cfg.model.threads} threads" if n > 1 else "", time.perf_counter() - t0)
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
        if n > 1:
            self.pool = WorkerPool(self.models, self._infer, self.capture, self.gate)
        self.metrics = DaemonMetrics(monitor, counters=self._external_counters, gauges=self._external_gauges)
        if cfg.http.enabled:
            self.http = make_metrics_server(cfg.http, self.metrics.exposition, self.health)
            self.http.start()
            log.info("metrics on %s://%s:%d/metrics, health on /healthz%s", "https" if cfg.http.tls else "http",
                     cfg.http.host, self.http.port, " (basic auth)" if cfg.http.basic_auth else "")
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
            "workers": len(self.models),
        }
        if (ref := self.model_ref) is not None:  # a deploy waits for the new model's sha256 here
            details["model"] = {"name": ref.name, "sha256": ref.sha256,
                                "manifest": str(ref.manifest) if ref.manifest is not None else None}
        if loop_age > max_age:
            details["reason"] = f"inference loop has not run for {loop_age:.1f} s (limit {max_age:g} s)"
        elif frame_age > max_age:
            last = self.capture.last_error if self.capture is not None else None
            details["reason"] = (f"no frame from the camera for {frame_age:.1f} s (limit {max_age:g} s)"
                                 + (f": {last}" if last else ""))
        if "reason" in details:  # it quotes the source's last error, which may hold its URL
            details["reason"] = mask_text(details["reason"])
        return "reason" not in details, details

    # ---- the loop ---------------------------------------------------------------------------------
    def _infer(self, model: Model, image: np.ndarray, index: int) -> tuple[int, Event | None]:
        """One frame through `model` (runs on a worker thread with several workers)."""
        return infer_frame(model, image, index)

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None and not self.stop_event.is_set():
            log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop_event.set()

    def run(self) -> int:
        """Set up, tell systemd READY=1, loop until a signal (or a finite source ends); 0 on a clean stop,
        1 when an inference worker failed."""
        self.setup()
        assert self.capture is not None and self.metrics is not None and self.sink is not None
        assert self.model is not None
        if self.stop_event.is_set():  # SIGTERM while the model loaded: stop without ever saying READY
            self._shutdown()
            return 0
        interval = watchdog_interval() if self.cfg.watchdog.enabled else None
        pinger = WatchdogPinger(self.notifier, interval)
        self.capture.start()
        if self.pool is not None:
            self.pool.start()
        self.state = LoopState()
        # With workers, pings stop once a worker has shown no life for WatchdogSec; an idle worker beats at
        # least every 2 x POLL_S, so a shorter WatchdogSec must not read idle as stuck.
        stale_s = None if self.pool is None or interval is None else max(interval, 4 * POLL_S)
        self._books = _Books(Presence(self.cfg.records.leave_after_s, self._record, self.metrics.persons), stale_s)
        self.metrics.ready.set(1)
        port = f", http port {self.http.port}" if self.http is not None else ""
        log.info("ready: %s%s%s", self._source_text, port,
                 f", watchdog every {interval / 3:.1f} s" if interval else "")
        self.notifier.ready(f"running on {self._source_text}{port}")
        code = 0
        try:
            if self.pool is None:
                self._loop(pinger)
            else:
                self._pool_loop(self.pool, pinger)
        except WorkerError as e:  # the worker logged its traceback; a pool short of a worker must restart
            log.error("%s -- exiting with status 1 (systemd restarts the service)", e)
            code = 1
        finally:
            self._shutdown()
        return code

    def _turn(self, now: float, pinger: WatchdogPinger, alive_since: float | None = None) -> None:
        """Per loop turn: liveness for /healthz and the watchdog, periodic flush and STATUS. `alive_since`:
        the workers' oldest heartbeat (pool only): the loop is only as alive as its slowest worker."""
        st, b = self.state, self._books
        assert self.metrics is not None and self.sink is not None and self.capture is not None
        cam = self.capture.stats
        if b.presence.camera_failed(cam.disconnects):  # the camera failed: nobody seen until it is back
            b.newest = max(b.newest, cam.captured - 1)  # frames from before the loss must not re-open it
            self._end_presence("camera_lost")
        st.last_loop = now if alive_since is None else min(now, alive_since)
        self.metrics.last_loop.set(time.time() - (now - st.last_loop))
        if b.stale_s is None or now - st.last_loop < b.stale_s:
            pinger(now)
        if now - b.last_flush >= self.cfg.records.flush_every_s:
            self.sink.flush()
            b.last_flush = now
        if now - b.last_status >= 10.0:
            self._status(b.frames.rate(now))
            b.last_status = now

    def _loop(self, pinger: WatchdogPinger) -> None:
        """One worker: this thread takes each frame, gates it, runs the model and books the result."""
        assert self.capture is not None and self.model is not None
        while not self.stop_event.is_set():
            self._turn(time.monotonic(), pinger)
            frame = self.capture.latest(timeout=0.25)
            if frame is None:
                if self.capture.finished:
                    log.info("source finished: stopping")
                    break
                continue
            taken = time.monotonic()
            result = Result(frame.index, taken, True)
            if self.gate is not None:
                checked = self.gate.stats.check_seconds
                result.inferred = self.gate.should_infer(frame.image, taken)
                result.gate_seconds = self.gate.stats.check_seconds - checked
            if result.inferred:
                result.count, result.event = self._infer(self.model, frame.image, frame.index)
                result.timing = self.model.timing
            self._apply(result, time.monotonic())

    def _pool_loop(self, pool: WorkerPool[Model], pinger: WatchdogPinger) -> None:
        """Several workers: they take, gate and infer; this thread books their results as they come.
        The watchdog is fed only while every worker has shown life within WatchdogSec (pool.alive_since):
        this thread turning proves nothing about a worker stuck inside its runtime. Workers waiting for
        frames beat too, so an idle or disconnected camera keeps the pings going as with one worker."""
        while not self.stop_event.is_set():
            self._turn(time.monotonic(), pinger, pool.alive_since())
            result = pool.get(timeout=0.25)  # raises WorkerError once a worker has failed
            if result is None:
                if pool.done:
                    log.info("source finished: stopping")
                    break
                continue
            self._apply(result, time.monotonic())

    def _apply(self, r: Result, now: float) -> None:
        """Book one frame's result: metrics, detection record, presence. This thread only."""
        assert self.metrics is not None and self.sink is not None
        m, st, b = self.metrics, self.state, self._books
        st.last_frame = max(st.last_frame, r.taken)
        b.frames.tick(r.taken)
        if self.gate is not None:
            m.stage_seconds.labels("motion").inc(r.gate_seconds)
        # Workers can finish out of frame order (one inference took longer). Presence and the persons in
        # view follow only results for frames newer than the newest already applied: a late result for an
        # older frame would re-open a presence that a newer frame has closed ("appeared" again, then
        # "left" again). It still counts as processed, and its detection event (which carries its own
        # frame number and time) is recorded. With one worker results always come in order.
        newest = r.index > b.newest
        b.newest = max(b.newest, r.index)
        if not r.inferred:
            st.skipped += 1
            m.frames_motion_skipped.inc()
            m.inference_seconds_saved.inc(st.latency_ema_s)
            b.presence.still(r.index, now)
            m.fps.set(b.frames.rate(now))
            return
        t = r.timing
        seconds = t.total_ms / 1e3
        m.latency.observe(seconds)
        for stage, ms in (("pre", t.pre_ms), ("infer", t.infer_ms), ("post", t.post_ms)):
            m.stage_seconds.labels(stage).inc(ms / 1e3)
        st.latency_ema_s = seconds if st.processed == 0 else 0.9 * st.latency_ema_s + 0.1 * seconds
        st.processed += 1
        m.frames_processed.inc()
        if newest:
            st.persons = r.count
        b.inferred.tick(now)
        m.fps.set(b.frames.rate(now))
        m.inference_fps.set(b.inferred.rate(now))
        t0 = time.perf_counter()
        if r.event is not None and now - b.last_det_event >= self.cfg.records.detection_interval_s:
            self.sink.write(r.event)
            b.last_det_event = now
        if newest:
            b.presence.seen(r.count, r.index, now)
        m.stage_seconds.labels("record").inc(time.perf_counter() - t0)

    def _record(self, event: Event) -> None:
        if self.sink is not None:
            self.sink.write(event)

    def _end_presence(self, reason: EndReason) -> None:
        self.state.persons = 0
        self._books.presence.end(reason, self._books.newest)

    def _status(self, fps: float) -> None:
        text = f"{fps:.1f} fps, {self.state.processed} frames processed, {self.state.persons} in view"
        if self.state.skipped:
            text += f", {self.state.skipped} skipped (motion)"
        self.notifier.status(text)

    def _shutdown(self) -> None:
        self.notifier.stopping("stopping")
        t0 = time.monotonic()
        if self.pool is not None:
            self.pool.request_stop()  # first, so workers stop taking frames while the capture stops
        if self.capture is not None and not self.capture.stop(timeout=1.0):
            log.warning("capture thread did not stop within 1 s; leaving it behind")
        if self.pool is not None:
            # Within the 2 s systemd and the tests allow for a stop: a worker finishes its current frame.
            if not self.pool.join(max(0.2, 1.5 - (time.monotonic() - t0))):
                log.warning("an inference worker did not stop in time; leaving it behind")
            if self.metrics is not None and self.sink is not None:
                for r in self.pool.drain():  # frames already inferred: book and record them too
                    self._apply(r, time.monotonic())
        self._end_presence("shutdown")  # before the records close: the last record says they are gone
        if self.sink is not None:
            self.sink.flush()
            self.sink.close()
        if self.http is not None:
            self.http.stop()
        st = self.state
        total = st.processed + st.skipped
        msg = f"stopped in {time.monotonic() - t0:.2f} s: {st.processed} frames processed"
        if self.pool is not None:
            msg += f" ({' + '.join(map(str, self.pool.processed))} by {self.pool.size} workers)"
        if self.gate is not None and total:
            saved = st.skipped * st.latency_ema_s - self.gate.stats.check_seconds
            msg += (f", {st.skipped}/{total} skipped by the motion gate ({100 * st.skipped / total:.0f} %,"
                    f" ~{saved:.1f} s of inference saved net of {self.gate.stats.check_seconds:.2f} s gating)")
        if self.sink is not None:
            msg += f", {self.sink.written} records written, {self.sink.errors} record errors"
        log.info(msg)
        self.notifier.close()


class _Books:
    """The loop's running bookkeeping between turns (presence, rates, throttles); main thread only."""

    def __init__(self, presence: Presence, stale_s: float | None = None):
        self.presence = presence
        self.frames, self.inferred = RateMeter(), RateMeter()
        self.last_flush = self.last_status = time.monotonic()
        self.last_det_event = float("-inf")
        self.newest = -1  # the newest frame index applied (results may arrive out of order)
        self.stale_s = stale_s  # no watchdog pings once the workers' heartbeat is older (None: never)


def run_daemon(cfg: DaemonConfig) -> int:
    """Install the signal handlers and run until SIGTERM/SIGINT/SIGHUP; CctvkitError escapes before READY.

    SIGHUP stops cleanly (records flushed, exit 0) rather than reloading in place: systemd's Restart=
    brings the service back with the edited config, and a restart cannot leave half of the old config
    (model, camera, records) running beside half of the new one. Its default action had killed the
    process with the SQLite batch unwritten."""
    daemon = Daemon(cfg)
    stop_on = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {s: signal.signal(s, daemon.request_stop) for s in stop_on}
    try:
        return daemon.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def setup_logging(level: str) -> None:
    # systemd's journal adds its own time stamps; keep the line short and greppable. Every line has its
    # URLs masked (edge/redact.py): a library's exception text may quote a camera URL with its password.
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


__all__ = ["Daemon", "RateMeter", "infer_frame", "load_model", "run_daemon", "setup_logging"]
