"""Health of the machine the daemon runs on: CPU %, RSS, CPU temperature, throttling, ARM clock.

Each reading is a probe, registered by name in PROBES. The Pi-only ones (vcgencmd, the SoC thermal zone)
report why they are unavailable elsewhere and their metrics are then simply absent, never zero.

monitor = SystemMonitor.from_paths(thermal_zone=Path(...), cpufreq=Path(...), vcgencmd="vcgencmd")
monitor.sample()   # {"cpu_percent": 41.0, "rss_bytes": ..., "temperature_c": 52.1, "throttled": 0x50000, ...}
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

# Bits of `vcgencmd get_throttled`: the low nibble is the state now, the same flags << 16 since boot.
THROTTLE_BITS: dict[str, int] = {
    "under_voltage": 0,
    "freq_capped": 1,
    "throttled": 2,
    "soft_temp_limit": 3,
}
SINCE_BOOT_SHIFT = 16


def throttle_flags(raw: int) -> dict[tuple[str, str], bool]:
    """{(flag, "now" | "since_boot"): set?} from the get_throttled bit field."""
    out = {}
    for flag, bit in THROTTLE_BITS.items():
        out[(flag, "now")] = bool(raw >> bit & 1)
        out[(flag, "since_boot")] = bool(raw >> (bit + SINCE_BOOT_SHIFT) & 1)
    return out


Reading = dict[str, float]


class Probe(ABC):
    name: str = ""

    def unavailable(self) -> str | None:
        """None when this probe can read on this machine, else why not."""
        return None

    @abstractmethod
    def read(self) -> Reading:
        """Fresh values; raises OSError/ValueError/subprocess errors when the source misbehaves."""


class ProcessProbe(Probe):
    """CPU % (of one core, like top) and resident memory of this process."""

    name = "process"

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # the first call only starts the measuring interval

    def read(self) -> Reading:
        with self._proc.oneshot():
            return {"cpu_percent": self._proc.cpu_percent(None), "rss_bytes": float(self._proc.memory_info().rss)}


class ThermalZoneProbe(Probe):
    """/sys/class/thermal/thermal_zone0/temp holds millidegrees Celsius (the SoC on a Pi)."""

    name = "thermal_zone"

    def __init__(self, path: Path):
        self.path = Path(path)

    def unavailable(self) -> str | None:
        return None if self.path.is_file() else f"{self.path} does not exist"

    def read(self) -> Reading:
        return {"temperature_c": int(self.path.read_text().strip()) / 1000.0}


def _vcgencmd(binary: str, *args: str) -> str:
    out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=2.0, check=True)
    return out.stdout.strip()


class ThrottleProbe(Probe):
    """`vcgencmd get_throttled` -> throttled=0x50005 (firmware state, Raspberry Pi only)."""

    name = "vcgencmd_throttled"

    def __init__(self, binary: str = "vcgencmd"):
        self.binary = binary

    def unavailable(self) -> str | None:
        return None if shutil.which(self.binary) else f"'{self.binary}' is not on PATH (not a Raspberry Pi)"

    def read(self) -> Reading:
        text = _vcgencmd(self.binary, "get_throttled")
        m = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", text)
        if not m:
            raise ValueError(f"unexpected get_throttled output {text!r}")
        return {"throttled": float(int(m.group(1), 0))}


class ArmFreqProbe(Probe):
    """ARM core clock in Hz: `vcgencmd measure_clock arm` (frequency(48)=1500000000) on a Pi, else
    cpufreq's scaling_cur_freq (kHz) where the kernel has it."""

    name = "arm_freq"

    def __init__(self, binary: str = "vcgencmd", cpufreq: Path | None = None):
        self.binary = binary
        self.cpufreq = Path(cpufreq) if cpufreq is not None else None

    def _has_vcgencmd(self) -> bool:
        return shutil.which(self.binary) is not None

    def unavailable(self) -> str | None:
        if self._has_vcgencmd() or (self.cpufreq is not None and self.cpufreq.is_file()):
            return None
        where = f" nor {self.cpufreq}" if self.cpufreq is not None else " and no cpufreq path configured"
        return f"neither '{self.binary}' on PATH{where}"

    def read(self) -> Reading:
        if self._has_vcgencmd():
            text = _vcgencmd(self.binary, "measure_clock", "arm")
            m = re.search(r"=\s*(\d+)", text)
            if not m:
                raise ValueError(f"unexpected measure_clock output {text!r}")
            return {"arm_freq_hz": float(m.group(1))}
        assert self.cpufreq is not None
        return {"arm_freq_hz": int(self.cpufreq.read_text().strip()) * 1000.0}


PROBES: dict[str, type[Probe]] = {
    "process": ProcessProbe,
    "thermal_zone": ThermalZoneProbe,
    "vcgencmd_throttled": ThrottleProbe,
    "arm_freq": ArmFreqProbe,
}


class SystemMonitor:
    """Reads every available probe, at most once per `min_interval_s` (vcgencmd forks a process, and a
    scrape storm must not fork one per request). A probe that fails is logged once and skipped."""

    def __init__(self, probes: list[Probe], min_interval_s: float = 1.0):
        self.probes = []
        self.unavailable: dict[str, str] = {}
        for p in probes:
            why = p.unavailable()
            if why is None:
                self.probes.append(p)
            else:
                self.unavailable[p.name] = why
        self.min_interval_s = min_interval_s
        self._cache: Reading = {}
        self._at = float("-inf")
        self._failed: set[str] = set()
        self._lock = threading.Lock()  # the HTTP thread and the status line both sample

    @classmethod
    def from_paths(
        cls, thermal_zone: Path, cpufreq: Path | None, vcgencmd: str, min_interval_s: float = 1.0
    ) -> SystemMonitor:
        probes: list[Probe] = [
            ProcessProbe(),
            ThermalZoneProbe(thermal_zone),
            ThrottleProbe(vcgencmd),
            ArmFreqProbe(vcgencmd, cpufreq),
        ]
        monitor = cls(probes, min_interval_s)
        for name, why in monitor.unavailable.items():
            log.info("system metrics: %s unavailable: %s", name, why)
        return monitor

    def sample(self) -> Reading:
        with self._lock:
            now = time.monotonic()
            if now - self._at < self.min_interval_s:
                return dict(self._cache)
            out: Reading = {}
            for p in self.probes:
                try:
                    out |= p.read()
                    self._failed.discard(p.name)
                except (OSError, ValueError, subprocess.SubprocessError) as e:
                    if p.name not in self._failed:
                        log.warning("system metrics: %s failed: %s", p.name, e)
                        self._failed.add(p.name)
            self._cache, self._at = out, now
            return dict(out)

