"""Machine readings around one cell: CPU per core, peak RSS, temperature, throttling, ARM clock, FPS over time.

Temperature, throttle flags and the ARM clock come from edge/metrics/system.py's probes (vcgencmd and the
SoC thermal zone on a Pi); where a probe is unavailable (x86, containers) its values are None, not 0.
A sampling thread reads them every `interval_s`, with the frames done so far, so --duration gets a timeline.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil

from edge.metrics.system import ArmFreqProbe, Probe, ThermalZoneProbe, ThrottleProbe, throttle_flags

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")


def _probes() -> dict[str, Probe]:
    probes: dict[str, Probe] = {"temp": ThermalZoneProbe(THERMAL_ZONE), "throttle": ThrottleProbe(),
                                "freq": ArmFreqProbe(cpufreq=CPUFREQ)}
    return {k: p for k, p in probes.items() if p.unavailable() is None}


def probe_status() -> dict[str, str | None]:
    """Which readings this machine has: name -> None when available, else why not."""
    probes = {"temperature": ThermalZoneProbe(THERMAL_ZONE), "throttle": ThrottleProbe(),
              "arm_freq": ArmFreqProbe(cpufreq=CPUFREQ)}
    return {k: p.unavailable() for k, p in probes.items()}


class CellMonitor:
    """start() before loading the model, frames += n while timing, stop() -> readings of the cell."""

    def __init__(self, interval_s: float = 0.5, keep_timeline: bool = False):
        self.interval_s = interval_s
        self.keep_timeline = keep_timeline
        self.frames = 0  # written by the timing loop; a plain int is enough (one writer, GIL)
        self.timeline: list[dict[str, Any]] = []
        self._probes = _probes()
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_rss = 0
        self._t0 = 0.0
        self._last: tuple[float, int] = (0.0, 0)
        self._speed_t0: float | None = None

    def read(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {"temp_c": None, "throttled": None, "arm_freq_mhz": None}
        for key, probe in self._probes.items():
            try:
                r = probe.read()
            except Exception:  # a flaky probe (vcgencmd timing out...) must not fail the cell
                continue
            if key == "temp":
                out["temp_c"] = r.get("temperature_c")
            elif key == "throttle":
                out["throttled"] = r.get("throttled")
            elif key == "freq":
                hz = r.get("arm_freq_hz")
                out["arm_freq_mhz"] = None if hz is None else hz / 1e6
        return out

    def _rss(self) -> int:
        rss = int(self._proc.memory_info().rss)
        self._peak_rss = max(self._peak_rss, rss)
        return rss

    def _sample(self) -> None:
        now = time.perf_counter()
        rss = self._rss()
        if not self.keep_timeline or self._speed_t0 is None:
            return  # the timeline covers the speed pass only (loading and scoring are not steady state)
        t_prev, f_prev = self._last
        if now - t_prev < 0.5 * self.interval_s:
            return  # a window this short gives a noisy FPS; it joins the next one
        frames = self.frames
        fps = (frames - f_prev) / (now - t_prev)
        self._last = (now, frames)
        self.timeline.append({"t_s": round(now - self._speed_t0, 2), "fps": round(fps, 2), "frames": frames,
                              "rss_mb": round(rss / 2**20, 1), **self.read()})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> CellMonitor:
        self._t0 = time.perf_counter()
        self._last = (self._t0, 0)
        self.rss_start = self._rss()
        self.start_reading = self.read()
        self._cpu_times0 = self._proc.cpu_times()
        psutil.cpu_percent(percpu=True)  # starts the per-core interval
        self._thread = threading.Thread(target=self._loop, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def begin_speed(self) -> None:
        """Restart the CPU counters at the start of the timed loop (loading is not steady state)."""
        self._cpu_times0 = self._proc.cpu_times()
        self._cpu_wall0 = time.perf_counter()
        psutil.cpu_percent(percpu=True)
        self.frames = 0
        self._last = (self._cpu_wall0, 0)
        self._speed_t0 = self._cpu_wall0

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._sample()  # closes the timeline at the end of the speed pass
        per_core = psutil.cpu_percent(percpu=True)
        t1 = self._proc.cpu_times()
        wall = time.perf_counter() - getattr(self, "_cpu_wall0", self._t0)
        busy = (t1.user - self._cpu_times0.user) + (t1.system - self._cpu_times0.system)
        end = self.read()
        self._rss()
        raw = end["throttled"]
        flags = None
        if raw is not None:
            flags = {f"{flag}_{when}": v for (flag, when), v in throttle_flags(int(raw)).items()}
        return {
            "process_cpu_percent": round(100.0 * busy / wall, 1) if wall > 0 else None,
            "cpu_percent_per_core": [round(v, 1) for v in per_core],
            "peak_rss_mb": round(self._peak_rss / 2**20, 1),
            "rss_start_mb": round(self.rss_start / 2**20, 1),
            # What this cell added on top of the process (model, runtime arenas, outputs): the peak alone
            # also counts the decoded frames and whatever earlier cells left behind.
            "cell_rss_mb": round((self._peak_rss - self.rss_start) / 2**20, 1),
            "temp_start_c": self.start_reading["temp_c"],
            "temp_end_c": end["temp_c"],
            "arm_freq_mhz_start": self.start_reading["arm_freq_mhz"],
            "arm_freq_mhz_end": end["arm_freq_mhz"],
            "throttled_hex": None if raw is None else hex(int(raw)),
            "throttle_flags": flags,
        }
