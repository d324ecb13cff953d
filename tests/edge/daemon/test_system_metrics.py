"""Machine-health probes against a fake sysfs tree and a fake `vcgencmd` executable on PATH."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edge.metrics.prometheus import DaemonMetrics
from edge.metrics.system import SystemMonitor, throttle_flags

FAKE_VCGENCMD = """#!/bin/sh
case "$1" in
  get_throttled) echo "throttled=0x50005" ;;
  measure_clock) echo "frequency(48)=2400000000" ;;
  *) echo "unknown command" >&2; exit 1 ;;
esac
"""


def fake_pi(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    zone = tmp_path / "sys/class/thermal/thermal_zone0/temp"
    zone.parent.mkdir(parents=True)
    zone.write_text("61234\n")
    freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"
    freq.parent.mkdir(parents=True)
    freq.write_text("1500000\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "vcgencmd"
    tool.write_text(FAKE_VCGENCMD)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return zone, freq


def test_throttle_bits():
    flags = throttle_flags(0x50005)
    assert flags[("under_voltage", "now")] and flags[("throttled", "now")]
    assert not flags[("freq_capped", "now")] and not flags[("soft_temp_limit", "now")]
    assert flags[("under_voltage", "since_boot")] and flags[("throttled", "since_boot")]
    assert not flags[("freq_capped", "since_boot")]


def test_fake_pi_values(tmp_path, monkeypatch):
    zone, freq = fake_pi(tmp_path, monkeypatch)
    mon = SystemMonitor.from_paths(zone, freq, "vcgencmd", min_interval_s=0.0)
    assert mon.unavailable == {}
    s = mon.sample()
    assert s["temperature_c"] == 61.234
    assert s["throttled"] == 0x50005
    assert s["arm_freq_hz"] == 2.4e9  # vcgencmd wins over cpufreq
    assert s["rss_bytes"] > 10e6 and s["cpu_percent"] >= 0.0


def test_cpufreq_when_there_is_no_vcgencmd_and_nothing_when_absent(tmp_path, monkeypatch):
    zone, freq = fake_pi(tmp_path, monkeypatch)
    mon = SystemMonitor.from_paths(zone, freq, "not-vcgencmd", min_interval_s=0.0)
    s = mon.sample()
    assert s["arm_freq_hz"] == 1.5e9 and "throttled" not in s
    assert "not on PATH" in mon.unavailable["vcgencmd_throttled"]
    bare = SystemMonitor.from_paths(tmp_path / "none", None, "not-vcgencmd", min_interval_s=0.0)
    assert set(bare.sample()) == {"cpu_percent", "rss_bytes"}


def test_a_probe_that_breaks_later_is_skipped_not_fatal(tmp_path, monkeypatch):
    zone, freq = fake_pi(tmp_path, monkeypatch)
    mon = SystemMonitor.from_paths(zone, freq, "vcgencmd", min_interval_s=0.0)
    zone.write_text("garbage\n")
    s = mon.sample()
    assert "temperature_c" not in s and s["throttled"] == 0x50005


def test_metrics_exposition_has_pi_gauges(tmp_path, monkeypatch):
    zone, freq = fake_pi(tmp_path, monkeypatch)
    metrics = DaemonMetrics(SystemMonitor.from_paths(zone, freq, "vcgencmd", min_interval_s=0.0))
    fams = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert fams["cctvkit_cpu_temperature_celsius"].samples[0].value == 61.234
    assert fams["cctvkit_arm_frequency_hertz"].samples[0].value == 2.4e9
    throttle = {(s.labels["flag"], s.labels["when"]): s.value for s in fams["cctvkit_throttle"].samples}
    assert throttle[("under_voltage", "now")] == 1.0 and throttle[("freq_capped", "since_boot")] == 0.0
    assert fams["cctvkit_resident_memory_bytes"].samples[0].value > 0
